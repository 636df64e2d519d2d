package payloop

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"satwatt/internal/buypolicy"
	"satwatt/internal/carpay"
	"satwatt/internal/clock"
	"satwatt/internal/invoicecheck"
	"satwatt/internal/invoicecheck/invoicetest"
	"satwatt/internal/lndclient"
	"satwatt/internal/offer"
	"satwatt/internal/vehiclestate"
	"satwatt/vehiclegw/internal/status"
)

// These are unit tests of the loop's logic: the wall, the node, the ledger
// and the bus are stand-ins, but the invoices are real signed BOLT 11 and
// the car's checks (carpay, invoicecheck) are the real ones. The regtest
// test in vehiclegw drives the loop against a real wallctl and real lnd.

var t0 = time.Date(2026, 12, 2, 14, 0, 0, 0, time.UTC)

var wallKey = invoicetest.Key("wall")

// fakeCar is the vehicle bus: what a test sets is what the loop reads.
type fakeCar struct {
	mu  sync.Mutex
	st  vehiclestate.State
	soc float64
}

func newFakeCar(soc float64) *fakeCar {
	pack := int64(75_000)
	c := &fakeCar{soc: soc}
	c.st = vehiclestate.State{Cable: vehiclestate.Disconnected, PackEnergyWh: &pack}
	return c
}

func (c *fakeCar) Snapshot(time.Time) vehiclestate.State {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.st
	soc := c.soc
	st.SOCPct = &soc
	return st
}

func (c *fakeCar) set(fn func(st *vehiclestate.State, soc *float64)) {
	c.mu.Lock()
	fn(&c.st, &c.soc)
	c.mu.Unlock()
}

// wallMode is how a stand-in wall behaves.
type wallMode int

const (
	honest wallMode = iota
	wrongAmount
	wrongHash
	wrongPayee
)

// fakeWall serves one session on fixed terms and signs invoices as told.
type fakeWall struct {
	mu       sync.Mutex
	mode     wallMode
	terms    offer.Offer
	metadata string
	updates  chan WallStatus
	issued   int
	socs     []int64 // the state of charge sent with each invoice request
}

func newFakeWall(t *testing.T, price int64) *fakeWall {
	t.Helper()
	o := offer.Offer{SessionID: "sess-1", PriceMsatPerWh: price, IncrementWh: 50, FirstMultiple: 2, GraceWh: 10,
		MaxPowerW: 7_000, WallNodeKey: invoicetest.PubHex(wallKey), ValidUntil: t0.Add(time.Hour), Network: "regtest"}
	md, err := offer.Metadata(o, "test session")
	if err != nil {
		t.Fatal(err)
	}
	return &fakeWall{terms: o, metadata: md, updates: make(chan WallStatus, 1)}
}

func (w *fakeWall) Offer(context.Context) (Offer, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return Offer{Terms: w.terms, Metadata: w.metadata}, nil
}

// reprice makes the wall's offer read another price from now on.
func (w *fakeWall) reprice(t *testing.T, price int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.terms.PriceMsatPerWh = price
	md, err := offer.Metadata(w.terms, "test session")
	if err != nil {
		t.Fatal(err)
	}
	w.metadata = md
}

func (w *fakeWall) Invoice(_ context.Context, amt, soc int64) (string, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.issued++
	w.socs = append(w.socs, soc)
	h := offer.DescriptionHash(w.metadata)
	signer := wallKey
	switch w.mode {
	case wrongAmount:
		amt += 1_000
	case wrongHash:
		h = sha256.Sum256([]byte("another offer"))
	case wrongPayee:
		signer = invoicetest.Key("mallory")
	}
	var hash [32]byte
	binary.BigEndian.PutUint64(hash[:], uint64(w.issued))
	return invoicetest.Sign(invoicetest.Spec{Signer: signer, AmountMsat: amt, DescHash: &h, Hash: hash, Created: t0, Expiry: 10 * time.Minute})
}

