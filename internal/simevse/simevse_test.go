package simevse

import (
	"context"
	"errors"
	"log/slog"
	"runtime"
	"testing"
	"time"

	"satwatt/internal/clock"
	"satwatt/internal/evse"
)

var t0 = time.Date(2026, 11, 25, 2, 0, 0, 0, time.UTC)

// The wall controller's EVSE interface, restated: its package is internal
// to wallctl and cannot be imported from here.
var _ interface {
	Run(ctx context.Context) error
	Status(ctx context.Context) (evse.Status, error)
	Enable(ctx context.Context, maxCurrentA int) error
	Disable(ctx context.Context) error
	Changes() <-chan struct{}
	Close() error
} = (*EVSE)(nil)

// rig runs a simulated EVSE on a manual clock; the test moves time.
type rig struct {
	t      *testing.T
	clk    *clock.Manual
	e      *EVSE
	v      *FixedVehicle // nil when the test brought its own vehicle
	cancel context.CancelFunc
	done   chan error
}

func testLog(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// newRig starts Run. Without cfg.Vehicle it plugs nothing in yet and uses
// a FixedVehicle drawing up to 11 kW.
func newRig(t *testing.T, cfg Config) *rig {
	t.Helper()
	r := &rig{t: t, done: make(chan error, 1)}
	if m, ok := cfg.Clock.(*clock.Manual); ok {
		r.clk = m // shared with a simulated car
	} else {
		r.clk = clock.NewManual(t0)
	}
	cfg.Clock = r.clk
	if cfg.Log == nil {
		cfg.Log = testLog(t)
	}
	if cfg.Vehicle == nil {
		r.v = NewFixedVehicle(11_000)
		cfg.Vehicle = r.v
	}
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r.e = e
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() { r.done <- e.Run(ctx) }()
	t.Cleanup(func() {
		r.stop()
		_ = e.Close()
	})
	r.waitBlocked()
	return r
}

// stop ends Run and waits for it.
func (r *rig) stop() {
	r.t.Helper()
	r.cancel()
	if r.done == nil {
		return
	}
	select {
	case err := <-r.done:
		if err != nil {
			r.t.Errorf("Run returned %v", err)
		}
	case <-time.After(10 * time.Second):
		r.t.Fatal("Run did not return after its context ended")
	}
	r.done = nil
}

// waitBlocked waits until Run is waiting on the clock, i.e. has finished
// its step.
func (r *rig) waitBlocked() {
	r.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for spins := 0; r.clk.Waiters() < 1; spins++ {
		if time.Now().After(deadline) {
			r.t.Fatal("Run never waited on the clock")
		}
		if spins < 1000 {
			runtime.Gosched() // usually enough: Run only has to finish a step
		} else {
			time.Sleep(50 * time.Microsecond)
		}
	}
}

// advance moves the clock by d and waits for Run to finish any step due.
func (r *rig) advance(d time.Duration) {
	r.t.Helper()
	r.waitBlocked()
	r.clk.Advance(d)
	r.waitBlocked()
}

// run advances d in steps of the EVSE's own interval.
func (r *rig) run(d time.Duration) {
	r.t.Helper()
	for ; d > 0; d -= r.e.cfg.Step {
		r.advance(min(d, r.e.cfg.Step))
	}
}

// peek reads the EVSE without stepping it and without a heartbeat.
func (r *rig) peek() evse.Status {
	r.e.mu.Lock()
	defer r.e.mu.Unlock()
	return r.e.statusLocked()
}

// trueMWh is the energy truly delivered this session, whatever the meter
// reads.
func (r *rig) trueMWh() int64 {
	r.e.mu.Lock()
	defer r.e.mu.Unlock()
	return r.e.trueWus / wusPerMWh
}

// status is Status as the wall calls it: a heartbeat.
func (r *rig) status() evse.Status {
	r.t.Helper()
	st, err := r.e.Status(context.Background())
	if err != nil {
		r.t.Fatal(err)
	}
	return st
}

func (r *rig) enable(a int) {
	r.t.Helper()
	if err := r.e.Enable(context.Background(), a); err != nil {
		r.t.Fatal(err)
	}
}

// until steps the EVSE until cond holds, failing after limit of simulated
// time.
func (r *rig) until(what string, limit time.Duration, cond func(evse.Status) bool) {
	r.t.Helper()
	for waited := time.Duration(0); !cond(r.peek()); waited += r.e.cfg.Step {
		if waited > limit {
			r.t.Fatalf("%s: not within %v; status %+v", what, limit, r.peek())
		}
		r.advance(r.e.cfg.Step)
	}
}

// charging plugs the fixed vehicle in, enables at a and waits for the ramp
// to reach wantW.
func (r *rig) charging(a int, wantW int64) {
	r.t.Helper()
	r.v.Plug()
	r.enable(a)
	r.until("charging at full power", 10*time.Second, func(s evse.Status) bool {
		return s.ContactorClosed && s.PowerW == wantW
	})
}

func signalled(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func TestPilotTransitions(t *testing.T) {
	r := newRig(t, Config{})
	v := r.v
	steps := []struct {
		name  string
		do    func()
		pilot evse.Pilot
	}{
		{"nothing connected", func() {}, evse.PilotA},
		{"plugged, not asking", func() { v.SetWantsPower(false); v.Plug() }, evse.PilotB},
		{"asks for power", func() { v.SetWantsPower(true) }, evse.PilotC},
		{"stops asking", func() { v.SetWantsPower(false) }, evse.PilotB},
		{"asks again", func() { v.SetWantsPower(true) }, evse.PilotC},
		{"unplugged", v.Unplug, evse.PilotA},
		{"plugged in asking", v.Plug, evse.PilotC},
	}
	prev := r.peek().Pilot
	signalled(r.e.Changes())
	for _, s := range steps {
		s.do()
		r.advance(r.e.cfg.Step)
		st := r.peek()
		if st.Pilot != s.pilot {
			t.Fatalf("%s: pilot %s, want %s", s.name, st.Pilot, s.pilot)
		}
		if got := signalled(r.e.Changes()); got != (st.Pilot != prev) {
			t.Errorf("%s: change signalled %v, want %v", s.name, got, st.Pilot != prev)
		}
		if st.ContactorClosed || st.PowerW != 0 {
			t.Errorf("%s: contactor closed or power %d W while never enabled", s.name, st.PowerW)
		}
		prev = st.Pilot
	}
}

func TestContactorNeedsEnableAndPilotC(t *testing.T) {
	cases := []struct {
		name                   string
		enabled, plugged, asks bool
		closed                 bool
	}{
		{"enabled, pilot C", true, true, true, true},
		{"enabled, pilot B", true, true, false, false},
		{"enabled, pilot A", true, false, true, false},
		{"disabled, pilot C", false, true, true, false},
		{"disabled, pilot B", false, true, false, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newRig(t, Config{})
			r.v.SetWantsPower(c.asks)
			if c.plugged {
				r.v.Plug()
			}
			r.advance(r.e.cfg.Step)
			if c.enabled {
				r.enable(32)
				if st := r.peek(); st.ContactorClosed {
					t.Fatal("contactor closed at the instant of Enable, before its relay delay")
				}
			}
			r.run(5 * time.Second)
			st := r.status()
			if st.ContactorClosed != c.closed || st.Enabled != c.enabled {
				t.Fatalf("enabled %v contactor %v, want %v %v", st.Enabled, st.ContactorClosed, c.enabled, c.closed)
			}
			if wantW := map[bool]int64{true: 7360, false: 0}[c.closed]; st.PowerW != wantW || r.v.Offered() != wantW {
				t.Errorf("power %d W offered %d W, want %d", st.PowerW, r.v.Offered(), wantW)
			}
			if st.VoltageMV != 230_000 || st.CurrentMA != st.PowerW*1000/230 {
				t.Errorf("voltage %d mV current %d mA for %d W", st.VoltageMV, st.CurrentMA, st.PowerW)
			}
		})
	}
}

func TestContactorOpensAtOnce(t *testing.T) {
	cases := []struct {
		name string
		act  func(r *rig)
		// stepped: the EVSE notices at its next step, not within the call.
		stepped bool
	}{
		{"disable", func(r *rig) {
			if err := r.e.Disable(context.Background()); err != nil {
				t.Fatal(err)
			}
		}, false},
		{"vehicle fault", func(r *rig) {
			if err := r.e.SetFaults(Faults{VehicleFault: evse.PilotE}); err != nil {
				t.Fatal(err)
			}
		}, false},
		{"unplug", func(r *rig) { r.v.Unplug() }, true},
		{"vehicle stops asking", func(r *rig) { r.v.SetWantsPower(false) }, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newRig(t, Config{})
			r.charging(32, 7360)
			signalled(r.e.Changes())
			c.act(r)
			if c.stepped {
				r.advance(r.e.cfg.Step)
			}
			st := r.peek()
			if st.ContactorClosed || st.PowerW != 0 || r.v.Offered() != 0 {
				t.Fatalf("contactor %v power %d W offered %d W, want open and nothing", st.ContactorClosed, st.PowerW, r.v.Offered())
			}
			if !signalled(r.e.Changes()) {
				t.Error("no change signalled")
			}
		})
	}
}

