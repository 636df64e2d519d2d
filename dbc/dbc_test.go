package dbc

import (
	"errors"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func loadTestdata(t *testing.T, name string) *Database {
	t.Helper()
	db, err := LoadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatalf("loading %s: %v", name, err)
	}
	return db
}

func TestBrokenFiles(t *testing.T) {
	for _, tc := range []struct {
		file   string
		line   int // 0: the whole file
		reason string
	}{
		{"broken-syntax.dbc", 11, "expected"},
		{"broken-zero-factor.dbc", 11, "signal Zero: factor (scale) is 0"},
		{"broken-duplicate-id.dbc", 12, "message B: duplicate ID 256 (0x100), already used by A at line 9"},
		{"broken-duplicate-name.dbc", 12, "message A: duplicate name"},
		{"broken-canfd.dbc", 12, "message Fd: CAN FD messages (size 64) are not supported"},
		{"broken-signal-size-0.dbc", 11, "signal Empty: size 0 bits is outside 1..64"},
		{"broken-signal-size-65.dbc", 11, "signal Huge: size 65 bits is outside 1..64"},
		{"broken-two-mux.dbc", 11, "message A: more than one multiplexor (Mux1 and Mux2)"},
		{"broken-muxed-without-mux.dbc", 11, "signal Orphan is multiplexed (m1) but the message has no multiplexor (M)"},
		{"broken-duplicate-signal.dbc", 11, "message A: duplicate signal name Same"},
		{"broken-start-bit.dbc", 11, "signal Late: start bit 64 is beyond bit 63"},
		{"broken-past-frame.dbc", 11, "signal Spill: bits 60..67 run past bit 63"},
		{"broken-past-frame-motorola.dbc", 12, "signal MSpill2: 12 big-endian bits from start bit 58 run past the end"},
		{"broken-float64.dbc", 13, "signal Double: SIG_VALTYPE_ 2 (IEEE double) is not supported"},
		{"broken-float-size.dbc", 12, "signal Good: IEEE float needs 32 bits, the signal has 8"},
		{"empty.dbc", 0, "no messages"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			path := filepath.Join("testdata", tc.file)
			db, err := LoadFile(path)
			if err == nil {
				t.Fatalf("loaded %d messages, want an error", len(db.Messages))
			}
			var fe *FileError
			if !errors.As(err, &fe) {
				t.Fatalf("error %q (%T) is not a *FileError", err, err)
			}
			if fe.File != path || fe.Line != tc.line {
				t.Errorf("error at %s line %d, want %s line %d", fe.File, fe.Line, path, tc.line)
			}
			if !strings.Contains(fe.Reason, tc.reason) {
				t.Errorf("reason %q does not contain %q", fe.Reason, tc.reason)
			}
			prefix := path + ": "
			if tc.line != 0 {
				prefix = path + ":" + strconv.Itoa(tc.line) + ":"
				if fe.Column < 1 {
					t.Errorf("column %d, want a column", fe.Column)
				}
			}
			if !strings.HasPrefix(err.Error(), prefix) {
				t.Errorf("error %q does not start with %q", err, prefix)
			}
		})
	}
}

func TestSyntaxErrorUnwrapsToParserError(t *testing.T) {
	_, err := LoadFile(filepath.Join("testdata", "broken-syntax.dbc"))
	var fe *FileError
	if !errors.As(err, &fe) || errors.Unwrap(fe) == nil {
		t.Fatalf("syntax error %v does not wrap the parser's error", err)
	}
}

func TestWarnings(t *testing.T) {
	const path = "testdata/warnings.dbc"
	db := loadTestdata(t, "warnings.dbc")
	want := []struct {
		line int
		msg  string
	}{
		{11, "signal Overhang needs 7 bytes but message Short declares 5"},
		{13, "CM_ SG_ refers to unknown message ID 999"},
		{14, "CM_ SG_ refers to unknown signal Ghost in message Short"},
		{15, "VAL_ refers to unknown message ID 999"},
		{16, "VAL_ refers to unknown signal Ghost"},
		{17, "SIG_VALTYPE_ refers to unknown signal Ghost"},
	}
	if len(db.Warnings) != len(want) {
		t.Fatalf("got %d warnings %v, want %d", len(db.Warnings), db.Warnings, len(want))
	}
	for i, w := range want {
		got := db.Warnings[i]
		if !strings.HasPrefix(got.Pos, path+":"+strconv.Itoa(w.line)+":") || !strings.Contains(got.Msg, w.msg) {
			t.Errorf("warning %d = %q, want line %d and %q", i, got.String(), w.line, w.msg)
		}
	}
}

func TestLoadFileMissing(t *testing.T) {
	path := filepath.Join("testdata", "does-not-exist.dbc")
	_, err := LoadFile(path)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("error %v does not wrap fs.ErrNotExist", err)
	}
	if !strings.Contains(err.Error(), path) {
		t.Errorf("error %q does not name %s", err, path)
	}
}

