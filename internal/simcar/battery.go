// Package simcar is the simulated car: a product feature for the demo and the
// tests, never a stand-in for a real vehicle in the product. A battery model
// (capacity, state of charge, a charge acceptance that tapers near full, a
// pack voltage that follows the charge) and a charge port (door, cable,
// latch) drive a vehicle profile's CAN messages at their DBC cycle times. It
// charges only while power is applied to it, through the PowerInput
// interface that the simulated EVSE drives.
package simcar

import "math"

// Params describe the simulated car's battery and charger. Energy and power
// are integers (Wh, W); ratios are in per mille.
type Params struct {
	CapacityWh       int64 // usable pack energy
	NominalWh        int64 // nominal pack energy (>= usable)
	InitialSOCPermil int64
	TargetSOCPermil  int64 // the car's own charge limit
	ChargerMaxW      int64 // on-board charger's input limit
	EfficiencyPermil int64 // charger and pack losses: pack energy per energy drawn
	Cells            int64 // series cells, for the pack voltage
	// TaperFromPermil is where charge acceptance starts to fall, linearly,
	// to a tenth at full.
	TaperFromPermil int64
}

// DefaultParams is a mid-size car on an 11 kW AC charger.
func DefaultParams() Params {
	return Params{
		CapacityWh:       60_000,
		NominalWh:        64_000,
		InitialSOCPermil: 200,
		TargetSOCPermil:  800,
		ChargerMaxW:      11_000,
		EfficiencyPermil: 920,
		Cells:            96,
		TaperFromPermil:  800,
	}
}

// battery holds the energy in nanojoules so that small steps at high speed
// factors add up without rounding drift.
type battery struct {
	p        Params
	storedNJ int64
}

const njPerWh = 3_600_000_000_000

func newBattery(p Params) *battery {
	return &battery{p: p, storedNJ: p.CapacityWh * p.InitialSOCPermil / 1000 * njPerWh}
}

func (b *battery) storedWh() int64 { return b.storedNJ / njPerWh }

// socPermil is the state of charge in tenths of a percent.
func (b *battery) socPermil() int64 {
	return b.storedNJ / (b.p.CapacityWh * njPerWh / 1000)
}

// acceptW is the most power the car will draw now: the charger's limit,
// tapered above TaperFrom, and nothing once the car's target is reached.
func (b *battery) acceptW() int64 {
	soc := b.socPermil()
	if soc >= b.p.TargetSOCPermil || soc >= 1000 {
		return 0
	}
	max := b.p.ChargerMaxW
	if soc > b.p.TaperFromPermil && b.p.TaperFromPermil < 1000 {
		// linear from full power at TaperFrom down to a tenth at 100 %
		span := 1000 - b.p.TaperFromPermil
		left := 1000 - soc
		max = max/10 + (max-max/10)*left/span
	}
	return max
}

// charge draws w watts for dtMicros microseconds; the pack stores the part
// the efficiency allows.
func (b *battery) charge(w, dtMicros int64) {
	if w <= 0 || dtMicros <= 0 {
		return
	}
	// W * µs = µJ; *1000 = nJ
	b.storedNJ += w * dtMicros * 1000 * b.p.EfficiencyPermil / 1000
	if full := b.p.CapacityWh * njPerWh; b.storedNJ > full {
		b.storedNJ = full
	}
}

// packVoltage follows the charge: a lithium-ion open-circuit curve per cell
// (steep near empty, flat in the middle, rising near full) plus the IR rise
// while charging.
func (b *battery) packVoltage(chargeW int64) float64 {
	soc := float64(b.socPermil()) / 1000
	cell := 3.0 + 1.1*soc - 0.25*math.Exp(-12*soc) + 0.1*math.Pow(soc, 8)
	v := cell * float64(b.p.Cells)
	if chargeW > 0 {
		// about 0.1 ohm pack resistance
		v += 0.1 * float64(chargeW) / v
	}
	return v
}
