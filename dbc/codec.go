package dbc

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"go.einride.tech/can"
)

// Lookup returns the message for a frame ID, or nil when the ID is unknown.
// Buses carry many IDs no DBC describes, so this is one map look-up and
// never an error.
func (db *Database) Lookup(id uint32, extended bool) *Message {
	return db.byID[key(id, extended)]
}

// MessageByName returns the named message, or nil.
func (db *Database) MessageByName(name string) *Message {
	return db.byName[name]
}

// Signal returns the named signal of the message, or nil.
func (m *Message) Signal(name string) *Signal {
	return m.byName[name]
}

// Encode builds a frame of the message's declared length from physical
// values by signal name. Signals not named are left at raw 0. A multiplexed
// message needs its multiplexor's value, and only signals of the group that
// value selects may be given.
func (m *Message) Encode(values map[string]float64) (can.Frame, error) {
	f := can.Frame{ID: m.ID, IsExtended: m.Extended, Length: m.Length}
	var unknown []string
	for name := range values {
		if m.byName[name] == nil {
			unknown = append(unknown, name)
		}
	}
	if len(unknown) > 0 {
		// Sorted so the error does not change with map order.
		slices.Sort(unknown)
		return can.Frame{}, fmt.Errorf("message %s has no signal named %s", m.Name, strings.Join(unknown, ", "))
	}
	var muxRaw uint64
	if m.Mux != nil {
		v, ok := values[m.Mux.Name]
		if !ok {
			return can.Frame{}, fmt.Errorf("message %s is multiplexed: a value for its multiplexor %s is required", m.Name, m.Mux.Name)
		}
		if err := m.encodeOne(&f.Data, m.Mux, v); err != nil {
			return can.Frame{}, err
		}
		muxRaw = m.Mux.bits(&f.Data)
	}
	for _, s := range m.Signals {
		v, ok := values[s.Name]
		if !ok || s == m.Mux {
			continue
		}
		if s.multiplexed && s.muxValue != muxRaw {
			return can.Frame{}, fmt.Errorf("signal %s is sent only when %s is %d, not %d",
				s.Name, m.Mux.Name, s.muxValue, muxRaw)
		}
		if err := m.encodeOne(&f.Data, s, v); err != nil {
			return can.Frame{}, err
		}
	}
	return f, nil
}

func (m *Message) encodeOne(d *can.Data, s *Signal, v float64) error {
	if s.needBytes > m.Length {
		return fmt.Errorf("signal %s needs %d bytes but message %s declares %d", s.Name, s.needBytes, m.Name, m.Length)
	}
	return s.Encode(d, v)
}

// bits extracts the signal's raw bits, unsigned and not sign-extended.
func (s *Signal) bits(d *can.Data) uint64 {
	if s.bigEndian {
		return d.UnsignedBitsBigEndian(s.start, s.length)
	}
	return d.UnsignedBitsLittleEndian(s.start, s.length)
}

// present reports whether f carries the signal: all its bits lie inside the
// bytes the frame actually has (real cars send frames shorter than their
// DBC says), and, for a multiplexed signal, the frame's multiplexor selects
// the signal's group.
func (s *Signal) present(f *can.Frame) bool {
	if f.IsRemote || f.Length < s.needBytes {
		return false
	}
	if s.multiplexed {
		mux := s.Message.Mux
		if f.Length < mux.needBytes || mux.bits(&f.Data) != s.muxValue {
			return false
		}
	}
	return true
}

func signExtend(v uint64, n uint8) int64 {
	shift := 64 - n
	return int64(v<<shift) >> shift
}

// Decode returns the physical value (raw*factor + offset, never clamped to
// the DBC's range) of the signal in f. ok is false when f does not carry the
// signal (too short, a remote frame, or another multiplexor group). f must be
// a frame of the signal's message: Decode does not compare IDs.
func (s *Signal) Decode(f *can.Frame) (float64, bool) {
	if !s.present(f) {
		return 0, false
	}
	b := s.bits(&f.Data)
	var v float64
	switch {
	case s.isFloat:
		v = float64(math.Float32frombits(uint32(b)))
	case s.signed:
		v = float64(signExtend(b, s.length))
	default:
		v = float64(b)
	}
	return v*s.factor + s.offset, true
}

