package canbus

import (
	"context"
	"errors"
	"io"
	"strconv"
	"sync"
	"testing"
	"time"

	"satwatt/internal/canlog"
	"satwatt/internal/clock"
	"satwatt/internal/vehicledata"
)

// pacedFrames is what both testdata/paced.* files hold: ID and offset from
// the first frame.
var pacedFrames = []struct {
	id  uint32
	off time.Duration
}{
	{0x100, 0},
	{0x101, 10 * time.Millisecond},
	{0x102, 50 * time.Millisecond},
	{0x1F000103, time.Second},
}

// badLines records OnBadInput calls.
type badLines struct {
	mu    sync.Mutex
	lines []int
}

func (b *badLines) add(err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var le *canlog.LineError
	if errors.As(err, &le) {
		b.lines = append(b.lines, le.Line)
	} else {
		b.lines = append(b.lines, -1)
	}
}

func (b *badLines) get() []int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]int(nil), b.lines...)
}

func TestReplayAsFastAsPossible(t *testing.T) {
	tests := []struct {
		spec    string
		badLine int
	}{
		{"testdata/paced.candump.log", 3},
		{"gvret:testdata/paced.gvret.csv", 4},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			clk := clock.NewManual(epoch)
			var bad badLines
			src, err := Open(context.Background(), tt.spec, Options{Clock: clk, OnBadInput: bad.add})
			if err != nil {
				t.Fatal(err)
			}
			defer src.Close()
			ctx := timeout(t)
			for i, want := range pacedFrames {
				var f Frame
				if err := src.Receive(ctx, &f); err != nil {
					t.Fatalf("frame %d: %v", i, err)
				}
				if f.ID != want.id || !f.Time.Equal(epoch.Add(want.off)) {
					t.Errorf("frame %d: ID %X at %v, want %X at %v", i, f.ID, f.Time, want.id, epoch.Add(want.off))
				}
			}
			var f Frame
			if err := src.Receive(ctx, &f); !errors.Is(err, io.EOF) {
				t.Errorf("after the last frame: err = %v, want io.EOF", err)
			}
			if got := bad.get(); len(got) != 1 || got[0] != tt.badLine {
				t.Errorf("bad lines reported: %v, want [%d]", got, tt.badLine)
			}
			if st := src.(StatsSource).Stats(); st.Frames != 4 || st.BadInput != 1 {
				t.Errorf("stats %+v, want 4 frames and 1 bad line", st)
			}
			if clk.Waiters() != 0 {
				t.Errorf("speed 0 waited on the clock")
			}
		})
	}
}

type received struct {
	f   Frame
	err error
}

func receiveAsync(src Source, ctx context.Context) <-chan received {
	ch := make(chan received, 1)
	go func() {
		var f Frame
		err := src.Receive(ctx, &f)
		ch <- received{f, err}
	}()
	return ch
}

func TestReplayPacedByClock(t *testing.T) {
	for _, speed := range []float64{1, 2, 0.5} {
		t.Run("speed "+strconv.FormatFloat(speed, 'g', -1, 64), func(t *testing.T) {
			clk := clock.NewManual(epoch)
			src, err := Open(context.Background(), "testdata/paced.candump.log",
				Options{Clock: clk, Speed: speed, OnBadInput: func(error) {}})
			if err != nil {
				t.Fatal(err)
			}
			defer src.Close()
			ctx := timeout(t)
			var prevDue time.Duration
			for i, want := range pacedFrames {
				due := time.Duration(float64(want.off) / speed)
				ch := receiveAsync(src, ctx)
				if wait := due - prevDue; wait > 0 {
					waitWaiters(t, clk, 1)
					clk.Advance(wait - time.Nanosecond)
					select {
					case r := <-ch:
						t.Fatalf("frame %d came %v early: %+v", i, time.Nanosecond, r)
					default:
					}
					clk.Advance(time.Nanosecond)
				}
				var r received
				select {
				case r = <-ch:
				case <-ctx.Done():
					t.Fatalf("frame %d never came", i)
				}
				if r.err != nil {
					t.Fatalf("frame %d: %v", i, r.err)
				}
				// Frame times keep the recorded spacing at any speed.
				if r.f.ID != want.id || !r.f.Time.Equal(epoch.Add(want.off)) {
					t.Errorf("frame %d: ID %X at %v, want %X at %v", i, r.f.ID, r.f.Time, want.id, epoch.Add(want.off))
				}
				prevDue = due
			}
		})
	}
}

