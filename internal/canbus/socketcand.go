package canbus

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.einride.tech/can"

	"satwatt/internal/clock"
	"satwatt/internal/socketcand"
)

// socketcandDialTimeout bounds one connection attempt, so a server that
// does not answer cannot stall reconnecting for the OS's TCP timeout.
// Network timeouts are wall-clock time.
const socketcandDialTimeout = 10 * time.Second

func openSocketcand(ctx context.Context, s Spec, opts Options) (*liveBus, error) {
	b := newLiveBus(s.String(), opts)
	dial := func(ctx context.Context) (link, error) {
		ctx, cancel := context.WithTimeout(ctx, socketcandDialTimeout)
		defer cancel()
		c, err := socketcand.Dial(ctx, s.Addr, s.Bus)
		if err != nil {
			return nil, fmt.Errorf("canbus: %w", err)
		}
		return &socketcandLink{c: c, clk: opts.Clock}, nil
	}
	if err := b.start(ctx, dial); err != nil {
		return nil, err
	}
	return b, nil
}

// socketcandLink is one TCP connection to a socketcand server.
type socketcandLink struct {
	c   *socketcand.Conn
	clk clock.Clock
}

// receive stamps frames with the local clock, not the server's time: the
// server's clock may be another machine's, and staleness is judged here.
func (l *socketcandLink) receive(f *Frame) error {
	// No context: closing the link is what interrupts a blocked read.
	if _, err := l.c.Receive(context.Background(), &f.Frame); err != nil {
		var pe *socketcand.ProtocolError
		var se *socketcand.ServerError
		if errors.As(err, &pe) || errors.As(err, &se) {
			return badInput{err}
		}
		return err
	}
	f.Time = l.clk.Now()
	return nil
}

func (l *socketcandLink) send(ctx context.Context, f can.Frame) error {
	if err := f.Validate(); err != nil {
		return err
	}
	if err := l.c.Send(ctx, f); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("%w: %w", ErrBusDown, err)
	}
	return nil
}

func (l *socketcandLink) close() error { return l.c.Close() }

// NewPortBus makes an in-process socketcand Port a Bus, so a simulator can
// share a Server's bus with TCP clients. Frame times are the hub's.
func NewPortBus(p *socketcand.Port) Bus { return portBus{p} }

type portBus struct{ p *socketcand.Port }

func (b portBus) Receive(ctx context.Context, f *Frame) error {
	t, err := b.p.Receive(ctx, &f.Frame)
	if err != nil {
		if errors.Is(err, socketcand.ErrPortClosed) {
			return ErrClosed
		}
		return err
	}
	f.Time = t
	return nil
}

func (b portBus) Send(ctx context.Context, f can.Frame) error {
	if err := b.p.Send(ctx, f); err != nil {
		if errors.Is(err, socketcand.ErrPortClosed) {
			return ErrClosed
		}
		return err
	}
	return nil
}

func (b portBus) Close() error { return b.p.Close() }
