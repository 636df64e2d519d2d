package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"satwatt/internal/vehicledata"
)

type monitorLines struct {
	states  []map[string]any
	events  []map[string]any
	summary map[string]any
}

func runMonitorJSON(t *testing.T, args ...string) monitorLines {
	t.Helper()
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	code := run(ctx, append([]string{"monitor", "--json", "--speed", "0"}, args...), &stdout, &stderr)
	if code != 0 {
		t.Fatalf("monitor exit %d: %s", code, stderr.String())
	}
	var out monitorLines
	sc := bufio.NewScanner(&stdout)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("not JSON: %q: %v", sc.Text(), err)
		}
		switch m["type"] {
		case "state":
			out.states = append(out.states, m)
		case "event":
			out.events = append(out.events, m)
		case "summary":
			out.summary = m
		default:
			t.Fatalf("line of unknown type: %q", sc.Text())
		}
	}
	if len(out.states) < 2 || out.summary == nil {
		t.Fatalf("monitor printed %d states and summary %v", len(out.states), out.summary)
	}
	return out
}

func jsonTime(t *testing.T, v any) time.Time {
	t.Helper()
	ts, err := time.Parse(time.RFC3339Nano, v.(string))
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

// TestMonitorRealModel3 replays the real 2019 Model 3 recording (parked, HV
// up, the driver opens the charge port) through the tesla-model3 profile,
// with the built-in DBC and with the community DBC, from both file formats.
//
// The expected values are the last frames of the log decoded by hand:
//
//	292#6F4689E79C0A0300  SOCUI292 bits 10..19: 0x46>>2 | (0x89&0xF)<<6 = 17+576 = 593 -> 59.3 %
//	132#A190CDFFB126FF0F  BattVoltage132 0x90A1 = 37025 -> 370.25 V;
//	                      SmoothBattCurrent132 0xFFCD = -51 * -0.1 = 5.1 A discharging -> -5.1 A
//	352#F0FAB6DB6E328900  nominal full pack: 0xF0 | (0xFA&3)<<8 = 752 -> 75.2 kWh;
//	                      remaining, 2019 10-bit layout: 0xFA>>2 | (0xB6&0xF)<<6 = 446 -> 44.6 kWh;
//	                      remaining, community 11-bit layout: 1759 -> 175.9 kWh, more than
//	                      the pack holds, so shown as implausible
//	25D#273811BE488109A0  CP_chargeCablePresent bit 3 of 0x27 = 0 -> disconnected;
//	                      CP_chargeDoorOpenUI bit 51 = bit 3 of 0x09 = 1 -> open
//	264#38000000A000      6 bytes; ChargeLinePower264 byte 3 = 0 -> 0 W
//	21D#0400040000000000  CP_acChargeState bits 53..55 = 0 -> AC_CHARGE_INACTIVE, idle
//
// The door opens in 25D#477805BB40610BE0 at 1600000021.350140, 2.503287 s
// after the log's first frame (1600000018.846853): bit 51 goes from 0 to 1.
func TestMonitorRealModel3(t *testing.T) {
	candump := vehicledata.Require(t, "model3-2019-chargeport-open.candump.log")
	gvret := vehicledata.Require(t, "model3-2019-chargeport-open.gvret.csv")
	community := vehicledata.Require(t, "tesla-model3-community.dbc")
	tests := []struct {
		name      string
		args      []string
		remaining any
	}{
		{"candump, built-in DBC", []string{"--profile", "tesla-model3", "--can", candump}, 44600.0},
		{"gvret, built-in DBC", []string{"--profile", "tesla-model3", "--can", "gvret:" + gvret}, 44600.0},
		{"candump, community DBC", []string{"--profile", "tesla-model3", "--dbc", community, "--can", "candump:" + candump}, nil},
		{"gvret, community DBC", []string{"--profile", "tesla-model3", "--dbc", community, "--can", gvret}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := runMonitorJSON(t, tc.args...)
			last := out.states[len(out.states)-1]
			want := map[string]any{
				"soc_pct":             59.3,
				"pack_energy_wh":      75200.0,
				"pack_energy_kind":    "nominal",
				"pack_voltage_v":      370.25,
				"pack_current_a":      -5.1,
				"energy_remaining_wh": tc.remaining,
				"cable":               "disconnected",
				"port_door":           "open",
				"charging":            "idle",
				"charging_value":      "AC_CHARGE_INACTIVE",
				"charge_power_w":      0.0,
			}
			for k, v := range want {
				if last[k] != v {
					t.Errorf("%s = %v, want %v", k, last[k], v)
				}
			}
			if tc.remaining == nil {
				if imp, _ := last["implausible"].([]any); len(imp) != 1 || imp[0] != "energy_remaining" {
					t.Errorf("implausible = %v, want [energy_remaining]", last["implausible"])
				}
			}
			if out.states[0]["port_door"] == "open" {
				t.Errorf("door open at the start of the recording")
			}
			if len(out.events) != 1 || out.events[0]["event"] != "door_opened" {
				t.Fatalf("events %v, want one door_opened", out.events)
			}
			at := jsonTime(t, out.events[0]["time"]).Sub(jsonTime(t, out.states[0]["time"]))
			if at != 2503287*time.Microsecond {
				t.Errorf("door opened %v after the first frame, want 2.503287s", at)
			}
			if out.summary["frames"] != 14991.0 {
				t.Errorf("frames %v, want 14991", out.summary["frames"])
			}
		})
	}
}

