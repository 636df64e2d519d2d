package rapi

import (
	"errors"
	"fmt"
	"math"
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
		// Ws*5 overflowed int64 and gave negative energy.
		{math.MaxInt64, 2_562_047_788_015_215_501},
		{-4, -1}, {-3, 0},
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
		// Found by FuzzReplyValues: the firmware prints the capacity
		// from a uint8_t, so these are noise, not currents.
		{cs("$AT 03 03 -5 0000"), StateNotice{}, "current capacity \"-5\""},
		{cs("$AT 03 03 256 0000"), StateNotice{}, "current capacity \"256\""},
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
		{"03", "-1"}, // found by FuzzReplyValues: a negative charge time
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

// Found by FuzzReplyValues: meter readings were parsed as any int64, so a
// garbled but checksummed reply overflowed the power (V*I) and the energy
// (Ws*5) into negative numbers. The firmware prints them from 32-bit
// variables, so anything wider is refused.
func TestParseMeterRange(t *testing.T) {
	tests := []struct {
		cmd     string
		signed  bool
		fields  []string
		want    []int64
		wantErr string
	}{
		{"$GG", true, []string{"31950", "239800"}, []int64{31950, 239800}, ""},
		{"$GG", true, []string{"-1", "240000"}, []int64{-1, 240000}, ""},
		{"$GG", true, []string{"2147483647", "-2147483648"}, []int64{math.MaxInt32, math.MinInt32}, ""},
		{"$GG", true, []string{"2147483648", "240000"}, nil, `$GG milliamps "2147483648" (field 1) is not a signed 32-bit`},
		{"$GG", true, []string{"9223372036854775807", "9223372036854775807"}, nil, "milliamps"},
		{"$GU", false, []string{"4294967295", "4294967295"}, []int64{math.MaxUint32, math.MaxUint32}, ""},
		{"$GU", false, []string{"4294967296", "0"}, nil, `$GU watt-seconds "4294967296" (field 1) is not an unsigned`},
		{"$GU", false, []string{"0", "-1"}, nil, `$GU watt-hours "-1" (field 2)`},
		{"$GU", false, []string{"0"}, nil, "want 2 fields"},
	}
	for _, tt := range tests {
		names := []string{"milliamps", "millivolts"}
		if tt.cmd == "$GU" {
			names = []string{"watt-seconds", "watt-hours"}
		}
		got, err := parseInts(tt.cmd, tt.signed, tt.fields, names...)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%s %q: err %v, want %q", tt.cmd, tt.fields, err, tt.wantErr)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s %q: %v, %v; want %v", tt.cmd, tt.fields, got, err, tt.want)
		}
	}
	// At the extremes the status still adds up.
	st := buildStatus(stateReply{EVSE: StateC}, meterReply{CurrentMA: math.MaxInt32, VoltageMV: math.MaxInt32, SessionWs: math.MaxUint32})
	if st.PowerW != 4_611_686_014_132 || st.SessionMWh != 1_193_046_470 {
		t.Errorf("status at the extremes: %+v", st)
	}
}

// Found by FuzzReplyValues: the $SC reply was read with Atoi, so a
// negative or zero current passed as "capped below the request", and a
// bare $OK gave a message with "%!w(<nil>)" in it.
func TestSetCurrentReply(t *testing.T) {
	refused := fmt.Errorf("%w: $SC 16 V answered $NK", ErrRefused)
	tests := []struct {
		name    string
		line    string
		asked   int
		refused error
		want    int
		wantErr string
		wantIs  error
	}{
		{"set as asked", cs("$OK 16"), 16, nil, 16, "", nil},
		{"capped down", cs("$NK 32"), 40, refused, 32, "", nil},
		{"clamped up to the minimum", cs("$NK 6"), 6, refused, 6, "", nil},
		{"set above the request", cs("$NK 32"), 16, refused, 32, "rapi: $SC 16 V: asked for at most 16 A, the EVSE set 32 A", nil},
		{"no current, $OK", "$OK^20", 16, nil, 0, "rapi: $SC 16 V: reply $OK carries no current", nil},
		{"no current, $NK", "$NK^21", 16, refused, 0, "carries no current", ErrRefused},
		{"negative", cs("$OK -1"), 16, nil, 0, `current "-1" is not a decimal from 0 to 255`, nil},
		{"zero", cs("$OK 0"), 16, nil, 0, "0 A is below J1772's minimum of 6 A", nil},
		{"too big to be a current", cs("$OK 300"), 16, nil, 0, `current "300"`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := ParseLine([]byte(tt.line))
			if err != nil {
				t.Fatal(err)
			}
			got, err := setCurrentReply(tt.asked, f, tt.refused)
			if tt.wantErr == "" {
				if err != nil || got != tt.want {
					t.Fatalf("got %d, %v; want %d", got, err, tt.want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || strings.Contains(err.Error(), "%!") {
				t.Fatalf("err %v, want %q", err, tt.wantErr)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("err %v does not wrap %v", err, tt.wantIs)
			}
		})
	}
}