func TestReplayCancelKeepsFrame(t *testing.T) {
	clk := clock.NewManual(epoch)
	src, err := Open(context.Background(), "testdata/paced.candump.log", Options{Clock: clk, Speed: 1, OnBadInput: func(error) {}})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	var f Frame
	if err := src.Receive(timeout(t), &f); err != nil || f.ID != 0x100 {
		t.Fatalf("first frame %X, %v", f.ID, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ch := receiveAsync(src, ctx)
	waitWaiters(t, clk, 1)
	cancel()
	if r := <-ch; !errors.Is(r.err, context.Canceled) {
		t.Fatalf("cancelled Receive: %v", r.err)
	}
	// The frame that was waiting is not lost.
	clk.Advance(10 * time.Millisecond)
	if err := src.Receive(timeout(t), &f); err != nil || f.ID != 0x101 {
		t.Errorf("after cancel: frame %X, %v; want 101", f.ID, err)
	}
}

func TestReplayCloseWakesReceive(t *testing.T) {
	clk := clock.NewManual(epoch)
	src, err := Open(context.Background(), "testdata/paced.candump.log", Options{Clock: clk, Speed: 1, OnBadInput: func(error) {}})
	if err != nil {
		t.Fatal(err)
	}
	var f Frame
	if err := src.Receive(timeout(t), &f); err != nil {
		t.Fatal(err)
	}
	ch := receiveAsync(src, timeout(t))
	waitWaiters(t, clk, 1)
	src.Close()
	if r := <-ch; !errors.Is(r.err, ErrClosed) {
		t.Errorf("Receive during Close: %v, want ErrClosed", r.err)
	}
	if err := src.Receive(timeout(t), &f); !errors.Is(err, ErrClosed) {
		t.Errorf("Receive after Close: %v, want ErrClosed", err)
	}
}

func TestReplayLoop(t *testing.T) {
	clk := clock.NewManual(epoch)
	src, err := Open(context.Background(), "testdata/paced.candump.log", Options{Clock: clk, Loop: true, OnBadInput: func(error) {}})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	ctx := timeout(t)
	// The second pass follows the first by the mean frame interval
	// (1 s over 3 intervals), and keeps the recorded spacing.
	passGap := time.Second + time.Second/3
	var prev time.Time
	for pass := range 3 {
		for i, want := range pacedFrames {
			var f Frame
			if err := src.Receive(ctx, &f); err != nil {
				t.Fatalf("pass %d frame %d: %v", pass, i, err)
			}
			wantTime := epoch.Add(time.Duration(pass)*passGap + want.off)
			if f.ID != want.id || !f.Time.Equal(wantTime) {
				t.Errorf("pass %d frame %d: ID %X at %v, want %X at %v", pass, i, f.ID, f.Time, want.id, wantTime)
			}
			if !f.Time.After(prev) {
				t.Errorf("pass %d frame %d: time %v does not follow %v", pass, i, f.Time, prev)
			}
			prev = f.Time
		}
	}
}

func TestReplayLoopEmptyFileEnds(t *testing.T) {
	var bad badLines
	src, err := Open(context.Background(), "testdata/garbage.log", Options{Loop: true, OnBadInput: bad.add})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	var f Frame
	if err := src.Receive(timeout(t), &f); !errors.Is(err, io.EOF) {
		t.Errorf("err = %v, want io.EOF for a file with no frames", err)
	}
	if got := bad.get(); len(got) != 3 || got[0] != 1 || got[2] != 3 {
		t.Errorf("bad lines %v, want [1 2 3]", got)
	}
}

func TestReplayRealRecordings(t *testing.T) {
	tests := []struct {
		file   string
		frames int
	}{
		{"model3-2019-chargeport-open.candump.log", 14991},
		{"model3-2019-chargeport-open.gvret.csv", 14991},
		{"model3-pcs-bench-charging-500w.gvret.csv", 26716},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			path := vehicledata.Require(t, tt.file)
			clk := clock.NewManual(epoch)
			src, err := Open(context.Background(), path, Options{Clock: clk, OnBadInput: func(err error) {
				t.Errorf("bad input in a real recording: %v", err)
			}})
			if err != nil {
				t.Fatal(err)
			}
			defer src.Close()
			ctx := timeout(t)
			n := 0
			var first, last Frame
			for {
				var f Frame
				err := src.Receive(ctx, &f)
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				if n == 0 {
					first = f
				}
				last = f
				n++
			}
			if n != tt.frames {
				t.Errorf("%d frames, want %d", n, tt.frames)
			}
			if !first.Time.Equal(epoch) {
				t.Errorf("first frame at %v, want the clock's time at open %v", first.Time, epoch)
			}
			if span := last.Time.Sub(first.Time); span <= 0 || span > time.Minute {
				t.Errorf("recording spans %v", span)
			}
		})
	}
}

func BenchmarkReplaySource(b *testing.B) {
	path := vehicledata.Require(b, "model3-2019-chargeport-open.candump.log")
	src, err := Open(context.Background(), path, Options{Loop: true})
	if err != nil {
		b.Fatal(err)
	}
	defer src.Close()
	ctx := context.Background()
	var f Frame
	b.ReportAllocs()
	for b.Loop() {
		if err := src.Receive(ctx, &f); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
}
