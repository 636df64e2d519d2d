// Package buypolicy is the car's purchase policy: whether to buy from a
// wall at all, how much energy, and when to pay the next increment.
// Evaluate judges an offer before anything is paid (price against the
// owner's limit, state of charge against the target, the first payment
// against the budgets and the per-payment cap) and plans the energy to buy:
// the battery's shortfall divided by the charging efficiency, rounded up,
// then cut to what the budgets allow, rounded down. Next is called again and
// again during the session with fresh numbers and answers Pay, Wait or Stop.
// The first payment is FirstMultiple increments and every later one exactly
// one increment, made once the credit left falls to what the wall delivers
// during the lead time at the present power, so that a payment's latency
// never starves the charger. Next stops at the target, once the credit
// covers what the battery still needs, and before a payment that would
// cross a budget or the cap; it waits, never paying blind, while the state
// of charge is stale, the owner's node is unreachable or its balance above
// the reserve is short, and it raises LowBalanceSoon before the money runs
// out rather than after a payment fails. It is pure: no I/O, no clock, no
// state between calls. Every quantity is an integer (msat, Wh, mWh,
// permille), and every rounding goes the way that keeps the car within its
// budgets and above its reserve.
package buypolicy

import (
	"errors"
	"fmt"
	"math"
	"time"

	"satwatt/internal/offer"
)

// Defaults and bounds for Settings and the numbers Next is given.
const (
	// DefaultEfficiencyPermille is the share of wall energy assumed to
	// reach the battery when the owner sets none: AC charging loses 5-15%.
	DefaultEfficiencyPermille = 900
	// DefaultLeadTime covers a Lightning payment's usual latency with room.
	DefaultLeadTime = 20 * time.Second
	// MaxLeadTime bounds LeadTime: paying more than ten minutes ahead only
	// leaves more credit with the wall.
	MaxLeadTime = 10 * time.Minute
	// MaxMsat is all the bitcoin there will ever be, in msat. Any two such
	// amounts add up without overflowing int64.
	MaxMsat int64 = 21_000_000 * 100_000_000 * 1000
	// MaxPriceLimitMsatPerWh bounds the owner's price limit (10^9 msat/Wh
	// is 10^9 sat/kWh), so that a plan's cost always fits in int64.
	MaxPriceLimitMsatPerWh int64 = 1_000_000_000
	// MaxPackWh bounds a pack size (1 MWh, five times a large truck's).
	MaxPackWh int64 = 1_000_000
	// MaxSessionMWh bounds the energy and credit a session may report
	// (1 GWh); a wall reporting more is not believed.
	MaxSessionMWh int64 = 1_000_000_000_000
	// maxPowerW clamps reported power (1 GW) so energy sums stay in range.
	maxPowerW int64 = 1_000_000_000
)

// ErrInvalidSettings is wrapped by every Settings.Validate failure.
var ErrInvalidSettings = errors.New("buypolicy: invalid settings")

// Settings are the owner's rules for buying energy.
type Settings struct {
	TargetSoCPermille  int64 // stop buying at this state of charge, 1..1000
	MaxPriceMsatPerWh  int64 // refuse dearer offers; msat/Wh equals sat/kWh
	EfficiencyPermille int64 // wall energy that reaches the battery; 0 means DefaultEfficiencyPermille, else 500..1000
	BudgetSessionMsat  int64 // most paid in one session; 0 means no limit
	BudgetDayMsat      int64 // most paid in one day, all sessions; 0 means no limit
	ReserveMsat        int64 // spendable balance the node always keeps
	MaxPaymentMsat     int64 // cap on one payment, as invoicecheck enforces it; must be positive
	// MaxFeeMsat is the most one payment may cost in routing fees (the
	// payer's fee limit). The reserve check adds it to each payment, so
	// fees never take the balance below the reserve. 0 for fee-free routes.
	MaxFeeMsat     int64
	PackWhFallback int64         // the owner's pack size, used when the car reports none; 0 means none
	LeadTime       time.Duration // pay this long before the credit runs out; 0 means DefaultLeadTime
}

