package lndclient

// Integration tests against a real regtest network: btcd, the wall's lnd and
// the car's lnd, with a 1,000,000 sat channel car→wall. One network serves
// the whole test binary (starting one takes 10-20 s); TestMain closes it.

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lightningnetwork/lnd/lnrpc"
	"github.com/lightningnetwork/lnd/lnrpc/routerrpc"

	"satwatt/internal/clock"
	"satwatt/internal/regtest"
)

const (
	channelSat = 1_000_000
	reserveSat = channelSat / 100 // lnd's default channel reserve: 1 %
)

var shared struct {
	once sync.Once
	err  error
	net  *regtest.Network
	dir  string  // macaroons baked for the tests
	wall *Client // invoice macaroon, as the wall runs
	car  *Client // pay-only macaroon, as the car runs
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.wall != nil {
		shared.wall.Close()
	}
	if shared.car != nil {
		shared.car.Close()
	}
	if shared.net != nil {
		if err := shared.net.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "close regtest network:", err)
			if code == 0 {
				code = 1
			}
		}
	}
	if shared.dir != "" {
		os.RemoveAll(shared.dir)
	}
	os.Exit(code)
}

// network starts the shared network on first use. Missing binaries skip the
// test outside CI and fail it under CI=true (regtest.FailOrSkip).
func network(t *testing.T) (*regtest.Network, *Client, *Client) {
	t.Helper()
	shared.once.Do(func() {
		start := time.Now()
		log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
		// The network outlives this test: its context is the binary's.
		shared.net, shared.err = regtest.Start(context.Background(), regtest.Config{
			Nodes:    []string{"wall", "car"},
			Channels: []regtest.ChannelSpec{{From: "car", To: "wall", CapacitySat: channelSat}},
			Logger:   log,
		})
		if shared.err != nil {
			return
		}
		log.Info("lndclient test: regtest network up", "took", time.Since(start).Round(time.Millisecond))
		ctx := context.Background()
		if shared.dir, shared.err = os.MkdirTemp("", "lndclient-test-"); shared.err != nil {
			return
		}
		var payMac string
		if payMac, shared.err = bake(ctx, shared.net.Nodes["car"], "pay.macaroon",
			"info:read", "offchain:read", "offchain:write"); shared.err != nil {
			return
		}
		wall, car := shared.net.Nodes["wall"], shared.net.Nodes["car"]
		if shared.wall, shared.err = Dial(ctx, Config{RPCAddr: wall.RPCAddr, TLSCertPath: wall.TLSCertPath,
			MacaroonPath: wall.InvoiceMacaroonPath, Logger: log.With("client", "wall")}); shared.err != nil {
			return
		}
		shared.car, shared.err = Dial(ctx, Config{RPCAddr: car.RPCAddr, TLSCertPath: car.TLSCertPath,
			MacaroonPath: payMac, Logger: log.With("client", "car")})
	})
	if shared.err != nil {
		if shared.net == nil {
			regtest.FailOrSkip(t, shared.err)
		}
		t.Fatalf("set up clients on the regtest network: %v", shared.err)
	}
	return shared.net, shared.wall, shared.car
}

// bake makes a macaroon with the given permissions on node.
func bake(ctx context.Context, node *regtest.Node, name string, perms ...string) (string, error) {
	path := filepath.Join(shared.dir, node.Name+"-"+name)
	args := append([]string{"bakemacaroon", "--save_to", path}, perms...)
	if out, err := node.Lncli(ctx, args...); err != nil {
		return "", fmt.Errorf("bake %s: %w: %s", name, err, out)
	}
	return path, nil
}

func testCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

var descHash = sha256.Sum256([]byte(`[["text/plain","satwatt lndclient test"]]`))

func mustInvoice(ctx context.Context, t *testing.T, wall *Client, msat int64) Invoice {
	t.Helper()
	inv, err := wall.AddInvoice(ctx, msat, descHash, 10*time.Minute)
	if err != nil {
		t.Fatalf("AddInvoice(%d msat): %v", msat, err)
	}
	return inv
}

