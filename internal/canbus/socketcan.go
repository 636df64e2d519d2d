package canbus

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"

	"go.einride.tech/can"
	"go.einride.tech/can/pkg/socketcan"

	"satwatt/internal/clock"
	"satwatt/internal/ctxdeadline"
)

func openSocketCAN(ctx context.Context, s Spec, opts Options) (*liveBus, error) {
	b := newLiveBus(s.String(), opts)
	dial := func(ctx context.Context) (link, error) {
		return dialSocketCAN(ctx, s.Iface, opts.Clock, &b.nErrorFrames)
	}
	if err := b.start(ctx, dial); err != nil {
		return nil, err
	}
	return b, nil
}

// socketCANLink is one raw CAN socket bound to an interface.
type socketCANLink struct {
	iface       string
	nc          net.Conn
	rx          *socketcan.Receiver
	tx          *socketcan.Transmitter
	clk         clock.Clock
	errorFrames *atomic.Uint64

	wmu sync.Mutex
	wdl ctxdeadline.Deadline
}

func dialSocketCAN(ctx context.Context, iface string, clk clock.Clock, errorFrames *atomic.Uint64) (link, error) {
	// Error frames are asked for so they can be counted: they tell a
	// missing bus termination or a bus-off apart from a quiet bus.
	nc, err := socketcan.DialContext(ctx, "can", iface, socketcan.WithReceiveErrorFrames())
	if err != nil {
		return nil, fmt.Errorf("canbus: open SocketCAN interface %s: %w", iface, err)
	}
	return &socketCANLink{
		iface:       iface,
		nc:          nc,
		rx:          socketcan.NewReceiver(nc),
		tx:          socketcan.NewTransmitter(nc),
		clk:         clk,
		errorFrames: errorFrames,
		wdl:         ctxdeadline.Deadline{Set: nc.SetWriteDeadline},
	}, nil
}

func (l *socketCANLink) receive(f *Frame) error {
	for l.rx.Receive() {
		if l.rx.HasErrorFrame() {
			l.errorFrames.Add(1)
			continue
		}
		f.Frame = l.rx.Frame()
		f.Time = l.clk.Now()
		return nil
	}
	// A deleted interface reads ENODEV, one taken down ENETDOWN.
	err := l.rx.Err()
	if err == nil {
		err = io.EOF
	}
	return fmt.Errorf("read from %s: %w", l.iface, err)
}

func (l *socketCANLink) send(ctx context.Context, f can.Frame) error {
	if err := f.Validate(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	l.wmu.Lock()
	defer l.wmu.Unlock()
	disarm := l.wdl.Arm(ctx)
	err := l.tx.TransmitFrame(ctx, f)
	disarm()
	if err == nil {
		return nil
	}
	if errors.Is(err, os.ErrDeadlineExceeded) && ctx.Err() != nil {
		return ctx.Err()
	}
	if linkGone(err) {
		return fmt.Errorf("%w: %s: %w", ErrBusDown, l.iface, err)
	}
	return err
}

// linkGone tells errors that mean the interface is down or gone from ones
// about this one frame (such as a full transmit queue).
func linkGone(err error) bool {
	return errors.Is(err, syscall.ENETDOWN) || errors.Is(err, syscall.ENXIO) ||
		errors.Is(err, syscall.ENODEV) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, os.ErrClosed)
}

func (l *socketCANLink) close() error { return l.nc.Close() }