// DecodeRaw returns the raw integer value (sign-extended for signed
// signals; the bit pattern for float signals) under the same conditions as
// Decode.
func (s *Signal) DecodeRaw(f *can.Frame) (int64, bool) {
	if !s.present(f) {
		return 0, false
	}
	b := s.bits(&f.Data)
	if s.signed && !s.isFloat {
		return signExtend(b, s.length), true
	}
	return int64(b), true
}

// InRange reports whether a physical value lies within the DBC's [min,
// max], or the DBC gives no range (both 0). A millionth of a step absorbs
// float noise such as 0.1*3 against a maximum of 0.3 without letting a real
// excess through.
func (s *Signal) InRange(physical float64) bool {
	if s.min == 0 && s.max == 0 {
		return true
	}
	tol := math.Abs(s.factor) * 1e-6
	return physical >= s.min-tol && physical <= s.max+tol
}

// Encode writes one physical value into d: raw = round((physical-offset) /
// factor). It refuses NaN, infinities, values outside the DBC's [min, max]
// (unless both are 0, DBC's "no range") and raw values that do not fit the
// signal's bits, rather than clamping them into something the sender did
// not mean.
func (s *Signal) Encode(d *can.Data, physical float64) error {
	if math.IsNaN(physical) || math.IsInf(physical, 0) {
		return fmt.Errorf("signal %s: cannot encode %v", s.Name, physical)
	}
	if !s.InRange(physical) {
		return fmt.Errorf("signal %s: value %g%s is outside its range [%g, %g]", s.Name, physical, s.unitSuffix(), s.min, s.max)
	}
	scaled := (physical - s.offset) / s.factor
	var b uint64
	if s.isFloat {
		f32 := float32(scaled)
		if math.IsInf(float64(f32), 0) {
			return fmt.Errorf("signal %s: value %g%s does not fit a 32-bit float", s.Name, physical, s.unitSuffix())
		}
		b = uint64(math.Float32bits(f32))
	} else {
		raw := math.Round(scaled)
		// Bounds as float64 powers of two, exclusive at the top, so that
		// 64-bit signals compare without overflowing.
		n := int(s.length)
		if s.signed {
			lo, hi := -math.Ldexp(1, n-1), math.Ldexp(1, n-1)
			if raw < lo || raw >= hi {
				return fmt.Errorf("signal %s: value %g%s gives raw %.0f, outside the %d-bit signed range %d..%d",
					s.Name, physical, s.unitSuffix(), raw, n, -1<<(n-1), (uint64(1)<<(n-1))-1)
			}
			b = uint64(int64(raw))
		} else {
			hi := math.Ldexp(1, n)
			if raw < 0 || raw >= hi {
				return fmt.Errorf("signal %s: value %g%s gives raw %.0f, outside the %d-bit unsigned range 0..%d",
					s.Name, physical, s.unitSuffix(), raw, n, uint64(math.MaxUint64)>>(64-n))
			}
			b = uint64(raw)
		}
	}
	if s.length < 64 {
		b &= 1<<s.length - 1
	}
	if s.bigEndian {
		d.SetUnsignedBitsBigEndian(s.start, s.length, b)
	} else {
		d.SetUnsignedBitsLittleEndian(s.start, s.length, b)
	}
	return nil
}

func (s *Signal) unitSuffix() string {
	if s.Unit == "" {
		return ""
	}
	return " " + s.Unit
}

// ValueName returns the value-table name of a raw value.
func (s *Signal) ValueName(raw int64) (string, bool) {
	name, ok := s.valueNames[raw]
	return name, ok
}

// RawValue returns the raw value for a value-table name (exact match).
func (s *Signal) RawValue(name string) (int64, bool) {
	raw, ok := s.valueRaws[name]
	return raw, ok
}

// HasValueTable reports whether the signal has value descriptions.
func (s *Signal) HasValueTable() bool {
	return len(s.valueNames) > 0
}
