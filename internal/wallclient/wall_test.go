package wallclient

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"satwatt/internal/linktls"
	"satwatt/internal/lnurlpay"
	"satwatt/internal/offer"
)

// fakeWall plays wallctl's HTTP API over a real loopback socket, with
// routes a test may replace by hostile ones.
type fakeWall struct {
	t        testing.TB
	srv      *httptest.Server
	offer    offer.Offer
	metadata string

	mu      sync.Mutex
	routes  map[string]http.HandlerFunc
	hits    []string
	status  string      // body of GET /api/status
	events  chan string // chunks the default stream writes
	release chan struct{}
}

func newFakeWall(t testing.TB) *fakeWall { t.Helper(); return newFakeWallTLS(t, nil, "") }

// newFakeWallTLS serves over TLS with cert when it is not nil, and names
// certHash in the offer.
func newFakeWallTLS(t testing.TB, cert *tls.Certificate, certHash string) *fakeWall {
	t.Helper()
	w := &fakeWall{
		t: t,
		offer: offer.Offer{
			SessionID: "sess-7", PriceMsatPerWh: 250, IncrementWh: 100, FirstMultiple: 3,
			GraceWh: 20, MaxPowerW: 11000, WallNodeKey: "02" + strings.Repeat("ab", 32),
			ValidUntil: time.Now().Add(10 * time.Minute).Truncate(time.Second).UTC(), Network: "regtest",
			TLSCertSHA256: certHash,
		},
		status:  statusJSON(1000),
		events:  make(chan string, 1024),
		release: make(chan struct{}),
	}
	md, err := offer.Metadata(w.offer, "Charge at wall 7")
	if err != nil {
		t.Fatal(err)
	}
	w.metadata = md
	w.routes = map[string]http.HandlerFunc{
		"GET /lnurlp":                          w.payRequest,
		"GET /lnurlp/sess-7/callback":          w.callback,
		"GET /api/status":                      w.statusRoute,
		"GET /api/status/stream":               w.stream,
		"POST /api/sessions/sess-7/buyer-stop": w.buyerStop,
	}
	w.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		key := r.Method + " " + r.URL.Path
		w.mu.Lock()
		h := w.routes[key]
		w.hits = append(w.hits, key)
		w.mu.Unlock()
		if h == nil {
			writeJSON(rw, http.StatusNotFound, map[string]string{"error": "no route " + key})
			return
		}
		h(rw, r)
	}))
	if cert != nil {
		w.srv.TLS = linktls.ServerConfig(*cert)
		w.srv.StartTLS()
	} else {
		w.srv.Start()
	}
	t.Cleanup(func() {
		close(w.release)
		w.srv.Close()
	})
	return w
}

func (w *fakeWall) route(key string, h http.HandlerFunc) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.routes[key] = h
}

func (w *fakeWall) setStatus(body string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.status = body
}

func (w *fakeWall) hitList() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.hits...)
}

func (w *fakeWall) count(key string) int {
	n := 0
	for _, h := range w.hitList() {
		if h == key {
			n++
		}
	}
	return n
}

// client is a Client for this wall with a transport of its own.
func (w *fakeWall) client() (*Client, *http.Transport) {
	u, err := url.Parse(w.srv.URL + "/")
	if err != nil {
		w.t.Fatal(err)
	}
	tr := &http.Transport{}
	w.t.Cleanup(tr.CloseIdleConnections)
	return &Client{Base: u, HTTP: &http.Client{Transport: tr}, Logger: slog.New(slog.DiscardHandler), Timeout: 5 * time.Second}, tr
}

func (w *fakeWall) payRequest(rw http.ResponseWriter, r *http.Request) {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	pr, err := lnurlpay.PayRequest(scheme+"://"+r.Host+"/lnurlp/sess-7/callback", 1000, 10_000_000, w.metadata, 0)
	if err != nil {
		writeJSON(rw, http.StatusOK, lnurlpay.ErrorResponse(err.Error()))
		return
	}
	writeJSON(rw, http.StatusOK, pr)
}

func (w *fakeWall) callback(rw http.ResponseWriter, r *http.Request) {
	amt, _, err := lnurlpay.ParseCallbackRequest(r.URL.Query(), 1000, 10_000_000, 0)
	if err != nil {
		writeJSON(rw, http.StatusOK, lnurlpay.ErrorResponse(err.Error()))
		return
	}
	resp, err := lnurlpay.CallbackResponse(fmt.Sprintf("lnbcrt-fake-%d", amt), "", "", "")
	if err != nil {
		w.t.Error(err)
	}
	writeJSON(rw, http.StatusOK, resp)
}

func (w *fakeWall) statusRoute(rw http.ResponseWriter, r *http.Request) {
	w.mu.Lock()
	body := w.status
	w.mu.Unlock()
	rw.Header().Set("Content-Type", "application/json")
	fmt.Fprintln(rw, body)
}

// stream writes what the test puts on w.events until the client leaves.
func (w *fakeWall) stream(rw http.ResponseWriter, r *http.Request) {
	rw.Header().Set("Content-Type", "text/event-stream")
	rw.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(rw)
	_ = rc.Flush()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-w.release:
			return
		case s := <-w.events:
			if _, err := fmt.Fprint(rw, s); err != nil {
				return
			}
			if err := rc.Flush(); err != nil {
				return
			}
		}
	}
}

func (w *fakeWall) buyerStop(rw http.ResponseWriter, r *http.Request) {
	var body struct {
		Preimage string `json:"preimage"`
	}
	if r.Header.Get("Content-Type") != "application/json" {
		writeJSON(rw, http.StatusBadRequest, map[string]string{"error": "want JSON"})
		return
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		writeJSON(rw, http.StatusBadRequest, map[string]string{"error": "bad body"})
		return
	}
	if body.Preimage != goodPreimage {
		// A careless wall that echoes the secret back.
		writeJSON(rw, http.StatusForbidden, map[string]string{"error": "not the buyer of this session: " + strings.ToUpper(body.Preimage)})
		return
	}
	writeJSON(rw, http.StatusOK, map[string]bool{"stopped": true})
}

var goodPreimage = strings.Repeat("5a", 32)

func writeJSON(rw http.ResponseWriter, code int, v any) {
	rw.Header().Set("Content-Type", "application/json")
	rw.WriteHeader(code)
	_ = json.NewEncoder(rw).Encode(v)
}

// statusJSON is a status as wallctl writes it, with the fields the car
// ignores.
func statusJSON(deliveredMWh int64) string {
	return fmt.Sprintf(`{"at":"2026-01-02T03:04:05Z","connector":"energising","why":"paid ahead: delivering",`+
		`"session":{"id":"sess-7","state":"energising","price_msat_per_wh":250,"increment_wh":100,`+
		`"first_payment_msat":75000,"grace_wh":20,"delivered_mwh":%d,"paid_msat":75000,"paid_energy_mwh":300000,`+
		`"credit_msat":-5,"credit_mwh":-20,"power_w":7200,"payments":1,"started_at":"2026-01-02T03:00:00Z",`+
		`"last_payments":[{"hash":"ab","msat":75000}]},`+
		`"evse":{"reachable":true,"pilot":"C","enabled":true,"contactor_closed":true,"power_w":7200,"voltage_mv":230000,"current_ma":31000},`+
		`"lightning":{"connected":true},"next_price_msat_per_wh":250,"ready":true}`, deliveredMWh)
}

// event frames a status as the wall's stream does.
func event(deliveredMWh int64) string {
	return "event: status\ndata: " + statusJSON(deliveredMWh) + "\n\n"
}

// lockedBuffer collects log output from several goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
