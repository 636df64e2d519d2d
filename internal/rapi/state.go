package rapi

import (
	"fmt"
	"strconv"

	"satwatt/internal/evse"
)

// State is an OpenEVSE state number (EVSE_STATE_xxx in the firmware), as
// $GS, $AT and $ST report it, in hex. The same numbers 1..4 describe the
// pilot in $GS and $AT's pilot field.
type State uint8

const (
	StateUnknown           State = 0x00
	StateA                 State = 0x01 // no vehicle
	StateB                 State = 0x02 // vehicle connected, not charging
	StateC                 State = 0x03 // charging
	StateD                 State = 0x04 // vent required; the firmware treats it as the first fault state
	StateDiodeCheckFailed  State = 0x05
	StateGFCIFault         State = 0x06
	StateNoGround          State = 0x07
	StateStuckRelay        State = 0x08
	StateGFISelfTestFailed State = 0x09
	StateOverTemperature   State = 0x0A
	StateOverCurrent       State = 0x0B
	// 0x0C and 0x0D are reserved in the firmware; the following are only
	// sent by recent firmware (OpenEVSE/open_evse 8.x and later).
	StateRelayClosureFault State = 0x0E
	StatePPShorted         State = 0x0F
	StatePPMissing         State = 0x10
	StateEEPROMFailure     State = 0x11
	StateSleeping          State = 0xFE // $FS
	StateDisabled          State = 0xFF // $FD
)

// Bits of the firmware's volatile flags (m_wVFlags, ECVF_xxx) that $GS and
// $AT report in hex.
const (
	VFlagHardFault   = 0x0002 // in a fault that does not clear by itself
	VFlagChargingOn  = 0x0040 // the charging relay is closed
	VFlagEVConnected = 0x0100 // valid only while the pilot is not at -12 V
)

var faultText = map[State]string{
	StateD:                 "vehicle requires ventilation (state D)",
	StateDiodeCheckFailed:  "pilot diode check failed",
	StateGFCIFault:         "ground fault (GFCI tripped)",
	StateNoGround:          "no ground",
	StateStuckRelay:        "stuck relay",
	StateGFISelfTestFailed: "GFI self-test failed",
	StateOverTemperature:   "over temperature",
	StateOverCurrent:       "over current",
	StateRelayClosureFault: "relay did not close",
	StatePPShorted:         "proximity pin shorted",
	StatePPMissing:         "proximity resistor missing",
	StateEEPROMFailure:     "EEPROM failure",
}

// IsFault reports whether s is one of the firmware's fault states (4..0x11
// and the unassigned numbers up to the sleeping state).
func (s State) IsFault() bool { return s >= StateD && s < StateSleeping }

// Fault is the human text for a fault state, "" for the others.
func (s State) Fault() string {
	if !s.IsFault() {
		return ""
	}
	if t, ok := faultText[s]; ok {
		return t
	}
	return fmt.Sprintf("fault state 0x%02X", uint8(s))
}

func (s State) String() string {
	switch {
	case s >= StateA && s <= StateD:
		return string(rune('A' + s - StateA))
	case s == StateSleeping:
		return "sleeping"
	case s == StateDisabled:
		return "disabled"
	case s.IsFault():
		return s.Fault()
	}
	return fmt.Sprintf("State(0x%02X)", uint8(s))
}

// StateNotice is an asynchronous $AT (or legacy $ST) state notice. The
// firmware sends $AT whenever the EVSE state, pilot state, current capacity
// or one of the connection/limit/fault flags changes, also right after a
// command's reply when the command changed them.
type StateNotice struct {
	EVSE     State
	Pilot    State  // StateUnknown for $ST
	CurrentA int    // advertised current capacity; -1 for $ST
	VFlags   uint16 // 0 for $ST
}

// ParseStateNotice reads $AT evsestate(hex) pilotstate(hex)
// currentcapacity(decimal) vflags(hex), or the legacy $ST evsestate(hex).
func ParseStateNotice(f Frame) (StateNotice, error) {
	switch f.Name {
	case "ST":
		if len(f.Fields) != 1 {
			return StateNotice{}, fmt.Errorf("rapi: %s: want 1 field, got %d", f, len(f.Fields))
		}
		st, err := parseHexState(f.Fields[0])
		if err != nil {
			return StateNotice{}, fmt.Errorf("rapi: %s: %w", f, err)
		}
		return StateNotice{EVSE: st, CurrentA: -1}, nil
	case "AT":
		if len(f.Fields) != 4 {
			return StateNotice{}, fmt.Errorf("rapi: %s: want 4 fields, got %d", f, len(f.Fields))
		}
		var n StateNotice
		var err error
		if n.EVSE, err = parseHexState(f.Fields[0]); err != nil {
			return StateNotice{}, fmt.Errorf("rapi: %s: evse state: %w", f, err)
		}
		if n.Pilot, err = parseHexState(f.Fields[1]); err != nil {
			return StateNotice{}, fmt.Errorf("rapi: %s: pilot state: %w", f, err)
		}
		// The firmware prints the capacity from a uint8_t.
		a, err := strconv.ParseUint(f.Fields[2], 10, 8)
		if err != nil {
			return StateNotice{}, fmt.Errorf("rapi: %s: current capacity %q is not a decimal from 0 to 255: %w", f, f.Fields[2], err)
		}
		n.CurrentA = int(a)
		v, err := strconv.ParseUint(f.Fields[3], 16, 16)
		if err != nil {
			return StateNotice{}, fmt.Errorf("rapi: %s: vflags: %w", f, err)
		}
		n.VFlags = uint16(v)
		return n, nil
	}
	return StateNotice{}, fmt.Errorf("rapi: %s is not a state notice", f)
}

