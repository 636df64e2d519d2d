package httpapi

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"satwatt/internal/offer"
	"satwatt/internal/wallstore"
	"satwatt/wallctl/internal/chargepoint"
)

const token = "test-token-0123456789"

// fakeWall stands in for the charge point in these handler tests; the
// chargepoint package and the regtest test in wallctl cover the real one.
type fakeWall struct {
	mu       sync.Mutex
	open     bool
	invErr   error
	price    int64
	stopped  string
	subs     chan chargepoint.Status
	requests int
	settings chargepoint.Settings
	soc      map[string]int64
	number   int // the connector, for NewWall's tests
}

const sid = "20261125T020000Z-0123456789ab"

var testOffer = offer.Offer{SessionID: sid, PriceMsatPerWh: 100, IncrementWh: 50, FirstMultiple: 2, GraceWh: 10,
	MaxPowerW: 7360, WallNodeKey: "02" + strings.Repeat("ab", 32), ValidUntil: time.Unix(1_800_000_000, 0), Network: "regtest"}

func (f *fakeWall) Status() chargepoint.Status {
	return chargepoint.Status{Connector: "idle", Ready: true, NextPriceMsatPerWh: 100, ConnectorNumber: f.number}
}
func (f *fakeWall) Subscribe() (<-chan chargepoint.Status, func()) {
	ch := make(chan chargepoint.Status, 1)
	ch <- f.Status()
	return ch, func() {}
}
func (f *fakeWall) CurrentOffer() (chargepoint.OfferInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.open {
		return chargepoint.OfferInfo{}, fmt.Errorf("%w: no vehicle has an open session", chargepoint.ErrNotOpen)
	}
	meta, err := offer.Metadata(testOffer, "test")
	return chargepoint.OfferInfo{Offer: testOffer, Metadata: meta, MinMsat: 10_000, MaxMsat: 50_000}, err
}
func (f *fakeWall) RequestInvoice(ctx context.Context, id string, amt int64) (chargepoint.Invoice, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests++
	if f.invErr != nil {
		return chargepoint.Invoice{}, f.invErr
	}
	return chargepoint.Invoice{Bolt11: "lnbcrt100n1test", PaymentHash: [32]byte{1}}, nil
}
func (f *fakeWall) VerifyInvoice(ctx context.Context, h [32]byte) (bool, [32]byte, error) {
	return true, [32]byte{2}, nil
}
func (f *fakeWall) SetPrice(ctx context.Context, p int64) error {
	if p <= 0 {
		return errors.New("price must be positive")
	}
	f.mu.Lock()
	f.price = p
	f.mu.Unlock()
	return nil
}
func (f *fakeWall) Stop(ctx context.Context, id string) error {
	f.mu.Lock()
	f.stopped = id
	f.mu.Unlock()
	return nil
}
func (f *fakeWall) BuyerStop(ctx context.Context, id, pre string) error {
	return fmt.Errorf("%w: no", chargepoint.ErrNotBuyer)
}
func (f *fakeWall) Metrics() chargepoint.Metrics {
	return chargepoint.Metrics{PaymentsSettled: 3, ReceivedMsat: 30_000}
}
func (f *fakeWall) OpenInvoices() int { return 1 }
func (f *fakeWall) Settings() chargepoint.Settings {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.settings
}
func (f *fakeWall) SetSettings(ctx context.Context, s chargepoint.Settings) error {
	if s.PriceMsatPerWh <= 0 || s.IncrementWh <= 0 || s.GraceWh < 0 {
		return errors.New("metering: terms must be positive")
	}
	f.mu.Lock()
	f.settings = s
	f.mu.Unlock()
	return nil
}
func (f *fakeWall) ShareSoC(id string, permille int64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.soc == nil {
		f.soc = map[string]int64{}
	}
	f.soc[id] = permille
	return nil
}

type fakeHistory struct{}