func TestLoadBuiltin(t *testing.T) {
	for _, tc := range []struct {
		name     string
		messages int
		err      string
	}{
		{"satwatt.dbc", 6, ""},
		{"tesla-model3.dbc", 8, ""},
		{"nissan-leaf.dbc", 0, "available: satwatt.dbc, tesla-model3.dbc"},
		{"profiles/generic.toml", 0, "no built-in DBC named"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db, err := LoadBuiltin(tc.name)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(db.Messages) != tc.messages || len(db.Desc.Messages) != tc.messages {
				t.Errorf("%d messages (%d descriptors), want %d", len(db.Messages), len(db.Desc.Messages), tc.messages)
			}
			if len(db.Warnings) != 0 {
				t.Errorf("warnings in a built-in DBC: %v", db.Warnings)
			}
			if db.Source != "builtin:"+tc.name {
				t.Errorf("source %q", db.Source)
			}
		})
	}
}

// The lead's profiles and the simulated car use these names and layouts; a
// change here must be a deliberate one.
func TestSatwattDBC(t *testing.T) {
	db, err := LoadBuiltin("satwatt.dbc")
	if err != nil {
		t.Fatal(err)
	}
	type sig struct {
		name          string
		start, length uint8
		signed        bool
		factor        float64
		min, max      float64
		unit          string
	}
	for _, tc := range []struct {
		id      uint32
		name    string
		sender  string
		cycle   time.Duration
		signals []sig
	}{
		{0x4A0, "EV_BatteryStatus", "EV", 100 * time.Millisecond, []sig{
			{"EV_StateOfCharge", 0, 10, false, 0.1, 0, 100, "%"},
			{"EV_PackVoltage", 16, 16, false, 0.01, 0, 655.35, "V"},
			{"EV_PackCurrent", 32, 16, true, 0.1, -3276.8, 3276.7, "A"},
			{"EV_PackTemperature", 48, 8, true, 1, -128, 127, "degC"},
		}},
		{0x4A1, "EV_BatteryEnergy", "EV", time.Second, []sig{
			{"EV_UsableEnergyFull", 0, 16, false, 0.01, 0, 655.35, "kWh"},
			{"EV_UsableEnergyRemaining", 16, 16, false, 0.01, 0, 655.35, "kWh"},
			{"EV_NominalEnergyFull", 32, 16, false, 0.01, 0, 655.35, "kWh"},
		}},
		{0x4A2, "EV_ChargePort", "EV", 100 * time.Millisecond, []sig{
			{"EV_CableState", 0, 2, false, 1, 0, 3, ""},
			{"EV_PortDoor", 2, 2, false, 1, 0, 3, ""},
			{"EV_ChargeState", 8, 4, false, 1, 0, 15, ""},
			{"EV_ChargeMode", 12, 2, false, 1, 0, 3, ""},
			{"EV_TargetSOC", 16, 7, false, 1, 0, 100, "%"},
		}},
		{0x4A3, "EV_ChargePower", "EV", 100 * time.Millisecond, []sig{
			{"EV_ACVoltage", 0, 16, false, 0.1, 0, 1000, "V"},
			{"EV_ACCurrent", 16, 16, false, 0.1, 0, 1000, "A"},
			{"EV_ChargePower", 32, 20, false, 1, 0, 1000000, "W"},
		}},
		{0x5A0, "SATWATT_Status", "SATWATT", time.Second, []sig{
			{"SW_State", 0, 4, false, 1, 0, 15, ""},
			{"SW_Error", 4, 4, false, 1, 0, 15, ""},
			{"SW_Counter", 8, 4, false, 1, 0, 15, ""},
			{"SW_CreditWh", 16, 16, true, 1, -32768, 32767, "Wh"},
			{"SW_EnergyBoughtWh", 32, 32, false, 1, 0, 4294967295, "Wh"},
		}},
		{0x5A1, "SATWATT_Wallet", "SATWATT", time.Second, []sig{
			{"SW_SatsSpent", 0, 32, false, 1, 0, 4294967295, "sat"},
			{"SW_BalanceSat", 32, 32, false, 1, 0, 4294967295, "sat"},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := db.Lookup(tc.id, false)
			if m == nil || m.Name != tc.name || db.MessageByName(tc.name) != m {
				t.Fatalf("message 0x%X: %v", tc.id, m)
			}
			if m.Length != 8 || m.CycleTime != tc.cycle || m.Desc.SenderNode != tc.sender {
				t.Errorf("length %d cycle %v sender %s", m.Length, m.CycleTime, m.Desc.SenderNode)
			}
			if m.Desc.Description == "" {
				t.Error("no CM_ comment")
			}
			if len(m.Signals) != len(tc.signals) {
				t.Errorf("%d signals, want %d", len(m.Signals), len(tc.signals))
			}
			for _, w := range tc.signals {
				s := m.Signal(w.name)
				if s == nil {
					t.Errorf("no signal %s", w.name)
					continue
				}
				d := s.Desc
				got := sig{s.Name, d.Start, d.Length, d.IsSigned, d.Scale, d.Min, d.Max, s.Unit}
				if got != w || d.IsBigEndian || d.Offset != 0 {
					t.Errorf("signal %+v (big-endian %v, offset %v), want %+v", got, d.IsBigEndian, d.Offset, w)
				}
				if d.Description == "" {
					t.Errorf("signal %s has no CM_ comment", w.name)
				}
			}
		})
	}
	if c := db.Lookup(0x4A0, false).Signal("EV_PackCurrent").Desc.Description; !strings.Contains(c, "INTO the pack") {
		t.Errorf("EV_PackCurrent comment %q does not give the sign convention", c)
	}
}