func TestRamp(t *testing.T) {
	cases := []struct {
		name     string
		maxA     int   // Config.MaxCurrentA
		vehicleW int64 // what the vehicle draws at most
		enableA  int
		wantW    int64
	}{
		{"limited by current", 32, 11_000, 32, 7360},
		{"lower current", 32, 11_000, 16, 3680},
		{"limited by the vehicle", 32, 3000, 32, 3000},
		{"capped at the hardware limit", 32, 22_000, 63, 7360},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newRig(t, Config{MaxCurrentA: c.maxA})
			r.v.SetMaxW(c.vehicleW)
			r.v.Plug()
			r.enable(c.enableA)
			r.until("contactor closed", 2*time.Second, func(s evse.Status) bool { return s.ContactorClosed })
			// Up from zero at 7,360 W per RampTime: 368 W per 100 ms step.
			const inc = 368
			for k := int64(0); ; k++ {
				if got, want := r.peek().PowerW, min(c.wantW, k*inc); got != want {
					t.Fatalf("step %d of the ramp: %d W, want %d", k, got, want)
				}
				if k*inc >= c.wantW {
					break
				}
				r.advance(r.e.cfg.Step)
			}
			// And down, at the same rate, when the limit falls. The offer
			// rises to the limit even where the vehicle draws less.
			r.run(r.e.cfg.RampTime)
			r.enable(6)
			down := int64(min(c.enableA, c.maxA)) * 230 // the offer, maybe above the draw
			for k := int64(1); ; k++ {
				r.advance(r.e.cfg.Step)
				want := max(6*230, min(c.wantW, down-k*inc))
				if got := r.peek().PowerW; got != want {
					t.Fatalf("step %d down: %d W, want %d", k, got, want)
				}
				if want == min(c.wantW, 6*230) {
					break
				}
			}
		})
	}
}

