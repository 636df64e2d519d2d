package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"satwatt/internal/buypolicy"
	"satwatt/internal/canbus"
	"satwatt/internal/clock"
	"satwatt/internal/regtest"
	vp "satwatt/internal/vehicleprofile"
	"satwatt/internal/vehiclestate"
)

// --sim-speed must be a positive, finite number; anything else is refused
// as a usage error before the gateway touches the bus or the node.
func TestRunSimSpeedRefused(t *testing.T) {
	for _, v := range []string{"0", "-1", "-0.5", "NaN", "Inf", "+Inf"} {
		t.Run(v, func(t *testing.T) {
			err := runRun(t.Context(), []string{"--can", "vcan0", "--wall", "http://127.0.0.1:1/", "--sim-speed", v}, io.Discard, io.Discard)
			if !errors.Is(err, errUsage) {
				t.Errorf("--sim-speed %s: %v, want a usage error", v, err)
			}
		})
	}
}

// The split: the vehicle's clock runs at the simulation's speed, while the
// payer (its timeout and invoice expiry) and the loop's pacing stay on the
// real clock.
func TestRunClocksSplit(t *testing.T) {
	for _, speed := range []float64{1, 30, 60} {
		clk := newClocks(speed)
		if _, ok := clk.real.(clock.Real); !ok {
			t.Errorf("speed %v: the real clock is %T", speed, clk.real)
		}
		switch v := clk.vehicle.(type) {
		case clock.Real:
			if speed != 1 {
				t.Errorf("speed %v: the vehicle's clock is the real one", speed)
			}
		case *clock.Scaled:
			if v.Factor() != speed {
				t.Errorf("speed %v: the vehicle's clock runs %vx", speed, v.Factor())
			}
		default:
			t.Errorf("speed %v: the vehicle's clock is %T", speed, clk.vehicle)
		}
		f := &runFlags{payTimeout: 45 * time.Second, meterTolPct: 15, meterSlackWh: 5}
		s := buypolicy.Settings{MaxFeeMsat: 2_000}
		p := newPayer(nil, "regtest", s, f, clk)
		if p.Timeout != f.payTimeout || p.Clock != clk.real || p.MaxFeeMsat != 2_000 {
			t.Errorf("speed %v: payer timeout %v on %T, want %v of real time", speed, p.Timeout, p.Clock, f.payTimeout)
		}
		cfg := loopConfig(s, "regtest", f, clk, nil)
		if cfg.Clock != clk.real || cfg.VehicleClock != clk.vehicle {
			t.Errorf("speed %v: loop paced on %T, vehicle read on %T", speed, cfg.Clock, cfg.VehicleClock)
		}
		if cfg.MeterTolerancePermille != 150 || cfg.MeterSlackMWh != 5_000 {
			t.Errorf("speed %v: meter tolerance %d‰ + %d mWh", speed, cfg.MeterTolerancePermille, cfg.MeterSlackMWh)
		}
	}
}

// The car's measured energy is the charging power integrated over the car's
// clock, whatever the bus stamped the frames with: at 30x, a minute of
// simulated charging at 11 kW is 183 Wh, though only 2 s of real time pass.
func TestLiveCarMeasuresOnVehicleClock(t *testing.T) {
	b, err := vp.LoadBinding("generic", "")
	if err != nil {
		t.Fatal(err)
	}
	msg := b.DB.MessageByName("EV_ChargePower")
	frame, err := msg.Encode(map[string]float64{"EV_ChargePower": 11_000, "EV_ACVoltage": 230, "EV_ACCurrent": 47.8})
	if err != nil {
		t.Fatal(err)
	}
	const speed = 30
	cycle := msg.CycleTime // the car sends at its cycle time, in its own time
	cases := []struct {
		name    string
		perSim  time.Duration // how far the car's clock moves per simulated cycle
		wantMWh int64
	}{
		// 11 kW x 60 s = 660 kJ = 183,333 mWh; the first frame has no
		// predecessor, so one cycle less is integrated.
		{"vehicle clock at the simulation's speed", cycle, 11_000 * (60_000 - cycle.Milliseconds()) / 3_600},
		// The real clock (no --sim-speed): 1/30 of it.
		{"vehicle clock at real time", cycle / speed, 11_000 * (60_000 - cycle.Milliseconds()) / speed / 3_600},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			vclk := clock.NewManual(time.Date(2026, 12, 2, 14, 0, 0, 0, time.UTC))
			realClk := clock.NewManual(time.Date(2026, 12, 2, 14, 0, 0, 0, time.UTC))
			car := &liveCar{tracker: vehiclestate.New(b, nil), clk: vclk}
			for range 60_000 / cycle.Milliseconds() {
				// The bus stamps frames on its own (real) clock.
				car.update(&canbus.Frame{Frame: frame, Time: realClk.Now()})
				vclk.Advance(tc.perSim)
				realClk.Advance(cycle / speed)
			}
			got := car.Snapshot(vclk.Now()).ChargedEnergyMWh
			if d := got - tc.wantMWh; d < -1 || d > 1 {
				t.Errorf("measured %d mWh, want %d", got, tc.wantMWh)
			}
		})
	}
}