func TestSatwattValueTables(t *testing.T) {
	db, err := LoadBuiltin("satwatt.dbc")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		message uint32
		signal  string
		want    []string // by raw value; "" for no entry
	}{
		{0x4A2, "EV_CableState", []string{"DISCONNECTED", "CONNECTED", "LATCHED", "SNA"}},
		{0x4A2, "EV_PortDoor", []string{"CLOSED", "OPEN", "", "SNA"}},
		{0x4A2, "EV_ChargeState", []string{"IDLE", "READY", "CHARGING", "COMPLETE", "FAULT", "", "", "", "", "", "", "", "", "", "", "SNA"}},
		{0x4A2, "EV_ChargeMode", []string{"NONE", "AC", "DC", "SNA"}},
		{0x5A0, "SW_State", []string{"IDLE", "PLUGGED", "DISCOVERING", "NEGOTIATING", "CHARGING", "SUSPENDED", "COMPLETE", "STOPPED", "ERROR", ""}},
		{0x5A0, "SW_Error", []string{"NONE", "LOW_BALANCE", "PRICE_ABOVE_LIMIT", "NO_WALL_FOUND", "WALL_ERROR", "PAYMENT_FAILED",
			"NODE_UNREACHABLE", "METER_MISMATCH", "BUDGET_REACHED", "INVOICE_REJECTED", "VEHICLE_DATA_STALE", ""}},
		{0x5A0, "SW_Counter", nil},
	} {
		t.Run(tc.signal, func(t *testing.T) {
			s := db.Lookup(tc.message, false).Signal(tc.signal)
			if s.HasValueTable() != (tc.want != nil) {
				t.Errorf("HasValueTable = %v", s.HasValueTable())
			}
			for raw, want := range tc.want {
				got, ok := s.ValueName(int64(raw))
				if got != want || ok != (want != "") {
					t.Errorf("ValueName(%d) = %q, %v; want %q", raw, got, ok, want)
				}
				if want == "" {
					continue
				}
				if r, ok := s.RawValue(want); !ok || r != int64(raw) {
					t.Errorf("RawValue(%q) = %d, %v; want %d", want, r, ok, raw)
				}
			}
			if _, ok := s.RawValue("NO_SUCH_NAME"); ok {
				t.Error("RawValue of an unknown name succeeded")
			}
		})
	}
}

func TestLookup(t *testing.T) {
	db := loadTestdata(t, "codec.dbc")
	for _, tc := range []struct {
		id       uint32
		extended bool
		want     string // "" for nil
	}{
		{0x100, false, "Intel"},
		{0x200, false, "Moto"},
		{0x200, true, "Extended"},
		{0x100, true, ""},
		{0x7FF, false, ""},
		{0, false, ""},
		{0x1FFFFFFF, true, ""},
	} {
		m := db.Lookup(tc.id, tc.extended)
		got := ""
		if m != nil {
			got = m.Name
			if m.ID != tc.id || m.Extended != tc.extended {
				t.Errorf("Lookup(0x%X, %v) gave ID 0x%X extended %v", tc.id, tc.extended, m.ID, m.Extended)
			}
		}
		if got != tc.want {
			t.Errorf("Lookup(0x%X, %v) = %q, want %q", tc.id, tc.extended, got, tc.want)
		}
	}
	if db.MessageByName("Nope") != nil || db.Lookup(0x100, false).Signal("Nope") != nil {
		t.Error("unknown names must give nil")
	}
	// Messages are sorted by ID, standard before extended.
	for i := 1; i < len(db.Messages); i++ {
		a, b := db.Messages[i-1], db.Messages[i]
		if key(a.ID, a.Extended) >= key(b.ID, b.Extended) {
			t.Errorf("messages out of order: %s before %s", a.Name, b.Name)
		}
	}
	if got := db.Lookup(0x100, false).Signal("Temp").Pos; got != "testdata/codec.dbc:15" {
		t.Errorf("signal Pos %q", got)
	}
}

