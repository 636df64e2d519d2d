// Package vehiclestate turns decoded CAN frames into what the gateway knows
// about the car: state of charge, pack energy, cable, door and charging
// state, charging power, and the charging energy integrated from that power.
// Every value carries the time it was last refreshed; a value older than its
// role's staleness timeout is unknown, never the last value forever.
package vehiclestate

import (
	"math"
	"sort"
	"sync"
	"time"

	"go.einride.tech/can"

	"satwatt/dbc"
	vp "satwatt/internal/vehicleprofile"
)

// Event kinds.
const (
	CablePlugged    = "cable_plugged"
	CableUnplugged  = "cable_unplugged"
	DoorOpened      = "door_opened"
	DoorClosed      = "door_closed"
	ChargingStarted = "charging_started"
	ChargingStopped = "charging_stopped"
)

// Event is a change of the car's discrete state.
type Event struct {
	Time time.Time `json:"time"`
	Kind string    `json:"event"`
	// From and To are the state before and after, in the words of State.
	From string `json:"from"`
	To   string `json:"to"`
}

// Words for the discrete states.
const (
	Unknown      = "unknown"
	Disconnected = "disconnected"
	Connected    = "connected"
	Latched      = "latched"
	Open         = "open"
	Closed       = "closed"
	Idle         = "idle"
	Ready        = "ready"
	Charging     = "charging"
	Complete     = "complete"
	Fault        = "fault"
)

type slot struct {
	b     *vp.Bound
	sig   *dbc.Signal
	value float64 // canonical unit
	raw   int64
	at    time.Time
	valid bool // last frame carried a usable value
	seen  bool // ever carried a usable value
}

func (s *slot) fresh(now time.Time) bool {
	return s != nil && s.valid && now.Sub(s.at) <= s.b.StaleAfter
}

type entry struct {
	msg      *dbc.Message
	slots    []*slot
	muxKnown []uint // multiplexor values the DBC lists; nil when not multiplexed
	power    bool   // carries a signal the energy integral uses
	discrete bool   // carries a state role
	// own: one of the gateway's own status messages. The gateway does not
	// receive what it sends, so such a frame comes from another node: a
	// spoof, or an ID clash with the car's own messages.
	own bool
}

// Counters tally what the tracker saw, including input that does not match
// the DBC. They are never errors: a real bus carries plenty of it.
type Counters struct {
	Frames         uint64 `json:"frames"`
	UnknownID      uint64 `json:"unknown_id_frames"`
	LengthMismatch uint64 `json:"length_mismatch_frames"`
	UnknownMux     uint64 `json:"unknown_mux_frames"`
	// OutOfRange counts values outside their signal's DBC range, which
	// are not used: a garbled or forged frame, not a reading.
	OutOfRange uint64 `json:"out_of_range_values"`
	// ForeignStatus counts frames of the gateway's own status messages
	// sent by another node.
	ForeignStatus uint64 `json:"foreign_status_frames"`
	// Per-ID detail of the mismatches, keyed by "0x123".
	LengthMismatchByID map[uint32]uint64 `json:"-"`
	UnknownMuxByID     map[uint32]uint64 `json:"-"`
}

// ForeignStatus returns how many frames of the gateway's own status
// messages another node has sent.
func (t *Tracker) ForeignStatus() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.counters.ForeignStatus
}

// Tracker keeps the state. It is safe for one goroutine feeding frames and
// others taking snapshots.
type Tracker struct {
	mu      sync.Mutex
	binding *vp.Binding
	byKey   map[uint32]*entry
	roles   map[string]*slot
	onEvent func(Event)

	// discrete state last known, for events
	lastCable, lastDoor, lastCharging string

	energyFromPower bool
	powerStale      time.Duration
	lastPowerMW     int64
	lastPowerAt     time.Time
	havePower       bool
	energyNJ        int64 // nanojoules: integer, so no rounding drifts over hours

	counters Counters
}

func key(id uint32, extended bool) uint32 {
	if extended {
		return id | 1<<31
	}
	return id
}

