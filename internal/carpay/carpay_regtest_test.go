package carpay

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"satwatt/internal/clock"
	"satwatt/internal/invoicecheck"
	"satwatt/internal/lndclient"
	"satwatt/internal/lnurlpay"
	"satwatt/internal/offer"
	"satwatt/internal/regtest"
)

// tamper is how the test wall cheats when it creates an invoice.
type tamper int

const (
	honest tamper = iota
	wrongHash
	wrongAmount
	shortExpiry
	announceOther // the offer names another node than the one that signs
)

// testWall is a minimal LNURL-pay server in front of the wall's real lnd:
// it serves the offer and creates real invoices, honestly or not.
type testWall struct {
	t        *testing.T
	lnd      *lndclient.Client
	metadata string
	mu       sync.Mutex
	mode     tamper
	hashes   [][32]byte
}

func (w *testWall) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	write := func(v any) {
		rw.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(rw).Encode(v)
	}
	switch r.URL.Path {
	case "/lnurl":
		pr, err := lnurlpay.PayRequest("http://"+r.Host+"/cb", 1000, 100_000_000, w.metadata, 0)
		if err != nil {
			write(lnurlpay.ErrorResponse(err.Error()))
			return
		}
		write(pr)
	case "/cb":
		amount, _, err := lnurlpay.ParseCallbackRequest(r.URL.Query(), 1000, 100_000_000, 0)
		if err != nil {
			write(lnurlpay.ErrorResponse(err.Error()))
			return
		}
		w.mu.Lock()
		mode := w.mode
		w.mu.Unlock()
		hash := offer.DescriptionHash(w.metadata)
		expiry := 10 * time.Minute
		switch mode {
		case wrongHash:
			hash = sha256.Sum256([]byte("another offer"))
		case wrongAmount:
			amount += 1000
		case shortExpiry:
			expiry = time.Second
		}
		inv, err := w.lnd.AddInvoice(r.Context(), amount, hash, expiry)
		if err != nil {
			write(lnurlpay.ErrorResponse(err.Error()))
			return
		}
		w.mu.Lock()
		w.hashes = append(w.hashes, inv.PaymentHash)
		w.mu.Unlock()
		resp, err := lnurlpay.CallbackResponse(inv.PaymentRequest, "", "", "")
		if err != nil {
			write(lnurlpay.ErrorResponse(err.Error()))
			return
		}
		write(resp)
	default:
		http.NotFound(rw, r)
	}
}

func (w *testWall) open() [][32]byte {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([][32]byte(nil), w.hashes...)
}

func dial(t *testing.T, n *regtest.Node) *lndclient.Client {
	t.Helper()
	c, err := lndclient.Dial(t.Context(), lndclient.Config{RPCAddr: n.RPCAddr, TLSCertPath: n.TLSCertPath, MacaroonPath: n.AdminMacaroonPath})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func carPayments(t *testing.T, car *regtest.Node) int {
	t.Helper()
	out, err := car.Lncli(t.Context(), "listpayments", "--include_incomplete")
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Payments []json.RawMessage `json:"payments"`
	}
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatalf("listpayments: %v: %s", err, out)
	}
	return len(v.Payments)
}

