package canbus

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"satwatt/internal/canlog"
)

// replay plays a candump or GVRET log. Frame times are the recorded times
// moved so that the first frame falls at the clock's time when the replay
// was opened.
type replay struct {
	spec  Spec
	opts  Options
	file  *os.File
	rd    *canlog.Reader
	start time.Time // clock time of the first frame

	first     time.Duration // recorded time of the very first frame
	haveFirst bool
	base      time.Duration // added to offsets on later passes (Loop)
	passMax   time.Duration // latest offset within this pass
	passCount int           // frames in this pass

	pending bool // next holds a frame not yet delivered
	next    Frame
	due     time.Time

	closed    chan struct{}
	closeOnce sync.Once

	frames, bad atomic.Uint64
}

func openReplay(s Spec, opts Options) (*replay, error) {
	f, err := os.Open(s.Path)
	if err != nil {
		return nil, fmt.Errorf("canbus: open %v replay: %w", s.Format, err)
	}
	return &replay{
		spec:   s,
		opts:   opts,
		file:   f,
		rd:     canlog.NewReader(f, s.Format),
		start:  opts.Clock.Now(),
		closed: make(chan struct{}),
	}, nil
}

// Receive delivers the next frame, at Speed > 0 no sooner than it is due on
// the clock. If ctx ends while waiting, the frame is kept for the next call.
// At the end of the file it returns io.EOF, unless Options.Loop is set.
func (r *replay) Receive(ctx context.Context, f *Frame) error {
	select {
	case <-r.closed:
		return ErrClosed
	default:
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if !r.pending {
		if err := r.read(); err != nil {
			return err
		}
		r.pending = true
	}
	if r.opts.Speed > 0 {
		if wait := r.due.Sub(r.opts.Clock.Now()); wait > 0 {
			// clock.Sleep's wait, plus Close, which must also end it.
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-r.closed:
				return ErrClosed
			case <-r.opts.Clock.After(wait):
			}
		}
	}
	*f = r.next
	r.pending = false
	r.frames.Add(1)
	return nil
}

// read parses lines until the next good frame and works out its times.
func (r *replay) read() error {
	for {
		ts, err := r.rd.Next(&r.next.Frame)
		if err == nil {
			r.place(ts)
			return nil
		}
		if canlog.IsLineError(err) {
			r.bad.Add(1)
			r.opts.OnBadInput(err)
			continue
		}
		if errors.Is(err, io.EOF) {
			if !r.opts.Loop || r.passCount == 0 {
				return io.EOF
			}
			if err := r.rewind(); err != nil {
				return err
			}
			continue
		}
		select {
		case <-r.closed:
			return ErrClosed
		default:
		}
		return fmt.Errorf("canbus: replay %s: %w", r.spec.Path, err)
	}
}

// place sets the frame's time and due time from its recorded time ts.
func (r *replay) place(ts time.Duration) {
	if !r.haveFirst {
		r.first, r.haveFirst = ts, true
	}
	off := ts - r.first
	r.passCount++
	r.passMax = max(r.passMax, off)
	off += r.base
	r.next.Time = r.start.Add(off)
	if r.opts.Speed > 0 {
		r.due = r.start.Add(time.Duration(float64(off) / r.opts.Speed))
	}
}

// rewind starts the next pass. Its first frame follows the last one by the
// file's mean frame interval, so time keeps running forward without a gap
// or a jump.
func (r *replay) rewind() error {
	if _, err := r.file.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("canbus: rewind replay %s: %w", r.spec.Path, err)
	}
	r.rd.Reset(r.file)
	gap := time.Millisecond
	if r.passCount > 1 {
		gap = max(r.passMax/time.Duration(r.passCount-1), time.Microsecond)
	}
	r.base += r.passMax + gap
	r.passMax, r.passCount = 0, 0
	return nil
}

// Close ends the replay; a Receive waiting for a due frame returns.
func (r *replay) Close() error {
	var err error
	r.closeOnce.Do(func() {
		close(r.closed)
		err = r.file.Close()
	})
	return err
}

func (r *replay) Stats() Stats {
	return Stats{Frames: r.frames.Load(), BadInput: r.bad.Load()}
}