// New returns a tracker for a bound profile. onEvent, if not nil, is called
// (on the goroutine that feeds frames, with no lock held) for each event.
func New(b *vp.Binding, onEvent func(Event)) *Tracker {
	t := &Tracker{
		binding: b,
		byKey:   make(map[uint32]*entry, len(b.DB.Messages)),
		roles:   map[string]*slot{},
		onEvent: onEvent,
		counters: Counters{
			LengthMismatchByID: map[uint32]uint64{},
			UnknownMuxByID:     map[uint32]uint64{},
		},
		lastCable: Unknown, lastDoor: Unknown, lastCharging: Unknown,
		energyFromPower: b.Profile.EnergyFrom == vp.EnergyFromChargePower,
	}
	for _, m := range b.DB.Messages {
		e := &entry{msg: m}
		if m.Mux != nil {
			seen := map[uint]bool{}
			for _, s := range m.Signals {
				if s.Desc.IsMultiplexed && !seen[s.Desc.MultiplexerValue] {
					seen[s.Desc.MultiplexerValue] = true
					e.muxKnown = append(e.muxKnown, s.Desc.MultiplexerValue)
				}
			}
		}
		t.byKey[key(m.ID, m.Extended)] = e
	}
	for _, m := range b.StatusMessages {
		if e := t.byKey[key(m.ID, m.Extended)]; e != nil {
			e.own = true
		}
	}
	for _, role := range vp.Roles() {
		bound, ok := b.Roles[role]
		if !ok {
			continue
		}
		s := &slot{b: bound, sig: bound.Signal}
		t.roles[role] = s
		e := t.byKey[key(bound.Signal.Message.ID, bound.Signal.Message.Extended)]
		e.slots = append(e.slots, s)
		switch role {
		case vp.RoleChargePower:
			if t.energyFromPower {
				e.power = true
				t.powerStale = bound.StaleAfter
			}
		case vp.RoleACVoltage, vp.RoleACCurrent:
			if !t.energyFromPower {
				e.power = true
				if t.powerStale == 0 || bound.StaleAfter < t.powerStale {
					t.powerStale = bound.StaleAfter
				}
			}
		}
		if bound.Kind == vp.State {
			e.discrete = true
		}
	}
	return t
}

// Update takes one frame seen at time at. It never fails: a frame of an
// unknown ID, a wrong length or an unlisted multiplexor value is counted,
// and the signals that the bytes received do hold are still used.
func (t *Tracker) Update(f *can.Frame, at time.Time) {
	t.mu.Lock()
	t.counters.Frames++
	e := t.byKey[key(f.ID, f.IsExtended)]
	if e == nil {
		t.counters.UnknownID++
		t.mu.Unlock()
		return
	}
	if e.own {
		t.counters.ForeignStatus++
		t.mu.Unlock()
		return
	}
	if f.Length != e.msg.Length {
		t.counters.LengthMismatch++
		t.counters.LengthMismatchByID[f.ID]++
	}
	if e.muxKnown != nil {
		if mux, ok := e.msg.Mux.DecodeRaw(f); ok && !containsUint(e.muxKnown, uint(mux)) {
			t.counters.UnknownMux++
			t.counters.UnknownMuxByID[f.ID]++
		}
	}
	for _, s := range e.slots {
		raw, ok := s.sig.DecodeRaw(f)
		if !ok {
			continue // not carried by this frame (too short, other mux group)
		}
		s.at = at
		if s.b.IsInvalid(raw) {
			s.valid = false
			continue
		}
		if s.b.Kind == vp.Numeric {
			phys, _ := s.sig.Decode(f)
			if !s.sig.InRange(phys) {
				t.counters.OutOfRange++
				s.valid = false
				continue
			}
			s.value = phys * s.b.Factor
		}
		s.raw = raw
		s.valid, s.seen = true, true
	}
	if e.power {
		t.integrate(at)
	}
	var events [3]Event
	n := 0
	if e.discrete {
		n = t.discreteEvents(at, &events)
	}
	t.mu.Unlock()
	if t.onEvent != nil {
		for i := 0; i < n; i++ {
			t.onEvent(events[i])
		}
	}
}

