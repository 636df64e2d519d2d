package vehicleprofile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"

	"satwatt/dbc"
	"satwatt/internal/fuzzcheck"
)

const fuzzSource = "fuzz.toml"

// Allocation: the TOML decoder costs some tens of bytes per byte of text
// (the built-in profiles about 30); the bound leaves room for dense text,
// and the fixed part covers the decoder's tables and, on error, the second
// decode that finds the key's line.
const (
	parseAllocPerByte = 256
	parseAllocFixed   = 256 << 10
)

// errLine matches the start of an error that points at a line.
var errLine = regexp.MustCompile(`^profile ` + regexp.QuoteMeta(fuzzSource) + `:([0-9]+): `)

// Users write profiles for their own cars, so Parse takes any text: it must
// refuse what it cannot use with an error that names the profile and, for
// a problem at a key, the key's line; what it accepts must bind to a DBC
// without surprises. DBCs are read only when built in or from a temporary
// directory: a profile may name any path.
func FuzzParse(f *testing.F) {
	names, err := fs.Glob(dbc.Builtin, "profiles/*.toml")
	if err != nil || len(names) == 0 {
		f.Fatalf("built-in profiles: %v %v", names, err)
	}
	var generic string
	for _, name := range names {
		data, err := fs.ReadFile(dbc.Builtin, name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
		if strings.HasSuffix(name, "/generic.toml") {
			generic = string(data)
		}
	}
	// Broken variants of the generic profile, one mistake each.
	for _, edit := range [][2]string{
		{`signal = "EV_StateOfCharge"`, `signal = "EV_StateOfCharge`},
		{`signal = "EV_StateOfCharge"`, "signal = \"EV_StateOfCharge\"\nsignl = \"x\""},
		{"[roles.soc]\nmessage = 0x4A0", "[roles.soc]\nmessage = 0x7FF"},
		{"[roles.soc]\nmessage = 0x4A0", "[roles.soc]\nmessage = -1"},
		{"[roles.soc]\nmessage = 0x4A0", "[roles.soc]\nmessage = 1.5"},
		{"[roles.soc]\nmessage = 0x4A0", "[roles.soc]\nmessage = \"\""},
		{`dbc = "builtin:satwatt.dbc"`, `dbc = "car.dbc"`},
		{`dbc = "builtin:satwatt.dbc"`, `dbc = "builtin:nope.dbc"`},
		{`dbc = "builtin:satwatt.dbc"`, `dbc = "/etc/passwd"`},
		{`name = "generic"`, `name = ""`},
		{`connected = ["CONNECTED", "LATCHED"]`, `connected = [1.5, true, {a = 1}]`},
		{`connected = ["CONNECTED", "LATCHED"]`, `connected = [9223372036854775807]`},
		{`open = ["OPEN"]`, `open = []`},
		{"\nsign = \"charge_positive\"", "\nsign = \"positive\""},
		{`state = { message = 0x5A0, signal = "SW_State" }`, `stat = { message = 0x5A0, signal = "SW_State" }`},
		{`state = { message = 0x5A0, signal = "SW_State" }`, `state = { message = 0x5A0, signal = "SW_Error" }`},
	} {
		if v := strings.Replace(generic, edit[0], edit[1], 1); v != generic {
			f.Add([]byte(v))
		} else {
			f.Fatalf("the edit %q does not apply to generic.toml", edit[0])
		}
	}
	for _, s := range []string{
		"",
		"\x00",
		"name = 1",
		"name = \"x\"\ndbc = \"builtin:satwatt.dbc\"\nstale_after = \"-1s\"",
		"name = \"x\"\ndbc = \"builtin:satwatt.dbc\"\nstale_after = \"9999999999h\"",
		"name = \"x\"\ndbc = \"builtin:satwatt.dbc\"\n[roles]\n\"a\\\"b\" = {}\n",
		"name = \"x\"\ndbc = \"builtin:satwatt.dbc\"\nroles = { soc = { message = 0x4A0 } }\n",
		"name = \"x\"\ndbc = \"builtin:satwatt.dbc\"\n[[roles.soc]]\n",
		"name = \"x\"\ndbc = \"builtin:satwatt.dbc\"\nenergy_from = \"sun\"\n",
	} {
		f.Add([]byte(s))
	}
	// One temporary directory for the whole run, holding the one DBC a
	// profile may name by a relative path; the DBCs are compiled once.
	dir := f.TempDir()
	car, err := dbc.Builtin.ReadFile("satwatt.dbc")
	if err != nil {
		f.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "car.dbc"), car, 0o600); err != nil {
		f.Fatal(err)
	}
	dbs := map[string]*dbc.Database{}
	load := func(p *Profile, ref string) (*dbc.Database, bool) {
		// Only DBCs that are safe to read: built in, or a plain name
		// inside the temporary directory.
		if !strings.HasPrefix(ref, builtinPrefix) && (!filepath.IsLocal(ref) || strings.ContainsAny(ref, `/\`)) {
			return nil, false
		}
		if db, ok := dbs[ref]; ok {
			return db, db != nil
		}
		db, err := p.loadDBCRef(ref)
		if err != nil {
			db = nil
		}
		dbs[ref] = db
		return db, db != nil
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var p *Profile
		var err error
		fuzzcheck.Alloc(t, "vehicleprofile.Parse", len(data), parseAllocPerByte, parseAllocFixed, func() {
			p, err = Parse(fuzzSource, data, dir)
		})
		if err != nil {
			checkProfileError(t, err, data)
			return
		}
		checkProfile(t, p)
		db, ok := load(p, p.DBC)
		if !ok {
			return
		}
		sdb := db
		if p.Status.DBC != "" {
			if sdb, ok = load(p, p.Status.DBC); !ok {
				return
			}
		}
		b, err := p.Bind(db, sdb)
		if err != nil {
			fuzzcheck.ErrorSays(t, err, "profile "+fuzzSource+" with ")
			return
		}
		checkBinding(t, p, b)
	})
}

// checkProfileError: every refusal names the profile, a decoder's refusal
// its line, and a line is one of the input's.
func checkProfileError(t *testing.T, err error, data []byte) {
	t.Helper()
	fuzzcheck.ErrorSays(t, err, "profile "+fuzzSource)
	msg := err.Error()
	m := errLine.FindStringSubmatch(msg)
	var perr toml.ParseError
	if errors.As(err, &perr) && perr.Position.Line > 0 && m == nil {
		t.Fatalf("error %q does not give the line of the decoder's error (%d)", msg, perr.Position.Line)
	}
	if m == nil && strings.Contains(msg, "toml: line ") {
		t.Fatalf("error %q does not give the line the decoder named in the profile's words", msg)
	}
	if m == nil {
		if !strings.HasPrefix(msg, "profile "+fuzzSource+": ") {
			t.Fatalf("error %q: want \"profile %s: \" or \"profile %s:LINE: \"", msg, fuzzSource, fuzzSource)
		}
		return
	}
	line, _ := strconv.Atoi(m[1])
	if lines := strings.Count(string(data), "\n") + 1; line < 1 || line > lines {
		t.Fatalf("error %q points at line %d of %d", msg, line, lines)
	}
}

// checkProfile checks what Parse promises of a profile it accepts.
func checkProfile(t *testing.T, p *Profile) {
	t.Helper()
	if p.Name == "" || p.DBC == "" || p.Source != fuzzSource {
		t.Fatalf("accepted profile with name %q, dbc %q, source %q", p.Name, p.DBC, p.Source)
	}
	for role, spec := range p.Roles {
		if _, ok := RoleKind(role); !ok {
			t.Fatalf("accepted unknown role %q", role)
		}
		if !spec.Message.IsSet || spec.Signal == "" {
			t.Fatalf("role %s accepted without message or signal", role)
		}
	}
	for _, role := range []string{RoleSOC, RolePackEnergy, RoleCable} {
		if _, ok := p.Roles[role]; !ok {
			t.Fatalf("accepted without role %s", role)
		}
	}
	switch p.EnergyFrom {
	case EnergyFromChargePower:
		if _, ok := p.Roles[RoleChargePower]; !ok {
			t.Fatal("energy from charge_power, which has no role")
		}
	case EnergyFromACVoltageCurrent:
		_, v := p.Roles[RoleACVoltage]
		_, c := p.Roles[RoleACCurrent]
		if !v || !c {
			t.Fatal("energy from AC voltage and current, which lack roles")
		}
	default:
		t.Fatalf("energy_from %q", p.EnergyFrom)
	}
	for name, s := range p.Status.Signals {
		if !contains(statusSignals, name) || !s.Message.IsSet || s.Signal == "" {
			t.Fatalf("status signal %q accepted as %+v", name, s)
		}
	}
	if p.StaleAfter < 0 {
		t.Fatalf("stale_after %v", p.StaleAfter)
	}
}

// checkBinding checks a profile bound to its DBC: every role resolved to
// a signal the DBC has, with a positive staleness and usable values.
func checkBinding(t *testing.T, p *Profile, b *Binding) {
	t.Helper()
	if len(b.Roles) != len(p.Roles) {
		t.Fatalf("%d roles bound of %d", len(b.Roles), len(p.Roles))
	}
	for role, bound := range b.Roles {
		if bound.Role != role || bound.Signal == nil || b.DB.Lookup(bound.Signal.Message.ID, bound.Signal.Message.Extended) != bound.Signal.Message {
			t.Fatalf("role %s bound to %+v", role, bound)
		}
		if bound.StaleAfter <= 0 {
			t.Fatalf("role %s goes stale after %v", role, bound.StaleAfter)
		}
		switch bound.Kind {
		case Numeric:
			if bound.Factor == 0 {
				t.Fatalf("role %s: factor 0", role)
			}
		case State:
			lo, hi := rawRange(bound.Signal)
			for set, raws := range bound.Sets {
				for _, r := range raws {
					if r < lo || r > hi {
						t.Fatalf("role %s: %s value %d outside the signal's %d..%d", role, set, r, lo, hi)
					}
				}
			}
		}
	}
	for name, sig := range b.Status {
		if _, ok := p.Status.Signals[name]; !ok || sig == nil {
			t.Fatalf("status signal %s bound to %v", name, sig)
		}
	}
}
