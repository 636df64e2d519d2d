package metering

import (
	"errors"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 25, 2, 0, 0, 0, time.UTC)

// terms: 100 msat/Wh (100 sat/kWh), 50 Wh increments, first payment 2
// increments (10,000 msat), 10 Wh grace (1,000 msat), 5 min unpaid timeout.
var terms = Terms{PriceMsatPerWh: 100, IncrementWh: 50, FirstMultiple: 2, GraceWh: 10, UnpaidTimeout: 5 * time.Minute}

type step struct {
	at      time.Duration // since t0
	pay     int64         // msat; 0 = none
	meter   int64         // mWh cumulative; -1 = none
	end     EndReason
	tick    bool
	want    State
	enable  bool
	late    bool
	wantErr error
}

func TestSessionTransitions(t *testing.T) {
	m := func(at time.Duration, mwh int64, want State, enable bool) step {
		return step{at: at, meter: mwh, want: want, enable: enable}
	}
	p := func(at time.Duration, msat int64, want State, enable bool) step {
		return step{at: at, pay: msat, meter: -1, want: want, enable: enable}
	}
	tick := func(at time.Duration, want State) step {
		return step{at: at, tick: true, meter: -1, want: want, enable: want == Energising}
	}
	end := func(at time.Duration, r EndReason) step {
		return step{at: at, end: r, meter: -1, want: Ended}
	}
	cases := []struct {
		name       string
		steps      []step
		wantReason EndReason
		wantPaid   int64
		wantCredit int64
	}{
		{
			name:       "first payment energises, unplug ends",
			steps:      []step{p(time.Second, 10_000, Energising, true), m(2*time.Second, 50_000, Energising, true), end(3*time.Second, Unplugged)},
			wantReason: Unplugged, wantPaid: 10_000, wantCredit: 5_000,
		},
		{
			name:       "a first payment below the first multiple does not energise",
			steps:      []step{p(time.Second, 5_000, AwaitingPayment, false), p(2*time.Second, 5_000, Energising, true)},
			wantReason: NotEnded, wantPaid: 10_000, wantCredit: 10_000,
		},
		{
			name: "grace: energising until delivered passes paid by the grace, then suspended at once",
			steps: []step{
				p(0, 10_000, Energising, true),
				m(time.Second, 100_000, Energising, true),   // exactly paid: credit 0
				m(2*time.Second, 109_999, Energising, true), // credit -999.9 msat -> -999: within grace
				m(3*time.Second, 110_000, Suspended, false), // credit -1,000 = -grace
			},
			wantReason: NotEnded, wantPaid: 10_000, wantCredit: -1_000,
		},
		{
			name: "suspended resumes only with credit ahead",
			steps: []step{
				p(0, 10_000, Energising, true),
				m(time.Second, 110_000, Suspended, false),
				p(2*time.Second, 1_000, Suspended, false), // credit 0: still suspended
				p(3*time.Second, 5_000, Energising, true),
			},
			wantReason: NotEnded, wantPaid: 16_000, wantCredit: 5_000,
		},
		{
			name: "overpayment is credited in full",
			steps: []step{
				p(0, 12_345, Energising, true),
				m(time.Second, 120_000, Energising, true),
			},
			wantReason: NotEnded, wantPaid: 12_345, wantCredit: 345,
		},
		{
			name:       "no payment: unpaid timeout ends the session",
			steps:      []step{tick(4*time.Minute, AwaitingPayment), tick(5*time.Minute, Ended)},
			wantReason: UnpaidTimeout,
		},
		{
			name: "suspended too long: unpaid timeout counts from the suspension",
			steps: []step{
				p(0, 10_000, Energising, true),
				m(10*time.Minute, 110_000, Suspended, false),
				tick(14*time.Minute, Suspended),
				tick(15*time.Minute, Ended),
			},
			wantReason: UnpaidTimeout, wantPaid: 10_000, wantCredit: -1_000,
		},
		{
			name: "late payment after the end is recorded, powers nothing",
			steps: []step{
				p(0, 10_000, Energising, true),
				end(time.Second, Unplugged),
				{at: 2 * time.Second, pay: 5_000, meter: -1, want: Ended, late: true},
			},
			wantReason: Unplugged, wantPaid: 15_000, wantCredit: 15_000,
		},
		{
			name: "unplug with credit left keeps the credit on record",
			steps: []step{
				p(0, 10_000, Energising, true),
				m(time.Second, 30_000, Energising, true),
				end(2*time.Second, Unplugged),
			},
			wantReason: Unplugged, wantPaid: 10_000, wantCredit: 7_000,
		},
		{
			name:       "buyer stopped",
			steps:      []step{p(0, 10_000, Energising, true), end(time.Second, BuyerStopped), end(2*time.Second, Unplugged)},
			wantReason: BuyerStopped, wantPaid: 10_000, wantCredit: 10_000,
		},
		{
			name:       "charger fault while awaiting payment",
			steps:      []step{end(time.Second, ChargerFault)},
			wantReason: ChargerFault,
		},
		{
			name:       "wall shutdown while suspended",
			steps:      []step{p(0, 10_000, Energising, true), m(time.Second, 200_000, Suspended, false), end(2*time.Second, WallShutdown)},
			wantReason: WallShutdown, wantPaid: 10_000, wantCredit: -10_000,
		},
		{
			name: "meter going backwards is refused and changes nothing",
			steps: []step{
				p(0, 10_000, Energising, true),
				m(time.Second, 50_000, Energising, true),
				{at: 2 * time.Second, meter: 40_000, want: Energising, enable: true, wantErr: ErrMeterBackwards},
			},
			wantPaid: 10_000, wantCredit: 5_000,
		},
		{
			name: "energy after the end is not billed",
			steps: []step{
				p(0, 10_000, Energising, true),
				m(time.Second, 50_000, Energising, true),
				end(2*time.Second, Unplugged),
				m(3*time.Second, 60_000, Ended, false),
			},
			wantReason: Unplugged, wantPaid: 10_000, wantCredit: 5_000,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, err := New("s1", terms, t0)
			if err != nil {
				t.Fatal(err)
			}
			if s.State() != AwaitingPayment {
				t.Fatalf("new session in %s", s.State())
			}
			for i, st := range tc.steps {
				now := t0.Add(st.at)
				var d Decision
				var err error
				switch {
				case st.pay != 0:
					d, err = s.Pay(st.pay, now)
				case st.meter >= 0:
					d, err = s.Meter(st.meter, now)
				case st.end != NotEnded:
					d = s.End(st.end, now)
				default:
					d = s.Tick(now)
				}
				if !errors.Is(err, st.wantErr) {
					t.Fatalf("step %d: err %v, want %v", i, err, st.wantErr)
				}
				if d.State != st.want || d.Enable != st.enable || d.Late != st.late {
					t.Fatalf("step %d: got state %s enable %v late %v, want %s %v %v", i, d.State, d.Enable, d.Late, st.want, st.enable, st.late)
				}
			}
			snap := s.Snapshot()
			if snap.EndReason != tc.wantReason || snap.PaidMsat != tc.wantPaid || snap.CreditMsat != tc.wantCredit {
				t.Errorf("end: reason %s paid %d credit %d, want %s %d %d", snap.EndReason, snap.PaidMsat, snap.CreditMsat, tc.wantReason, tc.wantPaid, tc.wantCredit)
			}
			if snap.PaidMsat-snap.CostMsat != snap.CreditMsat {
				t.Errorf("credit %d is not paid %d minus cost %d", snap.CreditMsat, snap.PaidMsat, snap.CostMsat)
			}
		})
	}
}