// Validate reports every bad field, by name, joined into one error.
func (s Settings) Validate() error {
	var errs []error
	bad := func(field string, v any, want string) {
		errs = append(errs, fmt.Errorf("%w: %s is %v, want %s", ErrInvalidSettings, field, v, want))
	}
	if s.TargetSoCPermille < 1 || s.TargetSoCPermille > 1000 {
		bad("TargetSoCPermille", s.TargetSoCPermille, "1..1000")
	}
	if s.MaxPriceMsatPerWh < 1 || s.MaxPriceMsatPerWh > MaxPriceLimitMsatPerWh {
		bad("MaxPriceMsatPerWh", s.MaxPriceMsatPerWh, fmt.Sprintf("1..%d", MaxPriceLimitMsatPerWh))
	}
	if e := s.EfficiencyPermille; e != 0 && (e < 500 || e > 1000) {
		bad("EfficiencyPermille", e, "0 (default 900) or 500..1000")
	}
	msat := []struct {
		name     string
		v        int64
		positive bool
	}{
		{"BudgetSessionMsat", s.BudgetSessionMsat, false},
		{"BudgetDayMsat", s.BudgetDayMsat, false},
		{"ReserveMsat", s.ReserveMsat, false},
		{"MaxPaymentMsat", s.MaxPaymentMsat, true},
		{"MaxFeeMsat", s.MaxFeeMsat, false},
	}
	for _, m := range msat {
		lo := int64(0)
		if m.positive {
			lo = 1
		}
		if m.v < lo || m.v > MaxMsat {
			bad(m.name, m.v, fmt.Sprintf("%d..%d", lo, MaxMsat))
		}
	}
	if s.PackWhFallback < 0 || s.PackWhFallback > MaxPackWh {
		bad("PackWhFallback", s.PackWhFallback, fmt.Sprintf("0 (none) or 1..%d", MaxPackWh))
	}
	if s.LeadTime < 0 || s.LeadTime > MaxLeadTime {
		bad("LeadTime", s.LeadTime, fmt.Sprintf("0 (default %s) or up to %s", DefaultLeadTime, MaxLeadTime))
	}
	return errors.Join(errs...)
}

func (s Settings) efficiency() int64 {
	if s.EfficiencyPermille == 0 {
		return DefaultEfficiencyPermille
	}
	return s.EfficiencyPermille
}

func (s Settings) leadTime() time.Duration {
	if s.LeadTime == 0 {
		return DefaultLeadTime
	}
	return s.LeadTime
}

// Vehicle is what the car's bus says now. A signal that is stale or
// implausible is not known: the gateway never trusts a last value forever.
type Vehicle struct {
	SoCPermille int64
	SoCKnown    bool  // false when unknown or stale
	PackWh      int64 // usable or nominal pack energy
	PackKnown   bool  // false when the profile has no such signal or it is stale
}

// Progress is the session so far. PaidMsat and Payments count every
// payment the car has made or has in flight, so that a payment the wall
// has not yet credited is never made twice.
type Progress struct {
	PaidMsat     int64 // paid in this session
	DeliveredMWh int64 // as the wall reports it
	CreditMWh    int64 // paid energy minus delivered, as the wall reports it; negative within the grace
	PowerW       int64 // now; 0 or less when unknown
	Payments     int
}

// Spend is the money outside this session.
type Spend struct {
	DayPaidMsat    int64 // paid today, this session's payments included
	SpendableMsat  int64 // the owner's node's spendable balance
	SpendableKnown bool  // false when the node is unreachable
}

// Reason says why a verdict or decision is what it is. The zero Reason is
// not a reason, so a zero Verdict or Decision never reads as accepted.
type Reason int