func (w *fakeWall) Follow(context.Context) <-chan WallStatus { return w.updates }

func (w *fakeWall) URL() string { return "http://[fe80::1%plc0]:15118/" }

// report replaces any unread report with the newest, as wallclient does.
func (w *fakeWall) report(st WallStatus) {
	select {
	case <-w.updates:
	default:
	}
	w.updates <- st
}

// fakeNode is the owner's lnd: it "pays" what carpay lets through.
type fakeNode struct {
	mu        sync.Mutex
	paid      []int64
	spendable int64
	down      bool
	asked     int
	tracks    int                                  // Track calls while down
	stall     bool                                 // Pay leaves payments in flight
	inflight  map[[32]byte]int64                   // stalled payments
	tracked   map[[32]byte]lndclient.PaymentStatus // how Track says they ended
	done      chan struct{}                        // closed by finish
	timeouts  []time.Duration                      // each Pay's timeout
}

func (n *fakeNode) Pay(_ context.Context, bolt11 string, opts lndclient.PayOptions) (lndclient.PaymentResult, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.timeouts = append(n.timeouts, opts.Timeout)
	if opts.AmountMsat > n.spendable {
		return lndclient.PaymentResult{Status: lndclient.Failed, FailureReason: lndclient.ReasonInsufficientBalance}, nil
	}
	if n.stall {
		inv, err := invoicecheck.Decode(bolt11, "regtest")
		if err != nil {
			return lndclient.PaymentResult{}, err
		}
		if n.inflight == nil {
			n.inflight = map[[32]byte]int64{}
		}
		n.inflight[inv.PaymentHash] = opts.AmountMsat
		return lndclient.PaymentResult{Status: lndclient.InFlight, PaymentHash: inv.PaymentHash}, nil
	}
	n.paid = append(n.paid, opts.AmountMsat)
	n.spendable -= opts.AmountMsat
	return lndclient.PaymentResult{Status: lndclient.Succeeded, AmountMsat: opts.AmountMsat}, nil
}

// Track waits, as lnd's TrackPaymentV2 does, until the payment ends
// (finish) or ctx does.
func (n *fakeNode) Track(ctx context.Context, hash [32]byte) (lndclient.PaymentResult, error) {
	n.mu.Lock()
	if n.down {
		n.tracks++
		n.mu.Unlock()
		return lndclient.PaymentResult{}, fmt.Errorf("Track: %w", lndclient.ErrUnreachable)
	}
	if n.done == nil {
		n.done = make(chan struct{})
	}
	done, final := n.done, n.tracked != nil
	n.mu.Unlock()
	if !final {
		select {
		case <-done:
		case <-ctx.Done():
			return lndclient.PaymentResult{PaymentHash: hash, Status: lndclient.InFlight}, nil
		}
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	amt, ok := n.inflight[hash]
	if !ok {
		return lndclient.PaymentResult{}, lndclient.ErrPaymentNotFound
	}
	st := n.tracked[hash]
	res := lndclient.PaymentResult{PaymentHash: hash, Status: st}
	if st == lndclient.Succeeded {
		res.AmountMsat = amt
	}
	return res, nil
}

// finish makes every stalled payment end with st.
func (n *fakeNode) finish(st lndclient.PaymentStatus) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.tracked == nil {
		n.tracked = map[[32]byte]lndclient.PaymentStatus{}
	}
	if n.done == nil {
		n.done = make(chan struct{})
	}
	defer close(n.done)
	for h, amt := range n.inflight {
		n.tracked[h] = st
		if st == lndclient.Succeeded {
			n.paid = append(n.paid, amt)
		}
	}
}

func (n *fakeNode) SpendableMsat(context.Context) (int64, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.asked++
	if n.down {
		return 0, fmt.Errorf("lnd: connection refused")
	}
	return n.spendable, nil
}

func (n *fakeNode) setDown(down bool) {
	n.mu.Lock()
	n.down, n.asked = down, 0
	n.mu.Unlock()
}

