// Package httpapi is the wall's HTTP face: LNURL-pay for the open session,
// the session status as JSON and as a server-sent event stream, receipts
// and history as JSON, health and Prometheus metrics, and the owner's
// token-protected controls. Read-only routes are open; every route has a
// body limit and a time limit.
package httpapi

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"

	"satwatt/internal/lnurlpay"
	"satwatt/internal/wallstore"
	"satwatt/wallctl/internal/chargepoint"
	"satwatt/web"
)

// Wall is what the handlers need of the charge point.
type Wall interface {
	Status() chargepoint.Status
	Subscribe() (<-chan chargepoint.Status, func())
	CurrentOffer() (chargepoint.OfferInfo, error)
	RequestInvoice(ctx context.Context, sessionID string, amountMsat int64) (chargepoint.Invoice, error)
	VerifyInvoice(ctx context.Context, hash [32]byte) (bool, [32]byte, error)
	SetPrice(ctx context.Context, msatPerWh int64) error
	Settings() chargepoint.Settings
	SetSettings(ctx context.Context, s chargepoint.Settings) error
	ShareSoC(sessionID string, permille int64) error
	Stop(ctx context.Context, sessionID string) error
	BuyerStop(ctx context.Context, sessionID, preimageHex string) error
	Metrics() chargepoint.Metrics
	OpenInvoices() int
}

// History is what the handlers need of the records.
type History interface {
	History(ctx context.Context, q wallstore.HistoryQuery) ([]wallstore.SessionSummary, wallstore.Totals, error)
	Receipt(ctx context.Context, id string) (wallstore.Receipt, error)
	Series(ctx context.Context, id string) ([]wallstore.Point, error)
	DailyTotals(ctx context.Context, since, until time.Time) ([]wallstore.PeriodTotal, error)
	MonthlyTotals(ctx context.Context, since, until time.Time) ([]wallstore.PeriodTotal, error)
}

// Config sets the API's secrets and limits.
type Config struct {
	// Token guards every route that changes state; at least 16 characters.
	Token string
	// PublicURL, if set, is the base of the URLs handed to the buyer
	// (callback, receipt); otherwise they are built from the request's Host.
	PublicURL string
	// MaxStreams bounds concurrent event streams (default 64).
	MaxStreams int
	// RequestTimeout bounds every route except the streams (default 10 s).
	RequestTimeout time.Duration
	Logger         *slog.Logger
	// Sim, when the wall drives the simulated EVSE with its built-in
	// vehicle, adds token-protected routes to plug it in and out.
	Sim SimVehicle
	// PathPrefix is where the caller mounts this handler on a wall with
	// several connectors ("/c/2"); the URLs handed to the buyer and the
	// live page's stream carry it. ConnectorName labels the live page.
	PathPrefix    string
	ConnectorName string
	// Side says which routes this handler serves: both (one listener for
	// everything), or the car's side and the owner's on listeners of
	// their own (the charging cable's PLC interface and the LAN).
	Side Side
}

// Side is a set of routes by who uses them.
type Side int

const (
	// BothSides: every route on one listener.
	BothSides Side = iota
	// CarSide: what a car on the charging cable uses: the LNURL offer,
	// callback and verify, the status and its stream, receipts and the
	// buyer's stop. Not the pages, the owner's API or the metrics.
	CarSide
	// OwnerSide: the pages, history, settings, metrics and the owner's
	// API, with the status and receipts; not the LNURL routes, so an
	// invoice can be had only over the cable.
	OwnerSide
)

// SimVehicle is the simulated EVSE's built-in vehicle (a demo and test
// feature).
type SimVehicle interface {
	Plug()
	Unplug()
}

// MinTokenLen is the shortest accepted token.
const MinTokenLen = 16

const (
	maxBody        = 4 << 10
	commentAllowed = 0
)

type api struct {
	cfg     Config
	wall    Wall
	hist    History
	log     *slog.Logger
	streams atomic.Int64
	started time.Time
	pages   *web.Pages
	csrfKey [32]byte
}

const defaultRequestTimeout = 10 * time.Second

