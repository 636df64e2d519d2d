// Package vehicleprofile reads vehicle profiles: small TOML files that say,
// for one kind of car, which DBC to use and which signal plays which role
// (state of charge, pack energy, cable, charging power, ...), and which
// message the gateway transmits to show its own state. Nothing about a car is
// written in Go; a user adds a car by writing a profile.
package vehicleprofile

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"satwatt/dbc"
)

// Role names, as written in profile files and in the gateway's JSON output.
const (
	RoleSOC             = "soc"
	RolePackEnergy      = "pack_energy"
	RoleEnergyRemaining = "energy_remaining"
	RolePackVoltage     = "pack_voltage"
	RolePackCurrent     = "pack_current"
	RoleChargePower     = "charge_power"
	RoleACVoltage       = "ac_voltage"
	RoleACCurrent       = "ac_current"
	RoleCable           = "cable"
	RoleCableLatched    = "cable_latched"
	RolePortDoor        = "port_door"
	RoleChargingState   = "charging_state"
)

// Kind tells whether a role carries a measured number or a state.
type Kind int

const (
	Numeric Kind = iota
	State
)

type roleInfo struct {
	kind Kind
	// units maps accepted DBC units (lower case) to the factor that turns a
	// value in that unit into the role's canonical unit.
	units     map[string]float64
	canonical string
	// sets lists the value lists a state role may carry.
	sets []string
}

var roles = map[string]roleInfo{
	RoleSOC:             {kind: Numeric, canonical: "%", units: map[string]float64{"%": 1}},
	RolePackEnergy:      {kind: Numeric, canonical: "Wh", units: map[string]float64{"kwh": 1000, "wh": 1}},
	RoleEnergyRemaining: {kind: Numeric, canonical: "Wh", units: map[string]float64{"kwh": 1000, "wh": 1}},
	RolePackVoltage:     {kind: Numeric, canonical: "V", units: map[string]float64{"v": 1}},
	RolePackCurrent:     {kind: Numeric, canonical: "A", units: map[string]float64{"a": 1}},
	RoleChargePower:     {kind: Numeric, canonical: "W", units: map[string]float64{"kw": 1000, "w": 1}},
	RoleACVoltage:       {kind: Numeric, canonical: "V", units: map[string]float64{"v": 1}},
	RoleACCurrent:       {kind: Numeric, canonical: "A", units: map[string]float64{"a": 1}},
	RoleCable:           {kind: State, sets: []string{"connected"}},
	RoleCableLatched:    {kind: State, sets: []string{"latched"}},
	RolePortDoor:        {kind: State, sets: []string{"open"}},
	RoleChargingState:   {kind: State, sets: []string{"charging", "ready", "complete", "fault"}},
}

// Roles lists every role name in a stable order.
func Roles() []string {
	out := make([]string, 0, len(roles))
	for r := range roles {
		out = append(out, r)
	}
	sort.Strings(out)
	return out
}

// RoleKind returns the kind of a role, and false for an unknown role.
func RoleKind(role string) (Kind, bool) {
	info, ok := roles[role]
	return info.kind, ok
}

// Status signal names in the [status.signals] table.
const (
	StatusState          = "state"
	StatusError          = "error"
	StatusCounter        = "counter"
	StatusCreditWh       = "credit_wh"
	StatusEnergyBoughtWh = "energy_bought_wh"
	StatusSatsSpent      = "sats_spent"
	StatusBalanceSat     = "balance_sat"
)

var statusSignals = []string{StatusState, StatusError, StatusCounter, StatusCreditWh, StatusEnergyBoughtWh, StatusSatsSpent, StatusBalanceSat}

// Energy integration sources.
const (
	EnergyFromChargePower      = "charge_power"
	EnergyFromACVoltageCurrent = "ac_voltage_current"
)

// Profile is a parsed profile file, before it is bound to a DBC.
type Profile struct {
	Name        string              `toml:"name"`
	Description string              `toml:"description"`
	DBC         string              `toml:"dbc"`
	StaleAfter  Duration            `toml:"stale_after"`
	EnergyFrom  string              `toml:"energy_from"`
	Roles       map[string]RoleSpec `toml:"roles"`
	Status      StatusSpec          `toml:"status"`

	// Source is where the profile was read from, for errors.
	Source string `toml:"-"`
	// dir resolves relative DBC paths; empty for built-in profiles.
	dir string
}

