package chargepoint

import (
	"context"
	"database/sql"
	"encoding/hex"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"satwatt/internal/clock"
	"satwatt/internal/evse"
	"satwatt/internal/lndclient"
	"satwatt/internal/metering"
	"satwatt/internal/simevse"
	"satwatt/internal/wallstore"
	"satwatt/wallctl/internal/chargepoint/lnfake"
)

// pay settles an invoice on the fake node (a stand-in for lnd in these
// unit tests; the regtest test in wallctl runs the real one).
func pay(t *testing.T, n *lnfake.Node, hash [32]byte, amt int64) lndclient.Settlement {
	t.Helper()
	s, err := n.Pay(hash, amt)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

type rig struct {
	t     *testing.T
	ctx   context.Context
	clk   *clock.Manual
	sim   *simevse.EVSE
	car   *simevse.FixedVehicle
	ln    *lnfake.Node
	store *wallstore.Store
	c     *Controller
	path  string
	// connector numbers this rig's connector; rigs made by newConnector
	// share the database and the node.
	connector int
	// wrap, if set, stands between the controller and the store, for
	// tests that make the store fail.
	wrap func(Store) Store
	// wallClock, if set, is the controller's clock instead of clk (the
	// EVSE keeps clk), for tests that step the system time.
	wallClock clock.Clock
}

const evsePilotF = evse.PilotF

var t0 = time.Date(2026, 11, 25, 2, 0, 0, 0, time.UTC)

// 100 msat/Wh, 50 Wh increments, first payment 10,000 msat, 10 Wh grace.
var testTerms = metering.Terms{PriceMsatPerWh: 100, IncrementWh: 50, FirstMultiple: 2, GraceWh: 10, UnpaidTimeout: 5 * time.Minute}

func newRig(t *testing.T) *rig { t.Helper(); return newRigWith(t, clock.NewManual(t0), nil) }

// newRigWith is newRig with clk, and with set changing the rig (a store
// wrapper, the wall's own clock) before the controller opens.
func newRigWith(t *testing.T, clk *clock.Manual, set func(*rig)) *rig {
	t.Helper()
	return newConnector(t, 1, clk, lnfake.New(), filepath.Join(t.TempDir(), "wall.db"), set)
}

// newConnector makes a rig for one connector of a wall whose others share
// clk, ln and the database at path; set, if not nil, changes it before
// the controller opens.
func newConnector(t *testing.T, connector int, clk *clock.Manual, ln *lnfake.Node, path string, set func(*rig)) *rig {
	t.Helper()
	r := &rig{t: t, ctx: t.Context(), clk: clk, ln: ln, path: path, connector: connector}
	if set != nil {
		set(r)
	}
	var err error
	r.sim, err = simevse.New(simevse.Config{Clock: r.clk, WatchdogTimeout: -1})
	if err != nil {
		t.Fatal(err)
	}
	r.car = r.sim.Vehicle().(*simevse.FixedVehicle)
	r.open()
	return r
}

// open (re)starts the controller over the same database and EVSE, as a
// restart of wallctl would.
func (r *rig) open() {
	r.t.Helper()
	if r.store != nil {
		r.store.Close()
	}
	st, err := wallstore.Open(r.ctx, r.path)
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { st.Close() })
	r.store = st
	var cst Store = st
	if r.wrap != nil {
		cst = r.wrap(st)
	}
	var cclk clock.Clock = r.clk
	if r.wallClock != nil {
		cclk = r.wallClock
	}
	c, err := New(Config{Connector: r.connector, Terms: testTerms, Clock: cclk, MeterInterval: time.Second, SampleInterval: 5 * time.Second,
		MaxCurrentA: 32, MaxPowerW: 7360}, r.sim, r.ln,
		func(context.Context, func() [][32]byte) Watch { return r.ln }, cst)
	if err != nil {
		r.t.Fatal(err)
	}
	// What Run does before its loop, without the goroutines, so the test
	// owns time.
	c.disable(r.ctx, "test start")
	if err := c.loadSettings(r.ctx); err != nil {
		r.t.Fatal(err)
	}
	if err := c.recover(r.ctx); err != nil {
		r.t.Fatal(err)
	}
	c.watcher, c.ready = r.ln, true
	c.reconcile(r.ctx)
	r.c = c
}

// run advances time second by second, stepping the controller, until
// cond holds or limit passes.
func (r *rig) run(limit time.Duration, cond func(Status) bool) Status {
	r.t.Helper()
	for waited := time.Duration(0); ; waited += time.Second {
		st := r.c.Status()
		if cond(st) {
			return st
		}
		if waited >= limit {
			r.t.Fatalf("condition not reached within %s; status %+v session %+v", limit, st, st.Session)
		}
		r.clk.Advance(time.Second)
		r.c.step(r.ctx)
	}
}

