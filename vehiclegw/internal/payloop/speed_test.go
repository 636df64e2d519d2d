package payloop

import (
	"sync"
	"testing"
	"time"

	"satwatt/internal/clock"
	"satwatt/internal/vehiclestate"
	"satwatt/vehiclegw/internal/status"
)

// chargingCar draws a steady power from a moment on. The energy it reports
// is that power integrated up to the time it is asked at, as the tracker
// integrates the bus's power over the frames' stamps.
type chargingCar struct {
	*fakeCar
	mu     sync.Mutex
	powerW int64
	from   time.Time // on the clock the car is read with; zero: not charging
	asked  time.Time // the last time it was asked at
}

func (c *chargingCar) Snapshot(now time.Time) vehiclestate.State {
	st := c.fakeCar.Snapshot(now)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.asked = now
	if !c.from.IsZero() && now.After(c.from) {
		st.ChargedEnergyMWh = c.powerW * now.Sub(c.from).Milliseconds() / 3_600 // W x ms = mJ; 3,600 mJ = 1 mWh
	}
	return st
}

func (c *chargingCar) startAt(t time.Time) {
	c.mu.Lock()
	c.from = t
	c.mu.Unlock()
}

func (c *chargingCar) lastAsked() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.asked
}

// In a simulation running speed times faster than real time, the car's
// energy and the wall's meter both advance speed simulated seconds per
// real second. With the vehicle read on the simulation's clock the car
// measures what the wall delivered; read on the real clock (what
// vehiclegw run did before --sim-speed) it measures 1/speed of it and
// stops buying with METER_MISMATCH. Either way the loop is paced, pays
// with its timeout, and stamps its ledger on real time, and it asks lnd
// no more often for the speed.
func TestSimulatedVehicleTime(t *testing.T) {
	const (
		powerW = 7_000
		ticks  = 20 // real seconds of charging
	)
	cases := []struct {
		name         string
		speed        int64
		simClock     bool // the loop reads the vehicle on the simulation's clock
		wantMismatch bool
	}{
		{"real time", 1, false, false},
		{"real time, vehicle clock given", 1, true, false},
		{"30x, vehicle on the simulated clock", 30, true, false},
		{"60x, vehicle on the simulated clock", 60, true, false},
		{"30x, vehicle on the real clock", 30, false, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// The simulated clock has run a day ahead of the real one, as
			// a scaled clock does after a while: any stamp taken from it
			// by mistake shows.
			sim := clock.NewManual(t0.Add(24 * time.Hour))
			var car *chargingCar
			var vclk clock.Clock
			r := startRig(t, 100, honest, func(r *rig, cfg *Config, v *Vehicle) {
				car = &chargingCar{fakeCar: r.car, powerW: powerW}
				*v = car
				vclk = r.clk
				if tc.simClock {
					cfg.VehicleClock, vclk = sim, sim
				}
			})
			r.plug()
			r.until("first payment", paidCount(1)(r))

			// The charging starts: each real second is speed seconds of
			// energy, on the wall's meter and on the car's bus.
			flowFrom := sim.Now()
			car.startAt(vclk.Now())
			var wallMWh int64
			for range ticks {
				// Real time first: the wall's report is never ahead of
				// whichever clock the car is read on.
				r.clk.Advance(time.Second)
				sim.Advance(time.Duration(tc.speed) * time.Second)
				wallMWh = powerW * sim.Now().Sub(flowFrom).Milliseconds() / 3_600
				r.wall.report(WallStatus{Session: &WallSession{ID: "sess-1", PriceMsatPerWh: 100, DeliveredMWh: wallMWh, PowerW: powerW}})
				r.until("the loop reads the wall and the car", func() bool {
					return len(r.wall.updates) == 0 && !car.lastAsked().Before(vclk.Now())
				})
			}
			// The simulation pauses; the loop records the meters again.
			r.until("a meter sample with the wall's last reading", func() bool {
				r.ledger.mu.Lock()
				defer r.ledger.mu.Unlock()
				n := len(r.ledger.meters)
				return n > 0 && r.ledger.meters[n-1].wallMWh == wallMWh
			})

			r.ledger.mu.Lock()
			last := r.ledger.meters[len(r.ledger.meters)-1]
			meters := append([]meterSample(nil), r.ledger.meters...)
			paidAt := append([]time.Time(nil), r.ledger.paidAt...)
			days := append([]time.Time(nil), r.ledger.daysAsked...)
			r.ledger.mu.Unlock()
			simMWh := powerW * int64(ticks) * tc.speed * 1000 / 3_600
			if wallMWh != simMWh {
				t.Fatalf("the wall delivered %d mWh, want the simulated %d mWh", wallMWh, simMWh)
			}
			if mismatch := r.shown.ever(status.MeterMismatch); mismatch != tc.wantMismatch {
				t.Errorf("METER_MISMATCH shown: %v, want %v; last meter sample %+v", mismatch, tc.wantMismatch, last)
			}
			if tc.wantMismatch {
				if last.carMWh >= wallMWh/2 {
					t.Errorf("on the real clock the car measured %d mWh of %d: want a fraction", last.carMWh, wallMWh)
				}
			} else {
				// On the real clock the rig's extra real ticks count too.
				if tc.simClock && last.carMWh != simMWh {
					t.Errorf("the car measured %d mWh, want the simulated %d mWh", last.carMWh, simMWh)
				}
				for _, m := range meters {
					if m.carMWh < m.wallMWh {
						t.Errorf("meter sample %+v: the car behind the wall", m)
					}
				}
				if want := min(int64(2), tc.speed); len(r.node.payments()) < int(want) {
					t.Errorf("paid %d times as %d mWh flowed", len(r.node.payments()), simMWh)
				}
				if tc.simClock && !car.lastAsked().Equal(sim.Now()) {
					t.Errorf("the car was last asked at %v, want the simulated %v", car.lastAsked(), sim.Now())
				}
			}

			// Real time: the payer's timeout, the ledger's stamps, the day
			// budget's day and the pace at which lnd is asked.
			realNow := r.clk.Now()
			r.node.mu.Lock()
			timeouts, asked := append([]time.Duration(nil), r.node.timeouts...), r.node.asked
			r.node.mu.Unlock()
			for _, d := range timeouts {
				if d != time.Minute {
					t.Errorf("a payment's timeout %v, want the payer's 1m of real time", d)
				}
			}
			var stamps []time.Time
			stamps = append(stamps, paidAt...)
			for _, m := range meters {
				stamps = append(stamps, m.at)
			}
			for _, at := range stamps {
				if at.Before(t0) || at.After(realNow) {
					t.Errorf("ledger stamp %v outside the real time %v..%v", at, t0, realNow)
				}
			}
			for _, d := range days {
				if !d.Equal(startOfDay(t0)) && !d.Equal(startOfDay(realNow)) {
					t.Errorf("the day budget counted from %v, want the real day %v", d, startOfDay(realNow))
				}
			}
			// The spendable balance is read every 5 real ticks, and once
			// after each payment: not once per simulated second.
			limit := int(realNow.Sub(t0)/(5*time.Second)) + len(r.node.payments()) + 1
			if asked > limit {
				t.Errorf("lnd asked %d times in %v of real time with %d payments, want at most %d",
					asked, realNow.Sub(t0), len(r.node.payments()), limit)
			}
		})
	}
}
