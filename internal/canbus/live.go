package canbus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"go.einride.tech/can"
)

// Backoff between attempts to reopen a lost live bus.
const (
	minBackoff = 100 * time.Millisecond
	maxBackoff = 5 * time.Second
)

// frameQueue is how many received frames may wait for Receive. Beyond it
// the reader stops reading and the kernel or server buffers (and then
// drops) instead.
const frameQueue = 256

// link is one open connection to a live bus. A live bus replaces its link
// when the link fails.
type link interface {
	// receive blocks for the next frame. A badInput error is skipped; any
	// other error means the link is dead.
	receive(f *Frame) error
	// send transmits f; an error that means the link is dead wraps
	// ErrBusDown.
	send(ctx context.Context, f can.Frame) error
	close() error
}

// badInput marks an error from a link that the bus skips and reports
// through Options.OnBadInput.
type badInput struct{ err error }

func (b badInput) Error() string { return b.err.Error() }
func (b badInput) Unwrap() error { return b.err }

type dialFunc func(ctx context.Context) (link, error)

// liveBus keeps a live bus open: a goroutine reads frames from the current
// link into a queue, and when the link dies it closes it and dials again
// with exponential backoff on the injected clock. Receive simply keeps
// waiting meanwhile, so upstream sees the gap as stale values; Send fails
// fast with ErrBusDown.
type liveBus struct {
	name string
	dial dialFunc
	opts Options
	log  *slog.Logger

	frames chan Frame
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	mu  sync.Mutex
	cur link // nil while the bus is down

	closeOnce sync.Once

	nFrames, nBad, nErrorFrames, nReconnects atomic.Uint64
}

func newLiveBus(name string, opts Options) *liveBus {
	ctx, cancel := context.WithCancel(context.Background())
	return &liveBus{
		name:   name,
		opts:   opts,
		log:    opts.Logger.With("bus", name),
		frames: make(chan Frame, frameQueue),
		ctx:    ctx,
		cancel: cancel,
		done:   make(chan struct{}),
	}
}

// start dials once, so a wrong name or address fails Open at once, and then
// keeps the bus up in the background.
func (b *liveBus) start(ctx context.Context, dial dialFunc) error {
	b.dial = dial
	l, err := dial(ctx)
	if err != nil {
		b.cancel()
		return err
	}
	b.cur = l
	go b.run(l)
	return nil
}

func (b *liveBus) run(l link) {
	defer close(b.done)
	clk := b.opts.Clock
	var delay time.Duration
	for {
		up := clk.Now()
		err := b.pump(l)
		b.setLink(nil)
		l.close()
		if b.ctx.Err() != nil {
			return
		}
		// A link that held for a while gets an immediate retry; one that
		// keeps dying at once must not make us spin.
		if clk.Now().Sub(up) >= maxBackoff {
			delay = 0
		} else {
			delay = nextBackoff(delay)
		}
		b.log.Warn("canbus: lost the bus, reopening", "err", err, "retry_in", delay)
		if l = b.redial(delay); l == nil {
			return
		}
		b.nReconnects.Add(1)
		b.log.Info("canbus: bus reopened")
	}
}

func nextBackoff(d time.Duration) time.Duration {
	if d < minBackoff {
		return minBackoff
	}
	return min(2*d, maxBackoff)
}

// redial dials until it succeeds or the bus is closed (then nil). Each
// failure is logged once, with the wait before the next attempt.
func (b *liveBus) redial(delay time.Duration) link {
	for {
		if delay > 0 {
			select {
			case <-b.ctx.Done():
				return nil
			case <-b.opts.Clock.After(delay):
			}
		}
		l, err := b.dial(b.ctx)
		if err == nil {
			if b.setLink(l) {
				return l
			}
			l.close()
			return nil
		}
		if b.ctx.Err() != nil {
			return nil
		}
		delay = nextBackoff(delay)
		b.log.Warn("canbus: reopening the bus failed", "err", err, "retry_in", delay)
	}
}

// setLink installs l (nil: the bus is down). It refuses a new link once
// the bus is closed, so Close never misses one.
func (b *liveBus) setLink(l link) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if l != nil && b.ctx.Err() != nil {
		return false
	}
	b.cur = l
	return true
}

// pump moves frames from l to the queue until l fails or the bus closes.
func (b *liveBus) pump(l link) error {
	for {
		var f Frame
		if err := l.receive(&f); err != nil {
			var bad badInput
			if errors.As(err, &bad) {
				b.nBad.Add(1)
				b.opts.OnBadInput(bad.err)
				continue
			}
			return err
		}
		select {
		case b.frames <- f:
		case <-b.ctx.Done():
			return b.ctx.Err()
		}
	}
}

// Receive waits for the next frame. While the bus is down it just keeps
// waiting.
func (b *liveBus) Receive(ctx context.Context, f *Frame) error {
	select {
	case fr := <-b.frames:
		*f = fr
		b.nFrames.Add(1)
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-b.done:
		return ErrClosed
	}
}

// Send transmits f, or fails at once with an error wrapping ErrBusDown
// while the bus is being reopened.
func (b *liveBus) Send(ctx context.Context, f can.Frame) error {
	if b.ctx.Err() != nil {
		return ErrClosed
	}
	b.mu.Lock()
	l := b.cur
	b.mu.Unlock()
	if l == nil {
		return fmt.Errorf("canbus: send on %s: %w", b.name, ErrBusDown)
	}
	if err := l.send(ctx, f); err != nil {
		return fmt.Errorf("canbus: send on %s: %w", b.name, err)
	}
	return nil
}

// Close stops reconnecting and closes the link.
func (b *liveBus) Close() error {
	b.closeOnce.Do(func() {
		b.cancel()
		b.mu.Lock()
		if b.cur != nil {
			b.cur.close()
		}
		b.mu.Unlock()
		<-b.done
	})
	return nil
}

func (b *liveBus) Stats() Stats {
	return Stats{
		Frames:      b.nFrames.Load(),
		BadInput:    b.nBad.Load(),
		ErrorFrames: b.nErrorFrames.Load(),
		Reconnects:  b.nReconnects.Load(),
	}
}
