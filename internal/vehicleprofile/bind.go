package vehicleprofile

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"satwatt/dbc"
)

// DefaultStaleAfter applies when neither the profile nor the DBC's cycle
// time says how long a value stays fresh.
const DefaultStaleAfter = time.Second

// staleCycles is how many missed cycles make a value stale: enough to ride
// out a busy bus, few enough that a dead ECU shows within seconds.
const staleCycles = 10

// Bound is one role resolved against a DBC.
type Bound struct {
	Role       string
	Kind       Kind
	Signal     *dbc.Signal
	StaleAfter time.Duration
	// Factor turns the signal's physical value into the role's canonical
	// unit (Wh, W, V, A, %), and flips the sign of a pack current whose DBC
	// reads discharge as positive, so that charging is always positive.
	Factor float64
	// Invalid raw values mean "not available".
	Invalid []int64
	// Sets maps each value list of a state role ("connected", "charging",
	// ...) to the raw values in it.
	Sets map[string][]int64
	// EnergyKind is "usable" or "nominal" for pack_energy.
	EnergyKind string
}

// IsInvalid reports whether raw is one of the role's "not available" values.
func (b *Bound) IsInvalid(raw int64) bool {
	for _, v := range b.Invalid {
		if v == raw {
			return true
		}
	}
	return false
}

// In reports whether raw is in the named value list.
func (b *Bound) In(set string, raw int64) bool {
	for _, v := range b.Sets[set] {
		if v == raw {
			return true
		}
	}
	return false
}

// Binding is a profile resolved against the DBCs it will decode and encode.
type Binding struct {
	Profile *Profile
	DB      *dbc.Database
	Roles   map[string]*Bound
	// Status maps status signal names to signals of the status DBC; empty
	// when the profile defines no status message.
	Status map[string]*dbc.Signal
	// StatusMessages are the distinct messages the status signals live in,
	// in ID order.
	StatusMessages []*dbc.Message
}

// Bind resolves every role and status signal of p. db is the vehicle DBC;
// statusDB defines the status message (it may be db itself). Every problem
// is reported, not only the first.
func (p *Profile) Bind(db, statusDB *dbc.Database) (*Binding, error) {
	b := &Binding{Profile: p, DB: db, Roles: map[string]*Bound{}, Status: map[string]*dbc.Signal{}}
	var errs []error
	for _, role := range Roles() {
		spec, ok := p.Roles[role]
		if !ok {
			continue
		}
		bound, err := p.bindRole(db, role, spec)
		if err != nil {
			errs = append(errs, fmt.Errorf("role %s: %w", role, err))
			continue
		}
		b.Roles[role] = bound
	}
	names := make([]string, 0, len(p.Status.Signals))
	for name := range p.Status.Signals {
		names = append(names, name)
	}
	sort.Strings(names)
	seen := map[*dbc.Message]bool{}
	for _, name := range names {
		spec := p.Status.Signals[name]
		sig, err := findSignal(statusDB, spec.Message, spec.Signal)
		if err != nil {
			errs = append(errs, fmt.Errorf("status signal %s: %w", name, err))
			continue
		}
		if err := checkStatusSignal(name, sig); err != nil {
			errs = append(errs, fmt.Errorf("status signal %s: %w", name, err))
			continue
		}
		b.Status[name] = sig
		if !seen[sig.Message] {
			seen[sig.Message] = true
			b.StatusMessages = append(b.StatusMessages, sig.Message)
		}
	}
	sort.Slice(b.StatusMessages, func(i, j int) bool { return b.StatusMessages[i].ID < b.StatusMessages[j].ID })
	if len(errs) > 0 {
		return nil, fmt.Errorf("profile %s with %s: %w", p.Source, db.Source, errors.Join(errs...))
	}
	return b, nil
}

func findSignal(db *dbc.Database, ref MessageRef, name string) (*dbc.Signal, error) {
	var msg *dbc.Message
	if ref.Name != "" {
		msg = db.MessageByName(ref.Name)
	} else {
		msg = db.Lookup(ref.ID, ref.ID > 0x7FF)
	}
	if msg == nil {
		return nil, fmt.Errorf("%s has no message %s", db.Source, ref)
	}
	sig := msg.Signal(name)
	if sig == nil {
		var have []string
		for _, s := range msg.Signals {
			have = append(have, s.Name)
		}
		return nil, fmt.Errorf("message %s (0x%X) in %s has no signal %q (it has: %s)", msg.Name, msg.ID, db.Source, name, strings.Join(have, ", "))
	}
	return sig, nil
}