func (n *fakeNode) payments() []int64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]int64(nil), n.paid...)
}

func (n *fakeNode) setSpendable(v int64) {
	n.mu.Lock()
	n.spendable = v
	n.mu.Unlock()
}

// memLedger keeps the ledger in memory.
type memLedger struct {
	mu        sync.Mutex
	sessions  []LedgerSession
	invoices  int
	payments  []lndclient.PaymentResult
	paidAt    []time.Time
	refusals  []string
	ended     []string
	meters    []meterSample
	paidTotal int64
	daysAsked []time.Time // PaidSince's argument, each call
}

type meterSample struct {
	at              time.Time
	wallMWh, carMWh int64
}

func (m *memLedger) OpenSession(_ context.Context, s LedgerSession) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sessions = append(m.sessions, s)
	return nil
}

func (m *memLedger) AddInvoice(context.Context, string, [32]byte, int64, string, time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.invoices++
	return nil
}

func (m *memLedger) RecordPayment(_ context.Context, _ string, r lndclient.PaymentResult, at time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.payments = append(m.payments, r)
	m.paidAt = append(m.paidAt, at)
	if r.Status == lndclient.Succeeded {
		m.paidTotal += r.AmountMsat
	}
	return nil
}

func (m *memLedger) RecordRefusal(_ context.Context, _, _, reason, _ string, _ time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.refusals = append(m.refusals, reason)
	return nil
}

func (m *memLedger) RecordMeter(_ context.Context, _ string, at time.Time, wallMWh, carMWh int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.meters = append(m.meters, meterSample{at, wallMWh, carMWh})
	return nil
}

func (m *memLedger) EndSession(_ context.Context, id string, _ time.Time, reason string, _, _, _ int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.ended = append(m.ended, id+":"+reason)
	return nil
}

func (m *memLedger) PaidSince(_ context.Context, t time.Time) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.daysAsked = append(m.daysAsked, t)
	return m.paidTotal, nil
}

// shown records what the vehicle bus would show.
type shown struct {
	mu  sync.Mutex
	all []status.Status
}

func (s *shown) Set(st status.Status) {
	s.mu.Lock()
	s.all = append(s.all, st)
	s.mu.Unlock()
}

func (s *shown) last() status.Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.all) == 0 {
		return status.Status{}
	}
	return s.all[len(s.all)-1]
}

func (s *shown) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.all)
}

// errorsSince lists the errors shown from the first time code was shown.
func (s *shown) errorsSince(code status.Code) []status.Code {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []status.Code
	for _, st := range s.all {
		if st.Error == code || len(out) > 0 {
			out = append(out, st.Error)
		}
	}
	return out
}

func (s *shown) ever(code status.Code) bool {
	return s.any(func(st status.Status) bool { return st.Error == code })
}

func (s *shown) any(match func(status.Status) bool) bool {
	return slices.ContainsFunc(s.list(), match)
}

func (s *shown) list() []status.Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.all)
}

type rig struct {
	t      *testing.T
	clk    *clock.Manual
	car    *fakeCar
	wall   *fakeWall
	node   *fakeNode
	ledger *memLedger
	shown  *shown
	done   chan error
	cancel context.CancelFunc
}

var settings = buypolicy.Settings{TargetSoCPermille: 800, MaxPriceMsatPerWh: 200, MaxPaymentMsat: 100_000, LeadTime: 20 * time.Second}

func newRig(t *testing.T, price int64, mode wallMode) *rig {
	t.Helper()
	return startRig(t, price, mode, nil)
}

