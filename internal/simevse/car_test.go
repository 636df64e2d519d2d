package simevse

import (
	"testing"
	"time"

	"satwatt/internal/clock"
	"satwatt/internal/evse"
	"satwatt/internal/simcar"
	vp "satwatt/internal/vehicleprofile"
)

var _ Vehicle = (*simcar.Car)(nil)

func newCar(t *testing.T, clk clock.Clock, p simcar.Params) *simcar.Car {
	t.Helper()
	b, err := vp.LoadBinding("generic", "")
	if err != nil {
		t.Fatal(err)
	}
	c, err := simcar.New(b, p, 230, clk, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func abs(x int64) int64 {
	if x < 0 {
		return -x
	}
	return x
}

func TestCouplingWithSimulatedCar(t *testing.T) {
	clk := clock.NewManual(t0)
	p := simcar.DefaultParams()
	car := newCar(t, clk, p)
	r := newRig(t, Config{Clock: clk, Vehicle: car, WatchdogTimeout: -1})
	before := car.State()

	car.Plug()
	r.advance(r.e.cfg.Step)
	if st := r.peek(); st.Pilot != evse.PilotB {
		t.Fatalf("pilot %s just after plug-in, want B until the car's latch engages", st.Pilot)
	}
	r.until("car asks for power", time.Second, func(s evse.Status) bool { return s.Pilot == evse.PilotC })
	r.enable(32)
	r.until("charging at full power", 5*time.Second, func(s evse.Status) bool { return s.PowerW == 7360 })
	if d := car.DrawW(); d != 7360 {
		t.Fatalf("car draws %d W, want the 7360 W offered", d)
	}
	r.advance(time.Hour)
	if err := r.e.Disable(t.Context()); err != nil {
		t.Fatal(err)
	}
	if d := car.DrawW(); d != 0 {
		t.Fatalf("car draws %d W after Disable", d)
	}
	metered := r.status().SessionMWh
	after := car.State()
	if metered < 7_360_000 || metered > 7_370_000 {
		t.Fatalf("metered %d mWh, want an hour at 7360 W plus the ramp", metered)
	}
	// The car counts whole Wh; its pack keeps 92 % of what it drew.
	if drawn := after.DrawnWh - before.DrawnWh; abs(drawn*1000-metered) >= 1000 {
		t.Errorf("car drew %d Wh, the EVSE metered %d mWh", drawn, metered)
	}
	stored := after.StoredWh - before.StoredWh
	t.Logf("metered %d mWh; car drew %d Wh and stored %d Wh more", metered, after.DrawnWh-before.DrawnWh, stored)
	if want := metered * p.EfficiencyPermil / 1000 / 1000; abs(stored-want) > 1 {
		t.Errorf("car stored %d Wh more, want %d (92 %% of %d mWh metered)", stored, want, metered)
	}
}

func TestSimulatedCarFullOpensContactor(t *testing.T) {
	clk := clock.NewManual(t0)
	p := simcar.DefaultParams()
	p.InitialSOCPermil = 795 // just under its 80 % target
	car := newCar(t, clk, p)
	r := newRig(t, Config{Clock: clk, Vehicle: car})
	car.Plug()
	r.until("car asks for power", time.Second, func(s evse.Status) bool { return s.Pilot == evse.PilotC })
	r.enable(32)
	r.until("contactor closed", time.Second, func(s evse.Status) bool { return s.ContactorClosed })
	for waited := time.Duration(0); r.status().Pilot == evse.PilotC; waited += time.Second {
		if waited > 10*time.Minute {
			t.Fatalf("car still asks for power after %v; state %+v", waited, car.State())
		}
		r.advance(time.Second)
	}
	st := r.status()
	if st.Pilot != evse.PilotB || st.ContactorClosed || st.PowerW != 0 || !st.Enabled {
		t.Fatalf("car at its target: %+v; want pilot B, contactor open, still enabled", st)
	}
	if cs := car.State(); cs.Charging != "complete" {
		t.Errorf("car says %q, want complete", cs.Charging)
	}
}