// TestAttributeAndValueChecks covers what fuzzing found in values the
// parser accepts but the compiler must not take as they are.
func TestAttributeAndValueChecks(t *testing.T) {
	const head = "VERSION \"\"\nNS_ :\nBS_:\nBU_: T\nBO_ 1 A: 8 T\n SG_ S : 0|4@1+ (1,0) [0|15] \"\" T\n SG_ N : 8|4@1- (1,0) [-8|7] \"\" T\n"
	for _, tc := range []struct {
		name    string
		text    string
		cycle   time.Duration
		values  map[string]int64 // value names that must stay
		dropped []string         // value names that must go
		warning string           // at line 9
	}{
		{
			// A millisecond count beyond time.Duration's range used to
			// wrap to a negative cycle time, which made every signal of
			// the message stale at once.
			name:    "cycle time overflowing time.Duration",
			text:    head + "BA_DEF_ BO_ \"GenMsgCycleTime\" INT 0 0;\nBA_DEF_DEF_ \"GenMsgCycleTime\" 9223372036854775;\n",
			warning: "default GenMsgCycleTime 9.223372036854776e+15 ms is over 1h0m0s; ignored",
		},
		{
			name:    "float cycle time overflowing time.Duration",
			text:    head + "BA_DEF_ BO_ \"GenMsgCycleTime\" FLOAT 0 0;\nBA_ \"GenMsgCycleTime\" BO_ 1 1e300;\n",
			warning: "GenMsgCycleTime of message A: 1e+300 ms is over 1h0m0s; ignored",
		},
		{
			name:    "negative cycle time",
			text:    head + "BA_DEF_ BO_ \"GenMsgCycleTime\" INT 0 0;\nBA_ \"GenMsgCycleTime\" BO_ 1 -5;\n",
			warning: "GenMsgCycleTime of message A: -5 ms is negative; ignored",
		},
		{
			name:  "cycle time within range",
			text:  head + "BA_DEF_ BO_ \"GenMsgCycleTime\" INT 0 0;\nBA_ \"GenMsgCycleTime\" BO_ 1 100;\n",
			cycle: 100 * time.Millisecond,
		},
		{
			// The community Model 3 DBC names value 2 of a 1-bit signal.
			name:    "value name beyond the signal's bits",
			text:    head + "\nVAL_ 1 S 0 \"OFF\" 16 \"HUGE\" 15 \"MAX\" ;\n",
			values:  map[string]int64{"OFF": 0, "MAX": 15},
			dropped: []string{"HUGE"},
			warning: "VAL_ for S: value 16 is outside the signal's raw range 0..15; ignored",
		},
		{
			name:    "negative value name of an unsigned signal",
			text:    head + "\nVAL_ 1 S -1 \"SNA\" ;\n",
			dropped: []string{"SNA"},
			warning: "value -1 is outside the signal's raw range 0..15",
		},
		{
			name:    "signed signal",
			text:    head + "\nVAL_ 1 N -8 \"MIN\" 7 \"MAX\" 8 \"OVER\" ;\n",
			values:  map[string]int64{"MIN": -8, "MAX": 7},
			dropped: []string{"OVER"},
			warning: "value 8 is outside the signal's raw range -8..7",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db, err := Parse("t.dbc", []byte(tc.text))
			if err != nil {
				t.Fatal(err)
			}
			if m := db.Lookup(1, false); m.CycleTime != tc.cycle || m.Desc.CycleTime != tc.cycle {
				t.Errorf("cycle time %v (descriptor %v), want %v", m.CycleTime, m.Desc.CycleTime, tc.cycle)
			}
			m := db.Lookup(1, false)
			for name, raw := range tc.values {
				sig := m.Signal("S")
				if _, ok := sig.RawValue(name); !ok {
					sig = m.Signal("N")
				}
				if got, ok := sig.RawValue(name); !ok || got != raw {
					t.Errorf("value %s = %d, %v; want %d", name, got, ok, raw)
				}
			}
			for _, name := range tc.dropped {
				for _, sig := range m.Signals {
					if raw, ok := sig.RawValue(name); ok {
						t.Errorf("value %s kept as %d in %s", name, raw, sig.Name)
					}
				}
			}
			if tc.warning == "" {
				if len(db.Warnings) != 0 {
					t.Errorf("warnings %v", db.Warnings)
				}
				return
			}
			if len(db.Warnings) != 1 || !strings.HasPrefix(db.Warnings[0].Pos, "t.dbc:9:") || !strings.Contains(db.Warnings[0].Msg, tc.warning) {
				t.Errorf("warnings %v, want one at line 9 saying %q", db.Warnings, tc.warning)
			}
		})
	}
}
