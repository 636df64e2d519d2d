package wallclient

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const waitLimit = 10 * time.Second

// receive waits for a status on ch that satisfies ok, failing after
// waitLimit; statuses before it are returned too.
func receive(t *testing.T, ch <-chan WallStatus, ok func(WallStatus) bool) []WallStatus {
	t.Helper()
	var got []WallStatus
	deadline := time.NewTimer(waitLimit)
	defer deadline.Stop()
	for {
		select {
		case st, open := <-ch:
			if !open {
				t.Fatalf("channel closed; got %v", delivered(got))
			}
			got = append(got, st)
			if ok(st) {
				return got
			}
		case <-deadline.C:
			t.Fatalf("no wanted status within %v; got %v", waitLimit, delivered(got))
		}
	}
}

func deliveredIs(mwh int64) func(WallStatus) bool {
	return func(st WallStatus) bool { return st.Session != nil && st.Session.DeliveredMWh == mwh }
}

func delivered(sts []WallStatus) []int64 {
	var out []int64
	for _, st := range sts {
		if st.Session == nil {
			out = append(out, -1)
		} else {
			out = append(out, st.Session.DeliveredMWh)
		}
	}
	return out
}

// waitFor polls cond until it holds, failing after waitLimit.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, waitLimit)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitClosed drains ch until it is closed.
func waitClosed(t *testing.T, ch <-chan WallStatus) {
	t.Helper()
	deadline := time.NewTimer(waitLimit)
	defer deadline.Stop()
	for {
		select {
		case _, open := <-ch:
			if !open {
				return
			}
		case <-deadline.C:
			t.Fatal("the channel was not closed after ctx ended")
		}
	}
}

func TestFollowDelivers(t *testing.T) {
	w := newFakeWall(t)
	c, _ := w.client()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch := c.Follow(ctx)
	for i := int64(1); i <= 5; i++ {
		w.events <- ": keep-alive\n\n"
		w.events <- event(i)
		got := receive(t, ch, deliveredIs(i))
		if len(got) != 1 {
			t.Fatalf("update %d: got %v", i, delivered(got))
		}
	}
	// Events split anywhere still arrive whole.
	e := event(6)
	w.events <- e[:10]
	w.events <- e[10:100]
	w.events <- e[100:]
	receive(t, ch, deliveredIs(6))
	if hits := w.hitList(); !slices.Equal(hits, []string{"GET /api/status/stream"}) {
		t.Errorf("requests %v, want one stream and nothing else", hits)
	}
	cancel()
	waitClosed(t, ch)
}

