package simevse

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"
)

// Defaults of HTTPVehicleConfig.
const (
	DefaultHTTPTimeout  = 2 * time.Second
	DefaultPollInterval = 250 * time.Millisecond
)

// errorLogInterval bounds how often a failing link is logged.
const errorLogInterval = 30 * time.Second

// HTTPVehicleConfig couples the simulated EVSE to a simulated car running
// in another process, through that car's control API.
type HTTPVehicleConfig struct {
	BaseURL string // the control API, e.g. http://127.0.0.1:8091
	Token   string // bearer token for POST /offer
	// Timeout bounds each request; PollInterval is the real time between
	// state reads. Real time, not the simulation's clock: they pace
	// network traffic, not physics.
	Timeout      time.Duration
	PollInterval time.Duration
	Client       *http.Client // default: a plain client
	Log          *slog.Logger // default slog.Default()
}

// HTTPVehicle is a Vehicle on the far side of the simulated car's control
// API (GET /state, POST /offer?w=WATTS). Its methods answer from the last
// reading, so the EVSE's step never waits on the network; Run (started by
// the EVSE's Run) keeps the reading fresh and passes offers on. The meter
// therefore follows the remote car with up to a poll interval of lag. While
// the car cannot be reached it counts as unplugged, drawing nothing.
type HTTPVehicle struct {
	stateURL string
	offerURL *url.URL
	token    string
	timeout  time.Duration
	poll     time.Duration
	client   *http.Client
	log      *slog.Logger
	wake     chan struct{}

	mu      sync.Mutex
	plugged bool
	asks    bool
	drawW   int64
	offerW  int64 // what the EVSE offers
	sentW   int64 // what the car was last told; -1: unknown
	failing bool
	errs    int // failures since the last log line
	logged  time.Time
}

// remoteState is the part of the simulated car's /state the EVSE needs.
type remoteState struct {
	Plugged  bool   `json:"plugged"`
	DrawW    int64  `json:"draw_w"`
	Charging string `json:"charging"`
}

// NewHTTPVehicle checks the configuration; it does not contact the car.
func NewHTTPVehicle(cfg HTTPVehicleConfig) (*HTTPVehicle, error) {
	base, err := url.Parse(cfg.BaseURL)
	if err != nil {
		return nil, fmt.Errorf("simulated EVSE: vehicle URL: %w", err)
	}
	if (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return nil, fmt.Errorf("simulated EVSE: vehicle URL %q: want http://HOST:PORT", cfg.BaseURL)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultHTTPTimeout
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = DefaultPollInterval
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{}
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	return &HTTPVehicle{
		stateURL: base.JoinPath("state").String(),
		offerURL: base.JoinPath("offer"),
		token:    cfg.Token,
		timeout:  cfg.Timeout,
		poll:     cfg.PollInterval,
		client:   cfg.Client,
		log:      cfg.Log,
		wake:     make(chan struct{}, 1),
		sentW:    -1,
	}, nil
}

// Plugged implements Vehicle from the last reading.
func (h *HTTPVehicle) Plugged() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.plugged
}

// WantsPower implements PowerRequester from the last reading.
func (h *HTTPVehicle) WantsPower() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.plugged && h.asks
}

// DrawW implements Vehicle from the last reading.
func (h *HTTPVehicle) DrawW() int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.drawW
}

// Offer implements Vehicle: it records the offer and wakes Run to pass it
// on; it never waits on the network.
func (h *HTTPVehicle) Offer(maxW int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.offerW = max(0, maxW)
	if h.offerW != h.sentW {
		select {
		case h.wake <- struct{}{}:
		default:
		}
	}
}

// Run keeps the reading fresh and passes offers on until ctx ends, then
// tells the car the offer is zero. Failures are logged at a bounded rate.
func (h *HTTPVehicle) Run(ctx context.Context) error {
	t := time.NewTicker(h.poll)
	defer t.Stop()
	for {
		_ = h.Refresh(ctx) // logged inside
		select {
		case <-ctx.Done():
			h.release(ctx)
			return nil
		case <-t.C:
		case <-h.wake:
		}
	}
}

// release cuts the remote car's supply when the link stops, so it does not
// go on drawing from an EVSE that is gone.
func (h *HTTPVehicle) release(ctx context.Context) {
	h.mu.Lock()
	h.offerW = 0
	sent := h.sentW
	h.mu.Unlock()
	if sent == 0 {
		return
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), h.timeout)
	defer cancel()
	if err := h.Refresh(cctx); err != nil {
		h.log.Warn("simulated EVSE: could not withdraw the offer from the vehicle", "err", err)
	}
}

// Refresh does one exchange with the car: the pending offer if it changed,
// else a state read. On failure the car counts as unplugged.
func (h *HTTPVehicle) Refresh(ctx context.Context) error {
	h.mu.Lock()
	want, sent := h.offerW, h.sentW
	h.mu.Unlock()
	var st remoteState
	var err error
	if want != sent {
		st, err = h.post(ctx, want)
	} else {
		st, err = h.get(ctx)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if err != nil {
		h.plugged, h.asks, h.drawW = false, false, 0
		h.sentW = -1 // the car may have restarted: tell it again
		h.noteErrLocked(err)
		return err
	}
	if want != sent {
		h.sentW = want
	}
	h.plugged, h.asks, h.drawW = st.Plugged, chargingAsks(st.Charging), max(0, st.DrawW)
	if h.failing {
		h.log.Info("simulated EVSE: vehicle reachable again", "failures", h.errs)
		h.failing, h.errs = false, 0
	}
	return nil
}

// noteErrLocked logs the first failure of a run of them, then at most one
// line per errorLogInterval, so a dead car does not flood the log.
func (h *HTTPVehicle) noteErrLocked(err error) {
	h.errs++
	now := time.Now()
	if h.failing && now.Sub(h.logged) < errorLogInterval {
		return
	}
	h.log.Warn("simulated EVSE: vehicle not reachable; counting it as unplugged", "err", err, "failures", h.errs)
	h.failing, h.logged, h.errs = true, now, 0
}

func (h *HTTPVehicle) get(ctx context.Context) (remoteState, error) {
	return h.do(ctx, http.MethodGet, h.stateURL, false)
}

func (h *HTTPVehicle) post(ctx context.Context, w int64) (remoteState, error) {
	u := *h.offerURL
	u.RawQuery = url.Values{"w": {strconv.FormatInt(w, 10)}}.Encode()
	return h.do(ctx, http.MethodPost, u.String(), true)
}

func (h *HTTPVehicle) do(ctx context.Context, method, u string, auth bool) (remoteState, error) {
	ctx, cancel := context.WithTimeout(ctx, h.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return remoteState{}, fmt.Errorf("simulated EVSE: vehicle request: %w", err)
	}
	if auth {
		req.Header.Set("Authorization", "Bearer "+h.token)
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return remoteState{}, fmt.Errorf("simulated EVSE: vehicle %s: %w", req.URL.Path, err)
	}
	defer resp.Body.Close()
	body := io.LimitReader(resp.Body, 64<<10)
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, body)
		return remoteState{}, fmt.Errorf("simulated EVSE: vehicle %s: HTTP %s", req.URL.Path, resp.Status)
	}
	var st remoteState
	if err := json.NewDecoder(body).Decode(&st); err != nil {
		return remoteState{}, fmt.Errorf("simulated EVSE: vehicle %s: bad state: %w", req.URL.Path, err)
	}
	return st, nil
}
