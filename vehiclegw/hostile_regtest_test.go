package main

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"satwatt/internal/lndclient"
	"satwatt/internal/lnurlpay"
	"satwatt/internal/offer"
	"satwatt/internal/regtest"
	"satwatt/internal/wallclient"
)

// hostileObserve is how long each case watches a car that has stopped
// buying, to show that it pays (and asks for) nothing more: three ticks of
// the car's one-second loop, each of which would have paid again. It is an
// observation window, not a wait for something to happen.
const hostileObserve = 3 * time.Second

// hostileCase is one way a wall cheats, and what the car must do about it.
type hostileCase struct {
	name      string
	price     int64 // the offer's price, msat/Wh
	maxPowerW int64 // the offer's maximum power
	// invoice answers the car's n-th invoice request (n from 0) for amt
	// msat: the node that issues the invoice, its amount and the metadata
	// its description hash commits to. nil: an invoice for amt from the
	// wall's node, committing to the metadata served now.
	invoice func(w *hostileWall, n int, amt int64) (ln *lndclient.Client, msat int64, metadata string)
	// repriceTo, if set, is the price the offer's metadata (and so every
	// later invoice) switches to as soon as the first invoice is out; the
	// status keeps the old price.
	repriceTo int64
	// claimPaidEnergy makes the status report all the energy paid for as
	// delivered the moment it is paid: the credit is gone at once, while
	// the car measures nothing on its bus.
	claimPaidEnergy bool

	// offerTrick bends the pay request itself, so the car never gets an
	// offer: "oversized" (a 2 MB answer), "redirect" (to another origin,
	// which serves an honest-looking offer whose callback is there too) or
	// "stall" (no answer at all). The car keeps trying, shows WALL_ERROR
	// while it negotiates, and says why in its log (wantLog).
	offerTrick string
	wantLog    string

	wantCode      string // the car's error code once it stops buying
	wantPaid      int    // honest invoices the car pays before it stops
	wantRefusal   string // a refusal reason in the car's ledger
	wantHash      bool   // that refusal names the hostile invoice
	wantDetail    string // in that refusal's detail
	wantCallbacks int    // invoice requests the wall sees
}