func waitSettlement(t *testing.T, w *Watcher, hash [32]byte) Settlement {
	t.Helper()
	select {
	case s, ok := <-w.Settlements():
		if !ok {
			t.Fatal("settlement channel closed")
		}
		if s.PaymentHash != hash {
			t.Fatalf("settlement for %x, want %x", s.PaymentHash, hash)
		}
		return s
	case <-time.After(30 * time.Second):
		t.Fatalf("no settlement for %x within 30 s", hash)
	}
	return Settlement{}
}

func noSettlement(t *testing.T, w *Watcher, wait time.Duration) {
	t.Helper()
	select {
	case s := <-w.Settlements():
		t.Fatalf("unexpected settlement %x (%d msat)", s.PaymentHash, s.AmountPaidMsat)
	case <-time.After(wait):
	}
}

func payOK(ctx context.Context, t *testing.T, car *Client, inv Invoice, msat int64) PaymentResult {
	t.Helper()
	res, err := car.Pay(ctx, inv.PaymentRequest, PayOptions{MaxFeeMsat: 1000, Timeout: 30 * time.Second, AmountMsat: msat})
	if err != nil {
		t.Fatalf("Pay: %v", err)
	}
	if res.Status != Succeeded {
		t.Fatalf("Pay: %+v, want succeeded", res)
	}
	return res
}

func TestRegtestPayAndSettle(t *testing.T) {
	rn, wall, car := network(t)
	ctx := testCtx(t, 2*time.Minute)
	if car.PubKey() != rn.Nodes["car"].PubKey || car.Network() != "regtest" {
		t.Errorf("car PubKey %q Network %q, want %q regtest", car.PubKey(), car.Network(), rn.Nodes["car"].PubKey)
	}
	if wall.PubKey() != "" {
		t.Errorf("wall PubKey %q with an invoice macaroon (no info:read), want empty", wall.PubKey())
	}

	open := &hashSet{m: map[[32]byte]bool{}}
	w := wall.WatchSettlements(ctx, open.list)
	before := time.Now()
	inv := mustInvoice(ctx, t, wall, 25_000)
	open.add(inv.PaymentHash)
	if inv.PaymentRequest == "" || inv.AddIndex == 0 {
		t.Errorf("invoice %+v lacks its request or add index", inv)
	}
	if inv.ExpiresAt.Before(before.Add(10*time.Minute)) || inv.ExpiresAt.After(time.Now().Add(10*time.Minute)) {
		t.Errorf("ExpiresAt %v not 10 min after the call", inv.ExpiresAt)
	}
	pr, err := car.ln.DecodePayReq(ctx, &lnrpc.PayReqString{PayReq: inv.PaymentRequest})
	if err != nil {
		t.Fatal(err)
	}
	if pr.DescriptionHash != hex.EncodeToString(descHash[:]) || pr.NumMsat != 25_000 || pr.Expiry != 600 {
		t.Errorf("invoice decodes to description hash %s, %d msat, expiry %d s", pr.DescriptionHash, pr.NumMsat, pr.Expiry)
	}

	res := payOK(ctx, t, car, inv, 25_000)
	if res.PaymentHash != inv.PaymentHash || sha256.Sum256(res.Preimage[:]) != inv.PaymentHash {
		t.Errorf("payment hash %x preimage %x do not match invoice %x", res.PaymentHash, res.Preimage, inv.PaymentHash)
	}
	if res.AmountMsat != 25_000 || res.FeeMsat != 0 {
		t.Errorf("paid %d msat fee %d, want 25000 and 0 over a direct channel", res.AmountMsat, res.FeeMsat)
	}

	s := waitSettlement(t, w, inv.PaymentHash)
	if s.Preimage != res.Preimage || s.AmountPaidMsat != 25_000 || s.SettledAt.IsZero() {
		t.Errorf("settlement %+v, want preimage %x, 25000 msat, a time", s, res.Preimage)
	}
	st, err := wall.LookupInvoice(ctx, inv.PaymentHash)
	if err != nil {
		t.Fatal(err)
	}
	if st.Status != InvoiceSettled || st.AmountPaidMsat != 25_000 || st.Preimage != res.Preimage || st.SettleIndex == 0 {
		t.Errorf("LookupInvoice = %+v", st)
	}
	if _, err := wall.LookupInvoice(ctx, sha256.Sum256([]byte("no such invoice"))); !errors.Is(err, ErrInvoiceNotFound) {
		t.Errorf("LookupInvoice of an unknown hash: %v, want ErrInvoiceNotFound", err)
	}
}