// New builds the router.
func New(cfg Config, w Wall, h History) (http.Handler, error) {
	if len(cfg.Token) < MinTokenLen {
		return nil, fmt.Errorf("httpapi: the token must have at least %d characters", MinTokenLen)
	}
	if cfg.PublicURL != "" {
		u, err := url.Parse(cfg.PublicURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("httpapi: public URL %q must be an absolute http(s) URL", cfg.PublicURL)
		}
		cfg.PublicURL = strings.TrimRight(cfg.PublicURL, "/")
	}
	if p := cfg.PathPrefix; p != "" && (!strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/") || strings.ContainsAny(p, "?#%")) {
		return nil, fmt.Errorf("httpapi: path prefix %q must start with / and not end with one", p)
	}
	if cfg.MaxStreams == 0 {
		cfg.MaxStreams = 64
	}
	if cfg.RequestTimeout == 0 {
		cfg.RequestTimeout = defaultRequestTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.ConnectorName != "" {
		cfg.Logger = cfg.Logger.With("connector", cfg.ConnectorName)
	}
	pages, err := web.New()
	if err != nil {
		return nil, fmt.Errorf("httpapi: %w", err)
	}
	a := &api{cfg: cfg, wall: w, hist: h, log: cfg.Logger, started: time.Now(), pages: pages}
	if _, err := rand.Read(a.csrfKey[:]); err != nil {
		return nil, fmt.Errorf("httpapi: csrf key: %w", err)
	}

	r := chi.NewRouter()
	r.Use(middleware.Recoverer, limitBody, securityHeaders)
	// The streams run as long as the client listens; everything else is
	// bounded.
	r.Get("/api/status/stream", a.stream)
	car, owner := cfg.Side != OwnerSide, cfg.Side != CarSide
	r.Group(func(r chi.Router) {
		r.Use(timeout(cfg.RequestTimeout))
		r.Get("/healthz", a.health)
		r.Get("/api/status", a.status)
		r.Get("/api/sessions/{id}", a.receipt)
		// The receipt page is the LNURL success action's URL.
		r.Get("/sessions/{id}", a.receiptPage)
		r.Handle("/static/*", web.Static())
		if car {
			r.Get("/lnurlp", a.payRequest)
			r.Get("/lnurlp/{session}/callback", a.callback)
			r.Get("/lnurlp/verify/{hash}", a.verify)
			r.Post("/api/sessions/{id}/buyer-stop", a.buyerStop)
		}
		if !owner {
			return
		}
		r.Get("/metrics", a.metrics)
		r.Get("/api/history", a.history)
		r.Get("/api/sessions/{id}/series", a.series)
		r.Get("/api/settings", a.getSettings)
		r.Get("/", a.livePage)
		r.Get("/history", a.historyPage)
		r.Get("/history.csv", a.historyCSV)
		r.Get("/settings", a.settingsPage)
		// The form carries the token in its body, checked by the handler.
		r.Post("/settings", a.postSettings)
		r.Group(func(r chi.Router) {
			r.Use(a.requireToken)
			r.Post("/api/price", a.setPrice)
			r.Post("/api/settings", a.setSettings)
			r.Post("/api/sessions/{id}/stop", a.stop)
			if cfg.Sim != nil {
				r.Post("/api/sim/plug", a.simPlug(true))
				r.Post("/api/sim/unplug", a.simPlug(false))
			}
		})
	})
	return r, nil
}

// NewServer wraps the handler with the connection-level limits.
func NewServer(addr string, h http.Handler) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    8 << 10,
	}
}

// timeout bounds a request's time, answering 504 if the handler has not
// answered by then. chi's Timeout writes the 504 header even after the
// handler answered, which net/http logs as a superfluous WriteHeader: a
// line that sends someone looking for a bug that is not there.
func timeout(d time.Duration) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ctx, cancel := context.WithTimeout(r.Context(), d)
			defer cancel()
			ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
			next.ServeHTTP(ww, r.WithContext(ctx))
			if errors.Is(ctx.Err(), context.DeadlineExceeded) && ww.Status() == 0 {
				ww.WriteHeader(http.StatusGatewayTimeout)
			}
		})
	}
}

func limitBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		next.ServeHTTP(w, r)
	})
}