func TestDecisionChanged(t *testing.T) {
	s, _ := New("s", terms, t0)
	d, _ := s.Pay(10_000, t0)
	if !d.Changed {
		t.Error("first payment: want Changed")
	}
	d, _ = s.Meter(1_000, t0)
	if d.Changed {
		t.Error("meter within credit: want no change")
	}
	if d = s.End(Unplugged, t0); !d.Changed {
		t.Error("end: want Changed")
	}
	if d = s.End(WallShutdown, t0); d.Changed || s.Snapshot().EndReason != Unplugged {
		t.Errorf("second end: changed %v reason %s", d.Changed, s.Snapshot().EndReason)
	}
}

func TestFirstEnergyAtAndLatePaid(t *testing.T) {
	s, _ := New("s", terms, t0)
	s.Pay(10_000, t0.Add(3*time.Second))
	s.End(Unplugged, t0.Add(time.Minute))
	s.Pay(2_000, t0.Add(2*time.Minute))
	snap := s.Snapshot()
	if got := snap.FirstEnergyAt.Sub(snap.StartedAt); got != 3*time.Second {
		t.Errorf("time to energy %s, want 3s", got)
	}
	if snap.LatePaidMsat != 2_000 || snap.Payments != 2 || !snap.EndedAt.Equal(t0.Add(time.Minute)) {
		t.Errorf("late %d payments %d ended %s", snap.LatePaidMsat, snap.Payments, snap.EndedAt)
	}
}