const (
	Accepted           Reason = iota + 1 // Evaluate: buy under this offer
	PriceAboveLimit                      // the offer's price is above the owner's limit
	TargetReached                        // the state of charge is at or over the target
	NoPackSize                           // no pack energy signal and no fallback
	VehicleDataStale                     // the state of charge is unknown, stale or implausible
	BudgetTooSmall                       // the first payment does not fit the session or day budget
	PaymentCapTooSmall                   // a payment would be above MaxPaymentMsat
	InvalidSettings                      // Settings.Validate failed
	InvalidOffer                         // offer.Offer.Validate failed
	InvalidProgress                      // Progress or Spend holds impossible numbers
	FirstPayment                         // Next: pay the first payment
	CreditLow                            // Next: the credit fell to the pay threshold; pay one increment
	CreditAhead                          // Next: enough credit; wait
	LowBalance                           // Next: the balance above the reserve is short of the payment; wait
	NodeUnreachable                      // Next: the spendable balance is unknown; wait
	BudgetReached                        // Next: the next payment would cross a budget
	PlanPaid                             // Next: the credit already covers what the battery needs
)

var reasonNames = map[Reason]string{
	Accepted:           "accepted",
	PriceAboveLimit:    "price_above_limit",
	TargetReached:      "target_reached",
	NoPackSize:         "no_pack_size",
	VehicleDataStale:   "vehicle_data_stale",
	BudgetTooSmall:     "budget_too_small",
	PaymentCapTooSmall: "payment_cap_too_small",
	InvalidSettings:    "invalid_settings",
	InvalidOffer:       "invalid_offer",
	InvalidProgress:    "invalid_progress",
	FirstPayment:       "first_payment",
	CreditLow:          "credit_low",
	CreditAhead:        "credit_ahead",
	LowBalance:         "low_balance",
	NodeUnreachable:    "node_unreachable",
	BudgetReached:      "budget_reached",
	PlanPaid:           "plan_paid",
}

func (r Reason) String() string {
	if n, ok := reasonNames[r]; ok {
		return n
	}
	return fmt.Sprintf("Reason(%d)", int(r))
}

// Action is what Next tells the caller to do.
type Action int

const (
	Pay  Action = iota + 1 // ask the wall for an invoice of AmountMsat and pay it
	Wait                   // do nothing now; call Next again with fresh numbers
	Stop                   // buy nothing more in this session
)

func (a Action) String() string {
	switch a {
	case Pay:
		return "pay"
	case Wait:
		return "wait"
	case Stop:
		return "stop"
	}
	return fmt.Sprintf("Action(%d)", int(a))
}

// Bound says what limits the energy bought.
type Bound int

const (
	NoBound       Bound = iota // not worked out (refused before planning)
	TargetBound                // the target state of charge
	SessionBudget              // BudgetSessionMsat
	DayBudget                  // BudgetDayMsat
)

func (b Bound) String() string {
	switch b {
	case NoBound:
		return "none"
	case TargetBound:
		return "target"
	case SessionBudget:
		return "session_budget"
	case DayBudget:
		return "day_budget"
	}
	return fmt.Sprintf("Bound(%d)", int(b))
}

// Plan is what the car means to buy in a session.
type Plan struct {
	PackWh       int64 // pack size used
	PackFallback bool  // PackWh is the owner's fallback, not the car's signal
	BatteryWh    int64 // energy the battery lacks to the target, rounded up
	NeedWh       int64 // wall energy for BatteryWh at the efficiency, rounded up
	EnergyWh     int64 // NeedWh cut to the budgets (rounded down): what to buy
	CostMsat     int64 // EnergyWh at the offer's price; within every budget
	Bound        Bound // what set EnergyWh
	// Payments and PaymentsMsat are the plan in whole payments: the first,
	// then increments until NeedWh is covered, never past a budget. They
	// may buy up to one increment more than EnergyWh (the wall sells no
	// less), or less when a budget cuts the last increment.
	Payments     int64
	PaymentsMsat int64
}

// Verdict is Evaluate's answer.
type Verdict struct {
	Accept bool
	Reason Reason
	Detail string // for people
	Plan   Plan   // filled as far as it could be worked out
}