func TestEnergyIsExact(t *testing.T) {
	cases := []struct {
		name     string
		cfg      Config
		vehicleW int64
		enableA  int
		chunk    time.Duration // how the hour is cut
		wantW    int64
		wantMWh  int64
	}{
		{"one leap of an hour", Config{}, 11_000, 32, time.Hour, 7360, 7_360_000},
		{"10 s steps, limited by the vehicle", Config{MaxCurrentA: 40}, 7360, 40, 10 * time.Second, 7360, 7_360_000},
		{"uneven steps, 120 V", Config{LineVoltageV: 120}, 11_000, 16, 3456789123 * time.Nanosecond, 1920, 1_920_000},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.cfg.WatchdogTimeout = -1 // tested on its own; one leap is silent for an hour
			r := newRig(t, c.cfg)
			r.v.SetMaxW(c.vehicleW)
			r.charging(c.enableA, c.wantW)
			from := r.status().SessionMWh
			for left := time.Hour; left > 0; left -= c.chunk {
				r.advance(min(left, c.chunk))
			}
			st := r.status()
			if got := st.SessionMWh - from; got != c.wantMWh {
				t.Errorf("metered %d mWh in an hour at %d W, want %d", got, st.PowerW, c.wantMWh)
			}
		})
	}
}

func TestMeterRestartsAtPlugIn(t *testing.T) {
	r := newRig(t, Config{})
	r.charging(32, 7360)
	r.run(time.Minute / 2)
	r.status()
	r.run(time.Minute / 2)
	charged := r.status().SessionMWh
	if charged <= 0 {
		t.Fatalf("nothing metered after a minute of charging")
	}
	r.v.Unplug()
	r.advance(r.e.cfg.Step)
	if st := r.status(); st.Pilot != evse.PilotA || st.SessionMWh != charged {
		t.Fatalf("after unplug: pilot %s session %d mWh, want A and the session kept at %d", st.Pilot, st.SessionMWh, charged)
	}
	r.v.Plug()
	r.advance(r.e.cfg.Step)
	if st := r.status(); !st.Pilot.VehicleConnected() || st.SessionMWh != 0 {
		t.Fatalf("after plug-in: pilot %s session %d mWh, want connected and 0", st.Pilot, st.SessionMWh)
	}
}

