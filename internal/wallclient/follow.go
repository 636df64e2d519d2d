package wallclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"sync/atomic"
	"time"
)

// Follow's reconnect backoff: MinBackoff after a stream that delivered,
// doubling on each failure up to MaxBackoff.
const (
	MinBackoff = 250 * time.Millisecond
	MaxBackoff = 5 * time.Second
)

// logEvery is the least time between two reports of the same kind.
const logEvery = 10 * time.Second

// Follow follows GET {Base}/api/status/stream and delivers each status the
// wall sends. When the stream drops, fails or stays silent past
// StreamIdle it reconnects after a backoff (MinBackoff doubling to
// MaxBackoff, back to MinBackoff once a stream delivers), and before each
// reconnect fetches /api/status once, so nothing is missed and a wall
// whose stream keeps failing is still polled. Bad events are logged (at
// most one report per 10 s) and skipped.
//
// The channel has capacity 1 and holds only the newest status: a slow
// reader never blocks Follow and never gets a stale status. It is closed
// when ctx ends, after Follow's goroutine has let go of every connection.
func (c *Client) Follow(ctx context.Context) <-chan WallStatus {
	out := make(chan WallStatus, 1)
	go c.follow(ctx, out)
	return out
}

func (c *Client) follow(ctx context.Context, out chan WallStatus) {
	defer close(out)
	log := c.logger()
	deliver := func(st WallStatus) {
		// Only this goroutine sends, so after taking out an unread
		// status the send cannot block.
		select {
		case <-out:
		default:
		}
		out <- st
		if c.delivered != nil {
			c.delivered(st)
		}
	}
	badLog := &rateLog{log: log, every: logEvery}
	dropLog := &rateLog{log: log, every: logEvery}
	minB, maxB := c.backoffBounds()
	wait := minB
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			wait = nextBackoff(wait, minB, maxB)
			st, err := c.Status(ctx)
			switch {
			case ctx.Err() != nil:
				return
			case err != nil:
				dropLog.warn("wallclient: status fetch after the stream dropped failed", "err", err)
			default:
				deliver(st)
			}
		}
		n, err := c.stream(ctx, deliver, func(line int, err error) {
			badLog.warn("wallclient: skipped a bad status event", "line", line, "err", err)
		})
		if ctx.Err() != nil {
			return
		}
		if n > 0 {
			wait = minB
		}
		if errors.Is(err, io.EOF) {
			err = errors.New("the wall closed the stream")
		}
		dropLog.warn("wallclient: status stream ended; reconnecting", "err", err, "delivered", n, "retry_in", wait)
	}
}

// nextBackoff doubles d within [lo, hi].
func nextBackoff(d, lo, hi time.Duration) time.Duration {
	d *= 2
	if d < lo {
		d = lo
	}
	if d > hi {
		d = hi
	}
	return d
}

func (c *Client) backoffBounds() (time.Duration, time.Duration) {
	lo, hi := MinBackoff, MaxBackoff
	if c.minBackoff > 0 {
		lo = c.minBackoff
	}
	if c.maxBackoff > 0 {
		hi = c.maxBackoff
	}
	if hi < lo {
		hi = lo
	}
	return lo, hi
}

// stream opens the event stream once and parses it until it ends. It
// returns how many statuses it delivered and why it ended (io.EOF when
// the wall closed it cleanly).
func (c *Client) stream(ctx context.Context, deliver func(WallStatus), bad func(int, error)) (int, error) {
	u, err := c.endpoint("api", "status", "stream")
	if err != nil {
		return 0, err
	}
	where := u.EscapedPath()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// One timer bounds the wait for the headers (Timeout), then each
	// silence on the stream (StreamIdle).
	var timedOut atomic.Bool
	watchdog := time.AfterFunc(c.timeout(), func() {
		timedOut.Store(true)
		cancel()
	})
	defer watchdog.Stop()
	explain := func(err error) error {
		if timedOut.Load() {
			return fmt.Errorf("wallclient: GET %s: nothing from the wall in time: %w", where, err)
		}
		return fmt.Errorf("wallclient: GET %s: %w", where, err)
	}

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return 0, fmt.Errorf("wallclient: GET %s: %w", where, err)
	}
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Cache-Control", "no-cache")
	hc := c.httpClient()
	hc.Timeout = 0 // the stream lives as long as ctx; the watchdog bounds it
	resp, err := hc.Do(req)
	if err != nil {
		return 0, explain(transportErr(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, httpErr(http.MethodGet, where, resp, "")
	}
	if mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type")); err != nil || mt != "text/event-stream" {
		return 0, fmt.Errorf("wallclient: GET %s: %w: content type %q, want text/event-stream",
			where, ErrBadResponse, clip(resp.Header.Get("Content-Type")))
	}
	idle := c.streamIdle()
	watchdog.Reset(idle)
	n := 0
	err = parseSSE(&idleReader{r: resp.Body, t: watchdog, d: idle}, func(st WallStatus) {
		n++
		deliver(st)
	}, bad)
	if errors.Is(err, io.EOF) {
		return n, err
	}
	return n, explain(err)
}

// idleReader restarts the watchdog whenever bytes arrive.
type idleReader struct {
	r io.Reader
	t *time.Timer
	d time.Duration
}

func (r *idleReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if n > 0 {
		r.t.Reset(r.d)
	}
	return n, err
}

// rateLog reports at most once per period, counting what it held back.
// One goroutine uses it.
type rateLog struct {
	log        *slog.Logger
	every      time.Duration
	last       time.Time
	suppressed int
}

func (r *rateLog) warn(msg string, args ...any) {
	now := time.Now()
	if !r.last.IsZero() && now.Sub(r.last) < r.every {
		r.suppressed++
		return
	}
	if r.suppressed > 0 {
		args = append(args, "suppressed", r.suppressed)
	}
	r.last, r.suppressed = now, 0
	r.log.Warn(msg, args...)
}