func TestFollowReconnects(t *testing.T) {
	tests := []struct {
		name string
		drop func(t *testing.T, rw http.ResponseWriter) // how the first stream ends
	}{
		{
			name: "clean close",
			drop: func(t *testing.T, rw http.ResponseWriter) {
				rw.Header().Set("Content-Type", "text/event-stream")
				fmt.Fprint(rw, event(1))
			},
		},
		{
			name: "connection cut inside an event",
			drop: func(t *testing.T, rw http.ResponseWriter) {
				conn, buf, err := http.NewResponseController(rw).Hijack()
				if err != nil {
					t.Error(err)
					return
				}
				defer conn.Close()
				fmt.Fprint(buf, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n"+event(1)+"event: status\ndata: {\"conn")
				_ = buf.Flush()
			},
		},
		{
			name: "HTTP 503",
			drop: func(t *testing.T, rw http.ResponseWriter) {
				writeJSON(rw, http.StatusServiceUnavailable, map[string]string{"error": "too many open status streams"})
			},
		},
		{
			name: "not an event stream",
			drop: func(t *testing.T, rw http.ResponseWriter) {
				rw.Header().Set("Content-Type", "text/html")
				fmt.Fprint(rw, "<html>captive portal</html>")
			},
		},
		{
			name: "oversized line",
			drop: func(t *testing.T, rw http.ResponseWriter) {
				rw.Header().Set("Content-Type", "text/event-stream")
				fmt.Fprint(rw, event(1)+"data: "+strings.Repeat("x", MaxSSELine+1))
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := newFakeWall(t)
			var streams atomic.Int64
			w.route("GET /api/status/stream", func(rw http.ResponseWriter, r *http.Request) {
				if streams.Add(1) == 1 {
					tc.drop(t, rw)
					return
				}
				w.stream(rw, r)
			})
			w.setStatus(statusJSON(2))
			logs := &lockedBuffer{}
			c, _ := w.client()
			c.Logger = slog.New(slog.NewTextHandler(logs, nil))
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			ch := c.Follow(ctx)
			// The status fetched after the drop, then the new stream.
			receive(t, ch, deliveredIs(2))
			waitFor(t, "second stream", func() bool { return streams.Load() == 2 })
			w.events <- event(3)
			receive(t, ch, deliveredIs(3))
			want := []string{"GET /api/status/stream", "GET /api/status", "GET /api/status/stream"}
			if hits := w.hitList(); !slices.Equal(hits, want) {
				t.Errorf("requests %v, want %v", hits, want)
			}
			if !strings.Contains(logs.String(), "reconnecting") {
				t.Errorf("the drop was not logged: %s", logs)
			}
			t.Logf("log: %s", logs)
			cancel()
			waitClosed(t, ch)
		})
	}
}

func TestFollowIdleStream(t *testing.T) {
	w := newFakeWall(t)
	var streams atomic.Int64
	w.route("GET /api/status/stream", func(rw http.ResponseWriter, r *http.Request) {
		if streams.Add(1) == 1 {
			// Headers and one event, then silence without closing.
			rw.Header().Set("Content-Type", "text/event-stream")
			fmt.Fprint(rw, event(1))
			_ = http.NewResponseController(rw).Flush()
			select {
			case <-r.Context().Done():
			case <-w.release:
			}
			return
		}
		w.stream(rw, r)
	})
	c, _ := w.client()
	c.StreamIdle = 600 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch := c.Follow(ctx)
	receive(t, ch, deliveredIs(1))
	waitFor(t, "reconnect after silence", func() bool { return streams.Load() == 2 })
	// Keep-alives keep a stream open past StreamIdle.
	for range 20 {
		w.events <- ": keep-alive\n\n"
		time.Sleep(50 * time.Millisecond) // the keep-alive period under test, not a synchronisation
	}
	w.events <- event(4)
	receive(t, ch, deliveredIs(4))
	if n := streams.Load(); n != 2 {
		t.Errorf("%d streams, want 2: keep-alives did not keep the stream open", n)
	}
	cancel()
	waitClosed(t, ch)
}

func TestFollowCoalesces(t *testing.T) {
	const n = 200
	w := newFakeWall(t)
	c, _ := w.client()
	done := make(chan struct{})
	var count atomic.Int64
	c.delivered = func(st WallStatus) {
		if count.Add(1) == n {
			close(done)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch := c.Follow(ctx)
	var all strings.Builder
	for i := int64(1); i <= n; i++ {
		all.WriteString(event(i))
	}
	w.events <- all.String()
	// Nobody reads while the wall writes n statuses: Follow must still
	// take them all, and the reader then sees only the newest.
	select {
	case <-done:
	case <-time.After(waitLimit):
		t.Fatalf("Follow delivered %d of %d statuses with no reader: it blocked", count.Load(), n)
	}
	select {
	case st := <-ch:
		if got := delivered([]WallStatus{st}); got[0] != n {
			t.Fatalf("reader got %d, want the newest, %d", got[0], n)
		}
	default:
		t.Fatal("nothing in the channel")
	}
	select {
	case st := <-ch:
		t.Fatalf("a second status waiting: %v", delivered([]WallStatus{st}))
	default:
	}
	// A reader slower than the writer sees statuses in order, never an
	// older one after a newer one.
	go func() {
		for i := int64(n + 1); i <= 3*n; i++ {
			w.events <- event(i)
		}
	}()
	last := int64(n)
	got := receive(t, ch, func(st WallStatus) bool {
		d := st.Session.DeliveredMWh
		if d <= last {
			t.Errorf("got %d after %d", d, last)
		}
		last = d
		time.Sleep(time.Millisecond) // a slow reader, not a synchronisation
		return d == 3*n
	})
	t.Logf("slow reader saw %d of %d statuses", len(got), 2*n)
	cancel()
	waitClosed(t, ch)
}

func TestFollowLogsBadEventsRateLimited(t *testing.T) {
	w := newFakeWall(t)
	logs := &lockedBuffer{}
	c, _ := w.client()
	c.Logger = slog.New(slog.NewTextHandler(logs, nil))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch := c.Follow(ctx)
	var s strings.Builder
	for range 50 {
		s.WriteString("event: status\ndata: {\"garbage\n\n")
	}
	s.WriteString(event(1))
	w.events <- s.String()
	receive(t, ch, deliveredIs(1))
	if n := strings.Count(logs.String(), "skipped a bad status event"); n != 1 {
		t.Fatalf("%d reports of 50 bad events within 10 s, want 1:\n%s", n, logs)
	}
	if !strings.Contains(logs.String(), "line=3") {
		t.Errorf("the report does not name the line: %s", logs)
	}
	cancel()
	waitClosed(t, ch)
}

func TestFollowStops(t *testing.T) {
	for _, name := range []string{"streaming", "backing off", "cancelled before start"} {
		t.Run(name, func(t *testing.T) {
			w := newFakeWall(t)
			c, tr := w.client()
			if name == "backing off" {
				w.route("GET /api/status/stream", jsonRoute(http.StatusServiceUnavailable, `{"error":"busy"}`))
				c.minBackoff = time.Hour
			}
			before := runtime.NumGoroutine()
			ctx, cancel := context.WithCancel(context.Background())
			if name == "cancelled before start" {
				cancel()
			}
			ch := c.Follow(ctx)
			switch name {
			case "streaming":
				w.events <- event(1)
				receive(t, ch, deliveredIs(1))
			case "backing off":
				waitFor(t, "the stream refused", func() bool { return w.count("GET /api/status/stream") == 1 })
			}
			cancel()
			waitClosed(t, ch)
			tr.CloseIdleConnections()
			waitFor(t, "goroutines back to the count before Follow", func() bool {
				return runtime.NumGoroutine() <= before
			})
		})
	}
}

func TestNextBackoff(t *testing.T) {
	d := MinBackoff
	var seq []time.Duration
	for range 8 {
		seq = append(seq, d)
		d = nextBackoff(d, MinBackoff, MaxBackoff)
	}
	want := []time.Duration{250 * time.Millisecond, 500 * time.Millisecond, time.Second, 2 * time.Second,
		4 * time.Second, 5 * time.Second, 5 * time.Second, 5 * time.Second}
	if !slices.Equal(seq, want) {
		t.Fatalf("backoff %v, want %v", seq, want)
	}
	var c Client
	if lo, hi := c.backoffBounds(); lo != MinBackoff || hi != MaxBackoff {
		t.Fatalf("default bounds %v..%v", lo, hi)
	}
}

func TestFollowBacksOff(t *testing.T) {
	// A stream that always fails: Follow polls /api/status at growing
	// intervals instead.
	w := newFakeWall(t)
	w.route("GET /api/status/stream", jsonRoute(http.StatusServiceUnavailable, `{"error":"busy"}`))
	var mu sync.Mutex
	var times []time.Time
	w.route("GET /api/status", func(rw http.ResponseWriter, r *http.Request) {
		mu.Lock()
		times = append(times, time.Now())
		mu.Unlock()
		w.statusRoute(rw, r)
	})
	c, _ := w.client()
	c.minBackoff, c.maxBackoff = 20*time.Millisecond, 80*time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch := c.Follow(ctx)
	receive(t, ch, deliveredIs(1000))
	waitFor(t, "six polls", func() bool { return w.count("GET /api/status") >= 6 })
	cancel()
	waitClosed(t, ch)
	mu.Lock()
	defer mu.Unlock()
	// Waits of 20, 40, 80, 80, 80 ms before the polls: lower bounds only,
	// as a slow machine may stretch them.
	for i, min := range []time.Duration{40, 80, 80, 80} {
		if gap := times[i+1].Sub(times[i]); gap < min*time.Millisecond {
			t.Errorf("gap %d = %v, want at least %v", i+1, gap, min*time.Millisecond)
		}
	}
}