func TestWatchdog(t *testing.T) {
	cases := []struct {
		name    string
		timeout time.Duration
		every   time.Duration // heartbeat interval, 0 for none
		beat    func(r *rig)
		open    bool
	}{
		{"silent controller", 0, 0, nil, true},
		{"silent, short timeout", 5 * time.Second, 0, nil, true},
		{"Status every 5 s", 0, 5 * time.Second, func(r *rig) { r.status() }, false},
		{"Enable every 9 s", 0, 9 * time.Second, func(r *rig) { r.enable(32) }, false},
		{"supervision off", -1, 0, nil, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newRig(t, Config{WatchdogTimeout: c.timeout})
			r.charging(32, 7360)
			signalled(r.e.Changes())
			var since time.Duration
			for elapsed := time.Duration(0); elapsed < time.Minute; elapsed += r.e.cfg.Step {
				r.advance(r.e.cfg.Step)
				since += r.e.cfg.Step
				if c.every > 0 && since >= c.every {
					c.beat(r)
					since = 0
				}
			}
			st := r.peek()
			if c.open {
				if st.ContactorClosed || st.Enabled || r.v.Offered() != 0 {
					t.Fatalf("after a silent minute: enabled %v contactor %v offered %d W; want asleep", st.Enabled, st.ContactorClosed, r.v.Offered())
				}
				if !signalled(r.e.Changes()) {
					t.Error("the watchdog's sleep was not signalled")
				}
				return
			}
			if !st.ContactorClosed || !st.Enabled {
				t.Fatalf("enabled %v contactor %v, want still charging", st.Enabled, st.ContactorClosed)
			}
		})
	}
}

