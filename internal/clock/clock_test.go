package clock

import (
	"context"
	"errors"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 25, 2, 0, 0, 0, time.UTC)

func TestManualFiresDueWaitersInOrder(t *testing.T) {
	m := NewManual(t0)
	late := m.After(3 * time.Second)
	early := m.After(time.Second)
	now := m.After(0)
	select {
	case at := <-now:
		if !at.Equal(t0) {
			t.Errorf("After(0) fired at %v, want %v", at, t0)
		}
	default:
		t.Fatal("After(0) did not fire at once")
	}
	if m.Waiters() != 2 {
		t.Fatalf("waiters %d, want 2", m.Waiters())
	}
	m.Advance(2 * time.Second)
	select {
	case at := <-early:
		if !at.Equal(t0.Add(time.Second)) {
			t.Errorf("fired at %v, want its deadline", at)
		}
	default:
		t.Fatal("a due waiter did not fire")
	}
	select {
	case <-late:
		t.Fatal("a waiter fired before its deadline")
	default:
	}
	m.Advance(time.Second)
	<-late
	if m.Waiters() != 0 || !m.Now().Equal(t0.Add(3*time.Second)) {
		t.Errorf("waiters %d now %v", m.Waiters(), m.Now())
	}
}

func TestSleepEndsWithContext(t *testing.T) {
	m := NewManual(t0)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Sleep(ctx, m, time.Hour) }()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Sleep returned %v, want context.Canceled", err)
	}
	if err := Sleep(context.Background(), m, 0); err != nil {
		t.Errorf("Sleep(0) returned %v", err)
	}
}

func TestScaledDefaultsToRealSpeed(t *testing.T) {
	for _, f := range []float64{0, -3} {
		if got := NewScaled(f).Factor(); got != 1 {
			t.Errorf("NewScaled(%v).Factor() = %v, want 1", f, got)
		}
	}
}
