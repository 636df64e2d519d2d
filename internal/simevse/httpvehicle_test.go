package simevse

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"satwatt/internal/evse"
)

const testToken = "a-test-token-of-some-length"

// fakeCar serves the simulated car's control API the way vehiclegw does:
// GET /state open, POST /offer?w= behind the bearer token, both answering
// with the car's state.
type fakeCar struct {
	mu       sync.Mutex
	token    string
	plugged  bool
	charging string
	maxW     int64
	offered  int64
	gets     int
	posts    int
	fail     string        // "", "status", "json", "abort", "slow"
	entered  chan struct{} // signalled when a slow request arrives
}

func (f *fakeCar) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	switch f.fail {
	case "slow":
		f.mu.Unlock()
		select {
		case f.entered <- struct{}{}:
		default:
		}
		<-r.Context().Done() // until the client gives up
		return
	case "abort":
		f.mu.Unlock()
		panic(http.ErrAbortHandler) // drops the connection
	}
	defer f.mu.Unlock()
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/state":
		f.gets++
	case r.Method == http.MethodPost && r.URL.Path == "/offer":
		if r.Header.Get("Authorization") != "Bearer "+f.token {
			http.Error(w, "a valid bearer token is required", http.StatusUnauthorized)
			return
		}
		n, err := strconv.ParseInt(r.URL.Query().Get("w"), 10, 64)
		if err != nil || n < 0 {
			http.Error(w, "bad w", http.StatusBadRequest)
			return
		}
		f.offered = n
		f.posts++
	default:
		http.NotFound(w, r)
		return
	}
	switch f.fail {
	case "status":
		http.Error(w, "broken", http.StatusInternalServerError)
		return
	case "json":
		_, _ = w.Write([]byte("{not json"))
		return
	}
	draw := int64(0)
	if f.plugged && chargingAsks(f.charging) {
		draw = min(f.offered, f.maxW)
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"plugged": f.plugged, "draw_w": draw, "charging": f.charging, "soc_permil": 200,
	})
}

func (f *fakeCar) set(fn func(f *fakeCar)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

func (f *fakeCar) get() fakeCar {
	f.mu.Lock()
	defer f.mu.Unlock()
	return fakeCar{offered: f.offered, gets: f.gets, posts: f.posts}
}

// countLog counts log records by level.
type countLog struct {
	mu sync.Mutex
	n  map[slog.Level]int
}

func (c *countLog) Enabled(context.Context, slog.Level) bool { return true }
func (c *countLog) Handle(_ context.Context, r slog.Record) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[slog.Level]int{}
	}
	c.n[r.Level]++
	return nil
}
func (c *countLog) WithAttrs([]slog.Attr) slog.Handler { return c }
func (c *countLog) WithGroup(string) slog.Handler      { return c }
func (c *countLog) count(l slog.Level) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[l]
}

func newFakeCar(t *testing.T) (*fakeCar, *httptest.Server) {
	f := &fakeCar{token: testToken, plugged: true, charging: "ready", maxW: 7000, entered: make(chan struct{}, 1)}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv
}