func TestFaults(t *testing.T) {
	ctx := context.Background()
	set := func(t *testing.T, r *rig, f Faults) {
		t.Helper()
		if err := r.e.SetFaults(f); err != nil {
			t.Fatal(err)
		}
	}
	meter := func(permil, wantW, wantMWh int64) func(t *testing.T, r *rig) {
		return func(t *testing.T, r *rig) {
			set(t, r, Faults{MeterHighPermil: permil})
			st := r.status()
			if st.PowerW != wantW || st.CurrentMA != wantW*1000/230 {
				t.Errorf("reads %d W %d mA, want %d W", st.PowerW, st.CurrentMA, wantW)
			}
			from, trueFrom := st.SessionMWh, r.trueMWh()
			for range 720 {
				r.advance(5 * time.Second)
				r.status()
			}
			if got := r.status().SessionMWh - from; got != wantMWh {
				t.Errorf("meter counted %d mWh in an hour, want %d", got, wantMWh)
			}
			if got := r.trueMWh() - trueFrom; got != 7_360_000 {
				t.Errorf("truly delivered %d mWh, want 7360000", got)
			}
		}
	}
	pilotFault := func(p evse.Pilot) func(t *testing.T, r *rig) {
		return func(t *testing.T, r *rig) {
			set(t, r, Faults{VehicleFault: p})
			st := r.status()
			if st.Pilot != p || st.Fault == "" || st.ContactorClosed || st.PowerW != 0 || !st.Enabled {
				t.Fatalf("with the fault: %+v; want pilot %s, a fault text, contactor open, still enabled", st, p)
			}
			r.run(5 * time.Second)
			if st := r.status(); st.ContactorClosed {
				t.Fatal("contactor closed again during the fault")
			}
			set(t, r, Faults{})
			r.until("charging again after the fault cleared", 10*time.Second, func(s evse.Status) bool {
				return s.Pilot == evse.PilotC && s.Fault == "" && s.ContactorClosed && s.PowerW == 7360
			})
		}
	}
	cases := []struct {
		name  string
		check func(t *testing.T, r *rig)
	}{
		{"meter reads high", meter(50, 7728, 7_728_000)},
		{"meter reads low", meter(-100, 6624, 6_624_000)},
		{"contactor stuck", func(t *testing.T, r *rig) {
			set(t, r, Faults{ContactorStuck: true})
			if err := r.e.Disable(ctx); err != nil {
				t.Fatal(err)
			}
			st := r.status()
			if !st.ContactorClosed || st.Enabled {
				t.Fatalf("after Disable: enabled %v contactor %v; want a welded contactor: disabled yet closed", st.Enabled, st.ContactorClosed)
			}
			// Without the pilot's oscillation the vehicle ramps down.
			r.until("vehicle stops drawing", 5*time.Second, func(s evse.Status) bool { return s.PowerW == 0 })
			if st := r.status(); !st.ContactorClosed {
				t.Fatal("stuck contactor opened")
			}
			set(t, r, Faults{})
			if st := r.status(); st.ContactorClosed {
				t.Fatal("contactor still closed once freed")
			}
		}},
		{"pilot E", pilotFault(evse.PilotE)},
		{"pilot F", pilotFault(evse.PilotF)},
		{"unreachable", func(t *testing.T, r *rig) {
			set(t, r, Faults{Unreachable: true})
			if _, err := r.e.Status(ctx); !errors.Is(err, evse.ErrUnreachable) {
				t.Errorf("Status: %v, want ErrUnreachable", err)
			}
			if err := r.e.Enable(ctx, 32); !errors.Is(err, evse.ErrUnreachable) {
				t.Errorf("Enable: %v, want ErrUnreachable", err)
			}
			if err := r.e.Disable(ctx); !errors.Is(err, evse.ErrUnreachable) {
				t.Errorf("Disable: %v, want ErrUnreachable", err)
			}
			if st := r.peek(); !st.ContactorClosed || !st.Enabled {
				t.Fatalf("an unheard Disable changed the device: %+v", st)
			}
			// Unheard, the device's own watchdog ends the charging.
			r.until("watchdog sleep", 15*time.Second, func(s evse.Status) bool { return !s.ContactorClosed && !s.Enabled })
			set(t, r, Faults{})
			if st := r.status(); st.Enabled || st.ContactorClosed || st.PowerW != 0 {
				t.Fatalf("after the link came back: %+v, want asleep", st)
			}
		}},
		{"knobs out of range", func(t *testing.T, r *rig) {
			for _, f := range []Faults{{VehicleFault: evse.PilotC}, {MeterHighPermil: 1001}, {MeterHighPermil: -1001}} {
				if err := r.e.SetFaults(f); err == nil {
					t.Errorf("SetFaults(%+v) accepted", f)
				}
			}
			if got := r.e.Faults(); got != (Faults{}) {
				t.Errorf("faults %+v after refused settings", got)
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newRig(t, Config{})
			r.charging(32, 7360)
			c.check(t, r)
		})
	}
}

func TestRunLeavesItDisabledAndCloseReleases(t *testing.T) {
	r := newRig(t, Config{})
	r.charging(32, 7360)
	r.stop()
	st := r.peek()
	if st.Enabled || st.ContactorClosed || r.v.Offered() != 0 {
		t.Fatalf("after Run: %+v offered %d W, want disabled with nothing offered", st, r.v.Offered())
	}
	// The wall disables once more on its way out, after Run has ended.
	if err := r.e.Disable(context.Background()); err != nil {
		t.Fatalf("Disable after Run: %v", err)
	}
	for range 2 {
		if err := r.e.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
	}
	if _, err := r.e.Status(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("Status after Close: %v, want ErrClosed", err)
	}
	if err := r.e.Enable(context.Background(), 16); !errors.Is(err, ErrClosed) {
		t.Errorf("Enable after Close: %v, want ErrClosed", err)
	}
	if err := r.e.Disable(context.Background()); err != nil {
		t.Errorf("Disable after Close: %v, want nil", err)
	}
}

func TestCloseEndsRun(t *testing.T) {
	r := newRig(t, Config{})
	if err := r.e.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-r.done:
		if err != nil {
			t.Errorf("Run returned %v", err)
		}
		r.done = nil
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after Close")
	}
}

func TestEnableRefusesTooLittleCurrent(t *testing.T) {
	r := newRig(t, Config{})
	for _, a := range []int{-1, 0, 5} {
		if err := r.e.Enable(context.Background(), a); err == nil {
			t.Errorf("Enable(%d A) accepted", a)
		}
	}
	if r.peek().Enabled {
		t.Error("enabled after refused calls")
	}
}

func TestConfigChecked(t *testing.T) {
	bad := []Config{
		{LineVoltageV: -230},
		{LineVoltageV: 5000},
		{MaxCurrentA: 5},
		{MaxCurrentA: 5000},
		{Step: -time.Second},
		{RampTime: -time.Second},
		{RelayDelay: -time.Second},
	}
	for _, cfg := range bad {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
	e, err := New(Config{Clock: clock.NewManual(t0)})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := e.Vehicle().(*FixedVehicle); !ok {
		t.Errorf("built-in vehicle is %T, want *FixedVehicle", e.Vehicle())
	}
}