// RoleSpec maps one role to one signal.
type RoleSpec struct {
	Message    MessageRef `toml:"message"`
	Signal     string     `toml:"signal"`
	StaleAfter Duration   `toml:"stale_after"`
	Unit       string     `toml:"unit"`
	Kind       string     `toml:"kind"` // pack_energy: "usable" or "nominal"
	Sign       string     `toml:"sign"` // pack_current
	Invalid    []int64    `toml:"invalid"`
	Connected  []any      `toml:"connected"`
	Latched    []any      `toml:"latched"`
	Open       []any      `toml:"open"`
	Charging   []any      `toml:"charging"`
	Ready      []any      `toml:"ready"`
	Complete   []any      `toml:"complete"`
	Fault      []any      `toml:"fault"`
}

func (r RoleSpec) set(name string) []any {
	switch name {
	case "connected":
		return r.Connected
	case "latched":
		return r.Latched
	case "open":
		return r.Open
	case "charging":
		return r.Charging
	case "ready":
		return r.Ready
	case "complete":
		return r.Complete
	case "fault":
		return r.Fault
	}
	return nil
}

// StatusSpec names the gateway's own status message(s).
type StatusSpec struct {
	DBC     string                `toml:"dbc"`
	Signals map[string]SignalSpec `toml:"signals"`
}

// SignalSpec names one signal of one message.
type SignalSpec struct {
	Message MessageRef `toml:"message"`
	Signal  string     `toml:"signal"`
}

// MessageRef is a message given by CAN ID (an integer, 0x... in TOML) or by
// name (a string).
type MessageRef struct {
	ID    uint32
	Name  string
	IsSet bool
}

func (m *MessageRef) UnmarshalTOML(v any) error {
	switch x := v.(type) {
	case int64:
		if x < 0 || x > 0x1FFFFFFF {
			return fmt.Errorf("message ID %d is not a CAN ID", x)
		}
		m.ID, m.IsSet = uint32(x), true
	case string:
		if x == "" {
			return errors.New("message name is empty")
		}
		m.Name, m.IsSet = x, true
	default:
		return fmt.Errorf("message must be a CAN ID (like 0x292) or a message name, not %T", v)
	}
	return nil
}

func (m MessageRef) String() string {
	if m.Name != "" {
		return m.Name
	}
	return fmt.Sprintf("0x%X", m.ID)
}

// Duration is a time.Duration written as "1.5s" in TOML.
type Duration time.Duration

func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("bad duration %q: %w", b, err)
	}
	if v <= 0 {
		return fmt.Errorf("duration %q must be positive", b)
	}
	*d = Duration(v)
	return nil
}

const builtinPrefix = "builtin:"

// Builtins lists the names of the profiles shipped in the binary.
func Builtins() []string {
	entries, _ := fs.ReadDir(dbc.Builtin, "profiles")
	var out []string
	for _, e := range entries {
		if name, ok := strings.CutSuffix(e.Name(), ".toml"); ok {
			out = append(out, name)
		}
	}
	return out
}