// Decision is Next's answer.
type Decision struct {
	Action     Action
	AmountMsat int64 // the payment to make, when Action is Pay
	Reason     Reason
	Detail     string // for people
	// PayAtCreditMWh is the credit at or below which the next payment is
	// due at the present power: the caller shows it and calls Next again
	// before the credit reaches it. Zero when Action is Stop.
	PayAtCreditMWh int64
	// LowBalanceSoon is raised when the balance above the reserve will not
	// cover the payments still planned (or, while the plan cannot be
	// worked out, the next two), so the car shows "low balance" before it
	// runs dry. False when the balance is unknown or nothing is planned.
	LowBalanceSoon bool
	// PlannedPayments and PlannedMsat are the payments still planned,
	// this one included, as far as the budgets allow.
	PlannedPayments int64
	PlannedMsat     int64
	Bound           Bound // what limits the rest of the session; the budget crossed for BudgetReached
}

// SameTerms reports whether b sells on a's terms: same session, wall node,
// network, price, increment, first multiple, grace and maximum power. Unlike
// offer.Offer.Equal it ignores ValidUntil, which says nothing about what a
// payment buys; invoicecheck still needs the exact metadata an invoice was
// made for, and a caller given an offer that is not SameTerms as the one it
// accepted must Evaluate it afresh rather than keep paying.
func SameTerms(a, b offer.Offer) bool {
	a.ValidUntil, b.ValidUntil = time.Time{}, time.Time{}
	return a.Equal(b)
}

// Evaluate judges an offer before anything is paid, as if nothing had been
// paid today; EvaluateToday knows better.
func Evaluate(s Settings, v Vehicle, o offer.Offer) Verdict {
	return EvaluateToday(s, v, o, 0)
}