func parseHexState(s string) (State, error) {
	v, err := strconv.ParseUint(s, 16, 8)
	if err != nil {
		return 0, fmt.Errorf("state %q is not a hex byte", s)
	}
	return State(v), nil
}

// stateReply is $GS: evsestate(hex) elapsed(dec) pilotstate(hex) vflags(hex).
// Firmware before 4.x sends only the first two.
type stateReply struct {
	EVSE     State
	Elapsed  int64 // seconds of the current or last charge
	Pilot    State
	VFlags   uint16
	HasPilot bool // pilot and vflags were sent
}

func parseGS(fields []string) (stateReply, error) {
	if len(fields) != 2 && len(fields) != 4 {
		return stateReply{}, fmt.Errorf("$GS: want 2 or 4 fields, got %d %q", len(fields), fields)
	}
	var r stateReply
	var err error
	if r.EVSE, err = parseHexState(fields[0]); err != nil {
		return stateReply{}, fmt.Errorf("$GS evse state: %w", err)
	}
	// Seconds since the charge began: never negative.
	if r.Elapsed, err = strconv.ParseInt(fields[1], 10, 64); err != nil || r.Elapsed < 0 {
		return stateReply{}, fmt.Errorf("$GS elapsed %q is not a decimal count of seconds", fields[1])
	}
	if len(fields) == 4 {
		if r.Pilot, err = parseHexState(fields[2]); err != nil {
			return stateReply{}, fmt.Errorf("$GS pilot state: %w", err)
		}
		v, err := strconv.ParseUint(fields[3], 16, 16)
		if err != nil {
			return stateReply{}, fmt.Errorf("$GS vflags %q: %w", fields[3], err)
		}
		r.VFlags = uint16(v)
		r.HasPilot = true
	}
	return r, nil
}

// meterReply is $GG (milliamps millivolts) and $GU (watt-seconds of this
// session, watt-hours accumulated).
type meterReply struct {
	CurrentMA, VoltageMV int64
	SessionWs, TotalWh   int64
}

// parseInts reads a reply's decimal fields. The firmware prints them from
// 32-bit variables, signed (long: $GG, where -1 mA means no ammeter) or
// unsigned (unsigned long: $GU), so a value outside that range is not
// something it sent; refusing it also keeps the arithmetic on the values
// (power, energy) far from overflowing.
func parseInts(cmd string, signed bool, fields []string, names ...string) ([]int64, error) {
	if len(fields) != len(names) {
		return nil, fmt.Errorf("%s: want %d fields, got %d %q", cmd, len(names), len(fields), fields)
	}
	out := make([]int64, len(fields))
	for i, s := range fields {
		var v int64
		var err error
		if signed {
			v, err = strconv.ParseInt(s, 10, 32)
		} else {
			var u uint64
			u, err = strconv.ParseUint(s, 10, 32)
			v = int64(u)
		}
		if err != nil {
			kind := "an unsigned"
			if signed {
				kind = "a signed"
			}
			return nil, fmt.Errorf("%s %s %q (field %d) is not %s 32-bit decimal integer", cmd, names[i], s, i+1, kind)
		}
		out[i] = v
	}
	return out, nil
}

// WsToMWh converts watt-seconds to milliwatt-hours in integers:
// 1 mWh = 3.6 Ws, so mWh = Ws*1000/3600 = Ws*5/18, rounded toward zero.
// It divides first so no int64 can overflow.
func WsToMWh(ws int64) int64 { return ws/18*5 + ws%18*5/18 }

// buildStatus maps the three readings to evse.Status.
func buildStatus(gs stateReply, m meterReply) evse.Status {
	st := evse.Status{
		VoltageMV:  max(m.VoltageMV, 0),
		CurrentMA:  max(m.CurrentMA, 0), // -1 means "no ammeter"
		SessionMWh: WsToMWh(max(m.SessionWs, 0)),
		Fault:      gs.EVSE.Fault(),
	}
	st.PowerW = st.VoltageMV * st.CurrentMA / 1_000_000
	st.Enabled = gs.EVSE >= StateA && gs.EVSE <= StateC
	switch {
	case gs.EVSE == StateStuckRelay:
		// The relay was told to open and did not: assume the worst.
		st.ContactorClosed = true
	case gs.HasPilot:
		st.ContactorClosed = gs.VFlags&VFlagChargingOn != 0
	default:
		st.ContactorClosed = gs.EVSE == StateC
	}
	st.Pilot = pilotOf(gs)
	return st
}

func pilotOf(gs stateReply) evse.Pilot {
	p := gs.Pilot
	if !gs.HasPilot {
		p = gs.EVSE
	}
	switch p {
	case StateA:
		return evse.PilotA
	case StateB:
		return evse.PilotB
	case StateC:
		return evse.PilotC
	case StateD:
		return evse.PilotD
	}
	if gs.EVSE == StateDiodeCheckFailed {
		return evse.PilotE
	}
	if gs.EVSE.IsFault() {
		return evse.PilotF
	}
	return evse.PilotUnknown
}