// Load reads a profile: a built-in one by name ("generic", "tesla-model3") or
// a file by path.
func Load(nameOrPath string) (*Profile, error) {
	if !strings.ContainsAny(nameOrPath, `/\`) && !strings.HasSuffix(nameOrPath, ".toml") {
		data, err := fs.ReadFile(dbc.Builtin, "profiles/"+nameOrPath+".toml")
		if err != nil {
			return nil, fmt.Errorf("no built-in profile %q (built-in: %s; or give a path to a .toml file)", nameOrPath, strings.Join(Builtins(), ", "))
		}
		return Parse(builtinPrefix+nameOrPath, data, "")
	}
	data, err := os.ReadFile(nameOrPath)
	if err != nil {
		return nil, fmt.Errorf("read profile: %w", err)
	}
	return Parse(nameOrPath, data, filepath.Dir(nameOrPath))
}

// Parse parses profile text. dir resolves relative DBC paths. Every error
// starts with "profile SOURCE" and, when the problem is at a key of the
// file, its line: "profile SOURCE:LINE: ...".
func Parse(source string, data []byte, dir string) (*Profile, error) {
	var p Profile
	md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(&p)
	if err != nil {
		return nil, decodeErr(source, err)
	}
	if undec := md.Undecoded(); len(undec) > 0 {
		keys := make([]string, len(undec))
		for i, k := range undec {
			keys[i] = k.String()
		}
		return nil, fmt.Errorf("profile %s%s: unknown keys: %s", source, atLine(data, undec[0]), strings.Join(keys, ", "))
	}
	p.Source, p.dir = source, dir
	if err := p.validate(); err != nil {
		var ke *keyError
		if errors.As(err, &ke) && ke.key != nil {
			return nil, fmt.Errorf("profile %s%s: %w", source, atLine(data, ke.key), err)
		}
		return nil, fmt.Errorf("profile %s: %w", source, err)
	}
	return &p, nil
}

// decoderLine matches the errors the TOML decoder returns as plain text
// (a value of the wrong type) rather than as a toml.ParseError.
var decoderLine = regexp.MustCompile(`^toml: line ([0-9]+) \(last key ("(?:[^"\\]|\\.)*")\): `)

// decodeErr words an error of the TOML decoder like the other profile
// errors: "profile SOURCE:LINE: what (last key "KEY")".
func decodeErr(source string, err error) error {
	var perr toml.ParseError
	if errors.As(err, &perr) {
		at := source
		if perr.Position.Line > 0 {
			at = fmt.Sprintf("%s:%d", source, perr.Position.Line)
		}
		msg := perr.Message
		if perr.LastKey != "" {
			msg += fmt.Sprintf(" (last key %q)", perr.LastKey)
		}
		return &decodeError{msg: "profile " + at + ": " + msg, err: err}
	}
	if m := decoderLine.FindStringSubmatchIndex(err.Error()); m != nil {
		text := err.Error()
		return &decodeError{msg: fmt.Sprintf("profile %s:%s: %s (last key %s)", source, text[m[2]:m[3]], text[m[1]:], text[m[4]:m[5]]), err: err}
	}
	return fmt.Errorf("profile %s: %w", source, err)
}

// decodeError is an error of the TOML decoder in the words of the other
// profile errors ("profile SOURCE:LINE: ..."); it unwraps to the
// decoder's error.
type decodeError struct {
	msg string
	err error
}

func (e *decodeError) Error() string { return e.msg }
func (e *decodeError) Unwrap() error { return e.err }

// keyError is a problem with one key of the profile, so that Parse can say
// on which line the key is.
type keyError struct {
	key toml.Key
	msg string
}

func (e *keyError) Error() string { return e.msg }

func keyErrorf(key toml.Key, format string, a ...any) error {
	return &keyError{key: key, msg: fmt.Sprintf(format, a...)}
}

// atLine gives ":LINE" for the line where key (or, failing that, the
// nearest table above it) is defined in data, or "" when it is not found.
func atLine(data []byte, key toml.Key) string {
	for n := len(key); n > 0; n-- {
		if line := keyLine(data, key[:n]); line > 0 {
			return fmt.Sprintf(":%d", line)
		}
	}
	return ""
}

// probeReached ends the decode keyLine makes once it reaches the key. The
// decoder keeps only the message of the error, so that is what is compared.
const probeReached = "vehicleprofile: key line probe reached"

type probe struct{}

func (probe) UnmarshalTOML(any) error { return errors.New(probeReached) }

// keyLine finds the line of a key with the TOML decoder itself: it decodes
// data again into a struct that has only that key, whose value refuses to
// decode, and the decoder's error carries the key's position. 0 when the
// key is not in data or cannot be written as a struct tag.
func keyLine(data []byte, key toml.Key) int {
	t := reflect.TypeFor[probe]()
	for i := len(key) - 1; i >= 0; i-- {
		if key[i] == "" || strings.ContainsAny(key[i], "\"\\,\x00`") {
			return 0
		}
		t = reflect.StructOf([]reflect.StructField{{Name: "K", Type: t, Tag: reflect.StructTag(`toml:"` + key[i] + `"`)}})
	}
	_, err := toml.NewDecoder(bytes.NewReader(data)).Decode(reflect.New(t).Interface())
	var perr toml.ParseError
	if !errors.As(err, &perr) || perr.Message != probeReached {
		return 0
	}
	return perr.Position.Line
}

// validate checks what the TOML types cannot. Maps are walked in sorted
// order so that a profile with several problems always reports the same.
func (p *Profile) validate() error {
	if p.Name == "" {
		return errors.New("name is missing")
	}
	if p.DBC == "" {
		return errors.New("dbc is missing")
	}
	for _, role := range sortedKeys(p.Roles) {
		spec := p.Roles[role]
		at := toml.Key{"roles", role}
		info, ok := roles[role]
		if !ok {
			return keyErrorf(at, "unknown role %q (roles: %s)", role, strings.Join(Roles(), ", "))
		}
		if !spec.Message.IsSet || spec.Signal == "" {
			return keyErrorf(at, "role %s needs both message and signal", role)
		}
		if info.kind == State {
			n := 0
			for _, s := range info.sets {
				n += len(spec.set(s))
			}
			if n == 0 {
				return keyErrorf(at, "role %s lists no values (give %s)", role, strings.Join(info.sets, ", "))
			}
		}
		if role == RolePackEnergy && spec.Kind != "usable" && spec.Kind != "nominal" {
			return keyErrorf(append(at, "kind"), "role pack_energy needs kind = \"usable\" or \"nominal\", not %q", spec.Kind)
		}
		if role == RolePackCurrent && spec.Sign != "charge_positive" && spec.Sign != "discharge_positive" {
			return keyErrorf(append(at, "sign"), "role pack_current needs sign = \"charge_positive\" or \"discharge_positive\", not %q", spec.Sign)
		}
	}
	for _, required := range []string{RoleSOC, RolePackEnergy, RoleCable} {
		if _, ok := p.Roles[required]; !ok {
			return fmt.Errorf("role %s is required", required)
		}
	}
	energyFrom := toml.Key{"energy_from"}
	switch p.EnergyFrom {
	case "":
		energyFrom = nil // chosen here, not written in the file
		if _, ok := p.Roles[RoleChargePower]; ok {
			p.EnergyFrom = EnergyFromChargePower
		} else {
			p.EnergyFrom = EnergyFromACVoltageCurrent
		}
	case EnergyFromChargePower, EnergyFromACVoltageCurrent:
	default:
		return keyErrorf(energyFrom, "energy_from must be %q or %q, not %q", EnergyFromChargePower, EnergyFromACVoltageCurrent, p.EnergyFrom)
	}
	if p.EnergyFrom == EnergyFromChargePower {
		if _, ok := p.Roles[RoleChargePower]; !ok {
			return keyErrorf(energyFrom, "energy_from = \"charge_power\" needs the charge_power role")
		}
	} else {
		_, v := p.Roles[RoleACVoltage]
		_, c := p.Roles[RoleACCurrent]
		if !v || !c {
			return keyErrorf(energyFrom, "energy_from = \"ac_voltage_current\" needs the ac_voltage and ac_current roles")
		}
	}
	for _, name := range sortedKeys(p.Status.Signals) {
		s := p.Status.Signals[name]
		at := toml.Key{"status", "signals", name}
		if !contains(statusSignals, name) {
			return keyErrorf(at, "unknown status signal %q (known: %s)", name, strings.Join(statusSignals, ", "))
		}
		if !s.Message.IsSet || s.Signal == "" {
			return keyErrorf(at, "status signal %s needs both message and signal", name)
		}
	}
	if len(p.Status.Signals) > 0 {
		for _, required := range []string{StatusState, StatusError} {
			if _, ok := p.Status.Signals[required]; !ok {
				return keyErrorf(toml.Key{"status", "signals"}, "status signal %s is required", required)
			}
		}
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// LoadDBC loads the profile's DBC, or override when it is not empty (the
// `--dbc` flag).
func (p *Profile) LoadDBC(override string) (*dbc.Database, error) {
	if override != "" {
		return dbc.LoadFile(override)
	}
	return p.loadDBCRef(p.DBC)
}

// LoadStatusDBC loads the DBC that defines the status message, which is the
// vehicle DBC unless the profile names another one.
func (p *Profile) LoadStatusDBC(vehicle *dbc.Database) (*dbc.Database, error) {
	if p.Status.DBC == "" {
		return vehicle, nil
	}
	return p.loadDBCRef(p.Status.DBC)
}

func (p *Profile) loadDBCRef(ref string) (*dbc.Database, error) {
	if name, ok := strings.CutPrefix(ref, builtinPrefix); ok {
		return dbc.LoadBuiltin(name)
	}
	path := ref
	if !filepath.IsAbs(path) && p.dir != "" {
		path = filepath.Join(p.dir, path)
	}
	return dbc.LoadFile(path)
}