// EvaluateToday is Evaluate with what was already paid today counted
// against the day budget. Checks run in this order, the first failure
// deciding: settings, offer, price, state of charge, target, pack size,
// budgets, payment cap. The price comes before the car's data because it
// is the owner's decision whatever the car says. Offer validity in time is
// invoicecheck.CheckOffer's job: it has the clock.
func EvaluateToday(s Settings, v Vehicle, o offer.Offer, dayPaidMsat int64) Verdict {
	if err := s.Validate(); err != nil {
		return refuse(InvalidSettings, "%v", err)
	}
	if err := o.Validate(); err != nil {
		return refuse(InvalidOffer, "%v", err)
	}
	if dayPaidMsat < 0 || dayPaidMsat > MaxMsat {
		return refuse(InvalidProgress, "paid today is %d msat, want 0..%d", dayPaidMsat, MaxMsat)
	}
	if o.PriceMsatPerWh > s.MaxPriceMsatPerWh {
		return refuse(PriceAboveLimit, "the offer asks %d msat/Wh, the owner's limit is %d msat/Wh",
			o.PriceMsatPerWh, s.MaxPriceMsatPerWh)
	}
	soc, why := socOf(v)
	if why != "" {
		return refuse(VehicleDataStale, "%s", why)
	}
	if soc >= s.TargetSoCPermille {
		return refuse(TargetReached, "state of charge %d‰ is at or over the target %d‰", soc, s.TargetSoCPermille)
	}
	pack, fallback, ok := packOf(s, v)
	if !ok {
		return refuse(NoPackSize, "the car reports no pack energy and the owner set no fallback pack size")
	}
	sessionLeft, dayLeft := budgetsLeft(s, 0, dayPaidMsat)
	limit, limitBound := minBudget(sessionLeft, dayLeft)

	gap := s.TargetSoCPermille - soc
	p := Plan{PackWh: pack, PackFallback: fallback}
	// Both round up: the car buys enough to reach the target, and at most
	// one Wh more for the rounding. NeedWh divides once, from the exact
	// product, so the two roundings do not add up.
	p.BatteryWh = ceilDiv(gap*pack, 1000)
	p.NeedWh = ceilDiv(gap*pack, s.efficiency())
	p.EnergyWh, p.Bound = p.NeedWh, TargetBound
	// Budgets round down: a Wh the budget cannot pay for in full is not
	// bought. A budget wins only when it cuts something.
	if capWh := max(limit, 0) / o.PriceMsatPerWh; capWh < p.EnergyWh {
		p.EnergyWh, p.Bound = capWh, limitBound
	}
	p.CostMsat = p.EnergyWh * o.PriceMsatPerWh // EnergyWh <= 2e6 and price <= 1e9: no overflow
	p.Payments, p.PaymentsMsat, _ = schedule(o, ceilDiv(gap*pack*1000, s.efficiency()), true, limit, math.MaxInt64)

	first := firstMsat(o)
	if s.BudgetSessionMsat > 0 && first > s.BudgetSessionMsat {
		return refusePlan(BudgetTooSmall, p, "the first payment of %d msat (%d x %d Wh at %d msat/Wh) is above the session budget of %d msat",
			first, o.FirstMultiple, o.IncrementWh, o.PriceMsatPerWh, s.BudgetSessionMsat)
	}
	if s.BudgetDayMsat > 0 && first > dayLeft {
		return refusePlan(BudgetTooSmall, p, "the first payment of %d msat is above what is left of the day budget: %d of %d msat",
			first, max(dayLeft, 0), s.BudgetDayMsat)
	}
	if first > s.MaxPaymentMsat {
		return refusePlan(PaymentCapTooSmall, p, "the first payment of %d msat (%d x %d Wh at %d msat/Wh) is above the owner's cap of %d msat per payment",
			first, o.FirstMultiple, o.IncrementWh, o.PriceMsatPerWh, s.MaxPaymentMsat)
	}
	return Verdict{Accept: true, Reason: Accepted, Plan: p, Detail: fmt.Sprintf(
		"buy %d Wh for %d msat at %d msat/Wh (bound: %s): %d‰ to %d‰ of a %d Wh pack at %d‰ efficiency, in %d payments totalling %d msat",
		p.EnergyWh, p.CostMsat, o.PriceMsatPerWh, p.Bound, soc, s.TargetSoCPermille, pack, s.efficiency(), p.Payments, p.PaymentsMsat)}
}

func refuse(r Reason, format string, args ...any) Verdict {
	return Verdict{Reason: r, Detail: fmt.Sprintf(format, args...)}
}

func refusePlan(r Reason, p Plan, format string, args ...any) Verdict {
	v := refuse(r, format, args...)
	v.Plan = p
	return v
}

