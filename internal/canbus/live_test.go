package canbus

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.einride.tech/can"

	"satwatt/internal/clock"
)

// fakeLink is a link the test kills by hand.
type fakeLink struct {
	frames chan Frame
	dead   chan struct{}
	once   sync.Once
}

func newFakeLink() *fakeLink {
	return &fakeLink{frames: make(chan Frame, 1), dead: make(chan struct{})}
}

func (l *fakeLink) receive(f *Frame) error {
	select {
	case fr := <-l.frames:
		*f = fr
		return nil
	case <-l.dead:
		return errors.New("interface vanished")
	}
}

func (l *fakeLink) send(ctx context.Context, f can.Frame) error {
	select {
	case <-l.dead:
		return fmt.Errorf("%w: fake", ErrBusDown)
	default:
		return nil
	}
}

func (l *fakeLink) close() error {
	l.once.Do(func() { close(l.dead) })
	return nil
}

// fakeDialer hands out links and fails while failing is set, noting the
// clock time of every attempt.
type fakeDialer struct {
	clk      clock.Clock
	mu       sync.Mutex
	failures int // attempts still to fail
	attempts []time.Time
	links    []*fakeLink
}

func (d *fakeDialer) dial(ctx context.Context) (link, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.attempts = append(d.attempts, d.clk.Now())
	if d.failures > 0 {
		d.failures--
		return nil, errors.New("no such device")
	}
	l := newFakeLink()
	d.links = append(d.links, l)
	return l, nil
}

func (d *fakeDialer) state() (attempts []time.Time, links []*fakeLink) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]time.Time(nil), d.attempts...), append([]*fakeLink(nil), d.links...)
}

func TestLiveBusReconnectsWithBackoff(t *testing.T) {
	clk := clock.NewManual(epoch)
	log, logs := newLog()
	d := &fakeDialer{clk: clk}
	b := newLiveBus("fake:can0", Options{Clock: clk, Logger: log, OnBadInput: func(error) {}})
	if err := b.start(context.Background(), d.dial); err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := timeout(t)

	_, links := d.state()
	links[0].frames <- Frame{Frame: can.Frame{ID: 1}}
	var f Frame
	if err := b.Receive(ctx, &f); err != nil || f.ID != 1 {
		t.Fatalf("first frame: %v %v", f, err)
	}
	if err := b.Send(ctx, can.Frame{ID: 2}); err != nil {
		t.Fatalf("send while up: %v", err)
	}

	// The interface goes away and stays away for seven attempts.
	d.mu.Lock()
	d.failures = 7
	d.mu.Unlock()
	lost := clk.Now()
	links[0].close()
	waitFor(t, "Send to report the bus down", func() bool {
		return errors.Is(b.Send(ctx, can.Frame{ID: 3}), ErrBusDown)
	})
	// Receive keeps blocking through the outage.
	ch := receiveAsync(b, ctx)

	// Step the clock 100 ms at a time whenever the bus waits on it, until
	// it has a new link.
	for {
		_, links = d.state()
		if len(links) == 2 {
			break
		}
		waitFor(t, "the bus to wait or reconnect", func() bool {
			_, l := d.state()
			return clk.Waiters() > 0 || len(l) == 2
		})
		if clk.Waiters() > 0 {
			clk.Advance(100 * time.Millisecond)
		}
	}
	attempts, _ := d.state()
	wantOffsets := []time.Duration{100, 300, 700, 1500, 3100, 6300, 11300, 16300} // ms after the loss
	if len(attempts) != 1+len(wantOffsets) {
		t.Fatalf("%d dial attempts, want %d", len(attempts), 1+len(wantOffsets))
	}
	for i, want := range wantOffsets {
		if got := attempts[1+i].Sub(lost); got != want*time.Millisecond {
			t.Errorf("attempt %d at +%v, want +%v", i+1, got, want*time.Millisecond)
		}
	}
	if n := logs.count("reopening the bus failed"); n != 7 {
		t.Errorf("%d failure log records, want one per failed attempt (7)", n)
	}
	if n := logs.count("bus=fake:can0"); n < 8 {
		t.Errorf("log records do not name the bus")
	}
	select {
	case r := <-ch:
		t.Fatalf("Receive returned during the outage: %+v", r)
	default:
	}
	links[1].frames <- Frame{Frame: can.Frame{ID: 4}}
	if r := <-ch; r.err != nil || r.f.ID != 4 {
		t.Errorf("after reconnecting: %+v", r)
	}
	waitFor(t, "Send to work again", func() bool { return b.Send(ctx, can.Frame{ID: 5}) == nil })
	if st := b.Stats(); st.Reconnects != 1 || st.Frames != 2 {
		t.Errorf("stats %+v, want 1 reconnect and 2 frames", st)
	}

	// A link that held for longer than the longest backoff is retried at
	// once when it drops.
	clk.Advance(time.Minute)
	lost = clk.Now()
	links[1].close()
	waitFor(t, "an immediate redial", func() bool { _, l := d.state(); return len(l) == 3 })
	attempts, _ = d.state()
	if got := attempts[len(attempts)-1]; !got.Equal(lost) {
		t.Errorf("redial at +%v after a long-lived link, want at once", got.Sub(lost))
	}
}

func TestLiveBusCloseDuringBackoff(t *testing.T) {
	clk := clock.NewManual(epoch)
	log, _ := newLog()
	d := &fakeDialer{clk: clk}
	b := newLiveBus("fake:can0", Options{Clock: clk, Logger: log, OnBadInput: func(error) {}})
	if err := b.start(context.Background(), d.dial); err != nil {
		t.Fatal(err)
	}
	d.mu.Lock()
	d.failures = 1000
	d.mu.Unlock()
	_, links := d.state()
	links[0].close()
	waitWaiters(t, clk, 1)
	ch := receiveAsync(b, timeout(t))
	done := make(chan struct{})
	go func() { b.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(testTimeout):
		t.Fatal("Close hung during backoff")
	}
	if r := <-ch; !errors.Is(r.err, ErrClosed) {
		t.Errorf("Receive after Close: %v", r.err)
	}
	if err := b.Send(context.Background(), can.Frame{}); !errors.Is(err, ErrClosed) {
		t.Errorf("Send after Close: %v", err)
	}
}

func TestLiveBusOpenFails(t *testing.T) {
	d := &fakeDialer{clk: clock.Real{}, failures: 1}
	opts, err := Options{}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	b := newLiveBus("fake:can0", opts)
	if err := b.start(context.Background(), d.dial); err == nil {
		t.Fatal("start succeeded with a failing dial")
	}
}