func newHTTPVehicle(t *testing.T, url string, timeout time.Duration, log *slog.Logger) *HTTPVehicle {
	t.Helper()
	h, err := NewHTTPVehicle(HTTPVehicleConfig{BaseURL: url, Token: testToken, Timeout: timeout, PollInterval: 2 * time.Millisecond, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestHTTPVehicleReadsAndOffers(t *testing.T) {
	f, srv := newFakeCar(t)
	h := newHTTPVehicle(t, srv.URL+"/", time.Second, testLog(t))
	ctx := t.Context()
	if h.Plugged() || h.DrawW() != 0 {
		t.Fatal("plugged or drawing before any reading")
	}
	if err := h.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if !h.Plugged() || !h.WantsPower() || h.DrawW() != 0 {
		t.Fatalf("plugged %v asks %v draws %d W; want plugged, asking, nothing offered yet", h.Plugged(), h.WantsPower(), h.DrawW())
	}
	// The first exchange takes over the car's supply: zero until offered.
	if got := f.get(); got.posts != 1 || got.offered != 0 {
		t.Fatalf("first exchange: %d posts, car offered %d W; want the zero offer sent", got.posts, got.offered)
	}
	h.Offer(5000)
	if err := h.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if got := f.get(); got.offered != 5000 || got.posts != 2 || h.DrawW() != 5000 {
		t.Fatalf("car offered %d W after %d posts, draws %d W; want 5000 W once", got.offered, got.posts, h.DrawW())
	}
	if err := h.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if got := f.get(); got.posts != 2 || got.gets != 1 {
		t.Errorf("%d posts %d gets; an unchanged offer is not sent again", got.posts, got.gets)
	}
	f.set(func(f *fakeCar) { f.charging = "complete" })
	if err := h.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if !h.Plugged() || h.WantsPower() || h.DrawW() != 0 {
		t.Errorf("full car: plugged %v asks %v draws %d W", h.Plugged(), h.WantsPower(), h.DrawW())
	}
}

func TestHTTPVehicleFailuresCountAsUnplugged(t *testing.T) {
	cases := []struct {
		name    string
		breakIt func(f *fakeCar)
		is      error // the error Refresh wraps, if any in particular
	}{
		{"server error", func(f *fakeCar) { f.fail = "status" }, nil},
		{"not JSON", func(f *fakeCar) { f.fail = "json" }, nil},
		{"wrong token", func(f *fakeCar) { f.token = "another-token-entirely" }, nil},
		{"connection dropped", func(f *fakeCar) { f.fail = "abort" }, nil},
		{"too slow", func(f *fakeCar) { f.fail = "slow" }, context.DeadlineExceeded},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, srv := newFakeCar(t)
			logs := &countLog{}
			h := newHTTPVehicle(t, srv.URL, 50*time.Millisecond, slog.New(logs))
			ctx := t.Context()
			h.Offer(3000)
			if err := h.Refresh(ctx); err != nil || h.DrawW() != 3000 {
				t.Fatalf("before the failure: %v, draws %d W", err, h.DrawW())
			}
			f.set(c.breakIt)
			h.Offer(4000) // so the failing exchange is a POST where a token matters
			for range 5 {
				err := h.Refresh(ctx)
				if err == nil || (c.is != nil && !errors.Is(err, c.is)) {
					t.Fatalf("Refresh: %v, want an error wrapping %v", err, c.is)
				}
				if h.Plugged() || h.WantsPower() || h.DrawW() != 0 {
					t.Fatal("an unreachable car still counts as plugged or drawing")
				}
			}
			if n := logs.count(slog.LevelWarn); n != 1 {
				t.Errorf("%d warnings for 5 failures in a row, want 1", n)
			}
			f.set(func(f *fakeCar) { f.fail, f.token = "", testToken })
			if err := h.Refresh(ctx); err != nil {
				t.Fatal(err)
			}
			if got := f.get(); got.offered != 4000 || !h.Plugged() || h.DrawW() != 4000 {
				t.Errorf("after recovery: car offered %d W, plugged %v, draws %d W; want the 4000 W offer delivered", got.offered, h.Plugged(), h.DrawW())
			}
			if logs.count(slog.LevelInfo) != 1 {
				t.Error("recovery not logged")
			}
		})
	}
}

func TestHTTPVehicleNeverBlocksTheEVSE(t *testing.T) {
	f, srv := newFakeCar(t)
	f.set(func(f *fakeCar) { f.fail = "slow" })
	h := newHTTPVehicle(t, srv.URL, time.Minute, testLog(t))
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- h.Refresh(ctx) }()
	<-f.entered // a request hangs now
	// What the EVSE's step calls answers from the cache meanwhile.
	h.Offer(1000)
	if h.Plugged() || h.DrawW() != 0 || h.WantsPower() {
		t.Error("no reading yet, but the cache says otherwise")
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Refresh: %v, want context.Canceled", err)
	}
}

func TestHTTPVehicleConfigChecked(t *testing.T) {
	for _, u := range []string{"", "127.0.0.1:8091", "ftp://host/", "http://", "http://[::1"} {
		if _, err := NewHTTPVehicle(HTTPVehicleConfig{BaseURL: u}); err == nil {
			t.Errorf("base URL %q accepted", u)
		}
	}
}

func TestHTTPVehicleThroughTheEVSE(t *testing.T) {
	f, srv := newFakeCar(t)
	f.set(func(f *fakeCar) { f.maxW = 11_000 })
	h := newHTTPVehicle(t, srv.URL, time.Second, testLog(t))
	// The link runs in real time, so simulated time passes while it
	// catches up: no watchdog here.
	r := newRig(t, Config{Vehicle: h, WatchdogTimeout: -1})
	until := func(what string, cond func(evse.Status) bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !cond(r.peek()) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 10 s; status %+v", what, r.peek())
			}
			r.advance(r.e.cfg.Step)
		}
	}
	until("the remote car asks for power", func(s evse.Status) bool { return s.Pilot == evse.PilotC })
	r.enable(32)
	until("charging at full power", func(s evse.Status) bool { return s.PowerW == 7360 })
	if got := f.get(); got.offered != 7360 {
		t.Errorf("remote car offered %d W, want 7360", got.offered)
	}
	r.stop()
	if got := f.get(); got.offered != 0 {
		t.Errorf("remote car still offered %d W after the EVSE stopped", got.offered)
	}
	f.set(func(f *fakeCar) { f.plugged = false })
	if err := h.Refresh(t.Context()); err != nil || h.Plugged() {
		t.Errorf("after unplug: %v, plugged %v", err, h.Plugged())
	}
}