func containsUint(list []uint, v uint) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// powerMW returns the charging power in integer milliwatts, if known at now.
func (t *Tracker) powerMW(now time.Time) (int64, bool) {
	if t.energyFromPower {
		p := t.roles[vp.RoleChargePower]
		if !p.fresh(now) {
			return 0, false
		}
		return int64(math.Round(p.value * 1000)), true
	}
	return t.acPowerMW(now)
}

// integrate adds the energy since the last power sample (trapezoid rule).
// Across a gap longer than the power's staleness timeout nothing is added:
// energy that was not measured is not guessed.
func (t *Tracker) integrate(now time.Time) {
	p, ok := t.powerMW(now)
	if !ok {
		t.havePower = false
		return
	}
	if p < 0 {
		p = 0 // a charger's input power is never negative; noise is not energy
	}
	if t.havePower {
		dt := now.Sub(t.lastPowerAt)
		if dt > 0 && dt <= t.powerStale {
			// mW * µs = nJ
			t.energyNJ += (t.lastPowerMW + p) * dt.Microseconds() / 2
		}
	}
	if !t.havePower || !now.Before(t.lastPowerAt) {
		t.lastPowerMW, t.lastPowerAt, t.havePower = p, now, true
	}
}

func (t *Tracker) discreteEvents(now time.Time, out *[3]Event) int {
	n := 0
	emit := func(last *string, cur string, kindOn, kindOff string, on func(string) bool) {
		if cur == Unknown {
			return
		}
		prev := *last
		*last = cur
		if prev == Unknown || prev == cur {
			return
		}
		kind := ""
		switch {
		case on(cur) && !on(prev):
			kind = kindOn
		case !on(cur) && on(prev):
			kind = kindOff
		default:
			return
		}
		out[n] = Event{Time: now, Kind: kind, From: prev, To: cur}
		n++
	}
	emit(&t.lastCable, t.cable(now), CablePlugged, CableUnplugged, func(s string) bool { return s != Disconnected })
	emit(&t.lastDoor, t.door(now), DoorOpened, DoorClosed, func(s string) bool { return s == Open })
	emit(&t.lastCharging, t.charging(now), ChargingStarted, ChargingStopped, func(s string) bool { return s == Charging })
	return n
}

func (t *Tracker) cable(now time.Time) string {
	c := t.roles[vp.RoleCable]
	if !c.fresh(now) {
		return Unknown
	}
	if !c.b.In("connected", c.raw) {
		return Disconnected
	}
	if l := t.roles[vp.RoleCableLatched]; l.fresh(now) && l.b.In("latched", l.raw) {
		return Latched
	}
	return Connected
}

func (t *Tracker) door(now time.Time) string {
	d := t.roles[vp.RolePortDoor]
	if !d.fresh(now) {
		return Unknown
	}
	if d.b.In("open", d.raw) {
		return Open
	}
	return Closed
}

func (t *Tracker) charging(now time.Time) string {
	c := t.roles[vp.RoleChargingState]
	if !c.fresh(now) {
		return Unknown
	}
	for _, set := range []string{Charging, Ready, Complete, Fault} {
		if c.b.In(set, c.raw) {
			return set
		}
	}
	return Idle
}

// State is a snapshot of what is known about the car. Unknown values (never
// seen, marked not available, or stale) are nil and so null in JSON; Stale
// names the roles that had a value which is now too old.
type State struct {
	Time              time.Time `json:"time"`
	SOCPct            *float64  `json:"soc_pct"`
	PackEnergyWh      *int64    `json:"pack_energy_wh"`
	PackEnergyKind    string    `json:"pack_energy_kind"`
	EnergyRemainingWh *int64    `json:"energy_remaining_wh"`
	PackVoltageV      *float64  `json:"pack_voltage_v"`
	PackCurrentA      *float64  `json:"pack_current_a"`
	ChargePowerW      *int64    `json:"charge_power_w"`
	ACVoltageV        *float64  `json:"ac_voltage_v"`
	ACCurrentA        *float64  `json:"ac_current_a"`
	Cable             string    `json:"cable"`
	PortDoor          string    `json:"port_door"`
	Charging          string    `json:"charging"`
	// ChargingValue is the charging-state signal's own value name.
	ChargingValue    string   `json:"charging_value,omitempty"`
	ChargedEnergyMWh int64    `json:"charged_energy_mwh"`
	Stale            []string `json:"stale,omitempty"`
	// Implausible names roles whose value contradicts another (for example
	// more energy left than the pack holds) and is shown as unknown.
	Implausible []string `json:"implausible,omitempty"`
}