// TestRegtestHostileWall runs vehiclegw run against walls that cheat: a
// test server speaking the wall's HTTP API on loopback that makes real
// invoices on the wall's real lnd (or on a third node, mallory's) but
// bends them. In every case the car must refuse, show the right code on
// its status lines, record the refusal in its ledger, and its lnd must
// hold no payment for a hostile invoice and no payment beyond the honest
// ones of the case.
func TestRegtestHostileWall(t *testing.T) {
	vgw := goBuild(t, ".", "vehiclegw")
	net := regtest.StartForTest(t, regtest.Config{
		Nodes:    []string{"wall", "car", "mallory"},
		Channels: []regtest.ChannelSpec{{From: "car", To: "wall", CapacitySat: 1_000_000}},
	})
	env := &hostileEnv{
		vgw:     vgw,
		carNode: net.Nodes["car"],
		carURI:  bake(t, net.Nodes["car"], "info:read", "offchain:read", "offchain:write"),
		wall:    dialAdmin(t, net.Nodes["wall"]),
		mallory: dialAdmin(t, net.Nodes["mallory"]),
	}

	cases := []hostileCase{{
		name: "wrong_amount",
		invoice: func(w *hostileWall, _ int, amt int64) (*lndclient.Client, int64, string) {
			return w.ln, 2 * amt, w.accepted
		},
		wantCode: "INVOICE_REJECTED", wantRefusal: "amount mismatch", wantHash: true, wantCallbacks: 1,
	}, {
		name: "wrong_description_hash",
		invoice: func(w *hostileWall, _ int, amt int64) (*lndclient.Client, int64, string) {
			return w.ln, amt, w.metadataAt(150) // commits the car to a dearer offer
		},
		wantCode: "INVOICE_REJECTED", wantRefusal: "description hash mismatch", wantHash: true, wantCallbacks: 1,
	}, {
		name: "wrong_payee",
		invoice: func(w *hostileWall, _ int, amt int64) (*lndclient.Client, int64, string) {
			return w.mallory, amt, w.accepted
		},
		wantCode: "INVOICE_REJECTED", wantRefusal: "payee mismatch", wantHash: true, wantCallbacks: 1,
	}, {
		// At 11 kW the credit of the first payment (40 Wh) is below the
		// 61 Wh drawn in the car's 20 s lead time, so the car asks for the
		// next invoice at once and refetches the offer first.
		name: "price_changed_mid_session", maxPowerW: 11_000, repriceTo: 150,
		wantCode: "WALL_ERROR", wantPaid: 1, wantRefusal: "WALL_ERROR", wantDetail: "changed its offer mid-session",
		wantCallbacks: 1,
	}, {
		name: "price_above_limit", price: 300,
		wantCode: "PRICE_ABOVE_LIMIT", wantRefusal: "price_above_limit", wantCallbacks: 0,
	}, {
		// At 3.6 kW the first payment's 40 Wh of credit lasts past the
		// car's 20 s lead time (20 Wh), so the car pays again only once
		// the wall claims the credit is used: only the meter check stands
		// between the claim and a second payment, with no race.
		name: "invoice_spam", maxPowerW: 3_600, claimPaidEnergy: true,
		wantCode: "METER_MISMATCH", wantPaid: 1, wantRefusal: "METER_MISMATCH", wantDetail: "the car measured",
		wantCallbacks: 1,
	}, {
		name: "oversized_offer", offerTrick: "oversized",
		wantCode: "WALL_ERROR", wantLog: "response body too large",
	}, {
		name: "offer_redirected_to_another_host", offerTrick: "redirect",
		wantCode: "WALL_ERROR", wantLog: "points to another host",
	}, {
		name: "offer_stalls", offerTrick: "stall",
		wantCode: "WALL_ERROR", wantLog: "deadline exceeded",
	}, {
		// A relay on the link that terminates TLS with its own
		// certificate and passes on the real wall's offer, which names
		// the wall's certificate.
		name: "relay_terminating_tls", offerTrick: "relay-tls",
		wantCode: "WALL_ERROR", wantLog: "the offer does not name the wall's TLS certificate",
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { env.run(t, tc) })
	}
}

// runOfferTrick: a wall whose pay request is bent never gets the car to
// the callback. The car keeps negotiating with WALL_ERROR shown, asks for
// no invoice, pays nothing, and its log says what was wrong.
func (env *hostileEnv) runOfferTrick(t *testing.T, tc hostileCase) {
	w := newHostileWall(t, tc, env.wall, env.mallory)
	busAddr, ctlAddr := startSimcar(t, env.vgw)
	before := carPayments(t, env.carNode)
	car := startProc(t, []string{"VEHICLEGW_LNDCONNECT=" + env.carURI}, env.vgw, "run",
		"--can", "socketcand://"+busAddr+"/sim0", "--wall", w.srv.URL+"/", "--db", filepath.Join(t.TempDir(), "car.db"),
		"--target", "80", "--max-price", "200", "--max-payment", "100", "--json", "--log-level", "debug")
	httpDo(t, "POST", "http://"+ctlAddr+"/plug", regtestSimcarToken)
	shows := func() bool {
		st := lastStatus(t, car)
		return st != nil && st["state"] == "NEGOTIATING" && st["error"] == tc.wantCode
	}
	if !pollUntil(45*time.Second, shows) {
		t.Errorf("the car does not show NEGOTIATING/%s within 45 s: %v", tc.wantCode, lastStatus(t, car))
	}
	time.Sleep(hostileObserve) // see hostileObserve: nothing more may happen
	if n := w.callbackCount(); n != 0 {
		t.Errorf("the car asked for %d invoices from a wall whose offer it never got", n)
	}
	for h, st := range carPayments(t, env.carNode) {
		if _, old := before[h]; !old {
			t.Errorf("the car's lnd made a %s payment %s", st, h)
		}
	}
	car.stop()
	out, _ := os.ReadFile(car.out)
	if !strings.Contains(string(out), tc.wantLog) {
		t.Errorf("the car's log does not say %q:\n%s", tc.wantLog, daemonTail(string(out), 30))
	}
	t.Logf("%s: the car shows %s, asked for no invoice, paid nothing; its log says %q", tc.name, tc.wantCode, tc.wantLog)
}

