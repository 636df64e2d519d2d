package simevse

import (
	"sync"

	"satwatt/internal/simcar"
)

// Vehicle is what the simulated EVSE's cable connects to. *simcar.Car,
// FixedVehicle and HTTPVehicle satisfy it. The simulated EVSE calls it on
// every step while holding its own lock, so the methods must return quickly
// and must not call back into the EVSE.
type Vehicle interface {
	Plugged() bool
	// Offer is the power the EVSE makes available: the ramped limit while
	// its contactor is closed, 0 when open.
	Offer(maxW int64)
	DrawW() int64
}

// PowerRequester is an optional part of Vehicle: whether a plugged vehicle
// asks for power (pilot C) or only sits connected (pilot B). A *simcar.Car
// asks while its charge state is "ready" or "charging"; any other vehicle
// without this method asks whenever it is plugged.
type PowerRequester interface {
	WantsPower() bool
}

// carState is how the simulated car tells whether it wants charge.
type carState interface {
	State() simcar.State
}

func wantsPower(v Vehicle) bool {
	switch x := v.(type) {
	case PowerRequester:
		return x.WantsPower()
	case carState:
		return chargingAsks(x.State().Charging)
	}
	return true
}

// chargingAsks reads the simulated car's charge state word: latched and not
// yet at its target means it asks for power. An empty word (a car that does
// not say) counts as asking.
func chargingAsks(word string) bool {
	switch word {
	case "ready", "charging", "":
		return true
	}
	return false
}

// FixedVehicle is a dumb simulated vehicle for tests and demos without a
// simulated car: plugged in, it asks for power and draws what it is offered
// up to a fixed maximum.
type FixedVehicle struct {
	mu      sync.Mutex
	maxW    int64
	plugged bool
	asks    bool
	offered int64
}

// NewFixedVehicle returns an unplugged vehicle that will draw up to maxW
// and asks for power once plugged.
func NewFixedVehicle(maxW int64) *FixedVehicle {
	return &FixedVehicle{maxW: max(0, maxW), asks: true}
}

// Plug connects the cable.
func (v *FixedVehicle) Plug() {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.plugged = true
}

// Unplug pulls the cable; the vehicle no longer sees any offer.
func (v *FixedVehicle) Unplug() {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.plugged, v.offered = false, 0
}

// SetWantsPower makes the plugged vehicle ask for power (pilot C) or stop
// asking (pilot B).
func (v *FixedVehicle) SetWantsPower(asks bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.asks = asks
}

// SetMaxW changes the most the vehicle draws.
func (v *FixedVehicle) SetMaxW(w int64) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.maxW = max(0, w)
}

// Plugged implements Vehicle.
func (v *FixedVehicle) Plugged() bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.plugged
}

// WantsPower implements PowerRequester.
func (v *FixedVehicle) WantsPower() bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.plugged && v.asks
}

// Offer implements Vehicle.
func (v *FixedVehicle) Offer(maxW int64) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if !v.plugged {
		maxW = 0
	}
	v.offered = max(0, maxW)
}

// Offered is the power last offered to the vehicle.
func (v *FixedVehicle) Offered() int64 {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.offered
}

// DrawW implements Vehicle: what is offered, up to the vehicle's maximum,
// and nothing unless plugged and asking.
func (v *FixedVehicle) DrawW() int64 {
	v.mu.Lock()
	defer v.mu.Unlock()
	if !v.plugged || !v.asks {
		return 0
	}
	return min(v.offered, v.maxW)
}