// startRig starts a loop on stand-ins; tune, if not nil, may change its
// configuration and the vehicle it reads before it starts.
func startRig(t *testing.T, price int64, mode wallMode, tune func(r *rig, cfg *Config, v *Vehicle)) *rig {
	t.Helper()
	r := &rig{t: t, clk: clock.NewManual(t0), car: newFakeCar(50), wall: newFakeWall(t, price),
		node: &fakeNode{spendable: 1_000_000}, ledger: &memLedger{}, shown: &shown{}, done: make(chan error, 1)}
	r.wall.mode = mode
	payer := &carpay.Payer{Node: r.node, Network: "regtest", Timeout: time.Minute, Clock: r.clk}
	cfg := Config{Policy: settings, Network: "regtest", Clock: r.clk}
	var v Vehicle = r.car
	if tune != nil {
		tune(r, &cfg, &v)
	}
	l, err := New(cfg, v, func(context.Context) (Wall, error) { return r.wall, nil }, payer, r.node, r.ledger, r.shown)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() { r.done <- l.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(5 * time.Second):
			t.Error("the loop did not stop within 5 s of its context ending")
		}
	})
	return r
}

// until advances the manual clock a tick at a time until cond holds,
// giving the loop's goroutine the chance to act after each tick.
func (r *rig) until(what string, cond func() bool) {
	r.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			r.t.Fatalf("%s: not reached; shown %+v, paid %v, refusals %v", what, r.shown.last(), r.node.payments(), r.ledger.refusals)
		}
		if r.clk.Waiters() > 0 {
			r.clk.Advance(time.Second)
		}
		time.Sleep(time.Millisecond)
	}
}

func (r *rig) plug() {
	r.car.set(func(st *vehiclestate.State, _ *float64) { st.Cable = vehiclestate.Latched })
}

// deliver has the wall report delivered energy and the car measure it.
func (r *rig) deliver(wallMWh, carMWh int64) {
	r.car.set(func(st *vehiclestate.State, _ *float64) { st.ChargedEnergyMWh = carMWh })
	r.wall.report(WallStatus{Session: &WallSession{ID: "sess-1", PriceMsatPerWh: r.wall.terms.PriceMsatPerWh,
		DeliveredMWh: wallMWh, PowerW: 7_000}})
}

func paidCount(n int) func(r *rig) func() bool {
	return func(r *rig) func() bool { return func() bool { return len(r.node.payments()) >= n } }
}

func TestHappyPathPaysAsEnergyFlows(t *testing.T) {
	r := newRig(t, 100, honest)
	r.plug()
	r.until("first payment", paidCount(1)(r))
	if got := r.node.payments()[0]; got != 10_000 {
		t.Fatalf("first payment %d msat, want 2 x 50 Wh x 100 msat/Wh = 10000", got)
	}
	// 100 Wh paid; at 7 kW the next is due when 38.9 Wh of credit is left.
	r.deliver(50_000, 48_000)
	r.until("waits with credit ahead", func() bool { return r.shown.last().State == status.Charging })
	if n := len(r.node.payments()); n != 1 {
		t.Fatalf("paid %d times with 50 Wh of credit left", n)
	}
	r.deliver(70_000, 66_000)
	r.until("second payment", paidCount(2)(r))
	if got := r.node.payments()[1]; got != 5_000 {
		t.Errorf("second payment %d msat, want one increment = 5000", got)
	}
	// Target reached: nothing more.
	r.car.set(func(_ *vehiclestate.State, soc *float64) { *soc = 80 })
	r.deliver(140_000, 130_000)
	r.until("complete", func() bool { return r.shown.last().State == status.Complete })
	if n := len(r.node.payments()); n != 2 {
		t.Errorf("paid %d times, want 2", n)
	}
	r.car.set(func(st *vehiclestate.State, _ *float64) { st.Cable = vehiclestate.Disconnected })
	r.until("session ended at unplug", func() bool {
		r.ledger.mu.Lock()
		defer r.ledger.mu.Unlock()
		return len(r.ledger.ended) == 1 && r.ledger.ended[0] == "sess-1:"+EndUnplugged
	})
	if r.ledger.invoices != 2 || len(r.ledger.payments) != 2 {
		t.Errorf("ledger: %d invoices, %d payments", r.ledger.invoices, len(r.ledger.payments))
	}
	// The wall is recorded where it was found, also when SDP found it.
	if got := r.ledger.sessions[0].WallURL; got != "http://[fe80::1%plc0]:15118/" {
		t.Errorf("ledger: wall URL %q, want the wall's own", got)
	}
}