func (a *api) requireToken(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(a.cfg.Token)) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="satwatt wall"`)
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "this route needs Authorization: Bearer <token>"})
			return
		}
		next.ServeHTTP(w, r)
	})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	if err := json.NewEncoder(w).Encode(v); err != nil {
		return
	}
}

func writeErr(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}

// lnurlErr answers in LUD-06's error shape, with HTTP 200 as wallets expect
// for a well-formed request the service declines.
func lnurlErr(w http.ResponseWriter, reason string) {
	writeJSON(w, http.StatusOK, lnurlpay.ErrorResponse(reason))
}

// base is the wall's URL as the buyer reaches it; mine is this connector's
// routes below it.
func (a *api) base(r *http.Request) string {
	if a.cfg.PublicURL != "" {
		return a.cfg.PublicURL
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + hostWithoutZone(r.Host)
}

// hostWithoutZone drops an IPv6 zone from a Host header. The zone names an
// interface of the client's and means nothing to anyone else; Go's HTTP/2
// client sends it (its HTTP/1 client does not), and as a bare "%" it would
// break every URL built from the host.
func hostWithoutZone(h string) string {
	if !strings.HasPrefix(h, "[") {
		return h
	}
	i := strings.IndexByte(h, '%')
	j := strings.IndexByte(h, ']')
	if i < 0 || j < i {
		return h
	}
	return h[:i] + h[j:]
}

func (a *api) mine(r *http.Request) string { return a.base(r) + a.cfg.PathPrefix }

func (a *api) payRequest(w http.ResponseWriter, r *http.Request) {
	oi, err := a.wall.CurrentOffer()
	if err != nil {
		lnurlErr(w, err.Error())
		return
	}
	cb := a.mine(r) + "/lnurlp/" + url.PathEscape(oi.Offer.SessionID) + "/callback"
	pr, err := lnurlpay.PayRequest(cb, oi.MinMsat, oi.MaxMsat, oi.Metadata, commentAllowed)
	if err != nil {
		a.log.Error("httpapi: pay request", "err", err)
		lnurlErr(w, "the wall cannot build its offer: "+err.Error())
		return
	}
	writeJSON(w, http.StatusOK, pr)
}

func (a *api) callback(w http.ResponseWriter, r *http.Request) {
	sid := chi.URLParam(r, "session")
	oi, err := a.wall.CurrentOffer()
	if err != nil {
		lnurlErr(w, err.Error())
		return
	}
	if oi.Offer.SessionID != sid {
		lnurlErr(w, fmt.Sprintf("session %q is not open", clip(sid)))
		return
	}
	q, err := strictQuery(r)
	if err != nil {
		lnurlErr(w, err.Error())
		return
	}
	amt, _, err := lnurlpay.ParseCallbackRequest(q, oi.MinMsat, oi.MaxMsat, commentAllowed)
	if err != nil {
		lnurlErr(w, err.Error())
		return
	}
	soc, hasSoC, err := socParam(q)
	if err != nil {
		lnurlErr(w, err.Error())
		return
	}
	inv, err := a.wall.RequestInvoice(r.Context(), sid, amt)
	if err != nil {
		if errors.Is(err, chargepoint.ErrNotOpen) || errors.Is(err, chargepoint.ErrAmount) ||
			errors.Is(err, chargepoint.ErrTooManyInvoices) || errors.Is(err, chargepoint.ErrNotSelling) {
			lnurlErr(w, err.Error())
			return
		}
		a.log.Error("httpapi: invoice", "session", sid, "err", err)
		lnurlErr(w, "the wall could not create an invoice; try again")
		return
	}
	if hasSoC {
		// Shown on the page only; a session that ended meanwhile is fine.
		if err := a.wall.ShareSoC(sid, soc); err != nil {
			a.log.Debug("httpapi: state of charge not recorded", "session", sid, "err", err)
		}
	}
	base := a.base(r)
	hx := hex.EncodeToString(inv.PaymentHash[:])
	resp, err := lnurlpay.CallbackResponse(inv.Bolt11, base+"/sessions/"+url.PathEscape(sid), "Receipt for this charging session",
		a.mine(r)+"/lnurlp/verify/"+hx)
	if err != nil {
		a.log.Error("httpapi: callback response", "err", err)
		lnurlErr(w, "the wall cannot answer: "+err.Error())
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

func (a *api) verify(w http.ResponseWriter, r *http.Request) {
	var h [32]byte
	b, err := hex.DecodeString(chi.URLParam(r, "hash"))
	if err != nil || len(b) != 32 {
		lnurlErr(w, "the payment hash must be 64 hex digits")
		return
	}
	copy(h[:], b)
	settled, pre, err := a.wall.VerifyInvoice(r.Context(), h)
	if err != nil {
		lnurlErr(w, "unknown invoice")
		return
	}
	preHex := ""
	if settled {
		preHex = hex.EncodeToString(pre[:])
	}
	writeJSON(w, http.StatusOK, lnurlpay.VerifyResponse("", settled, preHex))
}

func (a *api) status(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, a.wall.Status())
}

// stream pushes the status as server-sent events: one at once, then one
// per change, and a comment every 15 s so proxies keep the line open.
func (a *api) stream(w http.ResponseWriter, r *http.Request) {
	if n := a.streams.Add(1); n > int64(a.cfg.MaxStreams) {
		a.streams.Add(-1)
		writeErr(w, http.StatusServiceUnavailable, "too many open status streams")
		return
	}
	defer a.streams.Add(-1)
	rc := http.NewResponseController(w)
	ch, stop := a.wall.Subscribe()
	defer stop()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	keep := time.NewTicker(15 * time.Second)
	defer keep.Stop()
	for {
		// A client that stops reading is dropped instead of holding a
		// goroutine and its buffers.
		_ = rc.SetWriteDeadline(time.Now().Add(30 * time.Second))
		select {
		case <-r.Context().Done():
			return
		case st := <-ch:
			b, err := json.Marshal(st)
			if err != nil {
				return
			}
			if _, err := fmt.Fprintf(w, "event: status\ndata: %s\n\n", b); err != nil {
				return
			}
		case <-keep.C:
			if _, err := fmt.Fprint(w, ": keep-alive\n\n"); err != nil {
				return
			}
		}
		if err := rc.Flush(); err != nil {
			return
		}
	}
}

func (a *api) health(w http.ResponseWriter, r *http.Request) {
	st := a.wall.Status()
	problems := []string{}
	if !st.Ready {
		problems = append(problems, "starting")
	}
	if !st.EVSE.Reachable {
		problems = append(problems, "EVSE not answering")
	}
	if !st.Lightning.Connected {
		problems = append(problems, "lnd not connected")
	}
	if st.Fault != "" {
		problems = append(problems, "fault: "+st.Fault)
	}
	code := http.StatusOK
	if len(problems) > 0 {
		code = http.StatusServiceUnavailable
	}
	writeJSON(w, code, map[string]any{"ok": len(problems) == 0, "problems": problems, "connector": st.Connector})
}

func (a *api) metrics(w http.ResponseWriter, r *http.Request) {
	m := a.wall.Metrics()
	st := a.wall.Status()
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	counter := func(name, help string, v int64) {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s counter\n%s %d\n", name, help, name, name, v)
	}
	gauge := func(name, help string, v int64) {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s gauge\n%s %d\n", name, help, name, name, v)
	}
	counter("satwatt_sessions_opened_total", "Sessions opened since start.", m.SessionsOpened)
	counter("satwatt_sessions_ended_total", "Sessions ended since start.", m.SessionsEnded)
	counter("satwatt_invoices_issued_total", "Invoices handed out.", m.InvoicesIssued)
	counter("satwatt_invoices_refused_total", "Invoice requests refused for too many unpaid invoices.", m.InvoicesRefused)
	counter("satwatt_payments_settled_total", "Payments settled and recorded.", m.PaymentsSettled)
	counter("satwatt_payments_late_total", "Payments that arrived after their session ended.", m.LatePayments)
	counter("satwatt_received_msat_total", "Millisatoshis received.", m.ReceivedMsat)
	counter("satwatt_evse_errors_total", "EVSE readings that failed.", m.EVSEErrors)
	counter("satwatt_store_errors_total", "Database writes that failed.", m.StoreErrors)
	counter("satwatt_faults_total", "Faults that stopped the sale.", m.Faults)
	gauge("satwatt_open_invoices", "Unpaid invoices outstanding.", int64(a.wall.OpenInvoices()))
	gauge("satwatt_event_streams", "Open status streams.", a.streams.Load())
	var delivered, credit, power int64
	if s := st.Session; s != nil {
		delivered, credit, power = s.DeliveredMWh, s.CreditMsat, s.PowerW
	}
	gauge("satwatt_session_delivered_mwh", "Energy delivered in the open session.", delivered)
	gauge("satwatt_session_credit_msat", "Credit left in the open session (negative within the grace).", credit)
	gauge("satwatt_power_w", "Power now.", power)
	gauge("satwatt_next_price_msat_per_wh", "Price for the next session.", st.NextPriceMsatPerWh)
	up := int64(0)
	if st.Lightning.Connected {
		up = 1
	}
	gauge("satwatt_lnd_connected", "1 while the settlement stream is up.", up)
}

func (a *api) receipt(w http.ResponseWriter, r *http.Request) {
	rc, err := a.hist.Receipt(r.Context(), chi.URLParam(r, "id"))
	if err != nil {
		if errors.Is(err, wallstore.ErrNotFound) {
			writeErr(w, http.StatusNotFound, "no such session")
			return
		}
		a.log.Error("httpapi: receipt", "err", err)
		writeErr(w, http.StatusInternalServerError, "could not read the receipt")
		return
	}
	writeJSON(w, http.StatusOK, rc)
}

// parseDay reads a date (2026-11-25) or an RFC 3339 time.
func parseDay(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.ParseInLocation(time.DateOnly, s, time.Local); err == nil {
		return t, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither a date (2006-01-02) nor an RFC 3339 time", clip(s))
	}
	return t, nil
}

// parseUntil reads the end of a range: a date includes that day, as on the
// history page, in the CSV and in the history command; an RFC 3339 time is
// the instant the range stops before.
func parseUntil(s string) (time.Time, error) {
	if t, err := time.ParseInLocation(time.DateOnly, s, time.Local); err == nil {
		return t.AddDate(0, 0, 1), nil
	}
	return parseDay(s)
}

func (a *api) history(w http.ResponseWriter, r *http.Request) {
	q, err := strictQuery(r, "since", "until", "limit")
	if err != nil {
		writeErr(w, http.StatusBadRequest, err.Error())
		return
	}
	since, err := parseDay(q.Get("since"))
	if err != nil {
		writeErr(w, http.StatusBadRequest, "since: "+err.Error())
		return
	}
	until, err := parseUntil(q.Get("until"))
	if err != nil {
		writeErr(w, http.StatusBadRequest, "until: "+err.Error())
		return
	}
	limit := 1000
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 10000 {
			writeErr(w, http.StatusBadRequest, "limit must be 1 to 10000")
			return
		}
		limit = n
	}
	if !since.IsZero() && !until.IsZero() && !since.Before(until) {
		writeErr(w, http.StatusBadRequest, fmt.Sprintf("since %s is not before until %s", q.Get("since"), q.Get("until")))
		return
	}
	rows, tot, err := a.hist.History(r.Context(), wallstore.HistoryQuery{Since: since, Until: until, Limit: limit})
	if err != nil {
		a.log.Error("httpapi: history", "err", err)
		writeErr(w, http.StatusInternalServerError, "could not read the history")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"sessions": rows, "totals": tot})
}

func (a *api) setPrice(w http.ResponseWriter, r *http.Request) {
	var body struct {
		MsatPerWh int64 `json:"msat_per_wh"`
	}
	if err := decodeBody(r.Body, &body, true); err != nil {
		writeErr(w, http.StatusBadRequest, `body must be {"msat_per_wh": N}: `+err.Error())
		return
	}
	if err := a.wall.SetPrice(r.Context(), body.MsatPerWh); err != nil {
		writeErr(w, http.StatusBadRequest, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"next_price_msat_per_wh": body.MsatPerWh})
}

// SoCParam is the optional callback parameter with which a car shares its
// state of charge, in per mille, for the wall's page.
const SoCParam = "soc_permille"

func socParam(q url.Values) (int64, bool, error) {
	vs := q[SoCParam]
	switch {
	case len(vs) == 0:
		return 0, false, nil
	case len(vs) > 1:
		return 0, false, fmt.Errorf("%s: given %d times, at most once", SoCParam, len(vs))
	}
	n, err := strconv.ParseInt(vs[0], 10, 64)
	if err != nil || n < 0 || n > 1000 {
		return 0, false, fmt.Errorf("%s: %q is not a whole number from 0 to 1000", SoCParam, clip(vs[0]))
	}
	return n, true, nil
}

func (a *api) getSettings(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, a.wall.Settings())
}

func (a *api) setSettings(w http.ResponseWriter, r *http.Request) {
	var body chargepoint.Settings
	if err := decodeBody(r.Body, &body, true); err != nil {
		writeErr(w, http.StatusBadRequest, `body must be {"price_msat_per_wh": N, "increment_wh": N, "grace_wh": N}: `+err.Error())
		return
	}
	if err := a.wall.SetSettings(r.Context(), body); err != nil {
		writeErr(w, http.StatusBadRequest, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, a.wall.Settings())
}

func (a *api) stop(w http.ResponseWriter, r *http.Request) {
	if err := a.wall.Stop(r.Context(), chi.URLParam(r, "id")); err != nil {
		writeErr(w, http.StatusConflict, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]bool{"stopped": true})
}

func (a *api) buyerStop(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Preimage string `json:"preimage"`
	}
	if err := decodeBody(r.Body, &body, false); err != nil {
		writeErr(w, http.StatusBadRequest, `body must be {"preimage": "<hex of a payment preimage of this session>"}: `+err.Error())
		return
	}
	err := a.wall.BuyerStop(r.Context(), chi.URLParam(r, "id"), body.Preimage)
	switch {
	case errors.Is(err, chargepoint.ErrNotBuyer):
		writeErr(w, http.StatusForbidden, err.Error())
	case err != nil:
		writeErr(w, http.StatusConflict, err.Error())
	default:
		writeJSON(w, http.StatusOK, map[string]bool{"stopped": true})
	}
}

func (a *api) simPlug(in bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if in {
			a.cfg.Sim.Plug()
		} else {
			a.cfg.Sim.Unplug()
		}
		writeJSON(w, http.StatusOK, map[string]bool{"plugged": in})
	}
}

// decodeBody reads a request body that must be one JSON value into v,
// refusing unknown fields if strict and anything after the value: a
// client that sent two objects or a typo'd field must not have the wall
// act on half of what it meant. Errors are clipped, as they quote the
// body.
func decodeBody(r io.Reader, v any, strict bool) error {
	dec := json.NewDecoder(r)
	if strict {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(v); err != nil {
		return quotedErr{err}
	}
	switch _, err := dec.Token(); {
	case err == io.EOF:
		return nil
	case err != nil && !isSyntax(err):
		return quotedErr{err} // such as the body limit
	}
	return fmt.Errorf("data after the JSON value at byte %d", dec.InputOffset())
}

func isSyntax(err error) bool {
	var se *json.SyntaxError
	return errors.As(err, &se)
}

// strictQuery parses the request's query and allows each of once at most.
// r.URL.Query() silently drops a pair it cannot decode, and a dropped
// filter or a second amount must not change what the wall does without a
// word.
func strictQuery(r *http.Request, once ...string) (url.Values, error) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, fmt.Errorf("query: %w", quotedErr{err})
	}
	for _, k := range once {
		if n := len(q[k]); n > 1 {
			return nil, fmt.Errorf("%s: given %d times, at most once", k, n)
		}
	}
	return q, nil
}

// maxQuoted bounds how much of a client's input an error quotes.
const maxQuoted = 200

// quotedErr is err with its message clipped: it quotes the client's input
// (encoding/json quotes an unknown field whole).
type quotedErr struct{ err error }

func (e quotedErr) Error() string { return clipN(e.err.Error(), maxQuoted) }
func (e quotedErr) Unwrap() error { return e.err }

func clip(s string) string { return clipN(s, 64) }

// clipN keeps at most n bytes of s, cut at a character boundary.
func clipN(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