// Next decides what to do now in a session under offer o, the one the
// session started with (the price is held: see SameTerms). It is called
// whenever the numbers change and at the latest when the credit nears
// PayAtCreditMWh. Checks run in this order: settings, offer, progress,
// price; Wait on stale data; Stop at the target, when the plan is paid,
// before a budget or the cap would be crossed; Wait while the node is
// unreachable, the credit is ahead, or the balance is short; else Pay.
//
// The credit used is the larger of the wall's CreditMWh and the car's own
// count (energy paid for minus delivered), so a payment the wall has not
// yet credited is not paid again; if the wall under-counts, paying more
// would not help, and meter disputes are the caller's.
//
// What the battery still needs is worked out afresh from the present state
// of charge each call, so a Stop for PlanPaid is the view from these
// numbers: a caller that keeps calling once the credit is used may be told
// to Pay again if the charging was less efficient than set.
func Next(s Settings, v Vehicle, o offer.Offer, p Progress, sp Spend) Decision {
	if err := s.Validate(); err != nil {
		return stop(InvalidSettings, NoBound, "%v", err)
	}
	if err := o.Validate(); err != nil {
		return stop(InvalidOffer, NoBound, "%v", err)
	}
	if why := checkProgress(p, sp); why != "" {
		return stop(InvalidProgress, NoBound, "%s", why)
	}
	if o.PriceMsatPerWh > s.MaxPriceMsatPerWh {
		return stop(PriceAboveLimit, NoBound, "the offer asks %d msat/Wh, the owner's limit is %d msat/Wh",
			o.PriceMsatPerWh, s.MaxPriceMsatPerWh)
	}

	isFirst := p.Payments == 0
	amount := o.IncrementWh * o.PriceMsatPerWh // <= the first payment, which o.Validate priced
	if isFirst {
		amount = firstMsat(o)
	}
	sessionLeft, dayLeft := budgetsLeft(s, p.PaidMsat, sp.DayPaidMsat)
	limit, limitBound := minBudget(sessionLeft, dayLeft)
	payAt, assumedW := payAtMWh(s, o, p.PowerW)
	credit := max(p.CreditMWh, paidMWh(p.PaidMsat, o.PriceMsatPerWh)-p.DeliveredMWh)
	d := Decision{Action: Wait, PayAtCreditMWh: payAt}

	// Without the state of charge or the pack size the need is unknown:
	// wait rather than pay blind, and judge the balance by the next two
	// payments.
	soc, why := socOf(v)
	pack, _, packOK := packOf(s, v)
	if why != "" || !packOK {
		d.Reason, d.Detail = VehicleDataStale, why
		if why == "" {
			d.Reason, d.Detail = NoPackSize, "the car reports no pack energy and the owner set no fallback pack size"
		}
		if sp.SpendableKnown {
			n2, next2, _ := schedule(o, math.MaxInt64, isFirst, limit, 2)
			d.LowBalanceSoon = short(s, sp, next2, n2)
		}
		return d
	}
	if soc >= s.TargetSoCPermille {
		return stop(TargetReached, TargetBound, "state of charge %d‰ is at or over the target %d‰", soc, s.TargetSoCPermille)
	}
	// Rounded up, like Evaluate's NeedWh: enough to reach the target.
	needMWh := ceilDiv((s.TargetSoCPermille-soc)*pack*1000, s.efficiency())
	if credit >= needMWh {
		return stop(PlanPaid, TargetBound, "the credit of %d mWh covers the %d mWh the battery still needs (%d‰ to %d‰)",
			credit, needMWh, soc, s.TargetSoCPermille)
	}
	if amount > sessionLeft {
		return stop(BudgetReached, SessionBudget, "the next payment of %d msat would cross the session budget: %d of %d msat paid",
			amount, p.PaidMsat, s.BudgetSessionMsat)
	}
	if amount > dayLeft {
		return stop(BudgetReached, DayBudget, "the next payment of %d msat would cross the day budget: %d of %d msat paid today",
			amount, max(sp.DayPaidMsat, p.PaidMsat), s.BudgetDayMsat)
	}
	if amount > s.MaxPaymentMsat {
		return stop(PaymentCapTooSmall, NoBound, "the next payment of %d msat is above the owner's cap of %d msat per payment",
			amount, s.MaxPaymentMsat)
	}
	n, msat, cut := schedule(o, needMWh-credit, isFirst, limit, math.MaxInt64)
	d.PlannedPayments, d.PlannedMsat, d.Bound = n, msat, TargetBound
	if cut && limitBound != NoBound {
		d.Bound = limitBound
	}

	if !sp.SpendableKnown {
		d.Reason, d.Detail = NodeUnreachable, "the owner's node is unreachable: its spendable balance is unknown"
		return d
	}
	d.LowBalanceSoon = short(s, sp, msat, n)
	if !isFirst && credit > payAt {
		d.Reason, d.Detail = CreditAhead, fmt.Sprintf(
			"credit %d mWh is above the %d mWh drawn in %s at %d W; pay %d msat at or below it",
			credit, payAt, s.leadTime(), assumedW, amount)
		return d
	}
	// Fees come on top of the amount and must not eat into the reserve.
	if avail := sp.SpendableMsat - s.ReserveMsat - s.MaxFeeMsat; amount > avail {
		d.Reason, d.Detail = LowBalance, fmt.Sprintf(
			"the payment of %d msat (plus up to %d msat in fees) needs more than the %d msat spendable above the reserve of %d msat",
			amount, s.MaxFeeMsat, max(sp.SpendableMsat-s.ReserveMsat, 0), s.ReserveMsat)
		return d
	}
	d.Action, d.AmountMsat, d.Reason = Pay, amount, CreditLow
	if isFirst {
		d.Reason, d.Detail = FirstPayment, fmt.Sprintf("first payment: %d x %d Wh at %d msat/Wh",
			o.FirstMultiple, o.IncrementWh, o.PriceMsatPerWh)
	} else {
		d.Detail = fmt.Sprintf("credit %d mWh is at or below the %d mWh drawn in %s at %d W: pay one increment of %d Wh",
			credit, payAt, s.leadTime(), assumedW, o.IncrementWh)
	}
	return d
}