// A bus that wakes at plug-in sends its slow messages late: the loop waits
// for the pack energy instead of refusing the offer at once.
func TestWaitsForPackEnergyAtPlugIn(t *testing.T) {
	r := newRig(t, 100, honest)
	r.car.set(func(st *vehiclestate.State, _ *float64) { st.PackEnergyWh = nil })
	r.plug()
	r.until("negotiating", func() bool { return r.shown.last().State == status.Negotiating })
	pack := int64(75_000)
	r.car.set(func(st *vehiclestate.State, _ *float64) { st.PackEnergyWh = &pack })
	r.until("first payment", paidCount(1)(r))
	r.ledger.mu.Lock()
	defer r.ledger.mu.Unlock()
	if len(r.ledger.refusals) != 0 {
		t.Errorf("refusals %v; the pack energy came within the wait", r.ledger.refusals)
	}
}

// notifyingCar is a fakeCar that says when it changed.
type notifyingCar struct {
	*fakeCar
	ch chan struct{}
}

func (c *notifyingCar) Changed() <-chan struct{} { return c.ch }

// A vehicle that reports changes is seen plugged in at once, not at the
// loop's next tick: the manual clock never moves here.
func TestPlugSeenWithoutWaitingForATick(t *testing.T) {
	var car *notifyingCar
	r := startRig(t, 100, honest, func(r *rig, cfg *Config, v *Vehicle) {
		cfg.Tick = time.Hour
		car = &notifyingCar{fakeCar: r.car, ch: make(chan struct{}, 1)}
		*v = car
	})
	deadline := time.Now().Add(10 * time.Second)
	for r.clk.Waiters() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the loop never waited for the cable")
		}
		time.Sleep(time.Millisecond)
	}
	r.plug()
	car.ch <- struct{}{}
	for r.shown.last().State == status.Idle {
		if time.Now().After(deadline) {
			t.Fatalf("still %v after the plug-in was notified; the loop waited for its tick", r.shown.last().State)
		}
		time.Sleep(time.Millisecond)
	}
}

// The state of charge goes to the wall only when the owner allows it.
func TestSoCSharedOnlyWhenAllowed(t *testing.T) {
	for _, share := range []bool{false, true} {
		r := startRig(t, 100, honest, func(_ *rig, cfg *Config, _ *Vehicle) { cfg.ShareSoC = share })
		r.plug()
		r.until("first payment", paidCount(1)(r))
		r.wall.mu.Lock()
		socs := append([]int64(nil), r.wall.socs...)
		r.wall.mu.Unlock()
		want := int64(-1)
		if share {
			want = 500 // the rig's car starts at 50 %
		}
		if len(socs) == 0 || socs[0] != want {
			t.Errorf("share %v: state of charge sent %v, want %d", share, socs, want)
		}
	}
}