func (p *Profile) bindRole(db *dbc.Database, role string, spec RoleSpec) (*Bound, error) {
	info := roles[role]
	sig, err := findSignal(db, spec.Message, spec.Signal)
	if err != nil {
		return nil, err
	}
	b := &Bound{Role: role, Kind: info.kind, Signal: sig, Invalid: append([]int64(nil), spec.Invalid...), EnergyKind: spec.Kind}
	switch {
	case spec.StaleAfter > 0:
		b.StaleAfter = time.Duration(spec.StaleAfter)
	case p.StaleAfter > 0:
		b.StaleAfter = time.Duration(p.StaleAfter)
	case sig.Message.CycleTime > 0:
		b.StaleAfter = staleCycles * sig.Message.CycleTime
	default:
		b.StaleAfter = DefaultStaleAfter
	}
	for _, vd := range sig.Desc.ValueDescriptions {
		if vd.Description == "SNA" || strings.HasSuffix(vd.Description, "_SNA") {
			b.Invalid = append(b.Invalid, vd.Value)
		}
	}
	if info.kind == Numeric {
		if sig.Desc.Length < 2 {
			return nil, fmt.Errorf("needs a numeric signal, but %s is %d bit", sig.Name, sig.Desc.Length)
		}
		unit := spec.Unit
		if unit == "" {
			unit = sig.Unit
		}
		factor, ok := info.units[strings.ToLower(strings.TrimSpace(unit))]
		if !ok {
			var accepted []string
			for u := range info.units {
				accepted = append(accepted, u)
			}
			sort.Strings(accepted)
			return nil, fmt.Errorf("needs a signal in %s, but %s is in %q (set unit = \"...\" in the profile if the DBC's unit is wrong or empty)", strings.Join(accepted, " or "), sig.Name, unit)
		}
		if role == RolePackCurrent && spec.Sign == "discharge_positive" {
			factor = -factor
		}
		b.Factor = factor
		return b, nil
	}
	if sig.Desc.IsFloat || sig.Desc.Scale != 1 || sig.Desc.Offset != 0 {
		return nil, fmt.Errorf("needs a state signal with integer raw values, but %s has scale %g and offset %g", sig.Name, sig.Desc.Scale, sig.Desc.Offset)
	}
	b.Sets = map[string][]int64{}
	for _, set := range info.sets {
		for _, v := range spec.set(set) {
			raw, err := resolveValue(sig, v)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", set, err)
			}
			b.Sets[set] = append(b.Sets[set], raw)
		}
	}
	return b, nil
}

// resolveValue turns a profile value (a value-table name or a raw integer)
// into a raw value of sig.
func resolveValue(sig *dbc.Signal, v any) (int64, error) {
	switch x := v.(type) {
	case string:
		raw, ok := sig.RawValue(x)
		if !ok {
			var names []string
			for _, vd := range sig.Desc.ValueDescriptions {
				names = append(names, vd.Description)
			}
			if len(names) == 0 {
				return 0, fmt.Errorf("signal %s has no value table, so %q cannot be resolved: give raw integers", sig.Name, x)
			}
			return 0, fmt.Errorf("signal %s has no value %q (it has: %s)", sig.Name, x, strings.Join(names, ", "))
		}
		return raw, nil
	case int64:
		min, max := rawRange(sig)
		if x < min || x > max {
			return 0, fmt.Errorf("raw value %d does not fit signal %s (%d..%d)", x, sig.Name, min, max)
		}
		return x, nil
	default:
		return 0, fmt.Errorf("value %v must be a value-table name or an integer", v)
	}
}

func rawRange(sig *dbc.Signal) (int64, int64) {
	n := sig.Desc.Length
	if sig.Desc.IsSigned {
		return -(int64(1) << (n - 1)), int64(1)<<(n-1) - 1
	}
	if n >= 63 {
		return 0, math.MaxInt64
	}
	return 0, int64(1)<<n - 1
}

// StatusStates and StatusErrors are the value-table names the status
// message's state and error signals must carry (satwatt.dbc's SW_State and
// SW_Error); the gateway looks their raw values up by name.
var (
	StatusStates = []string{"IDLE", "PLUGGED", "DISCOVERING", "NEGOTIATING", "CHARGING", "SUSPENDED", "COMPLETE", "STOPPED", "ERROR"}
	StatusErrors = []string{"NONE", "LOW_BALANCE", "PRICE_ABOVE_LIMIT", "NO_WALL_FOUND", "WALL_ERROR", "PAYMENT_FAILED", "NODE_UNREACHABLE", "METER_MISMATCH", "BUDGET_REACHED", "INVOICE_REJECTED", "VEHICLE_DATA_STALE"}
)

func checkStatusSignal(name string, sig *dbc.Signal) error {
	var want []string
	switch name {
	case StatusState:
		want = StatusStates
	case StatusError:
		want = StatusErrors
	default:
		return nil
	}
	var missing []string
	for _, w := range want {
		if _, ok := sig.RawValue(w); !ok {
			missing = append(missing, w)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("signal %s lacks the value-table names %s", sig.Name, strings.Join(missing, ", "))
	}
	return nil
}

// LoadBinding loads a profile (a built-in name or a file), its DBC (or
// dbcOverride, the `--dbc` flag, when not empty) and the DBC of its status
// message, and binds them.
func LoadBinding(profile, dbcOverride string) (*Binding, error) {
	p, err := Load(profile)
	if err != nil {
		return nil, err
	}
	db, err := p.LoadDBC(dbcOverride)
	if err != nil {
		return nil, err
	}
	statusDB, err := p.LoadStatusDBC(db)
	if err != nil {
		return nil, err
	}
	return p.Bind(db, statusDB)
}
