package ctxdeadline

import (
	"context"
	"errors"
	"net"
	"os"
	"sync"
	"testing"
	"time"
)

func pipe(t *testing.T) (a, b net.Conn) {
	t.Helper()
	a, b = net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

func TestCancelInterruptsRead(t *testing.T) {
	conn, _ := pipe(t)
	d := Deadline{Set: conn.SetReadDeadline}
	ctx, cancel := context.WithCancel(context.Background())
	disarm := d.Arm(ctx)
	defer disarm()

	done := make(chan error, 1)
	go func() {
		_, err := conn.Read(make([]byte, 1))
		done <- err
	}()
	cancel()
	select {
	case err := <-done:
		var ne net.Error
		if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("Read returned %v, want a timeout", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Read still blocked after cancel")
	}
}

// A disarm after the context ended clears the past deadline, so the next
// I/O on the connection works.
func TestDisarmAfterCancelClearsDeadline(t *testing.T) {
	conn, peer := pipe(t)
	d := Deadline{Set: conn.SetReadDeadline}
	ctx, cancel := context.WithCancel(context.Background())
	disarm := d.Arm(ctx)
	cancel()
	disarm()
	readAfterPeerWrites(t, conn, peer)
}

// Disarm before cancel must leave the deadline alone: the cancel must not
// reach the connection at all.
func TestDisarmBeforeCancelLeavesDeadline(t *testing.T) {
	conn, peer := pipe(t)
	var mu sync.Mutex
	var calls []time.Time
	d := Deadline{Set: func(t time.Time) error {
		mu.Lock()
		calls = append(calls, t)
		mu.Unlock()
		return conn.SetReadDeadline(t)
	}}
	ctx, cancel := context.WithCancel(context.Background())
	disarm := d.Arm(ctx)
	disarm()
	cancel()
	readAfterPeerWrites(t, conn, peer)
	mu.Lock()
	defer mu.Unlock()
	if len(calls) != 0 {
		t.Errorf("Set called with %v, want no calls", calls)
	}
}

func TestContextThatNeverEnds(t *testing.T) {
	d := Deadline{Set: func(time.Time) error {
		t.Error("Set called for a context that cannot end")
		return nil
	}}
	d.Arm(context.Background())()
}

// readAfterPeerWrites checks that a Read on conn is not cut short by a
// deadline.
func readAfterPeerWrites(t *testing.T, conn, peer net.Conn) {
	t.Helper()
	go func() {
		time.Sleep(10 * time.Millisecond) // let Read block first
		_, _ = peer.Write([]byte{1})
	}()
	if _, err := conn.Read(make([]byte, 1)); err != nil {
		t.Fatalf("Read: %v", err)
	}
}