func TestRestore(t *testing.T) {
	cases := []struct {
		name      string
		paid      int64
		delivered int64
		want      State
	}{
		{"nothing paid", 0, 0, AwaitingPayment},
		{"paid ahead", 20_000, 100_000, Energising},
		{"beyond the grace", 10_000, 150_000, Suspended},
		{"partly paid first payment", 5_000, 0, AwaitingPayment},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Restore("s", terms, t0, tc.paid, 1, tc.delivered, t0.Add(time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			if s.State() != tc.want {
				t.Errorf("state %s, want %s", s.State(), tc.want)
			}
			// The unpaid timer restarts at the restore, not at plug-in.
			if s.Tick(t0.Add(time.Hour+time.Minute)).State == Ended {
				t.Error("restored session ended by a timer that ran while the wall was down")
			}
		})
	}
	if _, err := Restore("s", terms, t0, -1, 0, 0, t0); err == nil {
		t.Error("negative paid: want error")
	}
}

func TestTermsValidate(t *testing.T) {
	cases := []struct {
		name string
		mod  func(*Terms)
	}{
		{"zero price", func(t *Terms) { t.PriceMsatPerWh = 0 }},
		{"zero increment", func(t *Terms) { t.IncrementWh = 0 }},
		{"zero multiple", func(t *Terms) { t.FirstMultiple = 0 }},
		{"negative grace", func(t *Terms) { t.GraceWh = -1 }},
		{"negative timeout", func(t *Terms) { t.UnpaidTimeout = -time.Second }},
		{"absurd price", func(t *Terms) { t.PriceMsatPerWh = 1 << 40 }},
		// The owner's settings over the API once took these, and every
		// plug-in after failed to open a session.
		{"increment beyond a session", func(t *Terms) { t.IncrementWh = 1 << 62 }},
		{"first payment beyond a session", func(t *Terms) { t.IncrementWh = 1_000_000; t.FirstMultiple = 1_001 }},
		{"grace beyond a session", func(t *Terms) { t.GraceWh = 1 << 62 }},
	}
	for _, tc := range cases {
		tm := terms
		tc.mod(&tm)
		if _, err := New("s", tm, t0); err == nil {
			t.Errorf("%s: want error", tc.name)
		}
	}
	if _, err := New("", terms, t0); err == nil {
		t.Error("empty id: want error")
	}
	s, _ := New("s", terms, t0)
	if _, err := s.Pay(0, t0); err == nil {
		t.Error("zero payment: want error")
	}
}

func TestStringsRoundTrip(t *testing.T) {
	for r := Unplugged; r <= WallShutdown; r++ {
		got, err := ParseEndReason(r.String())
		if err != nil || got != r {
			t.Errorf("%s: got %v %v", r, got, err)
		}
	}
	if _, err := ParseEndReason("bogus"); err == nil {
		t.Error("bogus reason: want error")
	}
	if Energising.String() != "energising" || State(9).String() != "State(9)" {
		t.Error("state names")
	}
}

// The look-ahead suspends one reading early when the next reading would
// pass the grace, and only then.
func TestMeterAhead(t *testing.T) {
	// Paid 10,000 msat = 100 Wh; grace 10 Wh: the limit is 110,000 mWh.
	cases := []struct {
		name             string
		delivered, ahead int64
		want             State
	}{
		{"far from the limit", 50_000, 2_000, Energising},
		{"next reading lands exactly on the limit", 108_000, 2_000, Energising},
		{"next reading would pass the limit", 108_001, 2_000, Suspended},
		{"no look-ahead: suspended only at the limit", 108_001, 0, Energising},
		{"at the limit without look-ahead", 110_000, 0, Suspended},
		{"negative look-ahead counts as none", 108_001, -5, Energising},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := New("s", terms, t0)
			s.Pay(10_000, t0)
			d, err := s.MeterAhead(tc.delivered, tc.ahead, t0.Add(time.Minute))
			if err != nil || d.State != tc.want || d.Enable != (tc.want == Energising) {
				t.Errorf("state %s enable %v err %v, want %s", d.State, d.Enable, err, tc.want)
			}
		})
	}
	// Suspended by the look-ahead, a payment resumes only when the next
	// reading would stay within the grace.
	s, _ := New("s", terms, t0)
	s.Pay(10_000, t0)
	s.MeterAhead(108_001, 2_000, t0)
	if d, _ := s.Pay(1, t0); d.State != Suspended {
		t.Errorf("1 msat more resumed into a certain overrun: %s", d.State)
	}
	if d, _ := s.Pay(5_000, t0); d.State != Energising {
		t.Errorf("50 Wh more did not resume: %s", d.State)
	}
}