// TestRegtestOverpayment: lnd's SendPaymentV2 refuses an amount for an
// invoice that has one ("amount must not be specified"), so Pay never
// overpays. The wall must still credit what arrives: an amount-less invoice
// paid by the car's amount, and an amount invoice overpaid along a route
// built by hand.
func TestRegtestOverpayment(t *testing.T) {
	rn, wall, car := network(t)
	ctx := testCtx(t, 2*time.Minute)
	open := &hashSet{m: map[[32]byte]bool{}}
	w := wall.WatchSettlements(ctx, open.list)

	t.Run("amount-less invoice", func(t *testing.T) {
		inv := mustInvoice(ctx, t, wall, 0)
		open.add(inv.PaymentHash)
		res := payOK(ctx, t, car, inv, 40_000)
		if res.AmountMsat != 40_000 {
			t.Errorf("paid %d msat, want 40000", res.AmountMsat)
		}
		if s := waitSettlement(t, w, inv.PaymentHash); s.AmountPaidMsat != 40_000 {
			t.Errorf("settlement reports %d msat, want 40000", s.AmountPaidMsat)
		}
		st, err := wall.LookupInvoice(ctx, inv.PaymentHash)
		if err != nil || st.ValueMsat != 0 || st.AmountPaidMsat != 40_000 {
			t.Errorf("LookupInvoice = %+v, %v; want value 0, paid 40000", st, err)
		}
	})

	t.Run("amount invoice overpaid", func(t *testing.T) {
		inv := mustInvoice(ctx, t, wall, 30_000)
		open.add(inv.PaymentHash)
		pr, err := car.ln.DecodePayReq(ctx, &lnrpc.PayReqString{PayReq: inv.PaymentRequest})
		if err != nil {
			t.Fatal(err)
		}
		// One hop over the direct channel, built by hand: BuildRoute
		// wants the wall's node announcement, which regtest gossip may
		// not have delivered.
		info, err := car.ln.GetInfo(ctx, &lnrpc.GetInfoRequest{})
		if err != nil {
			t.Fatal(err)
		}
		chans, err := car.ln.ListChannels(ctx, &lnrpc.ListChannelsRequest{ActiveOnly: true})
		if err != nil || len(chans.Channels) != 1 {
			t.Fatalf("car's channels: %v, %v", chans, err)
		}
		const paid = 45_000
		expiry := info.BlockHeight + uint32(pr.CltvExpiry) + 3 // lnd pads the final CLTV by 3 blocks too
		route := &lnrpc.Route{TotalTimeLock: expiry, TotalAmtMsat: paid, Hops: []*lnrpc.Hop{{
			ChanId: chans.Channels[0].ChanId, AmtToForwardMsat: paid, Expiry: expiry, PubKey: rn.Nodes["wall"].PubKey,
			TlvPayload: true, MppRecord: &lnrpc.MPPRecord{PaymentAddr: pr.PaymentAddr, TotalAmtMsat: paid},
		}}}
		att, err := car.router.SendToRouteV2(ctx, &routerrpc.SendToRouteRequest{PaymentHash: inv.PaymentHash[:], Route: route})
		if err != nil || att.Status != lnrpc.HTLCAttempt_SUCCEEDED {
			t.Fatalf("SendToRouteV2: %v, %v (failure %v)", att.GetStatus(), err, att.GetFailure())
		}
		if s := waitSettlement(t, w, inv.PaymentHash); s.AmountPaidMsat != 45_000 {
			t.Errorf("settlement reports %d msat, want the 45000 paid for a 30000 invoice", s.AmountPaidMsat)
		}
	})

	t.Run("expected amount differs", func(t *testing.T) {
		inv := mustInvoice(ctx, t, wall, 30_000)
		_, err := car.Pay(ctx, inv.PaymentRequest, PayOptions{MaxFeeMsat: 1000, Timeout: 30 * time.Second, AmountMsat: 31_000})
		if !errors.Is(err, ErrAmountMismatch) {
			t.Fatalf("Pay = %v, want ErrAmountMismatch", err)
		}
		if _, err := car.Track(ctx, inv.PaymentHash); !errors.Is(err, ErrPaymentNotFound) {
			t.Errorf("Track after the refusal = %v, want ErrPaymentNotFound (nothing sent)", err)
		}
	})
}