func (fakeHistory) History(ctx context.Context, q wallstore.HistoryQuery) ([]wallstore.SessionSummary, wallstore.Totals, error) {
	return []wallstore.SessionSummary{{ID: sid, DeliveredMWh: 1500, PaidMsat: 150}}, wallstore.Totals{Sessions: 1}, nil
}
func (fakeHistory) Receipt(ctx context.Context, id string) (wallstore.Receipt, error) {
	if id != sid {
		return wallstore.Receipt{}, wallstore.ErrNotFound
	}
	return wallstore.Receipt{PaidMsat: 150}, nil
}
func (fakeHistory) Series(ctx context.Context, id string) ([]wallstore.Point, error) {
	return nil, wallstore.ErrNotFound
}
func (fakeHistory) DailyTotals(ctx context.Context, since, until time.Time) ([]wallstore.PeriodTotal, error) {
	return nil, nil
}
func (fakeHistory) MonthlyTotals(ctx context.Context, since, until time.Time) ([]wallstore.PeriodTotal, error) {
	return nil, nil
}

func newServer(t *testing.T, w *fakeWall) *httptest.Server {
	t.Helper()
	h, err := New(Config{Token: token}, w, fakeHistory{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

func do(t *testing.T, method, url, auth, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	if auth != "" {
		req.Header.Set("Authorization", "Bearer "+auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestRoutes(t *testing.T) {
	w := &fakeWall{open: true}
	srv := newServer(t, w)
	cases := []struct {
		name, method, path, auth, body string
		code                           int
		contains                       string
	}{
		{"status", "GET", "/api/status", "", "", 200, `"connector":"idle"`},
		{"health", "GET", "/healthz", "", "", 503, "lnd not connected"},
		{"metrics", "GET", "/metrics", "", "", 200, "satwatt_received_msat_total 30000"},
		{"pay request", "GET", "/lnurlp", "", "", 200, `"tag":"payRequest"`},
		{"pay request callback", "GET", "/lnurlp", "", "", 200, "/lnurlp/" + sid + "/callback"},
		{"callback", "GET", "/lnurlp/" + sid + "/callback?amount=10000", "", "", 200, `"pr":"lnbcrt100n1test"`},
		{"callback verify url", "GET", "/lnurlp/" + sid + "/callback?amount=10000", "", "", 200, "/lnurlp/verify/0100"},
		{"callback too little", "GET", "/lnurlp/" + sid + "/callback?amount=9999", "", "", 200, `"status":"ERROR"`},
		{"callback too much", "GET", "/lnurlp/" + sid + "/callback?amount=50001", "", "", 200, `"status":"ERROR"`},
		{"callback no amount", "GET", "/lnurlp/" + sid + "/callback", "", "", 200, `"status":"ERROR"`},
		{"callback garbage amount", "GET", "/lnurlp/" + sid + "/callback?amount=1e9", "", "", 200, `"status":"ERROR"`},
		{"callback other session", "GET", "/lnurlp/other/callback?amount=10000", "", "", 200, `is not open`},
		{"verify", "GET", "/lnurlp/verify/" + strings.Repeat("01", 32), "", "", 200, `"settled":true`},
		{"verify bad hash", "GET", "/lnurlp/verify/xyz", "", "", 200, `"status":"ERROR"`},
		{"receipt", "GET", "/api/sessions/" + sid, "", "", 200, `"PaidMsat":150`},
		{"receipt missing", "GET", "/api/sessions/nope", "", "", 404, "no such session"},
		{"history", "GET", "/api/history?since=2026-11-01&until=2026-11-30", "", "", 200, `"sessions"`},
		{"history bad date", "GET", "/api/history?since=yesterday", "", "", 400, "since"},
		{"history bad limit", "GET", "/api/history?limit=0", "", "", 400, "limit"},
		{"price without token", "POST", "/api/price", "", `{"msat_per_wh":200}`, 401, "Bearer"},
		{"price wrong token", "POST", "/api/price", "wrong-token-wrong-token", `{"msat_per_wh":200}`, 401, "Bearer"},
		{"price", "POST", "/api/price", token, `{"msat_per_wh":200}`, 200, "200"},
		{"price zero", "POST", "/api/price", token, `{"msat_per_wh":0}`, 400, "positive"},
		{"price garbage", "POST", "/api/price", token, `{"msat_per_wh":"lots"}`, 400, "body must be"},
		{"price unknown field", "POST", "/api/price", token, `{"price":1}`, 400, "body must be"},
		{"price huge body", "POST", "/api/price", token, `{"msat_per_wh":1` + strings.Repeat(" ", 8<<10) + `}`, 400, "too large"},
		{"stop without token", "POST", "/api/sessions/" + sid + "/stop", "", "", 401, "Bearer"},
		{"stop", "POST", "/api/sessions/" + sid + "/stop", token, "", 200, "stopped"},
		{"buyer stop without proof", "POST", "/api/sessions/" + sid + "/buyer-stop", "", `{"preimage":"00"}`, 403, "not the buyer"},
		{"sim plug without sim", "POST", "/api/sim/plug", token, "", 404, ""},
		{"unknown route", "GET", "/nope", "", "", 404, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, body := do(t, tc.method, srv.URL+tc.path, tc.auth, tc.body)
			if code != tc.code || !strings.Contains(body, tc.contains) {
				t.Errorf("%s %s: %d %q, want %d containing %q", tc.method, tc.path, code, clip(body), tc.code, tc.contains)
			}
		})
	}
	if w.price != 200 || w.stopped != sid {
		t.Errorf("price %d stopped %q: the token-protected calls did not reach the wall", w.price, w.stopped)
	}
}

func TestLNURLErrorsFromTheWall(t *testing.T) {
	cases := []struct {
		name string
		err  error
		want string
	}{
		{"too many invoices", fmt.Errorf("%w: 3 unpaid", chargepoint.ErrTooManyInvoices), "too many unpaid invoices"},
		{"not selling", fmt.Errorf("%w: contactor", chargepoint.ErrNotSelling), "not selling"},
		{"lnd down: no details leak", errors.New("rpc error: macaroon secret xyz"), "could not create an invoice"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := newServer(t, &fakeWall{open: true, invErr: tc.err})
			_, body := do(t, "GET", srv.URL+"/lnurlp/"+sid+"/callback?amount=10000", "", "")
			if !strings.Contains(body, `"status":"ERROR"`) || !strings.Contains(body, tc.want) || strings.Contains(body, "xyz") {
				t.Errorf("body %q, want an LNURL error with %q", body, tc.want)
			}
		})
	}
	srv := newServer(t, &fakeWall{open: false})
	if _, body := do(t, "GET", srv.URL+"/lnurlp", "", ""); !strings.Contains(body, "no vehicle has an open session") {
		t.Errorf("no session: %q", body)
	}
}

func TestStatusStream(t *testing.T) {
	srv := newServer(t, &fakeWall{})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/api/status/stream", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("content type %q", ct)
	}
	sc := bufio.NewScanner(resp.Body)
	var lines []string
	for sc.Scan() && len(lines) < 2 {
		lines = append(lines, sc.Text())
	}
	if len(lines) < 2 || lines[0] != "event: status" || !strings.HasPrefix(lines[1], "data: ") {
		t.Fatalf("first event %q", lines)
	}
	var st chargepoint.Status
	if err := json.Unmarshal([]byte(strings.TrimPrefix(lines[1], "data: ")), &st); err != nil || st.Connector != "idle" {
		t.Errorf("event data %q: %v", lines[1], err)
	}
}

func TestStreamLimit(t *testing.T) {
	h, err := New(Config{Token: token, MaxStreams: 1}, &fakeWall{}, fakeHistory{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/api/status/stream", nil)
	first, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Body.Close()
	if code, _ := do(t, "GET", srv.URL+"/api/status/stream", "", ""); code != http.StatusServiceUnavailable {
		t.Errorf("second stream over a limit of one: %d, want 503", code)
	}
}

func TestConfigRefusals(t *testing.T) {
	for _, cfg := range []Config{{Token: "short"}, {Token: token, PublicURL: "ftp://x"}, {Token: token, PublicURL: "/relative"}} {
		if _, err := New(cfg, &fakeWall{}, fakeHistory{}); err == nil {
			t.Errorf("config %+v accepted", cfg)
		}
	}
}

// A wall with several connectors: each answers below /c/k with its own
// offer and status, and connector 1 also at the root.
func TestWallWithConnectors(t *testing.T) {
	walls := []*fakeWall{{open: true, number: 1}, {open: true, number: 2}, {open: false, number: 3}}
	var conns []Connector
	for _, w := range walls {
		conns = append(conns, Connector{Wall: w})
	}
	h, err := NewWall(Config{Token: token}, conns, fakeHistory{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	cases := []struct {
		name, method, path, auth string
		code                     int
		contains                 string
	}{
		{"root is connector 1", "GET", "/api/status", "", 200, `"connector_number":1`},
		{"root offer", "GET", "/lnurlp", "", 200, `"callback":"` + srv.URL + `/lnurlp/` + sid + `/callback"`},
		{"connector 2 status", "GET", "/c/2/api/status", "", 200, `"connector_number":2`},
		{"connector 2 offer names its own callback", "GET", "/c/2/lnurlp", "", 200, `"callback":"` + srv.URL + `/c/2/lnurlp/` + sid + `/callback"`},
		{"connector 2 callback", "GET", "/c/2/lnurlp/" + sid + "/callback?amount=10000", "", 200, srv.URL + "/c/2/lnurlp/verify/"},
		{"connector 3 has no session", "GET", "/c/3/lnurlp", "", 200, "no vehicle has an open session"},
		{"connector 1 below /c/1", "GET", "/c/1/api/status", "", 200, `"connector_number":1`},
		{"connector 4 does not exist", "GET", "/c/4/api/status", "", 404, ""},
		{"all connectors", "GET", "/api/connectors", "", 200, `"connector_number":3`},
		{"live page of connector 2", "GET", "/c/2/", "", 200, `data-stream="/c/2/api/status/stream"`},
		{"live page names it", "GET", "/c/2/", "", 200, "Connector 2"},
		{"history is the wall's", "GET", "/history", "", 200, "History"},
		{"stop on connector 2 needs the token", "POST", "/c/2/api/sessions/" + sid + "/stop", "", 401, "Bearer"},
		{"stop on connector 2", "POST", "/c/2/api/sessions/" + sid + "/stop", token, 200, "stopped"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, body := do(t, tc.method, srv.URL+tc.path, tc.auth, "")
			if code != tc.code || !strings.Contains(body, tc.contains) {
				t.Errorf("%s %s: %d %q, want %d containing %q", tc.method, tc.path, code, clip(body), tc.code, tc.contains)
			}
		})
	}
	if walls[1].stopped != sid || walls[0].stopped != "" {
		t.Errorf("stop reached connector 1 %q, connector 2 %q; want only connector 2", walls[0].stopped, walls[1].stopped)
	}
}

// TestSides: with a PLC interface the wall serves the car and the owner on
// listeners of their own; each side has its routes and not the other's, so
// that an invoice can be had only over the cable and the pages and the
// owner's API only on the LAN.
func TestSides(t *testing.T) {
	routes := []struct {
		method, path string
		car, owner   bool // served on that side
	}{
		{"GET", "/healthz", true, true},
		{"GET", "/api/status", true, true},
		{"GET", "/api/sessions/s1", true, true},
		{"GET", "/sessions/s1", true, true},
		{"GET", "/lnurlp", true, false},
		{"GET", "/lnurlp/s1/callback?amount=1000", true, false},
		{"GET", "/lnurlp/verify/00", true, false},
		{"POST", "/api/sessions/s1/buyer-stop", true, false},
		{"GET", "/", false, true},
		{"GET", "/history", false, true},
		{"GET", "/settings", false, true},
		{"GET", "/metrics", false, true},
		{"GET", "/api/history", false, true},
		{"POST", "/api/price", false, true},
		{"POST", "/api/settings", false, true},
	}
	for _, side := range []struct {
		name string
		side Side
	}{{"both", BothSides}, {"car", CarSide}, {"owner", OwnerSide}} {
		h, err := New(Config{Token: token, Side: side.side}, &fakeWall{}, fakeHistory{})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range routes {
			want := side.side == BothSides || side.side == CarSide && r.car || side.side == OwnerSide && r.owner
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(r.method, r.path, strings.NewReader("{}")))
			// The router's own answer for a path it does not route; a
			// handler's 404 (no such session) is a page or JSON.
			unrouted := rec.Code == http.StatusNotFound && rec.Body.String() == "404 page not found\n"
			if served := !unrouted; served != want {
				t.Errorf("%s side: %s %s answered %d (%q), want served %v", side.name, r.method, r.path, rec.Code, rec.Body.String(), want)
			}
		}
	}
}

// TestHostWithoutZone: the URLs the wall hands out never carry the zone a
// client put in its Host header (Go's HTTP/2 client does).
func TestHostWithoutZone(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"[fe80::1%1305]:8081", "[fe80::1]:8081"},
		{"[fe80::1%25plc0]:8081", "[fe80::1]:8081"},
		{"[fe80::1%plc0]", "[fe80::1]"},
		{"[fe80::1]:8081", "[fe80::1]:8081"},
		{"wall.local:8080", "wall.local:8080"},
		{"127.0.0.1%x:80", "127.0.0.1%x:80"}, // not an IPv6 literal: left for the URL check to refuse
		{"[fe80::1%]x]", "[fe80::1]x]"},
		{"[%", "[%"},
		{"", ""},
	} {
		if got := hostWithoutZone(tc.in); got != tc.want {
			t.Errorf("hostWithoutZone(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	w := &fakeWall{open: true}
	h, err := New(Config{Token: token}, w, fakeHistory{})
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest("GET", "https://[fe80::1%251305]:8081/lnurlp", nil)
	req.Host = "[fe80::1%1305]:8081"
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if want := `"callback":"https://[fe80::1]:8081/lnurlp/` + sid + `/callback"`; !strings.Contains(rec.Body.String(), want) {
		t.Errorf("pay request over a zoned Host: %s, want %s", rec.Body.String(), want)
	}
}

// rangeHistory records the range the API asks the store for.
type rangeHistory struct {
	fakeHistory
	got wallstore.HistoryQuery
}

func (h *rangeHistory) History(ctx context.Context, q wallstore.HistoryQuery) ([]wallstore.SessionSummary, wallstore.Totals, error) {
	h.got = q
	return nil, wallstore.Totals{}, nil
}

// TestHistoryRange: a date as until includes that day, as the history
// page, the CSV and the history command do; a time is an exclusive instant.
func TestHistoryRange(t *testing.T) {
	day := func(s string) time.Time {
		d, _ := time.ParseInLocation(time.DateOnly, s, time.Local)
		return d
	}
	for _, tc := range []struct {
		query       string
		code        int
		since, till time.Time
	}{
		{"since=2026-11-01&until=2026-11-30", 200, day("2026-11-01"), day("2026-12-01")},
		{"since=2026-11-30&until=2026-11-30", 200, day("2026-11-30"), day("2026-12-01")},
		{"until=2026-11-30T12:00:00Z", 200, time.Time{}, time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)},
		{"since=2026-11-30T12:00:00Z&until=2026-11-30T12:00:00Z", 400, time.Time{}, time.Time{}},
		{"since=2026-11-24&until=2026-11-20", 400, time.Time{}, time.Time{}},
	} {
		h := &rangeHistory{}
		api, err := New(Config{Token: token}, &fakeWall{open: true}, h)
		if err != nil {
			t.Fatal(err)
		}
		rec := httptest.NewRecorder()
		api.ServeHTTP(rec, httptest.NewRequest("GET", "/api/history?"+tc.query, nil))
		if rec.Code != tc.code {
			t.Errorf("%s: %d %s, want %d", tc.query, rec.Code, rec.Body, tc.code)
			continue
		}
		if tc.code == 200 && (!h.got.Since.Equal(tc.since) || !h.got.Until.Equal(tc.till)) {
			t.Errorf("%s: asked the store for %v to %v, want %v to %v", tc.query, h.got.Since, h.got.Until, tc.since, tc.till)
		}
	}
}

// TestTimeout: a handler that answered and then ran out of time keeps its
// answer, and nothing is written twice (chi's Timeout made net/http log a
// superfluous WriteHeader here); one that never answered gets 504.
func TestTimeout(t *testing.T) {
	for _, tc := range []struct {
		name    string
		answers bool
		code    int
	}{
		{"answered, then out of time", true, http.StatusOK},
		{"out of time without an answer", false, http.StatusGatewayTimeout},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logged strings.Builder
			var mu sync.Mutex
			srv := httptest.NewUnstartedServer(timeout(20 * time.Millisecond)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tc.answers {
					w.WriteHeader(http.StatusOK)
				}
				<-r.Context().Done()
			})))
			srv.Config.ErrorLog = log.New(writerFunc(func(p []byte) (int, error) {
				mu.Lock()
				defer mu.Unlock()
				return logged.Write(p)
			}), "", 0)
			srv.Start()
			defer srv.Close()
			resp, err := http.Get(srv.URL)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			srv.Close()
			if resp.StatusCode != tc.code {
				t.Errorf("status %d, want %d", resp.StatusCode, tc.code)
			}
			mu.Lock()
			defer mu.Unlock()
			if logged.Len() != 0 {
				t.Errorf("the server logged: %s", logged.String())
			}
		})
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