// A hostile or dishonest wall gets nothing beyond what was already paid,
// and the vehicle shows why.
func TestRefusals(t *testing.T) {
	cases := []struct {
		name     string
		price    int64
		mode     wallMode
		drive    func(r *rig)
		wantCode status.Code
		wantPaid int
	}{
		{"price above the owner's limit", 250, honest, nil, status.PriceAboveLimit, 0},
		{"invoice for another amount", 100, wrongAmount, nil, status.InvoiceRejected, 0},
		{"invoice for another offer's hash", 100, wrongHash, nil, status.InvoiceRejected, 0},
		{"invoice from another node", 100, wrongPayee, nil, status.InvoiceRejected, 0},
		{"price changed mid-session", 100, honest, func(r *rig) {
			r.until("first payment", paidCount(1)(r))
			r.wall.report(WallStatus{Session: &WallSession{ID: "sess-1", PriceMsatPerWh: 120, DeliveredMWh: 70_000, PowerW: 7_000}})
			r.car.set(func(st *vehiclestate.State, _ *float64) { st.ChargedEnergyMWh = 66_000 })
		}, status.WallError, 1},
		{"offer repriced mid-session", 100, honest, func(r *rig) {
			r.until("first payment", paidCount(1)(r))
			r.wall.reprice(r.t, 120)
			r.deliver(70_000, 66_000) // the next payment falls due
		}, status.WallError, 1},
		{"wall meter ahead of the car's", 100, honest, func(r *rig) {
			r.until("first payment", paidCount(1)(r))
			r.deliver(70_000, 30_000) // 70 Wh claimed, 30 Wh measured
		}, status.MeterMismatch, 1},
		{"another session's report", 100, honest, func(r *rig) {
			r.until("first payment", paidCount(1)(r))
			r.wall.report(WallStatus{Session: &WallSession{ID: "sess-2", PriceMsatPerWh: 100, DeliveredMWh: 70_000, PowerW: 7_000}})
		}, status.WallError, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, tc.price, tc.mode)
			r.plug()
			if tc.drive != nil {
				tc.drive(r)
			}
			r.until(fmt.Sprintf("code %s shown", tc.wantCode), func() bool { return r.shown.last().Error == tc.wantCode })
			// However long it goes on, nothing more is paid.
			for range 30 {
				r.clk.Advance(time.Second)
				time.Sleep(time.Millisecond)
			}
			if got := len(r.node.payments()); got != tc.wantPaid {
				t.Errorf("the node paid %d times (%v), want %d", got, r.node.payments(), tc.wantPaid)
			}
		})
	}
}

// A low balance shows before a payment fails, and the car resumes by
// itself once the node has enough again.
func TestLowBalanceShowsAndResumes(t *testing.T) {
	r := newRig(t, 100, honest)
	r.node.setSpendable(12_000) // the first payment, but not the next two
	r.plug()
	r.until("first payment", paidCount(1)(r))
	// The first status that counts the payment shows the balance less it.
	if i := slices.IndexFunc(r.shown.list(), func(st status.Status) bool { return st.SatsSpent == 10 }); i < 0 || r.shown.list()[i].BalanceSat != 2 {
		t.Errorf("statuses %+v: want the first with 10 sat spent to show a balance of 2 sat", r.shown.list())
	}
	r.until("low balance shown early", func() bool { return r.shown.ever(status.LowBalance) })
	r.deliver(70_000, 66_000)
	r.until("waiting for money", func() bool { return r.shown.last().Error == status.LowBalance })
	if n := len(r.node.payments()); n != 1 {
		t.Fatalf("paid %d times on 2,000 msat", n)
	}
	// Once shown, the warning stays until the money comes: a display on
	// the bus must not flicker between NONE and LOW_BALANCE.
	n := r.shown.count()
	r.until("a few more steps", func() bool { return r.shown.count() >= n+4 })
	if got := r.shown.errorsSince(status.LowBalance); slices.Contains(got, status.NoError) {
		t.Errorf("errors shown after the first LOW_BALANCE: %v", got)
	}
	r.node.setSpendable(1_000_000)
	r.until("resumed", paidCount(2)(r))
}

// An unreachable node is reported and asked again with a growing backoff,
// and the car resumes by itself when it answers.
func TestNodeUnreachableBacksOffAndResumes(t *testing.T) {
	r := newRig(t, 100, honest)
	r.plug()
	r.until("first payment", paidCount(1)(r))
	r.node.setDown(true)
	r.deliver(70_000, 66_000)
	r.until("node unreachable shown", func() bool { return r.shown.last().Error == status.NodeUnreachable })
	for range 120 { // two minutes of the loop's time
		r.clk.Advance(time.Second)
		time.Sleep(time.Millisecond)
	}
	r.node.mu.Lock()
	asked := r.node.asked
	r.node.mu.Unlock()
	// 1+2+4+8+16+30+30+30 s: about 8 tries in two minutes, not 120.
	if asked > 12 {
		t.Errorf("asked the unreachable node %d times in two minutes", asked)
	}
	if n := len(r.node.payments()); n != 1 {
		t.Fatalf("paid %d times while the node was unreachable", n)
	}
	r.node.setDown(false)
	r.until("resumed", paidCount(2)(r))
}