func TestRegtestInsufficientBalance(t *testing.T) {
	_, wall, car := network(t)
	ctx := testCtx(t, 2*time.Minute)
	const tooMuch = (channelSat + 500_000) * 1000
	inv := mustInvoice(ctx, t, wall, tooMuch)
	res, err := car.Pay(ctx, inv.PaymentRequest, PayOptions{MaxFeeMsat: 1000, Timeout: 30 * time.Second, AmountMsat: tooMuch})
	if err != nil {
		t.Fatalf("Pay: %v", err)
	}
	if res.Status != Failed || res.FailureReason != ReasonInsufficientBalance {
		t.Errorf("Pay of %d msat over a %d sat channel = %v/%v, want failed/insufficient balance",
			int64(tooMuch), channelSat, res.Status, res.FailureReason)
	}
	if st, err := wall.LookupInvoice(ctx, inv.PaymentHash); err != nil || st.Status != InvoiceOpen {
		t.Errorf("wall's invoice %+v, %v; want still open", st, err)
	}
}

func TestRegtestPayTwice(t *testing.T) {
	rn, wall, car := network(t)
	ctx := testCtx(t, 2*time.Minute)
	inv := mustInvoice(ctx, t, wall, 12_000)
	first := payOK(ctx, t, car, inv, 12_000)
	second := payOK(ctx, t, car, inv, 12_000)
	if second != first {
		t.Errorf("second Pay = %+v, want the first result %+v", second, first)
	}
	tracked, err := car.Track(ctx, inv.PaymentHash)
	if err != nil || tracked != first {
		t.Errorf("Track = %+v, %v; want %+v", tracked, err, first)
	}

	out, err := rn.Nodes["car"].Lncli(ctx, "listpayments", "--include_incomplete", "--max_payments", "1000")
	if err != nil {
		t.Fatalf("listpayments: %v: %s", err, out)
	}
	var list struct {
		Payments []struct {
			PaymentHash string `json:"payment_hash"`
		} `json:"payments"`
	}
	if err := json.Unmarshal(out, &list); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, p := range list.Payments {
		if p.PaymentHash == hex.EncodeToString(inv.PaymentHash[:]) {
			n++
		}
	}
	if n != 1 {
		t.Errorf("car lists %d payments for the invoice, want 1", n)
	}
	if st, err := wall.LookupInvoice(ctx, inv.PaymentHash); err != nil || st.AmountPaidMsat != 12_000 {
		t.Errorf("wall received %+v, %v; want 12000 msat once", st, err)
	}
}

