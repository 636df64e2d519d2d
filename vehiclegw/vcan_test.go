//go:build vcan

package main

// These tests run where vcan0 exists: inside the qemu VM that
// internal/vcanvm boots, or on a host whose kernel has vcan. can-utils are
// the independent peer: canplayer and cansend put frames on the bus, candump
// captures what the gateway sends.

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"os/exec"
	"strings"
	"testing"
	"time"

	"satwatt/internal/canbus"
	"satwatt/internal/canutils"
	"satwatt/internal/clock"
	vp "satwatt/internal/vehicleprofile"
	"satwatt/vehiclegw/internal/status"
)

// TestVCANMonitor runs `vehiclegw monitor --can vcan0 --json` and feeds
// it testdata/plugin.log with canplayer. The log's frames were written by
// hand from satwatt.dbc:
//
//	4A0#E301699183FF0000  SOC 0x1E3=483 -> 48.3 %; voltage 0x9169=37225 -> 372.25 V;
//	                      current 0xFF83=-125 -> -12.5 A
//	4A1#70175E0B00000000  usable full 0x1770=6000 -> 60.00 kWh; left 0x0B5E=2910 -> 29.10 kWh
//	4A2#00.. then #04.., #05.., #06 02..: door opens (bits 2-3 = 1), cable
//	                      connects (bits 0-1 = 1), then latches (2) and charges (0x02)
//	4A3#FC084001C01C0000  230.0 V, 32.0 A, 0x1CC0 = 7360 W
//
// Then a two-byte 0x4A0 frame (4A0#F401: SOC 0x1F4 = 50.0 %) must still
// update the state of charge: the bytes received hold it.
func TestVCANMonitor(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"monitor", "--can", "vcan0", "--json", "--interval", "50ms"}, pw, &testLog{t})
		pw.Close()
	}()
	lines := make(chan map[string]any, 256)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			var m map[string]any
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				t.Errorf("monitor printed a line that is not JSON: %q", sc.Text())
				continue
			}
			lines <- m
		}
	}()
	next := func(what string) map[string]any {
		select {
		case m, ok := <-lines:
			if !ok {
				t.Fatalf("monitor ended (exit %d) while waiting for %s", <-done, what)
			}
			return m
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		}
		return nil
	}
	// The first state line means the monitor has its socket open.
	for m := next("the first state"); m["type"] != "state"; m = next("the first state") {
	}
	if err := canutils.Play(ctx, "testdata/plugin.log", "vcan0", "can0"); err != nil {
		t.Fatal(err)
	}
	var events []string
	var last map[string]any
	for len(events) < 3 || last == nil || last["charge_power_w"] == nil {
		m := next("the plug-in events and state")
		switch m["type"] {
		case "event":
			events = append(events, m["event"].(string))
		case "state":
			if m["charging"] == "charging" {
				last = m
			}
		}
	}
	if got := strings.Join(events, ","); got != "door_opened,cable_plugged,charging_started" {
		t.Errorf("events %s, want door_opened,cable_plugged,charging_started", got)
	}
	want := map[string]any{
		"soc_pct": 48.3, "pack_voltage_v": 372.25, "pack_current_a": -12.5,
		"pack_energy_wh": 60000.0, "energy_remaining_wh": 29100.0, "pack_energy_kind": "usable",
		"charge_power_w": 7360.0, "ac_voltage_v": 230.0, "ac_current_a": 32.0,
		"cable": "latched", "port_door": "open", "charging": "charging",
	}
	for k, v := range want {
		if last[k] != v {
			t.Errorf("%s = %v, want %v", k, last[k], v)
		}
	}

	if err := canutils.Send(ctx, "vcan0", "4A0#F401"); err != nil {
		t.Fatal(err)
	}
	for m := next("soc 50.0"); m["type"] != "state" || m["soc_pct"] != 50.0; m = next("soc 50.0") {
	}

	// The interface goes away: the monitor keeps printing, and once the
	// values pass their timeout (1 s for 0x4A0) they are unknown and
	// named stale, not the last value forever.
	ip(ctx, t, "link", "del", "vcan0")
	for m := next("stale soc"); m["type"] != "state" || m["soc_pct"] != nil || !hasString(m["stale"], "soc"); m = next("stale soc") {
	}
	// It comes back: the monitor reopens it (backoff up to 5 s) and the
	// next frame is decoded again.
	ip(ctx, t, "link", "add", "dev", "vcan0", "type", "vcan")
	ip(ctx, t, "link", "set", "up", "vcan0")
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		for ctx.Err() == nil {
			_ = canutils.Send(ctx, "vcan0", "4A0#F401")
			select {
			case <-ctx.Done():
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
	for m := next("soc after reconnect"); m["type"] != "state" || m["soc_pct"] != 50.0; m = next("soc after reconnect") {
	}
	cancel()
	<-sent
	if code := <-done; code != 130 && code != 0 {
		t.Errorf("monitor exit code %d after cancel", code)
	}
}

// TestVCANStatusMessage transmits the gateway's status on vcan0 and checks
// candump's capture byte by byte against satwatt.dbc, worked out by hand:
//
//	SATWATT_Status: SW_State CHARGING=4 (bits 0-3), SW_Error LOW_BALANCE=1
//	(bits 4-7) -> 0x14; SW_Counter (bits 8-11) = 0; SW_CreditWh -12 ->
//	0xFFF4 -> F4 FF; SW_EnergyBoughtWh 1234 = 0x4D2 -> D2 04 00 00.
//	SATWATT_Wallet: SW_SatsSpent 5678 = 0x162E -> 2E 16 00 00;
//	SW_BalanceSat 90000 = 0x15F90 -> 90 5F 01 00.
//
// A change is sent at once, not at the next period (an hour here).
func TestVCANStatusMessage(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dump, err := canutils.StartCandump(ctx, "vcan0")
	if err != nil {
		t.Fatal(err)
	}
	defer dump.Stop()
	bus, err := canbus.OpenBus(ctx, "vcan0", canbus.Options{Clock: clock.Real{}})
	if err != nil {
		t.Fatal(err)
	}
	defer bus.Close()
	b, err := vp.LoadBinding("generic", "")
	if err != nil {
		t.Fatal(err)
	}
	enc, err := status.NewEncoder(b)
	if err != nil {
		t.Fatal(err)
	}
	tx := status.NewTransmitter(enc, bus, clock.Real{}, time.Hour, func(err error) { t.Errorf("send: %v", err) })
	tx.Set(status.Status{State: status.Charging, Error: status.LowBalance, CreditWh: -12, EnergyBoughtWh: 1234, SatsSpent: 5678, BalanceSat: 90000})
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	go tx.Run(runCtx)

	expect := func(want ...string) {
		t.Helper()
		for _, w := range want {
			select {
			case line := <-dump.Lines:
				if iface, frame, ok := canutils.Frame(line); !ok || iface != "vcan0" || frame != w {
					t.Fatalf("candump captured %q, want %s", line, w)
				}
			case <-ctx.Done():
				t.Fatalf("candump captured nothing, want %s", w)
			}
		}
	}
	expect("5A0#1400F4FFD2040000", "5A1#2E160000905F0100")
	// SUSPENDED=5, METER_MISMATCH=7 -> 0x75; the counter moves on to 1.
	tx.Set(status.Status{State: status.Suspended, Error: status.MeterMismatch, CreditWh: -12, EnergyBoughtWh: 1234, SatsSpent: 5678, BalanceSat: 90000})
	expect("5A0#7501F4FFD2040000", "5A1#2E160000905F0100")
}

func ip(ctx context.Context, t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

func hasString(v any, s string) bool {
	list, _ := v.([]any)
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// testLog sends the command's log lines to the test log.
type testLog struct{ t *testing.T }

func (l *testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