// simSpeed is the regtest session's speed factor, the demo's.
const simSpeed = "30"

// TestRegtestSimSpeedSession runs a whole charging session faster than
// real time, as the demo does: the simulated car, the simulated EVSE and
// the gateway's vehicle clock all at the same --speed/--sim-speed. The
// gateway's meter keeps up with the wall's (no METER_MISMATCH; on real
// time it would measure a fifth of it), the car reaches its target, and
// the ledgers agree.
func TestRegtestSimSpeedSession(t *testing.T) {
	vgw := goBuild(t, ".", "vehiclegw")
	wctl := goBuild(t, "../wallctl", "wallctl")
	net := regtest.StartForTest(t, regtest.Config{
		Nodes:    []string{"wall", "car"},
		Channels: []regtest.ChannelSpec{{From: "car", To: "wall", CapacitySat: 1_000_000}},
	})
	wallURI := bake(t, net.Nodes["wall"], "info:read", "invoices:read", "invoices:write")
	carURI := bake(t, net.Nodes["car"], "info:read", "offchain:read", "offchain:write")
	dir := t.TempDir()
	carDB, wallDB := filepath.Join(dir, "car.db"), filepath.Join(dir, "wall.db")
	start := time.Now()

	// A 20 kWh pack at 60 %, an 11 kW charger: 60 % to 80 % is 4 kWh in
	// the battery, about 4.4 kWh from the wall, some 24 simulated minutes:
	// under a real minute at 30x.
	busAddr, ctlAddr := loopbackAddr(t), loopbackAddr(t)
	startProc(t, []string{"SATWATT_SIMCAR_TOKEN=" + regtestSimcarToken}, vgw, "simcar",
		"--serve", busAddr, "--bus", "sim0", "--control", ctlAddr,
		"--capacity-kwh", "20", "--soc", "60", "--target", "100", "--charger-kw", "11", "--speed", simSpeed)
	waitHTTPOK(t, "simulated car up", "http://"+ctlAddr+"/state", 30*time.Second)
	wallAddr := loopbackAddr(t)
	wall := startProc(t, []string{"WALLCTL_TOKEN=" + regtestWallToken, "WALLCTL_LNDCONNECT=" + wallURI,
		"SATWATT_SIMCAR_TOKEN=" + regtestSimcarToken}, wctl, "serve",
		"--listen", wallAddr, "--db", wallDB, "--evse", "sim", "--sim-car", "http://"+ctlAddr, "--sim-speed", simSpeed,
		"--max-current", "48", "--price", "100", "--increment-wh", "100", "--first-multiple", "2", "--grace-wh", "10")
	waitHTTPOK(t, "wall healthy", "http://"+wallAddr+"/healthz", 60*time.Second)
	car := startProc(t, []string{"VEHICLEGW_LNDCONNECT=" + carURI}, vgw, "run",
		"--can", "socketcand://"+busAddr+"/sim0", "--wall", "http://"+wallAddr+"/", "--db", carDB,
		"--target", "80", "--max-price", "200", "--sim-speed", simSpeed, "--json", "--log-level", "debug")

	httpDo(t, "POST", "http://"+ctlAddr+"/plug", regtestSimcarToken)
	waitUntil(t, "the car reaches its target and stops buying", 5*time.Minute, func() bool {
		st := lastStatus(t, car)
		return st != nil && (st["state"] == "COMPLETE" || st["state"] == "STOPPED")
	})
	if st := lastStatus(t, car); st["state"] != "COMPLETE" || st["error"] != "NONE" {
		t.Fatalf("the gateway ended in %v with error %v, want COMPLETE with NONE", st["state"], st["error"])
	}
	shown := map[string]int{}
	for _, st := range statusLines(t, car) {
		shown[fmt.Sprint(st["state"], "/", st["error"])]++
		if st["error"] == "METER_MISMATCH" {
			t.Errorf("METER_MISMATCH shown: %v", st)
		}
	}
	t.Logf("statuses shown (state/error: times): %v", shown)
	var carState struct {
		SOCPermil int64 `json:"soc_permil"`
	}
	json.Unmarshal(httpDo(t, "GET", "http://"+ctlAddr+"/state", ""), &carState)
	httpDo(t, "POST", "http://"+ctlAddr+"/unplug", regtestSimcarToken)
	waitUntil(t, "the car sees the unplug and ends its session", 60*time.Second, func() bool {
		return lastStatus(t, car)["state"] == "IDLE"
	})
	took := time.Since(start)
	car.stop()
	wall.stop()

	type history struct {
		Sessions []struct {
			ID           string `json:"id"`
			DeliveredMWh int64  `json:"delivered_mwh"`
			MeasuredMWh  int64  `json:"measured_mwh"` // the car's only
			PaidMsat     int64  `json:"paid_msat"`
		} `json:"sessions"`
		Totals struct {
			Sessions int64 `json:"sessions"`
			PaidMsat int64 `json:"paid_msat"`
		} `json:"totals"`
	}
	read := func(bin, db string) history {
		out, err := exec.Command(bin, "history", "--db", db, "--json").Output()
		if err != nil {
			t.Fatalf("%s history: %v", filepath.Base(bin), err)
		}
		var h history
		if err := json.Unmarshal(out, &h); err != nil || len(h.Sessions) != 1 || h.Totals.Sessions != 1 {
			t.Fatalf("%s history: %v\n%s", filepath.Base(bin), err, out)
		}
		return h
	}
	carH, wallH := read(vgw, carDB), read(wctl, wallDB)
	cs, ws := carH.Sessions[0], wallH.Sessions[0]
	t.Logf("took %s of real time; wall delivered %d mWh, the car measured %d mWh (it was told %d mWh); "+
		"car paid %d msat, wall recorded %d msat; state of charge %d‰",
		took.Round(time.Second), ws.DeliveredMWh, cs.MeasuredMWh, cs.DeliveredMWh, carH.Totals.PaidMsat, wallH.Totals.PaidMsat, carState.SOCPermil)
	if carH.Totals.PaidMsat != wallH.Totals.PaidMsat || carH.Totals.PaidMsat < 400_000 {
		t.Errorf("car paid %d msat, wall recorded %d msat: want equal sums for 4 kWh or more", carH.Totals.PaidMsat, wallH.Totals.PaidMsat)
	}
	// The car's bus and the wall's meter, both in simulated time, agree
	// within a few per cent; on real time the car would measure 1/30.
	if d := cs.MeasuredMWh - ws.DeliveredMWh; d*100 > 5*ws.DeliveredMWh || -d*100 > 5*ws.DeliveredMWh {
		t.Errorf("the car measured %d mWh, the wall delivered %d mWh: more than 5 %% apart", cs.MeasuredMWh, ws.DeliveredMWh)
	}
	if ws.DeliveredMWh < 4_000_000 {
		t.Errorf("the wall delivered %d mWh, want the 4 kWh or more from 60 %% to 80 %% of 20 kWh", ws.DeliveredMWh)
	}
	if carState.SOCPermil < 790 {
		t.Errorf("the car stopped at %d‰, target 800‰", carState.SOCPermil)
	}
}