// TestCheckedPaymentsOnRegtest runs the car's whole paying path against a
// real regtest network: the LNURL-pay offer and callback over HTTP, real
// invoices from the wall's lnd, the offline checks, and a real payment. Each
// cheating invoice is refused before anything is sent: the car's node shows
// no payment at all until the honest one.
func TestCheckedPaymentsOnRegtest(t *testing.T) {
	net := regtest.StartForTest(t, regtest.Config{
		Nodes:    []string{"wall", "car"},
		Channels: []regtest.ChannelSpec{{From: "car", To: "wall", CapacitySat: 1_000_000}},
	})
	wallNode, carNode := net.Nodes["wall"], net.Nodes["car"]
	wallLnd, carLnd := dial(t, wallNode), dial(t, carNode)

	o := offer.Offer{
		SessionID: "s1", PriceMsatPerWh: 500, IncrementWh: 10, FirstMultiple: 2, GraceWh: 5,
		MaxPowerW: 11000, WallNodeKey: wallNode.PubKey, ValidUntil: time.Now().Add(time.Hour), Network: "regtest",
	}
	metadata, err := offer.Metadata(o, "satwatt test wall: 500 msat/Wh")
	if err != nil {
		t.Fatal(err)
	}
	wall := &testWall{t: t, lnd: wallLnd, metadata: metadata}
	srv := httptest.NewServer(wall)
	defer srv.Close()

	client := &lnurlpay.Client{}
	po, err := client.FetchOffer(t.Context(), srv.URL+"/lnurl")
	if err != nil {
		t.Fatal(err)
	}
	const askMsat = 20 * 500 // 20 Wh at 500 msat/Wh
	expect := invoicecheck.Expect{AmountMsat: askMsat, Metadata: po.Metadata, Offer: po.Offer, MaxPaymentMsat: 1_000_000, MaxPriceMsatPerWh: 1000}
	payer := &Payer{Node: carLnd, Network: "regtest", Timeout: 30 * time.Second, Clock: clock.Real{}}

	tests := []struct {
		name   string
		mode   tamper
		edit   func(*invoicecheck.Expect, *Payer)
		reason invoicecheck.Reason
	}{
		{"description hash of another offer", wrongHash, nil, invoicecheck.DescriptionHashMismatch},
		{"amount other than asked", wrongAmount, nil, invoicecheck.AmountMismatch},
		{"payee other than the offer's node", announceOther, nil, invoicecheck.PayeeMismatch},
		{"expired invoice", shortExpiry, func(_ *invoicecheck.Expect, p *Payer) { p.Clock = clock.NewManual(time.Now().Add(5 * time.Second)) }, invoicecheck.Expired},
		{"above the per-payment cap", honest, func(e *invoicecheck.Expect, _ *Payer) { e.MaxPaymentMsat = askMsat - 1 }, invoicecheck.AboveCap},
		{"price above the owner's limit", honest, func(e *invoicecheck.Expect, _ *Payer) { e.MaxPriceMsatPerWh = 400 }, invoicecheck.PriceAboveLimit},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			wall.mu.Lock()
			wall.mode = tc.mode
			wall.mu.Unlock()
			exp, p, from := expect, *payer, po
			if tc.mode == announceOther {
				// A wall whose offer names the car's node while its
				// invoices come from the wall's node.
				other := o
				other.WallNodeKey = carNode.PubKey
				md, err := offer.Metadata(other, "satwatt test wall: 500 msat/Wh")
				if err != nil {
					t.Fatal(err)
				}
				srv2 := httptest.NewServer(&testWall{t: t, lnd: wallLnd, metadata: md})
				defer srv2.Close()
				if from, err = client.FetchOffer(t.Context(), srv2.URL+"/lnurl"); err != nil {
					t.Fatal(err)
				}
				exp.Metadata, exp.Offer = from.Metadata, from.Offer
			}
			inv, err := client.RequestInvoice(t.Context(), from, askMsat, "")
			if err != nil {
				t.Fatal(err)
			}
			if tc.edit != nil {
				tc.edit(&exp, &p)
			}
			_, err = p.Pay(t.Context(), inv.PR, exp)
			var refusal *invoicecheck.Refusal
			if !errors.As(err, &refusal) || refusal.Reason != tc.reason {
				t.Fatalf("got %v, want a %v refusal", err, tc.reason)
			}
			if n := carPayments(t, carNode); n != 0 {
				t.Fatalf("the car's node shows %d payments after a refused invoice", n)
			}
		})
	}

	// The honest invoice is paid once, and the wall sees it settle with the
	// amount and a preimage that proves it.
	wall.mu.Lock()
	wall.mode = honest
	wall.mu.Unlock()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	watch := wallLnd.WatchSettlements(ctx, wall.open)
	inv, err := client.RequestInvoice(ctx, po, askMsat, "")
	if err != nil {
		t.Fatal(err)
	}
	res, err := payer.Pay(ctx, inv.PR, expect)
	if err != nil || res.Status != lndclient.Succeeded {
		t.Fatalf("honest invoice: %+v, %v", res, err)
	}
	if sha256.Sum256(res.Preimage[:]) != res.PaymentHash {
		t.Error("the preimage does not hash to the payment hash")
	}
	select {
	case s := <-watch.Settlements():
		if s.PaymentHash != res.PaymentHash || s.AmountPaidMsat != askMsat || s.Preimage != res.Preimage {
			t.Errorf("wall saw %+v, car paid %+v", s, res)
		}
	case <-ctx.Done():
		t.Fatal("the wall never saw the settlement")
	}
	if n := carPayments(t, carNode); n != 1 {
		t.Errorf("the car's node shows %d payments, want 1", n)
	}
}
