package vehicleprofile

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"satwatt/dbc"
)

func genericText(t *testing.T) string {
	t.Helper()
	b, err := fs.ReadFile(dbc.Builtin, "profiles/generic.toml")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func bindText(t *testing.T, text string) (*Binding, error) {
	t.Helper()
	p, err := Parse("test.toml", []byte(text), "")
	if err != nil {
		return nil, err
	}
	db, err := p.LoadDBC("")
	if err != nil {
		t.Fatal(err)
	}
	sdb, err := p.LoadStatusDBC(db)
	if err != nil {
		t.Fatal(err)
	}
	return p.Bind(db, sdb)
}

func TestBuiltinProfilesBind(t *testing.T) {
	names := Builtins()
	if len(names) < 2 {
		t.Fatalf("built-in profiles: %v, want generic and tesla-model3", names)
	}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			b, err := LoadBinding(name, "")
			if err != nil {
				t.Fatal(err)
			}
			for _, role := range []string{RoleSOC, RolePackEnergy, RoleCable, RolePortDoor, RoleChargingState, RolePackVoltage, RolePackCurrent} {
				if b.Roles[role] == nil {
					t.Errorf("role %s not bound", role)
				}
			}
			if len(b.StatusMessages) != 2 {
				t.Errorf("status messages: %d, want 2", len(b.StatusMessages))
			}
		})
	}
}

func TestBindFactors(t *testing.T) {
	tests := []struct {
		profile, role string
		factor        float64
	}{
		{"generic", RoleSOC, 1},
		{"generic", RolePackEnergy, 1000}, // kWh in the DBC, Wh in the state
		{"generic", RolePackCurrent, 1},   // already charge-positive
		{"tesla-model3", RolePackCurrent, -1},
		{"tesla-model3", RoleChargePower, 1000}, // kW
	}
	for _, tc := range tests {
		t.Run(tc.profile+"/"+tc.role, func(t *testing.T) {
			b, err := LoadBinding(tc.profile, "")
			if err != nil {
				t.Fatal(err)
			}
			if got := b.Roles[tc.role].Factor; got != tc.factor {
				t.Errorf("factor %v, want %v", got, tc.factor)
			}
		})
	}
}

// TestBadProfiles checks that each mistake a user can make in a profile is
// refused with an error that says what is wrong.
func TestBadProfiles(t *testing.T) {
	base := genericText(t)
	tests := []struct {
		name    string
		edit    func(string) string
		wantErr []string
	}{
		{"syntax error names the line", func(s string) string {
			return strings.Replace(s, `signal = "EV_StateOfCharge"`, `signal = "EV_StateOfCharge`, 1)
		}, []string{"test.toml:", "line"}},
		{"unknown key", func(s string) string {
			return strings.Replace(s, `signal = "EV_StateOfCharge"`, "signal = \"EV_StateOfCharge\"\nsignl = \"x\"", 1)
		}, []string{"unknown keys", "signl"}},
		{"unknown role", func(s string) string {
			return s + "\n[roles.fuel_level]\nmessage = 0x4A0\nsignal = \"EV_StateOfCharge\"\n"
		}, []string{`unknown role "fuel_level"`}},
		{"signal the DBC lacks", func(s string) string {
			return strings.Replace(s, `"EV_StateOfCharge"`, `"EV_SOC"`, 1)
		}, []string{"role soc", `no signal "EV_SOC"`, "EV_StateOfCharge"}},
		{"message the DBC lacks", func(s string) string {
			return strings.Replace(s, "[roles.soc]\nmessage = 0x4A0", "[roles.soc]\nmessage = 0x7FF", 1)
		}, []string{"role soc", "no message 0x7FF"}},
		{"numeric role on a state signal's unit", func(s string) string {
			return strings.Replace(s, `signal = "EV_StateOfCharge"`, `signal = "EV_PackVoltage"`, 1)
		}, []string{"role soc", "needs a signal in %", `"V"`}},
		{"state value the table lacks", func(s string) string {
			return strings.Replace(s, `connected = ["CONNECTED", "LATCHED"]`, `connected = ["PLUGGED"]`, 1)
		}, []string{"role cable", `no value "PLUGGED"`, "DISCONNECTED"}},
		{"state role on a scaled signal", func(s string) string {
			return strings.Replace(s, "message = 0x4A2\nsignal = \"EV_PortDoor\"", "message = 0x4A3\nsignal = \"EV_ACVoltage\"", 1)
		}, []string{"role port_door", "integer raw values"}},
		{"raw value out of the signal's range", func(s string) string {
			return strings.Replace(s, `open = ["OPEN"]`, `open = [9]`, 1)
		}, []string{"role port_door", "raw value 9 does not fit"}},
		{"required role missing", func(s string) string {
			return strings.Replace(s, "[roles.soc]\nmessage = 0x4A0\nsignal = \"EV_StateOfCharge\"\n", "", 1)
		}, []string{"role soc is required"}},
		{"bad sign", func(s string) string {
			return strings.Replace(s, "\nsign = \"charge_positive\"", "\nsign = \"positive\"", 1)
		}, []string{"pack_current", "charge_positive"}},
		{"status state signal without the state names", func(s string) string {
			return strings.Replace(s, `state = { message = 0x5A0, signal = "SW_State" }`, `state = { message = 0x5A0, signal = "SW_Error" }`, 1)
		}, []string{"status signal state", "lacks the value-table names", "CHARGING"}},
		{"several problems at once are all reported", func(s string) string {
			s = strings.Replace(s, `"EV_StateOfCharge"`, `"EV_SOC"`, 1)
			return strings.Replace(s, `"EV_PackVoltage"`, `"EV_Volts"`, 1)
		}, []string{"EV_SOC", "EV_Volts"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			text := tc.edit(base)
			if text == base {
				t.Fatal("the edit changed nothing: the test is out of date with generic.toml")
			}
			_, err := bindText(t, text)
			if err == nil {
				t.Fatal("accepted, want an error")
			}
			for _, want := range tc.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
		})
	}
}