// A payment left in flight is not paid again; at unplug it is followed to
// its end and recorded as it really ended.
// The node goes away while a payment is in flight: the car shows
// NODE_UNREACHABLE, asks with a growing backoff, and records the payment
// as it ended once the node answers.
func TestNodeUnreachableWithPaymentInFlight(t *testing.T) {
	r := newRig(t, 100, honest)
	r.node.mu.Lock()
	r.node.stall = true
	r.node.mu.Unlock()
	r.plug()
	r.until("the payment is in flight", func() bool {
		r.ledger.mu.Lock()
		defer r.ledger.mu.Unlock()
		return len(r.ledger.payments) == 1 && r.ledger.payments[0].Status == lndclient.InFlight
	})
	r.node.setDown(true)
	r.until("node unreachable shown", func() bool { return r.shown.last().Error == status.NodeUnreachable })
	for range 120 { // two minutes of the loop's time
		r.clk.Advance(time.Second)
		time.Sleep(time.Millisecond)
	}
	r.node.mu.Lock()
	tracks := r.node.tracks
	r.node.mu.Unlock()
	// 1+2+4+8+16+30+30+30 s: about 8 tries in two minutes, not 120.
	if tracks > 12 {
		t.Errorf("asked the unreachable node about the payment %d times in two minutes", tracks)
	}
	r.node.setDown(false)
	r.node.finish(lndclient.Succeeded)
	r.until("recorded as it ended", func() bool {
		r.ledger.mu.Lock()
		defer r.ledger.mu.Unlock()
		n := len(r.ledger.payments)
		return n >= 2 && r.ledger.payments[n-1].Status == lndclient.Succeeded
	})
	r.until("the warning goes", func() bool { return r.shown.last().Error != status.NodeUnreachable })
	// And the car buys on: a payment that ended while the balance was
	// unknown must not leave an impossible balance behind.
	r.deliver(70_000, 66_000)
	r.until("the next payment", func() bool {
		r.ledger.mu.Lock()
		defer r.ledger.mu.Unlock()
		return r.ledger.invoices == 2
	})
}

func TestPaymentInFlightAtUnplugIsFollowed(t *testing.T) {
	r := newRig(t, 100, honest)
	r.node.mu.Lock()
	r.node.stall = true
	r.node.mu.Unlock()
	r.plug()
	r.until("the payment is in flight", func() bool {
		r.ledger.mu.Lock()
		defer r.ledger.mu.Unlock()
		return len(r.ledger.payments) == 1 && r.ledger.payments[0].Status == lndclient.InFlight
	})
	for range 20 {
		r.clk.Advance(time.Second)
		time.Sleep(time.Millisecond)
	}
	if r.ledger.invoices != 1 {
		t.Fatalf("asked for %d invoices with a payment in flight, want 1", r.ledger.invoices)
	}
	r.car.set(func(st *vehiclestate.State, _ *float64) { st.Cable = vehiclestate.Disconnected })
	r.node.finish(lndclient.Succeeded)
	r.until("recorded as it ended", func() bool {
		r.ledger.mu.Lock()
		defer r.ledger.mu.Unlock()
		n := len(r.ledger.payments)
		return n >= 2 && r.ledger.payments[n-1].Status == lndclient.Succeeded && len(r.ledger.ended) == 1
	})
	if got := r.ledger.paidTotal; got != 10_000 {
		t.Errorf("ledger paid %d msat, want the 10000 that went through", got)
	}
}