func (r *rig) invoice(amt int64) Invoice {
	r.t.Helper()
	inv, err := r.c.RequestInvoice(r.ctx, r.c.Status().Session.ID, amt)
	if err != nil {
		r.t.Fatal(err)
	}
	return inv
}

func (r *rig) evseEnabled() bool {
	st, err := r.sim.Status(r.ctx)
	if err != nil {
		r.t.Fatal(err)
	}
	return st.Enabled
}

func state(s string) func(Status) bool {
	return func(st Status) bool { return st.Session != nil && st.Session.State == s }
}

func TestPayAsYouGo(t *testing.T) {
	r := newRig(t)
	r.c.step(r.ctx)
	if st := r.c.Status(); st.Connector != "idle" || st.Session != nil {
		t.Fatalf("before plug-in: %+v", st)
	}
	r.car.Plug()
	r.c.step(r.ctx)
	st := r.c.Status()
	if st.Session == nil || st.Session.State != "awaiting_payment" || r.evseEnabled() {
		t.Fatalf("after plug-in: %+v, EVSE enabled %v", st.Session, r.evseEnabled())
	}
	id := st.Session.ID
	oi, err := r.c.CurrentOffer()
	if err != nil || oi.MinMsat != 10_000 || oi.Offer.PriceMsatPerWh != 100 || oi.Offer.SessionID != id {
		t.Fatalf("offer %+v %v", oi, err)
	}

	// Invoice requests: bounds, the open-invoice quota, unknown sessions.
	for _, tc := range []struct {
		session string
		amt     int64
		want    error
	}{
		{id, 9_999, ErrAmount},
		{id, 50_001, ErrAmount},
		{"no-such-session", 10_000, ErrNotOpen},
	} {
		if _, err := r.c.RequestInvoice(r.ctx, tc.session, tc.amt); !errors.Is(err, tc.want) {
			t.Errorf("RequestInvoice(%q, %d): %v, want %v", tc.session, tc.amt, err, tc.want)
		}
	}
	first := r.invoice(10_000)
	r.invoice(10_000)
	r.invoice(10_000)
	if _, err := r.c.RequestInvoice(r.ctx, id, 10_000); !errors.Is(err, ErrTooManyInvoices) {
		t.Errorf("fourth open invoice: %v, want ErrTooManyInvoices", err)
	}

	// The first payment energises at once.
	paid := pay(t, r.ln, first.PaymentHash, 10_000)
	r.c.settle(r.ctx, paid, false)
	if st := r.c.Status(); st.Session.State != "energising" || !r.evseEnabled() {
		t.Fatalf("after first payment: %s, EVSE enabled %v", st.Session.State, r.evseEnabled())
	}
	// The same settlement reported again (lnd replay) credits nothing.
	r.c.settle(r.ctx, paid, false)
	if got := r.c.Status().Session.PaidMsat; got != 10_000 {
		t.Fatalf("paid %d after a replayed settlement, want 10000", got)
	}

	// Energy flows until delivered passes paid plus the grace: suspended.
	st = r.run(3*time.Minute, state("suspended"))
	if r.evseEnabled() {
		t.Error("suspended but the EVSE is still enabled")
	}
	// 100 Wh paid + 10 Wh grace: the controller looks one meter interval
	// ahead (7,360 W for 1 s: 2,045 mWh), so it suspends within that of
	// the limit and never past it.
	if d := st.Session.DeliveredMWh; d <= 110_000-2_045 || d > 110_000 {
		t.Errorf("suspended at %d mWh, want 107,955 to 110,000", d)
	}
	before := st.Session.DeliveredMWh
	r.advance(10 * time.Second)
	if d := r.c.Status().Session.DeliveredMWh; d != before {
		t.Errorf("suspended: delivered went from %d to %d mWh", before, d)
	}

	// A payment resumes; overpayment counts in full.
	second := r.invoice(5_000)
	r.c.settle(r.ctx, pay(t, r.ln, second.PaymentHash, 7_000), false)
	if st := r.c.Status(); st.Session.State != "energising" || !r.evseEnabled() {
		t.Fatalf("after the second payment: %s, EVSE enabled %v", st.Session.State, r.evseEnabled())
	}
	r.advance(5 * time.Second)

	// Unplug ends the session on the record, EVSE off.
	r.car.Unplug()
	r.c.step(r.ctx)
	st = r.c.Status()
	if st.Session != nil || st.Last == nil || st.Last.State != "ended" || st.Last.EndReason != "unplugged" {
		t.Fatalf("after unplug: session %+v last %+v", st.Session, st.Last)
	}
	if r.evseEnabled() {
		t.Error("EVSE enabled after unplug")
	}
	rc, err := r.store.Receipt(r.ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if rc.PaidMsat != 17_000 || len(rc.Payments) != 2 || rc.Session.EndReason != "unplugged" {
		t.Errorf("receipt: paid %d in %d payments, end %q; want 17000 in 2, unplugged", rc.PaidMsat, len(rc.Payments), rc.Session.EndReason)
	}
	if rc.Session.DeliveredMWh != st.Last.DeliveredMWh {
		t.Errorf("stored delivered %d mWh, controller %d", rc.Session.DeliveredMWh, st.Last.DeliveredMWh)
	}
	if m := r.c.Metrics(); m.PaymentsSettled != 2 || m.ReceivedMsat != 17_000 {
		t.Errorf("metrics %+v", m)
	}
	// The events tell when power really flowed: each closing and opening
	// of the contactor, after the plug-in.
	db, err := sql.Open("sqlite3", "file:"+r.path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT kind FROM events WHERE session_id = ? AND kind IN ('plugged', 'contactor_closed', 'contactor_opened') ORDER BY id`, id)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for rows.Next() {
		var k string
		rows.Scan(&k)
		kinds = append(kinds, k)
	}
	rows.Close()
	want := "plugged contactor_closed contactor_opened contactor_closed contactor_opened"
	if got := strings.Join(kinds, " "); got != want {
		t.Errorf("events %q, want %q", got, want)
	}
}

// advance moves time in one-second steps, stepping the controller.
func (r *rig) advance(d time.Duration) {
	for ; d > 0; d -= time.Second {
		r.clk.Advance(time.Second)
		r.c.step(r.ctx)
	}
}

func TestRestartResumesWithoutLosingOrDoublingPayments(t *testing.T) {
	r := newRig(t)
	r.car.Plug()
	r.c.step(r.ctx)
	id := r.c.Status().Session.ID
	first := r.invoice(10_000)
	r.c.settle(r.ctx, pay(t, r.ln, first.PaymentHash, 10_000), false)
	r.advance(20 * time.Second)
	delivered := r.c.Status().Session.DeliveredMWh
	// An invoice is paid while the wall is down: the watcher never sees it.
	second := r.invoice(5_000)
	pay(t, r.ln, second.PaymentHash, 5_000)
	r.advance(0)

	// "Crash": a new controller over the same records and EVSE.
	r.open()
	st := r.c.Status()
	if st.Session == nil || st.Session.ID != id {
		t.Fatalf("after restart: no resumed session: %+v", st)
	}
	if st.Session.PaidMsat != 15_000 || st.Session.Payments != 2 {
		t.Errorf("after restart: paid %d in %d payments, want 15000 in 2", st.Session.PaidMsat, st.Session.Payments)
	}
	if st.Session.DeliveredMWh < delivered {
		t.Errorf("after restart: delivered %d < %d before", st.Session.DeliveredMWh, delivered)
	}
	// Reconciling again (a second restart) credits nothing twice.
	r.c.reconcile(r.ctx)
	r.open()
	if got := r.c.Status().Session.PaidMsat; got != 15_000 {
		t.Errorf("after a second restart: paid %d, want 15000", got)
	}
	// The resumed session keeps energising from the EVSE's own meter.
	r.c.step(r.ctx)
	if !r.evseEnabled() || r.c.Status().Session.State != "energising" {
		t.Errorf("resumed session: state %s, EVSE enabled %v", r.c.Status().Session.State, r.evseEnabled())
	}
	rc, _ := r.store.Receipt(r.ctx, id)
	if rc.PaidMsat != 15_000 {
		t.Errorf("stored paid %d, want 15000", rc.PaidMsat)
	}
}

func TestRestartAfterUnplugEndsTheSession(t *testing.T) {
	r := newRig(t)
	r.car.Plug()
	r.c.step(r.ctx)
	id := r.c.Status().Session.ID
	r.car.Unplug() // while the wall is down
	r.open()
	if st := r.c.Status(); st.Session != nil {
		t.Fatalf("restart after unplug resumed %+v", st.Session)
	}
	s, err := r.store.Session(r.ctx, id)
	if err != nil || s.EndReason != "unplugged" {
		t.Errorf("stored session: %+v %v", s, err)
	}
}

func TestLatePaymentIsRecordedNotLost(t *testing.T) {
	r := newRig(t)
	r.car.Plug()
	r.c.step(r.ctx)
	id := r.c.Status().Session.ID
	inv := r.invoice(10_000)
	r.car.Unplug()
	r.c.step(r.ctx)
	r.c.settle(r.ctx, pay(t, r.ln, inv.PaymentHash, 10_000), false)
	rc, err := r.store.Receipt(r.ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if rc.PaidMsat != 10_000 || rc.AfterEndMsat != 10_000 {
		t.Errorf("late payment: paid %d after end %d, want 10000 both", rc.PaidMsat, rc.AfterEndMsat)
	}
	if r.evseEnabled() || r.c.Metrics().LatePayments != 1 {
		t.Errorf("late payment powered the EVSE (%v) or was not counted (%d)", r.evseEnabled(), r.c.Metrics().LatePayments)
	}
}

func TestFaults(t *testing.T) {
	cases := []struct {
		name       string
		fault      simevse.Faults
		then       func(r *rig)
		wantReason string
		selling    bool
	}{
		{
			name:  "vehicle fault ends the session",
			fault: simevse.Faults{VehicleFault: evsePilotF},
			then:  func(r *rig) { r.advance(2 * time.Second) }, wantReason: "charger_fault", selling: true,
		},
		{
			name:  "contactor stuck closed: fault, selling stops",
			fault: simevse.Faults{ContactorStuck: true},
			then: func(r *rig) {
				r.c.Stop(r.ctx, r.c.Status().Session.ID)
				r.advance(5 * time.Second)
			},
			wantReason: "wall_shutdown", selling: false,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t)
			r.car.Plug()
			r.c.step(r.ctx)
			id := r.c.Status().Session.ID
			r.c.settle(r.ctx, pay(t, r.ln, r.invoice(10_000).PaymentHash, 10_000), false)
			r.advance(5 * time.Second)
			if err := r.sim.SetFaults(tc.fault); err != nil {
				t.Fatal(err)
			}
			tc.then(r)
			s, err := r.store.Session(r.ctx, id)
			if err != nil || s.EndReason != tc.wantReason {
				t.Errorf("stored end reason %q (%v), want %q", s.EndReason, err, tc.wantReason)
			}
			_, err = r.c.CurrentOffer()
			if selling := !errors.Is(err, ErrNotSelling); selling != tc.selling {
				t.Errorf("selling %v (%v), want %v", selling, err, tc.selling)
			}
			if !tc.selling && r.c.Status().Connector != "fault" {
				t.Errorf("connector %q, want fault", r.c.Status().Connector)
			}
		})
	}
}

func TestLndOutOfSightWithholdsPowerOnceCreditIsUsed(t *testing.T) {
	r := newRig(t)
	r.car.Plug()
	r.c.step(r.ctx)
	r.c.settle(r.ctx, pay(t, r.ln, r.invoice(10_000).PaymentHash, 10_000), false)
	r.ln.SetConnected(false)
	// Within the paid credit power flows; once it is used up the wall
	// does not lean on the grace while it cannot see payments.
	st := r.run(3*time.Minute, func(st Status) bool { return st.Session.CreditMsat <= 0 })
	r.advance(time.Second)
	if r.evseEnabled() {
		t.Errorf("credit %d msat with lnd out of sight, EVSE still enabled", st.Session.CreditMsat)
	}
	if d := r.c.Status().Session.DeliveredMWh; d > 100_000+2_045 {
		t.Errorf("delivered %d mWh on 100,000 paid while blind", d)
	}
}

func TestSettingsApplyToTheNextSession(t *testing.T) {
	r := newRig(t)
	r.car.Plug()
	r.c.step(r.ctx)
	before := *r.c.Status().Session
	want := Settings{PriceMsatPerWh: 250, IncrementWh: 20, GraceWh: 5}
	if err := r.c.SetSettings(r.ctx, want); err != nil {
		t.Fatal(err)
	}
	if got := *r.c.Status().Session; got.PriceMsatPerWh != before.PriceMsatPerWh ||
		got.IncrementWh != before.IncrementWh || got.GraceWh != before.GraceWh {
		t.Errorf("open session's terms changed: %d msat/Wh, %d Wh, %d Wh grace", got.PriceMsatPerWh, got.IncrementWh, got.GraceWh)
	}
	r.car.Unplug()
	r.c.step(r.ctx)
	r.open() // the settings survive a restart
	r.car.Plug()
	r.c.step(r.ctx)
	got := *r.c.Status().Session
	if g := (Settings{got.PriceMsatPerWh, got.IncrementWh, got.GraceWh}); g != want {
		t.Errorf("next session's terms %+v, want %+v", g, want)
	}
	for _, bad := range []Settings{{0, 20, 5}, {250, 0, 5}, {250, 20, -1}} {
		if err := r.c.SetSettings(r.ctx, bad); err == nil {
			t.Errorf("settings %+v accepted", bad)
		}
	}
	if err := r.c.SetPrice(r.ctx, 300); err != nil {
		t.Fatal(err)
	}
	if got := r.c.Settings(); got != (Settings{300, 20, 5}) {
		t.Errorf("after SetPrice(300): %+v; the price alone should change", got)
	}
}

func TestShareSoC(t *testing.T) {
	r := newRig(t)
	r.car.Plug()
	r.c.step(r.ctx)
	id := r.c.Status().Session.ID
	if got := r.c.Status().Session.SoCPermille; got != -1 {
		t.Fatalf("SoC %d before the car shared it, want -1", got)
	}
	for _, tc := range []struct {
		id       string
		permille int64
		want     error
	}{
		{id, 593, nil},
		{id, 1001, ErrSoC},
		{id, -1, ErrSoC},
		{"someone-else", 500, ErrNotOpen},
	} {
		if err := r.c.ShareSoC(tc.id, tc.permille); !errors.Is(err, tc.want) {
			t.Errorf("ShareSoC(%q, %d) = %v, want %v", tc.id, tc.permille, err, tc.want)
		}
	}
	if got := r.c.Status().Session.SoCPermille; got != 593 {
		t.Errorf("SoC %d after the refused ones, want 593", got)
	}
}

func TestBuyerStopNeedsAPreimage(t *testing.T) {
	r := newRig(t)
	r.car.Plug()
	r.c.step(r.ctx)
	id := r.c.Status().Session.ID
	s := pay(t, r.ln, r.invoice(10_000).PaymentHash, 10_000)
	r.c.settle(r.ctx, s, false)
	var wrong [32]byte
	if err := r.c.BuyerStop(r.ctx, id, hex.EncodeToString(wrong[:])); !errors.Is(err, ErrNotBuyer) {
		t.Errorf("stop with a wrong preimage: %v", err)
	}
	if err := r.c.BuyerStop(r.ctx, id, hex.EncodeToString(s.Preimage[:])); err != nil {
		t.Fatal(err)
	}
	if st := r.c.Status(); st.Session.EndReason != "buyer_stopped" || r.evseEnabled() {
		t.Errorf("after buyer stop: %+v, EVSE enabled %v", st.Session, r.evseEnabled())
	}
}

// panicky is an EVSE driver with a bug: once armed, reading its status
// panics.
type panicky struct {
	*simevse.EVSE
	armed atomic.Bool
}

func (p *panicky) Status(ctx context.Context) (evse.Status, error) {
	if p.armed.Load() {
		panic("test: a bug in the EVSE driver")
	}
	return p.EVSE.Status(ctx)
}

// A panic in the controller's loop ends Run with an error and the EVSE
// switched off, mid-session, with the real loop and a real clock.
func TestPanicPowersOff(t *testing.T) {
	ctx := t.Context()
	sim, err := simevse.New(simevse.Config{WatchdogTimeout: -1})
	if err != nil {
		t.Fatal(err)
	}
	dev := &panicky{EVSE: sim}
	st, err := wallstore.Open(ctx, filepath.Join(t.TempDir(), "wall.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ln := lnfake.New()
	c, err := New(Config{Terms: testTerms, MeterInterval: 10 * time.Millisecond, SampleInterval: time.Second, MaxCurrentA: 32},
		dev, ln, func(context.Context, func() [][32]byte) Watch { return ln }, st)
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- c.Run(ctx) }()
	until := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s not reached within 10 s: %+v", what, c.Status())
			}
		}
	}
	sim.Vehicle().(*simevse.FixedVehicle).Plug()
	until("session open", func() bool { s := c.Status().Session; return s != nil && s.State == "awaiting_payment" })
	inv, err := c.RequestInvoice(ctx, c.Status().Session.ID, 10_000)
	if err != nil {
		t.Fatal(err)
	}
	ln.Deliver(pay(t, ln, inv.PaymentHash, 10_000))
	until("contactor closed", func() bool { s, _ := sim.Status(ctx); return s.ContactorClosed })

	dev.armed.Store(true)
	select {
	case err := <-errc:
		if err == nil || !strings.Contains(err.Error(), "panic") {
			t.Errorf("Run returned %v, want the panic as an error", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return within 10 s of the panic")
	}
	if s, _ := sim.Status(ctx); s.Enabled || s.ContactorClosed {
		t.Errorf("after the panic the EVSE is still on: %+v", s)
	}
}

func TestLookahead(t *testing.T) {
	tests := []struct {
		powerW   int64
		interval time.Duration
		speed    int64 // permil
		want     int64
	}{
		{7_360, time.Second, 0, 2_044},       // a real charger: 7,360 W for 1 s
		{7_360, time.Second, 1_000, 2_044},   // speed 1
		{7_360, time.Second, 30_000, 61_320}, // a simulated EVSE at 30x covers 30 s of its energy
		{-5, time.Second, 0, 0},              // a meter reading backwards draws nothing ahead
	}
	for _, tt := range tests {
		if got := lookaheadMWh(tt.powerW, tt.interval, tt.speed); got != tt.want {
			t.Errorf("lookaheadMWh(%d, %s, %d) = %d, want %d", tt.powerW, tt.interval, tt.speed, got, tt.want)
		}
	}
}

// Two connectors share the wall's database and node. A restart resumes or
// ends each one's session from its own EVSE alone: a car still plugged in
// on one connector keeps its session and its payments whatever happened
// on the other.
func TestRestartKeepsEachConnectorsOwnSession(t *testing.T) {
	clk, ln, path := clock.NewManual(t0), lnfake.New(), filepath.Join(t.TempDir(), "wall.db")
	one := newConnector(t, 1, clk, ln, path, nil)
	two := newConnector(t, 2, clk, ln, path, nil)
	for _, r := range []*rig{one, two} {
		r.car.Plug()
		r.c.step(r.ctx)
		inv := r.invoice(10_000)
		r.c.settle(r.ctx, pay(t, r.ln, inv.PaymentHash, 10_000), false)
		r.c.step(r.ctx)
	}
	idOne, idTwo := one.c.Status().Session.ID, two.c.Status().Session.ID
	if idOne == idTwo {
		t.Fatalf("both connectors opened session %s", idOne)
	}
	if st := two.c.Status(); st.ConnectorNumber != 2 {
		t.Errorf("connector two's status says connector %d", st.ConnectorNumber)
	}
	// While the wall is down: connector two's car pays its second
	// invoice, connector one's car leaves.
	second := two.invoice(5_000)
	pay(t, ln, second.PaymentHash, 5_000)
	one.car.Unplug()

	// Restart connector one first: before sessions knew their connector,
	// it would have ended connector two's session as one left open.
	one.open()
	two.open()
	if st := one.c.Status(); st.Session != nil {
		t.Errorf("connector one resumed %+v; its car had left", st.Session)
	}
	if s, err := one.store.Session(one.ctx, idOne); err != nil || s.EndReason != wallstore.ReasonUnplugged || s.Connector != 1 {
		t.Errorf("connector one's session after restart: %+v, %v; want ended unplugged on connector 1", s, err)
	}
	st := two.c.Status()
	if st.Session == nil || st.Session.ID != idTwo {
		t.Fatalf("connector two did not resume its session %s: %+v", idTwo, st.Session)
	}
	if st.Session.PaidMsat != 15_000 || st.Session.Payments != 2 {
		t.Errorf("connector two after restart: paid %d in %d payments, want 15000 in 2", st.Session.PaidMsat, st.Session.Payments)
	}
	two.c.step(two.ctx)
	if !two.evseEnabled() || one.evseEnabled() {
		t.Errorf("after restart: EVSE two enabled %v (want true), EVSE one enabled %v (want false)", two.evseEnabled(), one.evseEnabled())
	}
}

// The wall cuts power within the grace by its own meter, even when the
// meter runs faster than the power the EVSE reports (a meter reading
// high) or the readings come late (a loaded machine): the look-ahead
// learns the meter's real pace and the gap between readings.
func TestGraceHoldsWhenTheMeterOutrunsThePower(t *testing.T) {
	for _, tc := range []struct {
		name   string
		permil int64
		gap    time.Duration
	}{
		{"meter 100 % high", 1000, time.Second},
		{"readings 3 s apart", 0, 3 * time.Second},
		{"both", 1000, 3 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t)
			if err := r.sim.SetFaults(simevse.Faults{MeterHighPermil: tc.permil}); err != nil {
				t.Fatal(err)
			}
			r.car.Plug()
			r.c.step(r.ctx)
			r.c.settle(r.ctx, pay(t, r.ln, r.invoice(10_000).PaymentHash, 10_000), false)
			for i := 0; i < 300 && r.c.Status().Connector != "suspended"; i++ {
				r.clk.Advance(tc.gap)
				r.c.step(r.ctx)
			}
			st := r.c.Status()
			if st.Connector != "suspended" {
				t.Fatalf("never suspended: %s %+v", st.Connector, st.Session)
			}
			// Whatever the EVSE meters after the cut is not the wall's to
			// stop; what counts is what was metered when it cut.
			if limit := st.Session.PaidEnergyMWh + st.Session.GraceWh*1000; st.Session.DeliveredMWh > limit {
				t.Errorf("suspended at %d mWh delivered on %d mWh paid and %d Wh grace", st.Session.DeliveredMWh, st.Session.PaidEnergyMWh, st.Session.GraceWh)
			}
		})
	}
}

// refusingStore fails SettleInvoice while refuse is set, as a full disk
// or a database locked by another process would.
type refusingStore struct {
	Store
	refuse bool
}

func (s *refusingStore) SettleInvoice(ctx context.Context, hash string, amt int64, preimage string, at time.Time) (wallstore.Settlement, error) {
	if s.refuse {
		return wallstore.Settlement{}, errors.New("database or disk is full")
	}
	return s.Store.SettleInvoice(ctx, hash, amt, preimage, at)
}

// TestSettlementTheStoreRefusedIsRetried: lnd reports a settlement once
// per stream. If the store cannot record it then, the wall must not wait
// for the invoice's expiry check, minutes away, to credit it.
func TestSettlementTheStoreRefusedIsRetried(t *testing.T) {
	rs := &refusingStore{}
	r := newRigWith(t, clock.NewManual(t0), func(r *rig) { r.wrap = func(s Store) Store { rs.Store = s; return rs } })
	r.car.Plug()
	r.c.step(r.ctx)
	id := r.c.Status().Session.ID

	rs.refuse = true
	r.c.settle(r.ctx, pay(t, r.ln, r.invoice(10_000).PaymentHash, 10_000), false)
	for range 3 {
		r.advance(time.Second)
		r.c.retrySettlements(r.ctx)
	}
	if st := r.c.Status(); st.Session.PaidMsat != 0 || r.evseEnabled() {
		t.Fatalf("credited %d msat (EVSE enabled %v) with the settlement unrecorded", st.Session.PaidMsat, r.evseEnabled())
	}
	rs.refuse = false
	r.advance(time.Second)
	r.c.retrySettlements(r.ctx)
	r.c.step(r.ctx)
	if st := r.c.Status(); st.Session.PaidMsat != 10_000 || st.Session.Payments != 1 || !r.evseEnabled() {
		t.Fatalf("one tick after the store recovered: paid %d in %d payments, EVSE enabled %v; want 10000 in 1, enabled",
			st.Session.PaidMsat, st.Session.Payments, r.evseEnabled())
	}
	// Retrying again credits nothing twice.
	r.c.retrySettlements(r.ctx)
	if rc, err := r.store.Receipt(r.ctx, id); err != nil || rc.PaidMsat != 10_000 || r.c.Status().Session.PaidMsat != 10_000 {
		t.Fatalf("after another retry: stored %d (%v), status %d; want 10000", rc.PaidMsat, err, r.c.Status().Session.PaidMsat)
	}
}

// steppedClock is the wall's clock when the system time is stepped (NTP
// correcting a clock that booted wrong, or someone setting it): Now jumps
// by the offset, while timers and the EVSE's meter run on unaffected.
type steppedClock struct {
	*clock.Manual
	offset time.Duration
}

func (c *steppedClock) Now() time.Time { return c.Manual.Now().Add(c.offset) }

// TestClockSteps steps the wall's clock mid-session. Energy comes from the
// EVSE's meter, not from time, so whatever the step the wall must deliver
// what was paid plus the grace and no more, record every payment once, and
// withdraw power when the credit is spent. The step here reaches the
// controller's durations too, which is harsher than a running wallctl
// sees: its clock.Real readings carry Go's monotonic clock.
func TestClockSteps(t *testing.T) {
	for _, tc := range []struct {
		name string
		step time.Duration
	}{
		{"back an hour", -time.Hour},
		{"forward a day", 24 * time.Hour},
		{"back to 1970, as a clock without a battery boots", -t0.Sub(time.Unix(0, 0))},
		{"forward from 1970 to now, as NTP corrects it", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wc := &steppedClock{Manual: clock.NewManual(t0)}
			start := t0
			if tc.step == 0 {
				// Boots in 1970; NTP steps it to now mid-session.
				wc.offset = -t0.Sub(time.Unix(0, 0))
				tc.step = -wc.offset
				start = time.Unix(0, 0)
			}
			r := newRigWith(t, wc.Manual, func(r *rig) { r.wallClock = wc })
			r.car.Plug()
			r.c.step(r.ctx)
			id := r.c.Status().Session.ID
			r.c.settle(r.ctx, pay(t, r.ln, r.invoice(10_000).PaymentHash, 10_000), false)
			r.advance(10 * time.Second)
			before := r.c.Status().Session.DeliveredMWh

			wc.offset += tc.step
			r.advance(time.Second)
			st := r.c.Status()
			if st.Session == nil || st.Session.ID != id || st.Session.DeliveredMWh < before {
				t.Fatalf("after the step: session %+v (delivered %d before)", st.Session, before)
			}
			r.c.settle(r.ctx, pay(t, r.ln, r.invoice(5_000).PaymentHash, 5_000), false)
			// A forward step looks, for one reading, like a long gap
			// since the last: the look-ahead over it may suspend early
			// for a second (never late). Go's monotonic clock spares a
			// running wallctl this, but not every clock it may be given.
			st = r.run(5*time.Minute, func(st Status) bool {
				return st.Session.State == "suspended" && st.Session.DeliveredMWh > 160_000-2_045
			})
			if r.evseEnabled() {
				t.Error("suspended, EVSE still enabled")
			}
			// 150 Wh paid + 10 Wh grace, suspended within one meter
			// second (7,360 W: 2,045 mWh) of the limit, never past it.
			if d := st.Session.DeliveredMWh; d <= 160_000-2_045 || d > 160_000 {
				t.Errorf("suspended at %d mWh, want 157,955 to 160,000", d)
			}
			if st.Session.PaidMsat != 15_000 || st.Session.Payments != 2 {
				t.Errorf("paid %d in %d payments, want 15000 in 2", st.Session.PaidMsat, st.Session.Payments)
			}
			r.car.Unplug()
			r.c.step(r.ctx)
			rc, err := r.store.Receipt(r.ctx, id)
			if err != nil || rc.PaidMsat != 15_000 || len(rc.Payments) != 2 || rc.Session.EndReason != "unplugged" {
				t.Errorf("receipt: paid %d in %d payments, end %q (%v)", rc.PaidMsat, len(rc.Payments), rc.Session.EndReason, err)
			}
			if !rc.Session.StartedAt.Equal(start) && rc.Session.StartedAt.Sub(start).Abs() > time.Second {
				t.Errorf("started at %s, want %s (the clock when the car plugged in)", rc.Session.StartedAt, start)
			}
		})
	}
}

// TestNoSaleWhileTheEVSEIsSilent: a wall whose charger does not answer
// cannot deliver what it would be paid for, so it refuses offers and
// invoices until the charger answers again, and keeps the session.
func TestNoSaleWhileTheEVSEIsSilent(t *testing.T) {
	r := newRig(t)
	r.car.Plug()
	r.c.step(r.ctx)
	id := r.c.Status().Session.ID
	r.c.settle(r.ctx, pay(t, r.ln, r.invoice(10_000).PaymentHash, 10_000), false)
	r.advance(5 * time.Second)
	for _, tc := range []struct {
		name        string
		unreachable bool
		selling     bool
	}{
		{"silent", true, false},
		{"answering again", false, true},
	} {
		if err := r.sim.SetFaults(simevse.Faults{Unreachable: tc.unreachable}); err != nil {
			t.Fatal(err)
		}
		r.advance(time.Second)
		_, offerErr := r.c.CurrentOffer()
		_, invErr := r.c.RequestInvoice(r.ctx, id, 5_000)
		for what, err := range map[string]error{"offer": offerErr, "invoice": invErr} {
			if selling := err == nil; selling != tc.selling {
				t.Errorf("%s: %s: %v, want selling %v", tc.name, what, err, tc.selling)
			}
			if err != nil && (!errors.Is(err, ErrNotSelling) || !strings.Contains(err.Error(), "charger is not answering")) {
				t.Errorf("%s: %s refused with %v, want ErrNotSelling saying the charger is not answering", tc.name, what, err)
			}
		}
		if st := r.c.Status(); st.Session == nil || st.Session.ID != id {
			t.Errorf("%s: session %+v, want %s kept", tc.name, st.Session, id)
		}
	}
}

// stallingStore blocks RecordProgress while its gate is shut, as a write
// waiting out the busy timeout of a database another process holds.
type stallingStore struct {
	Store
	mu   sync.Mutex
	gate chan struct{}
}

func (s *stallingStore) shut() { s.mu.Lock(); s.gate = make(chan struct{}); s.mu.Unlock() }
func (s *stallingStore) open() { s.mu.Lock(); close(s.gate); s.gate = nil; s.mu.Unlock() }

func (s *stallingStore) isShut() bool { s.mu.Lock(); defer s.mu.Unlock(); return s.gate != nil }

func (s *stallingStore) RecordProgress(ctx context.Context, id string, at time.Time, state string, mwh, w int64) error {
	s.mu.Lock()
	g := s.gate
	s.mu.Unlock()
	if g != nil {
		<-g
	}
	return s.Store.RecordProgress(ctx, id, at, state, mwh, w)
}

// TestStallGuardWithdrawsPower: while the control loop is stuck in a
// write, nobody meters, so the guard must switch the EVSE off; once the
// loop runs again it switches power back on if the credit allows. Real
// time (short intervals): the guard runs beside the loop.
func TestStallGuardWithdrawsPower(t *testing.T) {
	ctx := t.Context()
	sim, err := simevse.New(simevse.Config{Clock: clock.Real{}, WatchdogTimeout: -1})
	if err != nil {
		t.Fatal(err)
	}
	st, err := wallstore.Open(ctx, filepath.Join(t.TempDir(), "wall.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ss := &stallingStore{Store: st}
	ln := lnfake.New()
	c, err := New(Config{Terms: testTerms, Clock: clock.Real{}, MeterInterval: 50 * time.Millisecond,
		SampleInterval: 100 * time.Millisecond, MaxCurrentA: 32, MaxPowerW: 7360},
		sim, ln, func(context.Context, func() [][32]byte) Watch { return ln }, ss)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- c.Run(runCtx) }()
	defer func() { stop(); <-done }()
	enabled := func() bool {
		s, err := sim.Status(ctx)
		return err == nil && s.Enabled
	}
	waitUntil := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 10 s", what)
			}
		}
	}
	sim.Vehicle().(*simevse.FixedVehicle).Plug()
	waitUntil("session open", func() bool { return c.Status().Session != nil })
	inv, err := c.RequestInvoice(ctx, c.Status().Session.ID, 10_000)
	if err != nil {
		t.Fatal(err)
	}
	// Reported on the stream Run follows, as lnd would.
	ln.Deliver(pay(t, ln, inv.PaymentHash, 10_000))
	waitUntil("energising", enabled)

	ss.shut()
	defer func() {
		if ss.isShut() {
			ss.open() // so that a failing test does not leave Run stuck
		}
	}()
	waitUntil("the guard withdraws power while the loop is stuck", func() bool { return !enabled() })
	ss.open()
	waitUntil("power back once the loop runs", enabled)
	if s := c.Status().Session; s == nil || s.PaidMsat != 10_000 || s.State != "energising" {
		t.Fatalf("after the stall: %+v", s)
	}
}
