package rapi

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"satwatt/internal/evse"
)

func TestWsToMWh(t *testing.T) {
	for _, tt := range []struct{ ws, mwh int64 }{
		{0, 0}, {3, 0}, {4, 1}, {18, 5}, {3600, 1000}, {36, 10},
		{3_600_000, 1_000_000},         // 1 kWh
		{4_294_967_295, 1_193_046_470}, // the firmware's uint32 maximum
	} {
		if got := WsToMWh(tt.ws); got != tt.mwh {
			t.Errorf("WsToMWh(%d) = %d, want %d", tt.ws, got, tt.mwh)
		}
	}
}

func TestParseStateNotice(t *testing.T) {
	tests := []struct {
		line    string
		want    StateNotice
		wantErr string
	}{
		{cs("$AT 03 03 32 0140"), StateNotice{EVSE: StateC, Pilot: StateC, CurrentA: 32, VFlags: 0x0140}, ""},
		{cs("$AT fe 02 16 0100"), StateNotice{EVSE: StateSleeping, Pilot: StateB, CurrentA: 16, VFlags: 0x0100}, ""},
		{cs("$ST 08"), StateNotice{EVSE: StateStuckRelay, CurrentA: -1}, ""},
		{cs("$AT 03 03 32"), StateNotice{}, "want 4 fields"},
		{cs("$AT 3g 03 32 0000"), StateNotice{}, "evse state"},
		{cs("$AT 03 03 x 0000"), StateNotice{}, "current capacity"},
		{cs("$AT 03 03 32 fffff"), StateNotice{}, "vflags"},
		{cs("$ST"), StateNotice{}, "want 1 field"},
		{cs("$OK 1"), StateNotice{}, "not a state notice"},
	}
	for _, tt := range tests {
		f, err := ParseLine([]byte(tt.line))
		if err != nil {
			t.Fatal(err)
		}
		got, err := ParseStateNotice(f)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%s: err %v, want %q", tt.line, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("%s: %+v, %v; want %+v", tt.line, got, err, tt.want)
		}
	}
}

func TestStatusMapping(t *testing.T) {
	meter := meterReply{CurrentMA: 31_950, VoltageMV: 239_800, SessionWs: 7_200_000, TotalWh: 1234}
	tests := []struct {
		name string
		gs   []string
		m    meterReply
		want evse.Status
	}{
		{"charging", []string{"03", "600", "03", "0140"}, meter, evse.Status{
			Pilot: evse.PilotC, Enabled: true, ContactorClosed: true,
			PowerW: 7661, VoltageMV: 239_800, CurrentMA: 31_950, SessionMWh: 2_000_000}},
		{"connected, not asking", []string{"02", "0", "02", "0100"}, meterReply{VoltageMV: 240_000}, evse.Status{
			Pilot: evse.PilotB, Enabled: true, VoltageMV: 240_000}},
		{"no vehicle", []string{"01", "0", "01", "0000"}, meterReply{VoltageMV: 240_000}, evse.Status{
			Pilot: evse.PilotA, Enabled: true, VoltageMV: 240_000}},
		{"sleeping, vehicle connected", []string{"fe", "600", "02", "0100"}, meterReply{VoltageMV: 240_000, SessionWs: 36}, evse.Status{
			Pilot: evse.PilotB, VoltageMV: 240_000, SessionMWh: 10}},
		{"disabled, no vehicle", []string{"ff", "0", "01", "0000"}, meterReply{}, evse.Status{Pilot: evse.PilotA}},
		{"stuck relay: assume closed", []string{"08", "0", "02", "0102"}, meterReply{VoltageMV: 240_000}, evse.Status{
			Pilot: evse.PilotB, ContactorClosed: true, VoltageMV: 240_000, Fault: "stuck relay"}},
		{"ground fault", []string{"06", "0", "02", "0182"}, meterReply{}, evse.Status{Pilot: evse.PilotB, Fault: "ground fault (GFCI tripped)"}},
		{"diode check: pilot error", []string{"05", "0", "00", "0000"}, meterReply{}, evse.Status{Pilot: evse.PilotE, Fault: "pilot diode check failed"}},
		{"unknown fault number", []string{"0c", "0", "00", "0000"}, meterReply{}, evse.Status{Pilot: evse.PilotF, Fault: "fault state 0x0C"}},
		{"vent required", []string{"04", "0", "04", "0100"}, meterReply{}, evse.Status{Pilot: evse.PilotD, Fault: "vehicle requires ventilation (state D)"}},
		{"old firmware: state and elapsed only", []string{"03", "60"}, meter, evse.Status{
			Pilot: evse.PilotC, Enabled: true, ContactorClosed: true,
			PowerW: 7661, VoltageMV: 239_800, CurrentMA: 31_950, SessionMWh: 2_000_000}},
		{"old firmware sleeping", []string{"fe", "60"}, meterReply{}, evse.Status{}},
		{"no ammeter reports -1 mA", []string{"03", "60", "03", "0040"}, meterReply{CurrentMA: -1, VoltageMV: 240_000}, evse.Status{
			Pilot: evse.PilotC, Enabled: true, ContactorClosed: true, VoltageMV: 240_000}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gs, err := parseGS(tt.gs)
			if err != nil {
				t.Fatal(err)
			}
			if got := buildStatus(gs, tt.m); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestParseGSBad(t *testing.T) {
	for _, fields := range [][]string{
		nil, {"03"}, {"03", "1", "03"}, {"xx", "1"}, {"03", "-"}, {"03", "1", "zz", "0"}, {"03", "1", "03", "10000"},
	} {
		if _, err := parseGS(fields); err == nil {
			t.Errorf("parseGS(%q) accepted", fields)
		}
	}
}

func TestSupervisionSeconds(t *testing.T) {
	for _, tt := range []struct {
		hb   string
		want int
	}{{"10s", 30}, {"1s", 3}, {"100ms", 1}, {"1ms", 1}, {"7500ms", 23}, {"10h", 65535}} {
		d, _ := time.ParseDuration(tt.hb)
		if got := supervisionSeconds(d); got != tt.want {
			t.Errorf("supervisionSeconds(%s) = %d, want %d", tt.hb, got, tt.want)
		}
	}
}