func stop(r Reason, b Bound, format string, args ...any) Decision {
	return Decision{Action: Stop, Reason: r, Bound: b, Detail: fmt.Sprintf(format, args...)}
}

// short reports whether the balance above the reserve falls short of msat
// paid in n payments, each with its fee allowance.
func short(s Settings, sp Spend, msat, n int64) bool {
	if n <= 0 {
		return false
	}
	return sp.SpendableMsat-s.ReserveMsat < satAdd(msat, satMul(n, s.MaxFeeMsat))
}

// checkProgress refuses numbers no honest wall or node reports; acting on
// them could pay for nothing.
func checkProgress(p Progress, sp Spend) string {
	switch {
	case p.PaidMsat < 0 || p.PaidMsat > MaxMsat:
		return fmt.Sprintf("PaidMsat is %d, want 0..%d", p.PaidMsat, MaxMsat)
	case p.Payments < 0:
		return fmt.Sprintf("Payments is %d, want 0 or more", p.Payments)
	case (p.Payments == 0) != (p.PaidMsat == 0):
		return fmt.Sprintf("Payments is %d but PaidMsat is %d: both or neither must be zero", p.Payments, p.PaidMsat)
	case p.DeliveredMWh < 0 || p.DeliveredMWh > MaxSessionMWh:
		return fmt.Sprintf("DeliveredMWh is %d, want 0..%d", p.DeliveredMWh, MaxSessionMWh)
	case p.CreditMWh < -MaxSessionMWh || p.CreditMWh > MaxSessionMWh:
		return fmt.Sprintf("CreditMWh is %d, want -%d..%d", p.CreditMWh, MaxSessionMWh, MaxSessionMWh)
	case sp.DayPaidMsat < 0 || sp.DayPaidMsat > MaxMsat:
		return fmt.Sprintf("DayPaidMsat is %d, want 0..%d", sp.DayPaidMsat, MaxMsat)
	case sp.SpendableKnown && (sp.SpendableMsat < 0 || sp.SpendableMsat > MaxMsat):
		return fmt.Sprintf("SpendableMsat is %d, want 0..%d", sp.SpendableMsat, MaxMsat)
	}
	return ""
}

// socOf returns the state of charge, or why it cannot be used.
func socOf(v Vehicle) (int64, string) {
	if !v.SoCKnown {
		return 0, "the state of charge is unknown or stale"
	}
	if v.SoCPermille < 0 || v.SoCPermille > 1000 {
		return 0, fmt.Sprintf("the state of charge %d‰ is implausible", v.SoCPermille)
	}
	return v.SoCPermille, ""
}

// packOf returns the pack size to plan with: the car's own if it reports a
// plausible one, else the owner's fallback.
func packOf(s Settings, v Vehicle) (wh int64, fallback, ok bool) {
	if v.PackKnown && v.PackWh > 0 && v.PackWh <= MaxPackWh {
		return v.PackWh, false, true
	}
	if s.PackWhFallback > 0 {
		return s.PackWhFallback, true, true
	}
	return 0, false, false
}

