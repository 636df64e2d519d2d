package simcar

import (
	"testing"
	"time"

	"satwatt/internal/clock"
	vp "satwatt/internal/vehicleprofile"
	"satwatt/internal/vehiclestate"
)

func bind(t *testing.T, profile string) *vp.Binding {
	t.Helper()
	b, err := vp.LoadBinding(profile, "")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var t0 = time.Date(2026, 11, 25, 2, 0, 0, 0, time.UTC)

// observe decodes every message the car sends, as the gateway would.
func observe(t *testing.T, c *Car, tr *vehiclestate.Tracker, clk clock.Clock) vehiclestate.State {
	t.Helper()
	for _, e := range c.msgs {
		f, err := c.Frame(e.msg)
		if err != nil {
			t.Fatal(err)
		}
		tr.Update(&f, clk.Now())
	}
	return tr.Snapshot(clk.Now())
}

func TestChargesOnlyWhilePowered(t *testing.T) {
	for _, profile := range []string{"generic", "tesla-model3"} {
		t.Run(profile, func(t *testing.T) {
			b := bind(t, profile)
			clk := clock.NewManual(t0)
			p := DefaultParams()
			c, err := New(b, p, 230, clk, nil)
			if err != nil {
				t.Fatal(err)
			}
			tr := vehiclestate.New(b, nil)
			s := observe(t, c, tr, clk)
			if s.Cable != vehiclestate.Disconnected || *s.SOCPct != 20 {
				t.Fatalf("at start: cable %s soc %v, want disconnected at 20 %%", s.Cable, *s.SOCPct)
			}
			c.Offer(7000) // no cable: nothing flows
			clk.Advance(10 * time.Minute)
			if got := c.State().SOCPermil; got != 200 {
				t.Fatalf("soc %d‰ after 10 min unplugged, want 200", got)
			}
			c.Plug()
			clk.Advance(time.Second)
			s = observe(t, c, tr, clk)
			if s.Cable != vehiclestate.Latched && s.Cable != vehiclestate.Connected {
				t.Fatalf("cable %s after plug-in", s.Cable)
			}
			if s.PortDoor != vehiclestate.Open {
				t.Fatalf("door %s after plug-in, want open", s.PortDoor)
			}
			if c.DrawW() != 7000 {
				t.Fatalf("draw %d W, want the 7000 W offered", c.DrawW())
			}
			if s.Charging != vehiclestate.Charging {
				t.Fatalf("charging %s, want charging", s.Charging)
			}
			// One hour at 7 kW with 92 % efficiency stores 6.44 kWh: 10.7 %
			// of 60 kWh.
			clk.Advance(time.Hour)
			st := c.State()
			if st.SOCPermil != 307 {
				t.Errorf("soc %d‰ after an hour at 7 kW, want 307", st.SOCPermil)
			}
			if st.DrawnWh < 7000 || st.DrawnWh > 7002 {
				t.Errorf("drawn %d Wh, want 7000", st.DrawnWh)
			}
			s = observe(t, c, tr, clk)
			if *s.SOCPct < 30.6 || *s.SOCPct > 30.8 {
				t.Errorf("soc on the bus %v, want 30.7", *s.SOCPct)
			}
			if s.ChargePowerW == nil || *s.ChargePowerW < 6900 || *s.ChargePowerW > 7100 {
				t.Errorf("charge power on the bus %v, want about 7000", derefI(s.ChargePowerW))
			}
			if s.PackCurrentA == nil || *s.PackCurrentA <= 0 {
				t.Errorf("pack current %v, want positive while charging", s.PackCurrentA)
			}
			c.Offer(0)
			before := c.State().SOCPermil
			clk.Advance(time.Hour)
			if after := c.State().SOCPermil; after != before {
				t.Errorf("soc moved from %d to %d with no power offered", before, after)
			}
			c.Unplug()
			clk.Advance(5 * time.Second)
			s = observe(t, c, tr, clk)
			if s.Cable != vehiclestate.Disconnected || s.PortDoor != vehiclestate.Closed {
				t.Errorf("after unplug: cable %s door %s", s.Cable, s.PortDoor)
			}
		})
	}
}

func derefI(p *int64) any {
	if p == nil {
		return nil
	}
	return *p
}

func TestTaperAndTarget(t *testing.T) {
	b := bind(t, "generic")
	clk := clock.NewManual(t0)
	p := DefaultParams()
	p.InitialSOCPermil = 790
	p.TargetSOCPermil = 950
	c, err := New(b, p, 230, clk, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.Plug()
	clk.Advance(time.Second)
	c.Offer(22000)
	if got := c.DrawW(); got != p.ChargerMaxW {
		t.Fatalf("draw %d W below the taper, want the charger's %d", got, p.ChargerMaxW)
	}
	var last int64 = p.ChargerMaxW
	for c.State().SOCPermil < 900 {
		clk.Advance(time.Minute)
		d := c.DrawW()
		if d > last {
			t.Fatalf("draw rose from %d to %d W while tapering", last, d)
		}
		last = d
	}
	if last >= p.ChargerMaxW {
		t.Errorf("draw %d W at 90 %%, want tapered", last)
	}
	clk.Advance(10 * time.Hour)
	st := c.State()
	if st.SOCPermil != 950 || st.DrawW != 0 || st.Charging != "complete" {
		t.Errorf("at target: soc %d‰ draw %d W %s, want 950, 0, complete", st.SOCPermil, st.DrawW, st.Charging)
	}
}

func TestBadParams(t *testing.T) {
	b := bind(t, "generic")
	for _, p := range []Params{
		{CapacityWh: 0, InitialSOCPermil: 100, TargetSOCPermil: 800, EfficiencyPermil: 900},
		{CapacityWh: 1000, InitialSOCPermil: 1100, TargetSOCPermil: 800, EfficiencyPermil: 900},
		{CapacityWh: 1000, InitialSOCPermil: 100, TargetSOCPermil: 800, EfficiencyPermil: 0},
	} {
		if _, err := New(b, p, 230, clock.NewManual(t0), nil); err == nil {
			t.Errorf("params %+v accepted", p)
		}
	}
}