// TestRegtestWatchSurvivesRestart restarts the wall's lnd under a running
// watcher whose clock stands still, so the watcher is certainly
// disconnected when the car pays; the payment must be reported once the
// clock lets it reconnect, exactly once.
func TestRegtestWatchSurvivesRestart(t *testing.T) {
	rn, _, car := network(t)
	ctx := testCtx(t, 3*time.Minute)
	node := rn.Nodes["wall"]
	m := clock.NewManual(time.Now())
	wall, err := Dial(ctx, Config{RPCAddr: node.RPCAddr, TLSCertPath: node.TLSCertPath,
		MacaroonPath: node.InvoiceMacaroonPath, Clock: m, Logger: slog.New(slog.NewTextHandler(t.Output(), nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer wall.Close()
	open := &hashSet{m: map[[32]byte]bool{}}
	w := wall.WatchSettlements(ctx, open.list)
	waitFor(t, "watcher connected", w.Connected)
	inv := mustInvoice(ctx, t, wall, 20_000)
	open.add(inv.PaymentHash)

	began := time.Now()
	if err := node.Restart(ctx); err != nil {
		t.Fatalf("restart wall: %v", err)
	}
	t.Logf("wall lnd restarted in %v", time.Since(began).Round(time.Millisecond))
	if w.Connected() || m.Waiters() != 1 {
		t.Fatalf("watcher connected=%v waiters=%d after the restart; want it waiting on its clock", w.Connected(), m.Waiters())
	}
	res := payOK(ctx, t, car, inv, 20_000)
	noSettlement(t, w, 200*time.Millisecond)

	// Let the watcher's clock run until it has caught up.
	var s Settlement
	deadline := time.Now().Add(60 * time.Second)
	for got := false; !got; {
		select {
		case s = <-w.Settlements():
			got = true
		case <-time.After(20 * time.Millisecond):
			if time.Now().After(deadline) {
				t.Fatal("no settlement within 60 s of the restart")
			}
			m.Advance(maxBackoff)
		}
	}
	if s.PaymentHash != inv.PaymentHash || s.Preimage != res.Preimage || s.AmountPaidMsat != 20_000 {
		t.Errorf("settlement %+v, want hash %x, preimage %x and 20000 msat", s, inv.PaymentHash, res.Preimage)
	}
	waitFor(t, "watcher connected again", w.Connected)
	// A live payment on the new stream comes next, with no repeat of the
	// first before it.
	inv2 := mustInvoice(ctx, t, wall, 21_000)
	open.add(inv2.PaymentHash)
	payOK(ctx, t, car, inv2, 21_000)
	if s := waitSettlement(t, w, inv2.PaymentHash); s.AmountPaidMsat != 21_000 {
		t.Errorf("second settlement %d msat, want 21000", s.AmountPaidMsat)
	}
	if w.Connects() != 2 {
		t.Errorf("Connects = %d, want 2", w.Connects())
	}
}

func TestRegtestSpendableAndInFlight(t *testing.T) {
	rn, wall, car := network(t)
	ctx := testCtx(t, 2*time.Minute)
	spendable := func() int64 {
		t.Helper()
		s, err := car.SpendableMsat(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	// settled waits until the car's commitment holds no HTLC: just after a
	// payment succeeds, the HTLC's output (and its share of the commitment
	// fee) stays on it for a few round trips.
	settled := func() int64 {
		t.Helper()
		waitFor(t, "no pending HTLCs on the car's channel", func() bool {
			chans, err := car.ln.ListChannels(ctx, &lnrpc.ListChannelsRequest{ActiveOnly: true})
			return err == nil && len(chans.Channels) == 1 && len(chans.Channels[0].PendingHtlcs) == 0
		})
		return spendable()
	}
	s0 := settled()
	if s0 <= 0 || s0 >= (channelSat-reserveSat)*1000 {
		t.Fatalf("SpendableMsat = %d, want between 0 and capacity less reserve (%d)", s0, (channelSat-reserveSat)*1000)
	}
	out, err := rn.Nodes["car"].Lncli(ctx, "listchannels", "--active_only")
	if err != nil {
		t.Fatalf("listchannels: %v: %s", err, out)
	}
	var lc struct {
		Channels []struct {
			LocalBalance     int64 `json:"local_balance,string"`
			Initiator        bool  `json:"initiator"`
			FeePerKw         int64 `json:"fee_per_kw,string"`
			CommitWeight     int64 `json:"commit_weight,string"`
			CommitFee        int64 `json:"commit_fee,string"`
			LocalConstraints struct {
				ChanReserveSat int64 `json:"chan_reserve_sat,string"`
			} `json:"local_constraints"`
		} `json:"channels"`
	}
	if err := json.Unmarshal(out, &lc); err != nil || len(lc.Channels) != 1 {
		t.Fatalf("listchannels: %v: %s", err, out)
	}
	ch := lc.Channels[0]
	buf := htlcFeeBuffer(ch.Initiator, ch.FeePerKw, ch.CommitWeight, ch.CommitFee)
	if want := (ch.LocalBalance - ch.LocalConstraints.ChanReserveSat - buf) * 1000; s0 != want || buf <= 0 {
		t.Errorf("SpendableMsat = %d, lncli says local_balance - chan_reserve_sat - fee buffer (%d sat) = %d msat", s0, buf, want)
	}

	const amt = 50_000_000
	payOK(ctx, t, car, mustInvoice(ctx, t, wall, amt), amt)
	// The fee buffer follows the commitment's fee rate, which lnd may
	// update as payments come and go: allow it 2,000 sat of movement.
	const feeMoves = 2_000_000
	if s := spendable(); s0-s > amt+feeMoves || s0-s < amt-feeMoves {
		t.Errorf("SpendableMsat dropped by %d right after paying %d msat", s0-s, amt)
	}
	s1 := settled()
	if d := s0 - s1; d < amt-feeMoves || d > amt+feeMoves {
		t.Errorf("SpendableMsat dropped by %d once the payment of %d msat settled", s0-s1, amt)
	}

	// A held HTLC: the wall accepts it and neither settles nor fails it.
	// local_balance already leaves it out, so the spendable amount drops
	// by it once (plus a little commitment fee), not twice.
	var preimage [32]byte
	if _, err := rand.Read(preimage[:]); err != nil {
		t.Fatal(err)
	}
	hash := sha256.Sum256(preimage[:])
	const held = 30_000_000
	out, err = rn.Nodes["wall"].Lncli(ctx, "addholdinvoice", hex.EncodeToString(hash[:]), "--amt_msat", fmt.Sprint(held))
	if err != nil {
		t.Fatalf("addholdinvoice: %v: %s", err, out)
	}
	var hold struct {
		PaymentRequest string `json:"payment_request"`
	}
	if err := json.Unmarshal(out, &hold); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 3*time.Second)
	res, err := car.Pay(short, hold.PaymentRequest, PayOptions{Timeout: 30 * time.Second, AmountMsat: held})
	cancel()
	if err != nil || res.Status != InFlight || res.PaymentHash != hash {
		t.Fatalf("Pay of a held invoice = %+v, %v; want in flight with its hash and no error", res, err)
	}
	waitFor(t, "the wall to hold the HTLC", func() bool {
		st, err := wall.LookupInvoice(ctx, hash)
		return err == nil && st.Status == InvoiceAccepted
	})
	sHeld := spendable()
	if drop := s1 - sHeld; drop < held || drop >= 2*held {
		t.Errorf("SpendableMsat dropped by %d with %d msat held, want at least that and less than twice", drop, held)
	}

	if err := wall.CancelInvoice(ctx, hash); err != nil {
		t.Fatalf("CancelInvoice: %v", err)
	}
	res, err = car.Track(ctx, hash)
	if err != nil || res.Status != Failed || res.FailureReason != ReasonIncorrectDetails {
		t.Errorf("Track after the wall canceled = %+v, %v; want failed/incorrect details", res, err)
	}
	sAfter := spendable()
	for deadline := time.Now().Add(10 * time.Second); sAfter != s1 && time.Now().Before(deadline); sAfter = spendable() {
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("spendable msat: start %d, after paying %d: %d, with %d held: %d, after cancel: %d", s0, amt, s1, held, sHeld, sAfter)
	if sAfter != s1 {
		t.Errorf("SpendableMsat %d after the held HTLC failed, want %d as before it", sAfter, s1)
	}
}

func TestRegtestCancelInvoice(t *testing.T) {
	_, wall, car := network(t)
	ctx := testCtx(t, 2*time.Minute)
	inv := mustInvoice(ctx, t, wall, 15_000)
	if err := wall.CancelInvoice(ctx, inv.PaymentHash); err != nil {
		t.Fatalf("CancelInvoice: %v", err)
	}
	if err := wall.CancelInvoice(ctx, inv.PaymentHash); err != nil {
		t.Errorf("second CancelInvoice: %v, want success", err)
	}
	if st, err := wall.LookupInvoice(ctx, inv.PaymentHash); err != nil || st.Status != InvoiceCanceled {
		t.Errorf("LookupInvoice = %+v, %v; want canceled", st, err)
	}
	res, err := car.Pay(ctx, inv.PaymentRequest, PayOptions{MaxFeeMsat: 1000, Timeout: 30 * time.Second, AmountMsat: 15_000})
	if err != nil || res.Status != Failed || res.FailureReason != ReasonIncorrectDetails {
		t.Errorf("Pay of a canceled invoice = %+v, %v; want failed/incorrect details", res, err)
	}

	paid := mustInvoice(ctx, t, wall, 16_000)
	payOK(ctx, t, car, paid, 16_000)
	if err := wall.CancelInvoice(ctx, paid.PaymentHash); !errors.Is(err, ErrAlreadySettled) {
		t.Errorf("CancelInvoice of a paid invoice = %v, want ErrAlreadySettled", err)
	}
}

func TestRegtestDialErrors(t *testing.T) {
	rn, _, _ := network(t)
	ctx := testCtx(t, 2*time.Minute)
	wall, car := rn.Nodes["wall"], rn.Nodes["car"]
	onchainOnly, err := bake(ctx, wall, "onchain.macaroon", "onchain:read")
	if err != nil {
		t.Fatal(err)
	}
	payOnly := filepath.Join(shared.dir, "car-pay.macaroon")

	tests := []struct {
		name    string
		cfg     Config
		dialErr error
		msg     []string
		// then, if Dial succeeded:
		addInvoiceErr error
	}{
		{name: "car's certificate for the wall",
			cfg:     Config{RPCAddr: wall.RPCAddr, TLSCertPath: car.TLSCertPath, MacaroonPath: wall.AdminMacaroonPath},
			dialErr: ErrBadCert, msg: []string{"TLS certificate does not match the node at " + wall.RPCAddr}},
		{name: "readonly macaroon cannot add invoices",
			cfg:           Config{RPCAddr: wall.RPCAddr, TLSCertPath: wall.TLSCertPath, MacaroonPath: wall.ReadonlyMacaroonPath},
			addInvoiceErr: ErrPermission, msg: []string{"AddInvoice", "invoices:write", wall.RPCAddr}},
		{name: "car's macaroon for the wall",
			cfg:     Config{RPCAddr: wall.RPCAddr, TLSCertPath: wall.TLSCertPath, MacaroonPath: car.AdminMacaroonPath},
			dialErr: ErrPermission, msg: []string{wall.RPCAddr}},
		{name: "macaroon without any checked permission",
			cfg:     Config{RPCAddr: wall.RPCAddr, TLSCertPath: wall.TLSCertPath, MacaroonPath: onchainOnly},
			dialErr: ErrPermission, msg: []string{"GetInfo (info:read)"}},
		{name: "pay-only macaroon cannot add invoices",
			cfg:           Config{RPCAddr: car.RPCAddr, TLSCertPath: car.TLSCertPath, MacaroonPath: payOnly},
			addInvoiceErr: ErrPermission, msg: []string{"AddInvoice", "invoices:write"}},
		{name: "lndconnect URI with the invoice macaroon",
			cfg: Config{LndConnectURI: lndconnectURI(t, wall.RPCAddr, wall.TLSCertPath, wall.InvoiceMacaroonPath)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.Timeout = 5 * time.Second
			tt.cfg.Logger = quiet
			c, err := Dial(ctx, tt.cfg)
			if err == nil {
				defer c.Close()
				_, err = c.AddInvoice(ctx, 1000, descHash, time.Minute)
				if tt.dialErr != nil {
					t.Fatalf("Dial succeeded, want %v", tt.dialErr)
				}
				if !errors.Is(err, tt.addInvoiceErr) && (err != nil || tt.addInvoiceErr != nil) {
					t.Fatalf("AddInvoice = %v, want %v", err, tt.addInvoiceErr)
				}
			} else if tt.dialErr == nil || !errors.Is(err, tt.dialErr) {
				t.Fatalf("Dial = %v, want %v", err, tt.dialErr)
			}
			if err != nil {
				t.Log(err)
			}
			for _, m := range tt.msg {
				if err == nil || !strings.Contains(err.Error(), m) {
					t.Errorf("error %v does not contain %q", err, m)
				}
			}
		})
	}
}

func lndconnectURI(t *testing.T, addr, certPath, macPath string) string {
	t.Helper()
	u, err := LndConnectURI(addr, certPath, macPath)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestRegtestMacaroonLeastPrivilege: Dial reads the permissions of the
// macaroons lnd really bakes and warns when the command could do more than
// it needs, naming what is beyond need.
func TestRegtestMacaroonLeastPrivilege(t *testing.T) {
	rn, _, _ := network(t)
	ctx := testCtx(t, 2*time.Minute)
	wall, car := rn.Nodes["wall"], rn.Nodes["car"]
	tests := []struct {
		name     string
		node     *regtest.Node
		macaroon string
		need     *Permissions
		warn     []string // empty: no warning
	}{
		{"car with the baked pay-only macaroon", car, filepath.Join(shared.dir, "car-pay.macaroon"), &PayerPermissions, nil},
		{"car with admin.macaroon", car, car.AdminMacaroonPath, &PayerPermissions,
			[]string{"grants more than this command uses", "onchain:write", "macaroon:generate",
				"lncli bakemacaroon --save_to <file> info:read offchain:read offchain:write"}},
		{"wall with invoice.macaroon", wall, wall.InvoiceMacaroonPath, &PayeePermissions,
			[]string{"grants more than this command uses", "address:write", "onchain:read"}},
		{"wall with admin.macaroon", wall, wall.AdminMacaroonPath, &PayeePermissions,
			[]string{"offchain:write", "onchain:write"}},
		{"no need given: no check", car, car.AdminMacaroonPath, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs syncBuffer
			c, err := Dial(ctx, Config{RPCAddr: tt.node.RPCAddr, TLSCertPath: tt.node.TLSCertPath,
				MacaroonPath: tt.macaroon, Needs: tt.need, Timeout: 5 * time.Second,
				Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			if err != nil {
				t.Fatalf("Dial: %v", err)
			}
			defer c.Close()
			if len(c.MacaroonPermissions()) == 0 {
				t.Fatal("the macaroon's permissions were not read")
			}
			got := logs.String()
			if len(tt.warn) == 0 && strings.Contains(got, "level=WARN") {
				t.Fatalf("unexpected warning:\n%s", got)
			}
			for _, w := range tt.warn {
				if !strings.Contains(got, w) {
					t.Errorf("log does not say %q:\n%s", w, got)
				}
			}
		})
	}
}

// syncBuffer is a strings.Builder safe for the logger's concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
