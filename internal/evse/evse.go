// Package evse holds what every EVSE driver reports, so the wall controller
// can drive the simulated EVSE and a real OpenEVSE the same way. The drivers
// live in their own packages (simevse, rapi); the interface they satisfy is
// declared by the wall controller, which uses it.
package evse

import (
	"errors"
	"fmt"
)

// Pilot is the IEC 61851 control pilot state as the EVSE sees it.
type Pilot int

const (
	PilotUnknown Pilot = iota
	PilotA             // no vehicle connected
	PilotB             // vehicle connected, not asking for power
	PilotC             // vehicle connected and asking for power
	PilotD             // asking for power with ventilation (treated as C)
	PilotE             // error: pilot shorted or no pilot
	PilotF             // EVSE fault
)

var pilotNames = [...]string{"unknown", "A", "B", "C", "D", "E", "F"}

func (p Pilot) String() string {
	if p >= 0 && int(p) < len(pilotNames) {
		return pilotNames[p]
	}
	return fmt.Sprintf("Pilot(%d)", int(p))
}

// VehicleConnected reports whether a vehicle is plugged in.
func (p Pilot) VehicleConnected() bool { return p == PilotB || p == PilotC || p == PilotD }

// Status is one reading of the EVSE.
type Status struct {
	Pilot Pilot
	// Enabled: the EVSE is allowed to close its contactor when the vehicle
	// asks (pilot oscillating). Disabled means sleeping: pilot steady, no
	// power.
	Enabled bool
	// ContactorClosed: power is actually applied to the cable.
	ContactorClosed bool
	PowerW          int64
	VoltageMV       int64
	CurrentMA       int64
	// SessionMWh is the energy the EVSE's meter counts since the vehicle
	// was connected; it restarts at zero when a vehicle connects.
	SessionMWh int64
	// Fault is non-empty when the EVSE reports a fault (ground fault,
	// stuck relay, GFI, over-temperature, a vehicle error state).
	Fault string
}

// ErrUnreachable means the EVSE did not answer (serial line silent, device
// gone). Drivers wrap it so the controller can tell "no answer" from "the
// EVSE answered with a fault".
var ErrUnreachable = errors.New("evse: not answering")