// TestMonitorCountsWhatTheDBCDoesNotExpect checks the summary against counts
// made independently of the program (a script over the log and the DBC's BO_
// lines): with the community DBC, 221 frames have another length than the
// DBC declares (0x249, 0x281, 0x264: 69 each; 0x24A, 0x399: 7 each), and 7
// frames of 0x381 carry multiplexor value 22 (0xF6 & 0x1F), which the DBC
// does not list (it lists 0..18).
func TestMonitorCountsWhatTheDBCDoesNotExpect(t *testing.T) {
	candump := vehicledata.Require(t, "model3-2019-chargeport-open.candump.log")
	community := vehicledata.Require(t, "tesla-model3-community.dbc")
	out := runMonitorJSON(t, "--profile", "tesla-model3", "--dbc", community, "--can", candump)
	want := map[string]any{
		"length_mismatch_frames": 221.0,
		"unknown_mux_frames":     7.0,
		"bad_lines":              0.0,
	}
	for k, v := range want {
		if out.summary[k] != v {
			t.Errorf("%s = %v, want %v", k, out.summary[k], v)
		}
	}
	byID, _ := out.summary["length_mismatch_by_id"].(map[string]any)
	for id, n := range map[string]float64{"0x249": 69, "0x281": 69, "0x264": 69, "0x24A": 7, "0x399": 7} {
		if byID[id] != n {
			t.Errorf("length mismatches of %s: %v, want %v", id, byID[id], n)
		}
	}
	if mux, _ := out.summary["unknown_mux_by_id"].(map[string]any); mux["0x381"] != 7.0 {
		t.Errorf("unknown mux of 0x381: %v, want 7", mux["0x381"])
	}
}

// TestMonitorSkipsGarbageLines feeds a log with broken lines: each is
// reported with its line number and skipped, and the good frames around them
// still decode.
func TestMonitorSkipsGarbageLines(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"monitor", "--json", "--speed", "0", "--can", "candump:testdata/garbage.log"}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	for _, want := range []string{"line 2", "line 3", "line 4"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("log does not mention %s:\n%s", want, stderr.String())
		}
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	var last, summary map[string]any
	for _, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatal(err)
		}
		switch m["type"] {
		case "state":
			last = m
		case "summary":
			summary = m
		}
	}
	if summary["bad_lines"] != 3.0 {
		t.Errorf("bad_lines %v, want 3", summary["bad_lines"])
	}
	// 4A0#F401: SOC 0x1F4 = 500 -> 50.0 %, from the last good line.
	if last["soc_pct"] != 50.0 {
		t.Errorf("soc %v, want 50.0 from the good lines", last["soc_pct"])
	}
}

func TestMonitorUsageErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
		code int
	}{
		{"no source", []string{"monitor"}, "--can is required", 2},
		{"unknown profile", []string{"monitor", "--can", "x.log", "--profile", "nope"}, "no built-in profile", 1},
		{"missing file", []string{"monitor", "--can", "candump:testdata/no-such.log"}, "no-such.log", 1},
		{"unknown command", []string{"fly"}, "unknown command", 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), tc.args, &stdout, &stderr)
			if code != tc.code || !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("exit %d, stderr %q; want exit %d mentioning %q", code, stderr.String(), tc.code, tc.want)
			}
		})
	}
}