func TestLoadFromFileResolvesRelativeDBC(t *testing.T) {
	dir := t.TempDir()
	dbcText, err := fs.ReadFile(dbc.Builtin, "satwatt.dbc")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "mycar.dbc"), dbcText, 0o644); err != nil {
		t.Fatal(err)
	}
	text := strings.Replace(genericText(t), `dbc = "builtin:satwatt.dbc"`, `dbc = "mycar.dbc"`, 1)
	text = strings.Replace(text, `name = "generic"`, `name = "mycar"`, 1)
	path := filepath.Join(dir, "mycar.toml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	db, err := p.LoadDBC("")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(db.Source, "mycar.dbc") {
		t.Errorf("DBC source %q, want the file beside the profile", db.Source)
	}
}

func TestUnknownBuiltin(t *testing.T) {
	_, err := Load("no-such-car")
	if err == nil || !strings.Contains(err.Error(), "generic") {
		t.Fatalf("error %v should list the built-in profiles", err)
	}
}

// TestParseErrorsNameTheLine: every refusal of a key the profile has names
// the key's line, in the same words whichever part refused it (the TOML
// syntax, a value's type, or the checks after decoding), and a profile
// with several problems always reports the same one.
func TestParseErrorsNameTheLine(t *testing.T) {
	base := genericText(t)
	tests := []struct {
		name     string
		from, to string
		want     string // the error's start
		says     string
	}{
		{"syntax", `signal = "EV_StateOfCharge"`, `signal = "EV_StateOfCharge`, "profile test.toml:42: ", "newlines"},
		{"value of the wrong type", `name = "generic"`, `name = 1`, "profile test.toml:35: ", `incompatible types`},
		{"message ID out of range", "[roles.soc]\nmessage = 0x4A0", "[roles.soc]\nmessage = -1", "profile test.toml:41: ", `message ID -1 is not a CAN ID (last key "roles.soc.message")`},
		{"bad duration", `energy_from = "charge_power"`, "energy_from = \"charge_power\"\nstale_after = \"-1s\"", "profile test.toml:39: ", `must be positive (last key "stale_after")`},
		{"unknown key", `signal = "EV_StateOfCharge"`, "signal = \"EV_StateOfCharge\"\nsignl = \"x\"", "profile test.toml:43: ", "unknown keys: roles.soc.signl"},
		{"unknown role", "[roles.soc]", "[roles.fuel]\nmessage = 1\nsignal = \"x\"\n[roles.soc]", "profile test.toml:40: ", `unknown role "fuel"`},
		{"role without a signal", "signal = \"EV_PackVoltage\"\n", "", "profile test.toml:44: ", "role pack_voltage needs both message and signal"},
		{"state role without values", `open = ["OPEN"]`, "", "profile test.toml:72: ", "role port_door lists no values"},
		{"pack energy kind", "\nkind = \"usable\"", "\nkind = \"full\"", "profile test.toml:56: ", `kind = "usable" or "nominal", not "full"`},
		{"pack current sign", "\nsign = \"charge_positive\"", "\nsign = \"positive\"", "profile test.toml:51: ", `not "positive"`},
		{"energy source", `energy_from = "charge_power"`, `energy_from = "sun"`, "profile test.toml:38: ", `energy_from must be`},
		{"unknown status signal", `counter = {`, `count = {`, "profile test.toml:103: ", `unknown status signal "count"`},
		{"inline role", "[roles.soc]\nmessage = 0x4A0\nsignal = \"EV_StateOfCharge\"\n", "roles.soc = { message = 0x4A0 }\n", "profile test.toml:40: ", "role soc needs both"},
		// Problems at two roles: the first in sorted order, every time
		// (the roles are a map), not either at random.
		{"two problems", "signal = \"EV_PackVoltage\"\n", "", "profile test.toml:57: ", "role energy_remaining needs both"},
		// A missing key has no line.
		{"missing role", "[roles.soc]\nmessage = 0x4A0\nsignal = \"EV_StateOfCharge\"\n", "", "profile test.toml: ", "role soc is required"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			text := strings.Replace(base, tc.from, tc.to, 1)
			if tc.name == "two problems" {
				text = strings.Replace(text, "signal = \"EV_UsableEnergyRemaining\"\n", "", 1)
			}
			if text == base {
				t.Fatal("the edit changed nothing: the test is out of date with generic.toml")
			}
			for range 20 {
				_, err := Parse("test.toml", []byte(text), "")
				if err == nil {
					t.Fatal("accepted, want an error")
				}
				if !strings.HasPrefix(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.says) {
					t.Fatalf("error %q, want it to start %q and say %q", err, tc.want, tc.says)
				}
			}
		})
	}
}