// daemonTail is the last n lines of s.
func daemonTail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// hostileEnv is what the cases share: one regtest network.
type hostileEnv struct {
	vgw, carURI   string
	carNode       *regtest.Node
	wall, mallory *lndclient.Client // admin connections, to make invoices
}

func dialAdmin(t *testing.T, n *regtest.Node) *lndclient.Client {
	t.Helper()
	c, err := lndclient.Dial(t.Context(), lndclient.Config{RPCAddr: n.RPCAddr, TLSCertPath: n.TLSCertPath,
		MacaroonPath: n.AdminMacaroonPath})
	if err != nil {
		t.Fatalf("dial %s: %v", n.Name, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// carPayments lists every payment the car's lnd knows, in flight and
// failed ones included: payment hash to status.
func carPayments(t *testing.T, n *regtest.Node) map[string]string {
	t.Helper()
	out, err := n.Lncli(t.Context(), "listpayments", "--include_incomplete")
	if err != nil {
		t.Fatalf("listpayments: %v %s", err, out)
	}
	var r struct {
		Payments []struct {
			PaymentHash string `json:"payment_hash"`
			Status      string `json:"status"`
		} `json:"payments"`
	}
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("listpayments: %v\n%s", err, out)
	}
	m := map[string]string{}
	for _, p := range r.Payments {
		m[p.PaymentHash] = p.Status
	}
	return m
}

func (env *hostileEnv) run(t *testing.T, tc hostileCase) {
	if tc.price == 0 {
		tc.price = 100
	}
	if tc.maxPowerW == 0 {
		tc.maxPowerW = 11_000
	}
	if tc.offerTrick != "" {
		env.runOfferTrick(t, tc)
		return
	}
	w := newHostileWall(t, tc, env.wall, env.mallory)
	busAddr, ctlAddr := startSimcar(t, env.vgw)
	before := carPayments(t, env.carNode)
	carDB := filepath.Join(t.TempDir(), "car.db")
	car := startProc(t, []string{"VEHICLEGW_LNDCONNECT=" + env.carURI}, env.vgw, "run",
		"--can", "socketcand://"+busAddr+"/sim0", "--wall", w.srv.URL+"/", "--db", carDB,
		"--target", "80", "--max-price", "200", "--max-payment", "100", "--json", "--log-level", "debug")
	httpDo(t, "POST", "http://"+ctlAddr+"/plug", regtestSimcarToken)

	// (2) The car stops buying and shows why. A car that keeps asking for
	// invoices or pays a hostile one is caught at once rather than at the
	// deadline, and the checks below say what it did.
	stopped := func() bool {
		st := lastStatus(t, car)
		return st != nil && (st["state"] == "STOPPED" || st["state"] == "COMPLETE" || st["state"] == "ERROR")
	}
	if !pollUntil(45*time.Second, func() bool { return stopped() || w.overrun() }) {
		t.Errorf("the car did not stop buying within 45s")
	}
	if st := lastStatus(t, car); st["state"] != "STOPPED" || st["error"] != tc.wantCode {
		t.Errorf("the car shows %v/%v, want STOPPED/%s", st["state"], st["error"], tc.wantCode)
	}
	time.Sleep(hostileObserve) // see hostileObserve: nothing more may happen
	if st := lastStatus(t, car); st["state"] != "STOPPED" || st["error"] != tc.wantCode {
		t.Errorf("after %s the car shows %v/%v, want STOPPED/%s", hostileObserve, st["state"], st["error"], tc.wantCode)
	}
	if n := w.callbackCount(); n != tc.wantCallbacks {
		t.Errorf("the car asked for %d invoices, want %d", n, tc.wantCallbacks)
	}
	httpDo(t, "POST", "http://"+ctlAddr+"/unplug", regtestSimcarToken)
	waitUntil(t, "the car sees the unplug and ends its session", 30*time.Second, func() bool {
		return lastStatus(t, car)["state"] == "IDLE"
	})
	car.stop()

	// (1) The car's lnd paid no hostile invoice, tried none, and paid
	// nothing but this case's honest invoices.
	invoices := w.issued()
	after := carPayments(t, env.carNode)
	honest := map[string]bool{}
	var honestMsat int64 // what the car paid for honest invoices
	for _, inv := range invoices {
		h := hex.EncodeToString(inv.hash[:])
		if inv.honest {
			honest[h] = true
			if after[h] == "SUCCEEDED" {
				honestMsat += inv.msat
			}
			continue
		}
		if st, ok := after[h]; ok {
			t.Errorf("the car's lnd has a %s payment for hostile invoice %s (%d msat asked, %d invoiced)", st, h, inv.askedMsat, inv.msat)
		}
		if got, err := inv.ln.LookupInvoice(t.Context(), inv.hash); err != nil || got.Status == lndclient.InvoiceSettled {
			t.Errorf("hostile invoice %s: %v %v, want open", h, got.Status, err)
		}
	}
	paid := 0
	for h, st := range after {
		if _, old := before[h]; old {
			continue
		}
		if !honest[h] || st != "SUCCEEDED" {
			t.Errorf("the car's lnd made a %s payment %s that is not one of this case's honest invoices", st, h)
			continue
		}
		paid++
	}
	if paid != tc.wantPaid {
		t.Errorf("the car paid %d honest invoices, want %d", paid, tc.wantPaid)
	}

	// (3) The car's ledger records the session, the refusal and only the
	// honest payments.
	var rc struct {
		ID             string `json:"id"`
		EndReason      string `json:"end_reason"`
		PriceMsatPerWh int64  `json:"price_msat_per_wh"`
		PaidMsat       int64  `json:"paid_msat"`
		DeliveredMWh   int64  `json:"delivered_mwh"`
		MeasuredMWh    int64  `json:"measured_mwh"`
		Payments       []struct {
			PaymentHash string `json:"payment_hash"`
			Status      string `json:"status"`
		} `json:"payments"`
		Refusals []struct {
			PaymentHash string `json:"payment_hash"`
			Reason      string `json:"reason"`
			Detail      string `json:"detail"`
		} `json:"refusals"`
	}
	out := sessionShow(t, env.vgw, carDB, w.offer.SessionID, true)
	if err := json.Unmarshal(out, &rc); err != nil {
		t.Fatalf("session show: %v\n%s", err, out)
	}
	if rc.ID != w.offer.SessionID || rc.EndReason != "unplugged" || rc.PriceMsatPerWh != tc.price {
		t.Errorf("ledger: session %q ended %q at %d msat/Wh, want %q ended unplugged at %d msat/Wh",
			rc.ID, rc.EndReason, rc.PriceMsatPerWh, w.offer.SessionID, tc.price)
	}
	if rc.PaidMsat != honestMsat {
		t.Errorf("ledger: paid %d msat, want %d (the honest invoices)", rc.PaidMsat, honestMsat)
	}
	hostileHash := map[string]bool{}
	for _, inv := range invoices {
		if !inv.honest {
			hostileHash[hex.EncodeToString(inv.hash[:])] = true
		}
	}
	succeeded := 0
	for _, p := range rc.Payments {
		switch {
		case p.Status == "succeeded" && honest[p.PaymentHash]:
			succeeded++
		case hostileHash[p.PaymentHash] && p.Status == "refused":
		default:
			t.Errorf("ledger: payment %s is %s", p.PaymentHash, p.Status)
		}
	}
	if succeeded != tc.wantPaid {
		t.Errorf("ledger: %d succeeded payments, want %d", succeeded, tc.wantPaid)
	}
	found := false
	for _, r := range rc.Refusals {
		if r.Reason != tc.wantRefusal || !strings.Contains(r.Detail, tc.wantDetail) {
			continue
		}
		if tc.wantHash && !hostileHash[r.PaymentHash] {
			continue
		}
		found = true
	}
	if !found {
		t.Errorf("ledger: no refusal %q (naming the hostile invoice: %v) with %q in its detail", tc.wantRefusal, tc.wantHash, tc.wantDetail)
	}
	if tc.claimPaidEnergy && rc.DeliveredMWh <= rc.MeasuredMWh {
		t.Errorf("ledger: the wall's %d mWh is not above the car's %d mWh", rc.DeliveredMWh, rc.MeasuredMWh)
	}
	if t.Failed() {
		t.Logf("the car's ledger:\n%s", out)
	}
	t.Logf("%s: the car stopped with %s after %d honest payment(s) of %d msat; refusals: %d",
		tc.name, tc.wantCode, succeeded, rc.PaidMsat, len(rc.Refusals))
}

// hostileWall speaks the wall's HTTP API (LUD-06 pay request and
// callback, status and status stream) and makes real invoices, bent as its
// case says.
type hostileWall struct {
	t       *testing.T
	tc      hostileCase
	ln      *lndclient.Client // the wall's own node, which the offer names
	mallory *lndclient.Client
	srv     *httptest.Server
	done    chan struct{}
	// elsewhere is another origin the "redirect" trick sends the car to.
	elsewhere *httptest.Server

	offer    offer.Offer // the terms as first offered; the status keeps them
	accepted string      // their metadata

	mu        sync.Mutex
	served    string // the metadata /lnurlp serves now
	callbacks int
	invoices  []*hostileInvoice
}

type hostileInvoice struct {
	ln        *lndclient.Client
	hash      [32]byte
	askedMsat int64 // what the car asked for
	msat      int64 // what the invoice says
	honest    bool  // from the wall's node, for the amount asked, committing to the accepted metadata
	settled   bool
	paidMsat  int64
}

func newHostileWall(t *testing.T, tc hostileCase, ln, mallory *lndclient.Client) *hostileWall {
	t.Helper()
	w := &hostileWall{t: t, tc: tc, ln: ln, mallory: mallory, done: make(chan struct{})}
	w.offer = offer.Offer{
		SessionID:      "hostile-" + strings.ReplaceAll(tc.name, "_", "-"),
		PriceMsatPerWh: tc.price,
		IncrementWh:    20,
		FirstMultiple:  2,
		GraceWh:        5,
		MaxPowerW:      tc.maxPowerW,
		WallNodeKey:    ln.PubKey(),
		ValidUntil:     time.Now().Add(time.Hour).Truncate(time.Second),
		Network:        "regtest",
	}
	if tc.offerTrick == "relay-tls" {
		w.offer.TLSCertSHA256 = strings.Repeat("ab", 32) // the real wall's, not the relay's
	}
	w.accepted = w.metadataAt(tc.price)
	w.served = w.accepted

	if tc.offerTrick == "redirect" {
		// Another origin (another port) with an honest-looking offer whose
		// callback is there too.
		other := http.NewServeMux()
		other.HandleFunc("GET /lnurlp", func(rw http.ResponseWriter, r *http.Request) {
			pr, _ := lnurlpay.PayRequest(w.elsewhere.URL+"/lnurlp/"+w.offer.SessionID+"/callback", hostileMinMsat, hostileMaxMsat, w.accepted, 0)
			writeJSONTo(rw, pr)
		})
		other.HandleFunc("GET /lnurlp/{session}/callback", w.callback)
		w.elsewhere = httptest.NewServer(other)
		t.Cleanup(w.elsewhere.Close)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /lnurlp", w.payRequest)
	mux.HandleFunc("GET /lnurlp/{session}/callback", w.callback)
	mux.HandleFunc("GET /api/status", func(rw http.ResponseWriter, r *http.Request) { writeJSONTo(rw, w.status()) })
	mux.HandleFunc("GET /api/status/stream", w.stream)
	if tc.offerTrick == "relay-tls" {
		w.srv = httptest.NewTLSServer(mux)
	} else {
		w.srv = httptest.NewServer(mux)
	}
	go w.followSettlements()
	t.Cleanup(func() {
		close(w.done) // ends the streams, so Close does not wait for them
		w.srv.Close()
	})
	return w
}

// metadataAt is the offer's metadata at another price.
func (w *hostileWall) metadataAt(price int64) string {
	o := w.offer
	o.PriceMsatPerWh = price
	md, err := offer.Metadata(o, "satwatt test wall "+w.tc.name)
	if err != nil {
		w.t.Errorf("hostile wall: metadata at %d msat/Wh: %v", price, err)
	}
	return md
}

func writeJSONTo(rw http.ResponseWriter, v any) {
	rw.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(rw).Encode(v)
}

const (
	hostileMinMsat = 1_000
	hostileMaxMsat = 100_000_000
)

func (w *hostileWall) payRequest(rw http.ResponseWriter, r *http.Request) {
	switch w.tc.offerTrick {
	case "oversized":
		rw.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(rw, `{"tag":"payRequest","metadata":"%s"}`, strings.Repeat("a", 2<<20))
		return
	case "redirect":
		http.Redirect(rw, r, w.elsewhere.URL+"/lnurlp", http.StatusFound)
		return
	case "stall":
		select {
		case <-r.Context().Done():
		case <-w.done:
		}
		return
	}
	w.mu.Lock()
	md := w.served
	w.mu.Unlock()
	pr, err := lnurlpay.PayRequest(w.srv.URL+"/lnurlp/"+w.offer.SessionID+"/callback", hostileMinMsat, hostileMaxMsat, md, 0)
	if err != nil {
		w.t.Errorf("hostile wall: pay request: %v", err)
		writeJSONTo(rw, lnurlpay.ErrorResponse(err.Error()))
		return
	}
	writeJSONTo(rw, pr)
}

func (w *hostileWall) callback(rw http.ResponseWriter, r *http.Request) {
	if r.PathValue("session") != w.offer.SessionID {
		writeJSONTo(rw, lnurlpay.ErrorResponse("session is not open"))
		return
	}
	amt, _, err := lnurlpay.ParseCallbackRequest(r.URL.Query(), hostileMinMsat, hostileMaxMsat, 0)
	if err != nil {
		writeJSONTo(rw, lnurlpay.ErrorResponse(err.Error()))
		return
	}
	w.mu.Lock()
	n := w.callbacks
	w.callbacks++
	served := w.served
	w.mu.Unlock()
	ln, msat, md := w.ln, amt, served // honest, on the terms it serves now
	if w.tc.invoice != nil {
		ln, msat, md = w.tc.invoice(w, n, amt)
	}
	inv, err := ln.AddInvoice(r.Context(), msat, offer.DescriptionHash(md), 10*time.Minute)
	if err != nil {
		w.t.Errorf("hostile wall: add invoice: %v", err)
		writeJSONTo(rw, lnurlpay.ErrorResponse("no invoice"))
		return
	}
	w.mu.Lock()
	w.invoices = append(w.invoices, &hostileInvoice{ln: ln, hash: inv.PaymentHash, askedMsat: amt, msat: msat,
		honest: ln == w.ln && msat == amt && md == w.accepted})
	if w.tc.repriceTo != 0 {
		w.served = w.metadataAt(w.tc.repriceTo)
	}
	w.mu.Unlock()
	resp, err := lnurlpay.CallbackResponse(inv.PaymentRequest, "", "", "")
	if err != nil {
		w.t.Errorf("hostile wall: callback response: %v", err)
		return
	}
	writeJSONTo(rw, resp)
}

// followSettlements polls the nodes for the invoices' settlement, so the
// status can report payments as a real wall does.
func (w *hostileWall) followSettlements() {
	for {
		select {
		case <-w.done:
			return
		case <-time.After(100 * time.Millisecond):
		}
		w.mu.Lock()
		var open []*hostileInvoice
		for _, inv := range w.invoices {
			if !inv.settled {
				open = append(open, inv)
			}
		}
		w.mu.Unlock()
		for _, inv := range open {
			st, err := inv.ln.LookupInvoice(w.t.Context(), inv.hash)
			if err != nil || st.Status != lndclient.InvoiceSettled {
				continue
			}
			w.mu.Lock()
			inv.settled, inv.paidMsat = true, st.AmountPaidMsat
			w.mu.Unlock()
		}
	}
}

// status is the wall's account of the session, at the first price; with
// claimPaidEnergy it says every paid Wh is delivered already.
func (w *hostileWall) status() wallclient.WallStatus {
	w.mu.Lock()
	defer w.mu.Unlock()
	o := w.offer
	var paid int64
	n := 0
	for _, inv := range w.invoices {
		if inv.settled {
			paid += inv.paidMsat
			n++
		}
	}
	paidMWh := paid * 1000 / o.PriceMsatPerWh
	var delivered int64
	if w.tc.claimPaidEnergy {
		delivered = paidMWh
	}
	connector := "awaiting_payment"
	if n > 0 {
		connector = "energising"
	}
	return wallclient.WallStatus{Connector: connector, Ready: true, Session: &wallclient.WallSession{
		ID: o.SessionID, State: connector, PriceMsatPerWh: o.PriceMsatPerWh, IncrementWh: o.IncrementWh,
		FirstPaymentMsat: o.FirstMultiple * o.IncrementWh * o.PriceMsatPerWh, GraceWh: o.GraceWh,
		DeliveredMWh: delivered, PaidMsat: paid, PaidEnergyMWh: paidMWh,
		CreditMsat: paid - delivered*o.PriceMsatPerWh/1000, CreditMWh: paidMWh - delivered, Payments: n,
	}}
}

// stream sends the status as server-sent events: at once, then on every
// change, with a keep-alive comment now and then.
func (w *hostileWall) stream(rw http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(rw)
	rw.Header().Set("Content-Type", "text/event-stream")
	rw.Header().Set("Cache-Control", "no-store")
	rw.WriteHeader(http.StatusOK)
	var last []byte
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	keep := time.Now()
	for {
		b, _ := json.Marshal(w.status())
		switch {
		case string(b) != string(last):
			if _, err := fmt.Fprintf(rw, "event: status\ndata: %s\n\n", b); err != nil {
				return
			}
			last, keep = b, time.Now()
		case time.Since(keep) > 5*time.Second:
			if _, err := fmt.Fprint(rw, ": keep-alive\n\n"); err != nil {
				return
			}
			keep = time.Now()
		}
		if err := rc.Flush(); err != nil {
			return
		}
		select {
		case <-r.Context().Done():
			return
		case <-w.done:
			return
		case <-tick.C:
		}
	}
}

// overrun tells whether the car has done more than its case allows: asked
// for more invoices, or paid a hostile one.
func (w *hostileWall) overrun() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, inv := range w.invoices {
		if inv.settled && !inv.honest {
			return true
		}
	}
	return w.callbacks > w.tc.wantCallbacks
}

func (w *hostileWall) callbackCount() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.callbacks
}

// issued is a copy of the invoices made so far.
func (w *hostileWall) issued() []hostileInvoice {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]hostileInvoice, len(w.invoices))
	for i, inv := range w.invoices {
		out[i] = *inv
	}
	return out
}