// budgetsLeft returns what the session and day budgets still allow,
// math.MaxInt64 for no budget, negative when a budget is already crossed.
// Today's spend includes the session's, so it is never taken as less.
func budgetsLeft(s Settings, sessionPaid, dayPaid int64) (session, day int64) {
	session, day = math.MaxInt64, math.MaxInt64
	if s.BudgetSessionMsat > 0 {
		session = s.BudgetSessionMsat - sessionPaid
	}
	if s.BudgetDayMsat > 0 {
		day = s.BudgetDayMsat - max(dayPaid, sessionPaid)
	}
	return session, day
}

// minBudget returns the tighter budget; on a tie the session's, the more
// specific one; NoBound when neither is set.
func minBudget(session, day int64) (int64, Bound) {
	switch {
	case day < session:
		return day, DayBudget
	case session == math.MaxInt64:
		return session, NoBound
	}
	return session, SessionBudget
}

// payAtMWh is the credit at which the next payment is due: the energy the
// wall delivers during the lead time at the present power, rounded up so
// the payment is never late for the rounding. With no power reading (a
// pause, or the ramp after a suspension) it assumes the offer's maximum
// power: that is what the wall may deliver the moment it resumes, and a
// threshold of zero would let the wall suspend first.
func payAtMWh(s Settings, o offer.Offer, powerW int64) (mWh, assumedW int64) {
	w := powerW
	if w <= 0 {
		w = o.MaxPowerW
	}
	w = min(w, maxPowerW)
	ms := ceilDiv(int64(s.leadTime()), int64(time.Millisecond))
	// W x ms = mJ, and 1 mWh = 3600 mJ. At most 1e9 x 6e5: no overflow.
	return ceilDiv(w*ms, 3600), w
}

// paidMWh is the energy msat buys at price, rounded down: the car never
// counts on energy it has not paid for in full.
func paidMWh(msat, price int64) int64 {
	return satAdd(satMul(msat/price, 1000), msat%price*1000/price)
}

func firstMsat(o offer.Offer) int64 {
	// o.Validate has priced the first payment, so neither call fails.
	wh, _ := o.FirstPaymentWh()
	c, _ := o.CostMsat(wh)
	return c
}

// schedule counts the payments that buy needMWh from now: the first
// payment if none was made, then increments, at most maxN of them, and
// none that would take their total past limitMsat. cut reports that the
// limit, not the need, ended the count.
func schedule(o offer.Offer, needMWh int64, first bool, limitMsat, maxN int64) (n, msat int64, cut bool) {
	if needMWh <= 0 || maxN <= 0 {
		return 0, 0, false
	}
	if first {
		f := firstMsat(o)
		if f > limitMsat {
			return 0, 0, true
		}
		wh, _ := o.FirstPaymentWh()
		n, msat, needMWh = 1, f, needMWh-satMul(wh, 1000)
		if needMWh <= 0 || n == maxN {
			return n, msat, false
		}
	}
	incMsat := o.IncrementWh * o.PriceMsatPerWh
	k := min(ceilDiv(needMWh, satMul(o.IncrementWh, 1000)), maxN-n)
	if afford := (limitMsat - msat) / incMsat; afford < k {
		k, cut = max(afford, 0), true
	}
	// k*incMsat <= limitMsat-msat, or k is small and need-bound: no overflow.
	return n + k, msat + k*incMsat, cut
}

// ceilDiv is a/b rounded up, for a >= 0 and b > 0.
func ceilDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 {
		q++
	}
	return q
}

// satMul is a*b for a, b >= 0, saturating at math.MaxInt64: a quantity
// that large only ever compares as "more than enough".
func satMul(a, b int64) int64 {
	if a != 0 && b > math.MaxInt64/a {
		return math.MaxInt64
	}
	return a * b
}

// satAdd is a+b for a, b >= 0, saturating at math.MaxInt64.
func satAdd(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}
