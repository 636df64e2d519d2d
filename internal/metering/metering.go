// Package metering is the wall's pay-as-you-go state machine for one
// charging session, from plug-in to unplug. It is pure logic: it is told
// about payments, meter readings, the time and the end of the session, and
// answers whether the EVSE may deliver power. Money is integer msat and
// energy integer mWh; nothing here rounds money away.
package metering

import (
	"errors"
	"fmt"
	"time"
)

// State is where a session is.
type State int

const (
	AwaitingPayment State = iota // plugged in, first payment not yet in
	Energising                   // paid ahead (or within the grace): power allowed
	Suspended                    // delivered more than paid plus the grace
	Ended                        // over; see EndReason
)

var stateNames = [...]string{"awaiting_payment", "energising", "suspended", "ended"}

func (s State) String() string {
	if s >= 0 && int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// EndReason says why a session ended.
type EndReason int

const (
	NotEnded      EndReason = iota
	Unplugged               // the cable came out
	UnpaidTimeout           // no payment for too long while awaiting or suspended
	BuyerStopped            // the car asked to stop
	ChargerFault            // the EVSE reported a fault or could not be controlled
	WallShutdown            // wallctl is stopping
)

var reasonNames = [...]string{"", "unplugged", "unpaid_timeout", "buyer_stopped", "charger_fault", "wall_shutdown"}

func (r EndReason) String() string {
	if r >= 0 && int(r) < len(reasonNames) {
		return reasonNames[r]
	}
	return fmt.Sprintf("EndReason(%d)", int(r))
}

// ParseEndReason is the inverse of String, for records read back.
func ParseEndReason(s string) (EndReason, error) {
	for i, n := range reasonNames {
		if i > 0 && n == s {
			return EndReason(i), nil
		}
	}
	return NotEnded, fmt.Errorf("metering: unknown end reason %q", s)
}

// Terms are a session's price and payment rules, fixed when the offer is
// made: a later price change applies to the next session only.
type Terms struct {
	PriceMsatPerWh int64
	IncrementWh    int64
	FirstMultiple  int64 // the first payment is FirstMultiple increments
	GraceWh        int64 // energy the wall delivers beyond what is paid before suspending
	// UnpaidTimeout ends a session that waits for a payment (first or
	// after a suspension) this long. Zero means never.
	UnpaidTimeout time.Duration
}

// Validate refuses terms that would make the arithmetic meaningless.
func (t Terms) Validate() error {
	switch {
	case t.PriceMsatPerWh <= 0:
		return fmt.Errorf("metering: price %d msat/Wh must be positive", t.PriceMsatPerWh)
	case t.IncrementWh <= 0:
		return fmt.Errorf("metering: increment %d Wh must be positive", t.IncrementWh)
	case t.FirstMultiple <= 0:
		return fmt.Errorf("metering: first-payment multiple %d must be positive", t.FirstMultiple)
	case t.GraceWh < 0:
		return fmt.Errorf("metering: grace %d Wh must not be negative", t.GraceWh)
	case t.UnpaidTimeout < 0:
		return fmt.Errorf("metering: unpaid timeout %s must not be negative", t.UnpaidTimeout)
	}
	// Costs are computed as mWh*price; keep them far from overflow for any
	// energy a charging session can deliver (1 GWh). The energies the
	// terms name get the same bound, so that the first payment, an
	// increment and the grace in msat cannot overflow either (the owner
	// sets them over the API).
	const maxPrice = (1<<63 - 1) / 1_000_000_000_000
	const maxWh = 1_000_000_000
	switch {
	case t.PriceMsatPerWh > maxPrice:
		return fmt.Errorf("metering: price %d msat/Wh is beyond any sane tariff", t.PriceMsatPerWh)
	case t.IncrementWh > maxWh:
		return fmt.Errorf("metering: increment %d Wh is beyond what a session can deliver (1 GWh)", t.IncrementWh)
	case t.FirstMultiple > maxWh/t.IncrementWh:
		return fmt.Errorf("metering: first payment of %d x %d Wh is beyond what a session can deliver (1 GWh)", t.FirstMultiple, t.IncrementWh)
	case t.GraceWh > maxWh:
		return fmt.Errorf("metering: grace %d Wh is beyond what a session can deliver (1 GWh)", t.GraceWh)
	}
	return nil
}

// FirstPaymentMsat is what the first payment must bring.
func (t Terms) FirstPaymentMsat() int64 {
	return t.FirstMultiple * t.IncrementWh * t.PriceMsatPerWh
}

// IncrementMsat is the price of one increment.
func (t Terms) IncrementMsat() int64 { return t.IncrementWh * t.PriceMsatPerWh }

// GraceMsat is the grace expressed in money.
func (t Terms) GraceMsat() int64 { return t.GraceWh * t.PriceMsatPerWh }

// CostMsat is the price of mWh milliwatt-hours. It rounds down, and since it
// is always computed from the session's whole delivered energy, the rounding
// never adds up: the wall forgoes less than one msat per session.
func (t Terms) CostMsat(mWh int64) int64 { return mWh * t.PriceMsatPerWh / 1000 }

// Decision is what the wall must do after an input.
type Decision struct {
	Enable  bool  // the EVSE may deliver power
	State   State // the state after the input
	Changed bool  // the state changed with this input
	// Late is set when a payment arrived after the session ended: it is
	// recorded and shown but powers nothing.
	Late bool
}

// Snapshot is a session's numbers at one moment.
type Snapshot struct {
	ID              string
	State           State
	EndReason       EndReason
	Terms           Terms
	StartedAt       time.Time
	EndedAt         time.Time // zero while running
	FirstEnergyAt   time.Time // when power was first allowed; zero if never
	PaidMsat        int64     // every msat received, overpayment and late payments included
	LatePaidMsat    int64     // part of PaidMsat that arrived after the end
	Payments        int
	DeliveredMWh    int64
	CostMsat        int64 // price of DeliveredMWh
	CreditMsat      int64 // PaidMsat - CostMsat; negative within the grace
	PaidEnergyMWh   int64 // energy PaidMsat buys at the session price
	CreditEnergyMWh int64 // PaidEnergyMWh - DeliveredMWh
}

// Session is one plug-in to unplug. It is not safe for concurrent use; the
// caller serialises inputs (the wall controller holds one lock per session).
type Session struct {
	id            string
	terms         Terms
	state         State
	reason        EndReason
	startedAt     time.Time
	endedAt       time.Time
	firstEnergyAt time.Time
	waitingSince  time.Time // start of the current wait for payment
	paidMsat      int64
	latePaidMsat  int64
	payments      int
	deliveredMWh  int64
	aheadMWh      int64 // energy expected before the next meter reading
}

// ErrMeterBackwards reports a meter reading below an earlier one.
var ErrMeterBackwards = errors.New("metering: meter reading went backwards")

// New opens a session at plug-in; it awaits its first payment.
func New(id string, t Terms, now time.Time) (*Session, error) {
	if id == "" {
		return nil, errors.New("metering: empty session id")
	}
	if err := t.Validate(); err != nil {
		return nil, err
	}
	return &Session{id: id, terms: t, state: AwaitingPayment, startedAt: now, waitingSince: now}, nil
}

// Restore rebuilds a session from its records after a restart: what was
// paid and delivered decides the state, as if each had just been reported.
func Restore(id string, t Terms, startedAt time.Time, paidMsat int64, payments int, deliveredMWh int64, now time.Time) (*Session, error) {
	s, err := New(id, t, startedAt)
	if err != nil {
		return nil, err
	}
	if paidMsat < 0 || deliveredMWh < 0 || payments < 0 {
		return nil, fmt.Errorf("metering: restore %s: negative paid %d msat, delivered %d mWh or %d payments", id, paidMsat, deliveredMWh, payments)
	}
	s.paidMsat, s.payments, s.deliveredMWh = paidMsat, payments, deliveredMWh
	s.waitingSince = now
	if paidMsat >= t.FirstPaymentMsat() || deliveredMWh > 0 {
		// It was energising before the restart (or suspended: settle below).
		s.state = Energising
		s.firstEnergyAt = startedAt
	}
	s.settle(now)
	return s, nil
}

// Pay credits a settled payment of amtMsat, the amount actually paid.
func (s *Session) Pay(amtMsat int64, now time.Time) (Decision, error) {
	if amtMsat <= 0 {
		return s.decision(false), fmt.Errorf("metering: session %s: payment of %d msat", s.id, amtMsat)
	}
	s.paidMsat += amtMsat
	s.payments++
	if s.state == Ended {
		s.latePaidMsat += amtMsat
		d := s.decision(false)
		d.Late = true
		return d, nil
	}
	return s.settle(now), nil
}

// Meter reports the energy delivered in this session so far (cumulative).
func (s *Session) Meter(deliveredMWh int64, now time.Time) (Decision, error) {
	if deliveredMWh < s.deliveredMWh {
		return s.decision(false), fmt.Errorf("%w: session %s: %d mWh after %d mWh", ErrMeterBackwards, s.id, deliveredMWh, s.deliveredMWh)
	}
	// Energy after the end is not the buyer's: it is the EVSE failing to
	// stop, which the caller handles as a fault.
	if s.state != Ended {
		s.deliveredMWh = deliveredMWh
	}
	return s.settle(now), nil
}

// MeterAhead is Meter with a look-ahead: aheadMWh is the energy the EVSE
// will deliver before the next reading at the present power. The session
// suspends as soon as that energy would take it past the grace, rather
// than one reading too late, so delivered energy stays within paid energy
// plus the grace while the power holds steady.
func (s *Session) MeterAhead(deliveredMWh, aheadMWh int64, now time.Time) (Decision, error) {
	s.aheadMWh = max(aheadMWh, 0)
	return s.Meter(deliveredMWh, now)
}

// Tick lets time pass: a session waiting too long for payment ends.
func (s *Session) Tick(now time.Time) Decision {
	return s.settle(now)
}

// End closes the session. Ending twice keeps the first reason.
func (s *Session) End(r EndReason, now time.Time) Decision {
	if s.state == Ended {
		return s.decision(false)
	}
	if r == NotEnded {
		r = WallShutdown
	}
	s.state, s.reason, s.endedAt = Ended, r, now
	return s.decision(true)
}

// settle moves the state to match the numbers.
func (s *Session) settle(now time.Time) Decision {
	if s.state == Ended {
		return s.decision(false)
	}
	credit := s.paidMsat - s.terms.CostMsat(s.deliveredMWh)
	prev := s.state
	switch s.state {
	case AwaitingPayment:
		if s.paidMsat >= s.terms.FirstPaymentMsat() {
			s.state = Energising
			s.firstEnergyAt = now
		}
	case Energising:
		if credit <= -s.terms.GraceMsat() || s.pastGraceAhead() {
			s.state = Suspended
			s.waitingSince = now
		}
	case Suspended:
		// Resume only with energy paid ahead, so the contactor does not
		// chatter at the edge of the grace.
		if credit > 0 && !s.pastGraceAhead() {
			s.state = Energising
		}
	}
	if (s.state == AwaitingPayment || s.state == Suspended) && s.terms.UnpaidTimeout > 0 &&
		!now.Before(s.waitingSince.Add(s.terms.UnpaidTimeout)) {
		return s.End(UnpaidTimeout, now)
	}
	return s.decision(s.state != prev)
}

// pastGraceAhead: the energy expected before the next reading would take
// the credit past the grace.
func (s *Session) pastGraceAhead() bool {
	if s.aheadMWh == 0 {
		return false
	}
	// In energy, so that the cost's rounding cannot hide a milliwatt-hour.
	limitMWh := s.paidMsat*1000/s.terms.PriceMsatPerWh + s.terms.GraceWh*1000
	return s.deliveredMWh+s.aheadMWh > limitMWh
}

func (s *Session) decision(changed bool) Decision {
	return Decision{Enable: s.state == Energising, State: s.state, Changed: changed}
}

// State reports the current state.
func (s *Session) State() State { return s.state }

// ID is the session's id.
func (s *Session) ID() string { return s.id }

// Terms are the session's fixed terms.
func (s *Session) Terms() Terms { return s.terms }

// Snapshot returns the session's numbers now.
func (s *Session) Snapshot() Snapshot {
	cost := s.terms.CostMsat(s.deliveredMWh)
	paidMWh := s.paidMsat * 1000 / s.terms.PriceMsatPerWh
	return Snapshot{
		ID: s.id, State: s.state, EndReason: s.reason, Terms: s.terms,
		StartedAt: s.startedAt, EndedAt: s.endedAt, FirstEnergyAt: s.firstEnergyAt,
		PaidMsat: s.paidMsat, LatePaidMsat: s.latePaidMsat, Payments: s.payments,
		DeliveredMWh: s.deliveredMWh, CostMsat: cost, CreditMsat: s.paidMsat - cost,
		PaidEnergyMWh: paidMWh, CreditEnergyMWh: paidMWh - s.deliveredMWh,
	}
}