// Snapshot returns the state as of now.
func (t *Tracker) Snapshot(now time.Time) State {
	t.mu.Lock()
	defer t.mu.Unlock()
	st := State{
		Time:             now,
		Cable:            t.cable(now),
		PortDoor:         t.door(now),
		Charging:         t.charging(now),
		ChargedEnergyMWh: t.energyNJ / nJPerMWh,
	}
	num := func(role string, decimals int) *float64 {
		s := t.roles[role]
		if !s.fresh(now) {
			return nil
		}
		p := math.Pow10(decimals)
		v := math.Round(s.value*p) / p
		return &v
	}
	integer := func(role string) *int64 {
		s := t.roles[role]
		if !s.fresh(now) {
			return nil
		}
		v := int64(math.Round(s.value))
		return &v
	}
	st.SOCPct = num(vp.RoleSOC, 1)
	st.PackEnergyWh = integer(vp.RolePackEnergy)
	if b, ok := t.binding.Roles[vp.RolePackEnergy]; ok {
		st.PackEnergyKind = b.EnergyKind
	}
	st.EnergyRemainingWh = integer(vp.RoleEnergyRemaining)
	if st.EnergyRemainingWh != nil && st.PackEnergyWh != nil && *st.EnergyRemainingWh > *st.PackEnergyWh*11/10 {
		// More left than the pack holds: the DBC's layout does not match
		// this car's firmware. A wrong number is worse than none.
		st.EnergyRemainingWh = nil
		st.Implausible = append(st.Implausible, vp.RoleEnergyRemaining)
	}
	st.PackVoltageV = num(vp.RolePackVoltage, 2)
	st.PackCurrentA = num(vp.RolePackCurrent, 2)
	st.ACVoltageV = num(vp.RoleACVoltage, 2)
	st.ACCurrentA = num(vp.RoleACCurrent, 2)
	if p := integer(vp.RoleChargePower); p != nil {
		st.ChargePowerW = p
	} else if mw, ok := t.acPowerMW(now); ok {
		w := mw / 1000
		st.ChargePowerW = &w
	}
	if c := t.roles[vp.RoleChargingState]; c.fresh(now) {
		st.ChargingValue, _ = c.sig.ValueName(c.raw)
	}
	for role, s := range t.roles {
		if s.seen && !s.fresh(now) {
			st.Stale = append(st.Stale, role)
		}
	}
	sort.Strings(st.Stale)
	return st
}

func (t *Tracker) acPowerMW(now time.Time) (int64, bool) {
	v, c := t.roles[vp.RoleACVoltage], t.roles[vp.RoleACCurrent]
	if !v.fresh(now) || !c.fresh(now) {
		return 0, false
	}
	return int64(math.Round(v.value * c.value * 1000)), true
}

// ChargedEnergyMWh is the charging energy integrated so far, in mWh.
func (t *Tracker) ChargedEnergyMWh() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.energyNJ / nJPerMWh
}

// Counters returns a copy of the counters.
func (t *Tracker) Counters() Counters {
	t.mu.Lock()
	defer t.mu.Unlock()
	c := t.counters
	c.LengthMismatchByID = make(map[uint32]uint64, len(t.counters.LengthMismatchByID))
	for k, v := range t.counters.LengthMismatchByID {
		c.LengthMismatchByID[k] = v
	}
	c.UnknownMuxByID = make(map[uint32]uint64, len(t.counters.UnknownMuxByID))
	for k, v := range t.counters.UnknownMuxByID {
		c.UnknownMuxByID[k] = v
	}
	return c
}

// nJPerMWh: 1 mWh = 3.6 J.
const nJPerMWh = 3_600_000_000
