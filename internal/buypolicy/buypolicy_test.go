package buypolicy

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"satwatt/internal/offer"
)

const testKey = "02" + "79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"

// The fixture: 250 msat/Wh, increments of 100 Wh (25,000 msat), a first
// payment of 3 increments (75,000 msat), 11 kW. A 60 kWh pack at 500‰ with a
// target of 800‰ lacks 18,000 Wh, which is 20,000 Wh from the wall at 900‰.
const (
	price        = 250
	incMsat      = 100 * price
	firstPayMsat = 3 * incMsat
	reserve      = 100_000
	payAt11kW    = 61_112 // 11,000 W x 20 s = 61,111.1 mWh, rounded up
)

func baseOffer() offer.Offer {
	return offer.Offer{
		SessionID: "s1", PriceMsatPerWh: price, IncrementWh: 100, FirstMultiple: 3, GraceWh: 20,
		MaxPowerW: 11_000, WallNodeKey: testKey, ValidUntil: time.Unix(1_700_000_600, 0), Network: "regtest",
	}
}

func baseSettings() Settings {
	return Settings{
		TargetSoCPermille: 800, MaxPriceMsatPerWh: 300, EfficiencyPermille: 900,
		ReserveMsat: reserve, MaxPaymentMsat: 100_000, LeadTime: 20 * time.Second,
	}
}

func baseVehicle() Vehicle {
	return Vehicle{SoCPermille: 500, SoCKnown: true, PackWh: 60_000, PackKnown: true}
}

// afterFirst is the session just after the first payment was credited.
func afterFirst() Progress {
	return Progress{PaidMsat: firstPayMsat, Payments: 1, CreditMWh: 300_000, PowerW: 11_000}
}

// creditAt is a later session point with credit mWh left, consistent with
// both the wall's and the car's counts.
func creditAt(credit int64) Progress {
	p := afterFirst()
	p.DeliveredMWh = 300_000 - credit
	p.CreditMWh = credit
	return p
}

func rich() Spend {
	return Spend{DayPaidMsat: firstPayMsat, SpendableMsat: 1_000_000_000, SpendableKnown: true}
}

func TestSettingsValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Settings)
		want   []string // fields named in the error; none for valid
	}{
		{"valid", func(*Settings) {}, nil},
		{"defaults", func(s *Settings) { s.EfficiencyPermille, s.LeadTime = 0, 0 }, nil},
		{"edges", func(s *Settings) {
			s.TargetSoCPermille, s.EfficiencyPermille, s.LeadTime = 1000, 500, MaxLeadTime
			s.BudgetDayMsat, s.MaxPaymentMsat, s.PackWhFallback = MaxMsat, MaxMsat, MaxPackWh
		}, nil},
		{"target zero", func(s *Settings) { s.TargetSoCPermille = 0 }, []string{"TargetSoCPermille"}},
		{"target over", func(s *Settings) { s.TargetSoCPermille = 1001 }, []string{"TargetSoCPermille"}},
		{"price zero", func(s *Settings) { s.MaxPriceMsatPerWh = 0 }, []string{"MaxPriceMsatPerWh"}},
		{"price huge", func(s *Settings) { s.MaxPriceMsatPerWh = MaxPriceLimitMsatPerWh + 1 }, []string{"MaxPriceMsatPerWh"}},
		{"efficiency low", func(s *Settings) { s.EfficiencyPermille = 499 }, []string{"EfficiencyPermille"}},
		{"efficiency over", func(s *Settings) { s.EfficiencyPermille = 1001 }, []string{"EfficiencyPermille"}},
		{"session budget negative", func(s *Settings) { s.BudgetSessionMsat = -1 }, []string{"BudgetSessionMsat"}},
		{"day budget huge", func(s *Settings) { s.BudgetDayMsat = MaxMsat + 1 }, []string{"BudgetDayMsat"}},
		{"reserve negative", func(s *Settings) { s.ReserveMsat = -1 }, []string{"ReserveMsat"}},
		{"no payment cap", func(s *Settings) { s.MaxPaymentMsat = 0 }, []string{"MaxPaymentMsat"}},
		{"fee negative", func(s *Settings) { s.MaxFeeMsat = -1 }, []string{"MaxFeeMsat"}},
		{"pack negative", func(s *Settings) { s.PackWhFallback = -1 }, []string{"PackWhFallback"}},
		{"pack huge", func(s *Settings) { s.PackWhFallback = MaxPackWh + 1 }, []string{"PackWhFallback"}},
		{"lead negative", func(s *Settings) { s.LeadTime = -time.Second }, []string{"LeadTime"}},
		{"lead long", func(s *Settings) { s.LeadTime = MaxLeadTime + 1 }, []string{"LeadTime"}},
		{"all named", func(s *Settings) { s.TargetSoCPermille, s.ReserveMsat, s.LeadTime = 0, -1, -1 },
			[]string{"TargetSoCPermille", "ReserveMsat", "LeadTime"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := baseSettings()
			tt.mutate(&s)
			err := s.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidSettings) {
				t.Fatalf("Validate: %v, want ErrInvalidSettings", err)
			}
			for _, f := range tt.want {
				if !strings.Contains(err.Error(), f) {
					t.Errorf("error %q does not name %s", err, f)
				}
			}
		})
	}
}

func TestEvaluate(t *testing.T) {
	tests := []struct {
		name    string
		mutS    func(*Settings)
		mutV    func(*Vehicle)
		mutO    func(*offer.Offer)
		dayPaid int64
		want    Reason
		plan    *Plan // checked in full when set
	}{
		{name: "accepted", want: Accepted, plan: &Plan{PackWh: 60_000, BatteryWh: 18_000, NeedWh: 20_000,
			EnergyWh: 20_000, CostMsat: 5_000_000, Bound: TargetBound, Payments: 198, PaymentsMsat: 5_000_000}},
		{name: "price at limit", mutO: func(o *offer.Offer) { o.PriceMsatPerWh = 300 }, want: Accepted},
		{name: "price above limit", mutO: func(o *offer.Offer) { o.PriceMsatPerWh = 301 }, want: PriceAboveLimit},
		{name: "price before stale data", mutO: func(o *offer.Offer) { o.PriceMsatPerWh = 301 },
			mutV: func(v *Vehicle) { v.SoCKnown = false }, want: PriceAboveLimit},
		{name: "at target", mutV: func(v *Vehicle) { v.SoCPermille = 800 }, want: TargetReached},
		{name: "over target", mutV: func(v *Vehicle) { v.SoCPermille = 950 }, want: TargetReached},
		{name: "one below target", mutV: func(v *Vehicle) { v.SoCPermille = 799 }, want: Accepted,
			plan: &Plan{PackWh: 60_000, BatteryWh: 60, NeedWh: 67, EnergyWh: 67, CostMsat: 67 * price,
				Bound: TargetBound, Payments: 1, PaymentsMsat: firstPayMsat}},
		{name: "stale soc at start", mutV: func(v *Vehicle) { v.SoCKnown = false }, want: VehicleDataStale},
		{name: "implausible soc", mutV: func(v *Vehicle) { v.SoCPermille = 1001 }, want: VehicleDataStale},
		{name: "negative soc", mutV: func(v *Vehicle) { v.SoCPermille = -1 }, want: VehicleDataStale},
		{name: "no pack, no fallback", mutV: func(v *Vehicle) { v.PackKnown = false }, want: NoPackSize},
		{name: "zero pack, no fallback", mutV: func(v *Vehicle) { v.PackWh = 0 }, want: NoPackSize},
		{name: "no pack, fallback", mutV: func(v *Vehicle) { v.PackKnown = false },
			mutS: func(s *Settings) { s.PackWhFallback = 40_000 }, want: Accepted,
			plan: &Plan{PackWh: 40_000, PackFallback: true, BatteryWh: 12_000, NeedWh: 13_334, EnergyWh: 13_334,
				CostMsat: 13_334 * price, Bound: TargetBound, Payments: 132, PaymentsMsat: firstPayMsat + 131*incMsat}},
		{name: "implausible pack, fallback", mutV: func(v *Vehicle) { v.PackWh = MaxPackWh + 1 },
			mutS: func(s *Settings) { s.PackWhFallback = 40_000 }, want: Accepted},
		{name: "car's pack beats fallback", mutS: func(s *Settings) { s.PackWhFallback = 40_000 }, want: Accepted,
			plan: &Plan{PackWh: 60_000, BatteryWh: 18_000, NeedWh: 20_000, EnergyWh: 20_000, CostMsat: 5_000_000,
				Bound: TargetBound, Payments: 198, PaymentsMsat: 5_000_000}},
		{name: "session budget below first", mutS: func(s *Settings) { s.BudgetSessionMsat = firstPayMsat - 1 }, want: BudgetTooSmall},
		{name: "session budget at first", mutS: func(s *Settings) { s.BudgetSessionMsat = firstPayMsat }, want: Accepted,
			plan: &Plan{PackWh: 60_000, BatteryWh: 18_000, NeedWh: 20_000, EnergyWh: 300, CostMsat: firstPayMsat,
				Bound: SessionBudget, Payments: 1, PaymentsMsat: firstPayMsat}},
		{name: "day budget below first", mutS: func(s *Settings) { s.BudgetDayMsat = firstPayMsat - 1 }, want: BudgetTooSmall},
		{name: "day budget mostly spent", mutS: func(s *Settings) { s.BudgetDayMsat = 100_000 }, dayPaid: 25_001, want: BudgetTooSmall},
		{name: "day budget spent just enough", mutS: func(s *Settings) { s.BudgetDayMsat = 100_000 }, dayPaid: 25_000, want: Accepted},
		{name: "day budget overspent", mutS: func(s *Settings) { s.BudgetDayMsat = 100_000 }, dayPaid: 200_000, want: BudgetTooSmall,
			plan: &Plan{PackWh: 60_000, BatteryWh: 18_000, NeedWh: 20_000, EnergyWh: 0, CostMsat: 0, Bound: DayBudget}},
		{name: "cap below first", mutS: func(s *Settings) { s.MaxPaymentMsat = firstPayMsat - 1 }, want: PaymentCapTooSmall},
		{name: "cap at first", mutS: func(s *Settings) { s.MaxPaymentMsat = firstPayMsat }, want: Accepted},
		{name: "budget checked before cap", mutS: func(s *Settings) { s.MaxPaymentMsat, s.BudgetSessionMsat = 1, 1 }, want: BudgetTooSmall},
		{name: "invalid settings", mutS: func(s *Settings) { s.EfficiencyPermille = 100 }, want: InvalidSettings},
		{name: "invalid offer", mutO: func(o *offer.Offer) { o.IncrementWh = 0 }, want: InvalidOffer},
		{name: "negative day spend", dayPaid: -1, want: InvalidProgress},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, v, o := baseSettings(), baseVehicle(), baseOffer()
			for _, f := range []func(){
				func() {
					if tt.mutS != nil {
						tt.mutS(&s)
					}
				},
				func() {
					if tt.mutV != nil {
						tt.mutV(&v)
					}
				},
				func() {
					if tt.mutO != nil {
						tt.mutO(&o)
					}
				},
			} {
				f()
			}
			got := EvaluateToday(s, v, o, tt.dayPaid)
			if got.Reason != tt.want || got.Accept != (tt.want == Accepted) {
				t.Fatalf("got %v (accept %v): %s; want %v", got.Reason, got.Accept, got.Detail, tt.want)
			}
			if got.Detail == "" {
				t.Errorf("empty detail")
			}
			if tt.plan != nil && got.Plan != *tt.plan {
				t.Errorf("plan\n got %+v\nwant %+v", got.Plan, *tt.plan)
			}
			if tt.dayPaid == 0 {
				if e := Evaluate(s, v, o); e != got {
					t.Errorf("Evaluate %+v differs from EvaluateToday(0) %+v", e, got)
				}
			}
		})
	}
}

// Energy to buy rounds up (the car reaches its target); budget caps round
// down (the car never pays past a budget); the tighter bound wins.
func TestEvaluateRoundingAndBounds(t *testing.T) {
	tests := []struct {
		name                     string
		soc, pack, eff, price    int64
		session, day, dayPaid    int64
		batteryWh, needWh, energ int64
		bound                    Bound
	}{
		{"exact", 500, 60_000, 900, 250, 0, 0, 0, 18_000, 20_000, 20_000, TargetBound},
		{"battery and wall round up", 500, 60_001, 900, 250, 0, 0, 0, 18_001, 20_001, 20_001, TargetBound},
		{"one rounding, not two", 799, 1_001, 900, 250, 0, 0, 0, 2, 2, 2, TargetBound}, // 1.001 Wh / 0.9 = 1.11 -> 2
		{"default efficiency", 500, 60_001, 0, 250, 0, 0, 0, 18_001, 20_001, 20_001, TargetBound},
		{"efficiency 1000", 500, 60_001, 1000, 250, 0, 0, 0, 18_001, 18_001, 18_001, TargetBound},
		{"efficiency 500", 0, 99_999, 500, 250, 0, 0, 0, 80_000, 159_999, 159_999, TargetBound}, // 79,999.2 and 159,998.4 Wh
		{"session cap rounds down", 500, 60_000, 900, 3, 1000, 0, 0, 18_000, 20_000, 333, SessionBudget},
		{"session tighter than day", 500, 60_000, 900, 250, 1_000_000, 2_000_000, 0, 18_000, 20_000, 4_000, SessionBudget},
		{"day tighter than session", 500, 60_000, 900, 250, 2_000_000, 1_000_000, 0, 18_000, 20_000, 4_000, DayBudget},
		{"day tighter after today's spend", 500, 60_000, 900, 250, 2_000_000, 2_400_000, 1_000_000, 18_000, 20_000, 5_600, DayBudget},
		{"tie goes to session", 500, 60_000, 900, 250, 1_000_000, 1_000_000, 0, 18_000, 20_000, 4_000, SessionBudget},
		{"budget equal to need: target", 500, 60_000, 900, 250, 5_000_000, 0, 0, 18_000, 20_000, 20_000, TargetBound},
		{"budget one msat short", 500, 60_000, 900, 250, 4_999_999, 0, 0, 18_000, 20_000, 19_999, SessionBudget},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := baseSettings()
			s.EfficiencyPermille, s.BudgetSessionMsat, s.BudgetDayMsat, s.MaxPriceMsatPerWh = tt.eff, tt.session, tt.day, 1000
			s.TargetSoCPermille = 800
			v := Vehicle{SoCPermille: tt.soc, SoCKnown: true, PackWh: tt.pack, PackKnown: true}
			o := baseOffer()
			o.PriceMsatPerWh = tt.price
			o.FirstMultiple = 1
			if tt.soc == 0 {
				s.TargetSoCPermille = 800
			}
			got := EvaluateToday(s, v, o, tt.dayPaid)
			p := got.Plan
			if !got.Accept {
				t.Fatalf("refused: %v: %s", got.Reason, got.Detail)
			}
			if p.BatteryWh != tt.batteryWh || p.NeedWh != tt.needWh || p.EnergyWh != tt.energ || p.Bound != tt.bound {
				t.Fatalf("plan battery %d need %d energy %d bound %v; want %d %d %d %v",
					p.BatteryWh, p.NeedWh, p.EnergyWh, p.Bound, tt.batteryWh, tt.needWh, tt.energ, tt.bound)
			}
			if p.CostMsat != p.EnergyWh*tt.price {
				t.Errorf("cost %d msat, want %d x %d", p.CostMsat, p.EnergyWh, tt.price)
			}
			left := map[Bound]int64{SessionBudget: tt.session, DayBudget: tt.day - tt.dayPaid}
			for bound, b := range left {
				if b > 0 && (p.CostMsat > b || p.PaymentsMsat > b) {
					t.Errorf("cost %d / payments %d msat exceed a budget of %d msat", p.CostMsat, p.PaymentsMsat, b)
				}
				if bound == p.Bound && b-p.CostMsat >= tt.price {
					t.Errorf("the binding budget %d left %d msat unused, a whole Wh", b, b-p.CostMsat)
				}
			}
			// In whole payments: cover the need when the target binds, never
			// more than one increment beyond it.
			bought := p.PaymentsMsat / tt.price
			if p.Bound == TargetBound && (bought < p.NeedWh || bought >= p.NeedWh+o.IncrementWh) {
				t.Errorf("payments buy %d Wh for a need of %d Wh", bought, p.NeedWh)
			}
		})
	}
}

func TestNext(t *testing.T) {
	tests := []struct {
		name   string
		mutS   func(*Settings)
		mutV   func(*Vehicle)
		p      Progress
		mutSp  func(*Spend)
		action Action
		reason Reason
		amount int64
		bound  Bound
	}{
		{name: "first payment", p: Progress{}, action: Pay, reason: FirstPayment, amount: firstPayMsat, bound: TargetBound},
		{name: "first payment at no power", p: Progress{PowerW: 0}, action: Pay, reason: FirstPayment, amount: firstPayMsat, bound: TargetBound},
		{name: "credit ahead", p: afterFirst(), action: Wait, reason: CreditAhead, bound: TargetBound},
		{name: "credit low: one increment", p: creditAt(payAt11kW), action: Pay, reason: CreditLow, amount: incMsat, bound: TargetBound},
		{name: "credit just above threshold", p: creditAt(payAt11kW + 1), action: Wait, reason: CreditAhead, bound: TargetBound},
		{name: "credit negative within grace", p: creditAt(-5_000), action: Pay, reason: CreditLow, amount: incMsat, bound: TargetBound},
		{name: "payment in flight not paid twice", p: func() Progress {
			p := creditAt(payAt11kW) // wall has not credited the second payment yet
			p.PaidMsat, p.Payments = firstPayMsat+incMsat, 2
			return p
		}(), action: Wait, reason: CreditAhead, bound: TargetBound},
		{name: "at target", mutV: func(v *Vehicle) { v.SoCPermille = 800 }, p: creditAt(0), action: Stop, reason: TargetReached, bound: TargetBound},
		{name: "over target before first", mutV: func(v *Vehicle) { v.SoCPermille = 801 }, p: Progress{}, action: Stop, reason: TargetReached, bound: TargetBound},
		// 799‰ of 60 kWh lacks 60 Wh: 66,667 mWh from the wall.
		{name: "plan paid", mutV: func(v *Vehicle) { v.SoCPermille = 799 }, p: creditAt(66_667), action: Stop, reason: PlanPaid, bound: TargetBound},
		{name: "plan one mWh short", mutV: func(v *Vehicle) { v.SoCPermille = 799 }, p: func() Progress {
			p := creditAt(66_666)
			p.PowerW = 20_000 // threshold 111,112 mWh
			return p
		}(), action: Pay, reason: CreditLow, amount: incMsat, bound: TargetBound},
		{name: "session budget fits", mutS: func(s *Settings) { s.BudgetSessionMsat = firstPayMsat + incMsat }, p: creditAt(0),
			action: Pay, reason: CreditLow, amount: incMsat, bound: SessionBudget},
		{name: "session budget reached", mutS: func(s *Settings) { s.BudgetSessionMsat = firstPayMsat + incMsat - 1 }, p: creditAt(0),
			action: Stop, reason: BudgetReached, bound: SessionBudget},
		{name: "session budget reached while credit ahead", mutS: func(s *Settings) { s.BudgetSessionMsat = firstPayMsat }, p: afterFirst(),
			action: Stop, reason: BudgetReached, bound: SessionBudget},
		{name: "day budget reached", mutS: func(s *Settings) { s.BudgetDayMsat = 1_000_000 }, p: creditAt(0),
			mutSp: func(sp *Spend) { sp.DayPaidMsat = 975_001 }, action: Stop, reason: BudgetReached, bound: DayBudget},
		{name: "day budget just fits", mutS: func(s *Settings) { s.BudgetDayMsat = 1_000_000 }, p: creditAt(0),
			mutSp: func(sp *Spend) { sp.DayPaidMsat = 975_000 }, action: Pay, reason: CreditLow, amount: incMsat, bound: DayBudget},
		{name: "day spend never below session's", mutS: func(s *Settings) { s.BudgetDayMsat = firstPayMsat + incMsat - 1 }, p: creditAt(0),
			mutSp: func(sp *Spend) { sp.DayPaidMsat = 0 }, action: Stop, reason: BudgetReached, bound: DayBudget},
		{name: "both budgets crossed: session first", mutS: func(s *Settings) { s.BudgetSessionMsat, s.BudgetDayMsat = firstPayMsat, firstPayMsat }, p: creditAt(0),
			action: Stop, reason: BudgetReached, bound: SessionBudget},
		{name: "day budget before first payment", mutS: func(s *Settings) { s.BudgetDayMsat = 100_000 }, p: Progress{},
			mutSp: func(sp *Spend) { sp.DayPaidMsat = 25_001 }, action: Stop, reason: BudgetReached, bound: DayBudget},
		{name: "cap below increment", mutS: func(s *Settings) { s.MaxPaymentMsat = incMsat - 1 }, p: creditAt(0),
			action: Stop, reason: PaymentCapTooSmall},
		{name: "cap below first", mutS: func(s *Settings) { s.MaxPaymentMsat = firstPayMsat - 1 }, p: Progress{},
			action: Stop, reason: PaymentCapTooSmall},
		{name: "cap at increment", mutS: func(s *Settings) { s.MaxPaymentMsat = incMsat }, p: creditAt(0),
			action: Pay, reason: CreditLow, amount: incMsat, bound: TargetBound},
		{name: "price limit lowered", mutS: func(s *Settings) { s.MaxPriceMsatPerWh = price - 1 }, p: creditAt(0),
			action: Stop, reason: PriceAboveLimit},
		{name: "stale soc mid-session", mutV: func(v *Vehicle) { v.SoCKnown = false }, p: creditAt(0),
			action: Wait, reason: VehicleDataStale},
		{name: "implausible soc mid-session", mutV: func(v *Vehicle) { v.SoCPermille = 1200 }, p: creditAt(0),
			action: Wait, reason: VehicleDataStale},
		{name: "pack lost, no fallback", mutV: func(v *Vehicle) { v.PackKnown = false }, p: creditAt(0),
			action: Wait, reason: NoPackSize},
		{name: "pack lost, fallback", mutV: func(v *Vehicle) { v.PackKnown = false }, mutS: func(s *Settings) { s.PackWhFallback = 50_000 },
			p: creditAt(0), action: Pay, reason: CreditLow, amount: incMsat, bound: TargetBound},
		{name: "node unreachable", p: creditAt(0), mutSp: func(sp *Spend) { sp.SpendableKnown = false },
			action: Wait, reason: NodeUnreachable, bound: TargetBound},
		{name: "node unreachable, credit ahead", p: afterFirst(), mutSp: func(sp *Spend) { sp.SpendableKnown = false },
			action: Wait, reason: NodeUnreachable, bound: TargetBound},
		{name: "low balance", p: creditAt(0), mutSp: func(sp *Spend) { sp.SpendableMsat = reserve + incMsat - 1 },
			action: Wait, reason: LowBalance, bound: TargetBound},
		{name: "balance just enough", p: creditAt(0), mutSp: func(sp *Spend) { sp.SpendableMsat = reserve + incMsat },
			action: Pay, reason: CreditLow, amount: incMsat, bound: TargetBound},
		{name: "fee eats into reserve", mutS: func(s *Settings) { s.MaxFeeMsat = 10 }, p: creditAt(0),
			mutSp: func(sp *Spend) { sp.SpendableMsat = reserve + incMsat + 9 }, action: Wait, reason: LowBalance, bound: TargetBound},
		{name: "fee covered", mutS: func(s *Settings) { s.MaxFeeMsat = 10 }, p: creditAt(0),
			mutSp: func(sp *Spend) { sp.SpendableMsat = reserve + incMsat + 10 }, action: Pay, reason: CreditLow, amount: incMsat, bound: TargetBound},
		{name: "low balance for first", p: Progress{}, mutSp: func(sp *Spend) { sp.SpendableMsat = reserve + firstPayMsat - 1 },
			action: Wait, reason: LowBalance, bound: TargetBound},
		{name: "balance below reserve", p: creditAt(0), mutSp: func(sp *Spend) { sp.SpendableMsat = reserve - 1 },
			action: Wait, reason: LowBalance, bound: TargetBound},
		{name: "invalid settings", mutS: func(s *Settings) { s.MaxPaymentMsat = 0 }, p: creditAt(0), action: Stop, reason: InvalidSettings},
		{name: "paid without payments", p: Progress{PaidMsat: 1}, action: Stop, reason: InvalidProgress},
		{name: "payments without paid", p: Progress{Payments: 1}, action: Stop, reason: InvalidProgress},
		{name: "negative delivered", p: Progress{PaidMsat: firstPayMsat, Payments: 1, DeliveredMWh: -1}, action: Stop, reason: InvalidProgress},
		{name: "absurd credit", p: Progress{PaidMsat: firstPayMsat, Payments: 1, CreditMWh: -MaxSessionMWh - 1}, action: Stop, reason: InvalidProgress},
		{name: "negative spendable", p: creditAt(0), mutSp: func(sp *Spend) { sp.SpendableMsat = -1 }, action: Stop, reason: InvalidProgress},
		{name: "negative day spend", p: creditAt(0), mutSp: func(sp *Spend) { sp.DayPaidMsat = -1 }, action: Stop, reason: InvalidProgress},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, v, sp := baseSettings(), baseVehicle(), rich()
			if tt.mutS != nil {
				tt.mutS(&s)
			}
			if tt.mutV != nil {
				tt.mutV(&v)
			}
			if tt.mutSp != nil {
				tt.mutSp(&sp)
			}
			d := Next(s, v, baseOffer(), tt.p, sp)
			if d.Action != tt.action || d.Reason != tt.reason || d.AmountMsat != tt.amount {
				t.Fatalf("got %v %v %d msat: %s; want %v %v %d msat", d.Action, d.Reason, d.AmountMsat, d.Detail, tt.action, tt.reason, tt.amount)
			}
			if d.Bound != tt.bound {
				t.Errorf("bound %v, want %v", d.Bound, tt.bound)
			}
			if d.Detail == "" {
				t.Errorf("empty detail")
			}
			if d.Action == Stop && (d.PayAtCreditMWh != 0 || d.LowBalanceSoon || d.PlannedPayments != 0) {
				t.Errorf("stop carries pay-at %d, low-balance-soon %v, %d planned", d.PayAtCreditMWh, d.LowBalanceSoon, d.PlannedPayments)
			}
			if d.Action != Stop && d.PayAtCreditMWh <= 0 {
				t.Errorf("pay-at %d mWh, want positive", d.PayAtCreditMWh)
			}
			if d.Action == Pay && (d.PlannedPayments < 1 || d.PlannedMsat < d.AmountMsat) {
				t.Errorf("paying %d msat with %d payments / %d msat planned", d.AmountMsat, d.PlannedPayments, d.PlannedMsat)
			}
		})
	}
}

// The next payment is due when the credit falls to the energy drawn during
// the lead time: at the present power, or the offer's maximum with none.
func TestNextThreshold(t *testing.T) {
	tests := []struct {
		name   string
		powerW int64
		lead   time.Duration
		want   int64
	}{
		{"11 kW", 11_000, 20 * time.Second, 61_112},
		{"7.4 kW", 7_400, 20 * time.Second, 41_112},
		{"3.7 kW", 3_700, 20 * time.Second, 20_556},
		{"1.4 kW exact", 1_440, 5 * time.Second, 2_000},
		{"22 kW, 5 s", 22_000, 5 * time.Second, 30_556},
		{"1 W", 1, 20 * time.Second, 6},
		{"default lead", 11_000, 0, 61_112},
		{"lead rounds up to ms", 3_600, time.Millisecond + 1, 2},
		{"no power: offer's max", 0, 20 * time.Second, 61_112},
		{"negative power: offer's max", -300, 20 * time.Second, 61_112},
		{"above offer's max: as reported", 50_000, 20 * time.Second, 277_778},
		{"absurd power clamped", math.MaxInt64, MaxLeadTime, 166_666_666_667},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := baseSettings()
			s.LeadTime = tt.lead
			for _, c := range []struct {
				credit int64
				action Action
				reason Reason
			}{
				{tt.want, Pay, CreditLow},
				{tt.want - 1, Pay, CreditLow},
				{tt.want + 1, Wait, CreditAhead},
			} {
				// A threshold above the whole need (20,000 Wh) can only be
				// checked from below: more credit is PlanPaid.
				if tt.want >= 20_000_000 {
					c.credit, c.action, c.reason = 1000, Pay, CreditLow
				}
				p := Progress{PaidMsat: 100 * incMsat, Payments: 98, DeliveredMWh: 10_000_000 - c.credit, CreditMWh: c.credit, PowerW: tt.powerW}
				d := Next(s, baseVehicle(), baseOffer(), p, rich())
				if d.PayAtCreditMWh != tt.want {
					t.Fatalf("pay-at %d mWh, want %d", d.PayAtCreditMWh, tt.want)
				}
				if d.Action != c.action || d.Reason != c.reason {
					t.Errorf("credit %d mWh: %v %v (%s), want %v %v", c.credit, d.Action, d.Reason, d.Detail, c.action, c.reason)
				}
			}
		})
	}
}

// The car never pays below its reserve (fees included), and pays as soon
// as the balance allows.
func TestNextReserveKept(t *testing.T) {
	for _, fee := range []int64{0, 7, 1000} {
		for _, p := range []Progress{{}, creditAt(0)} {
			s := baseSettings()
			s.MaxFeeMsat = fee
			amount := int64(incMsat)
			if p.Payments == 0 {
				amount = firstPayMsat
			}
			for spendable := int64(0); spendable <= reserve+amount+fee+3; spendable++ {
				if spendable > 5 && spendable < reserve+amount+fee-3 {
					spendable = reserve + amount + fee - 3
				}
				sp := Spend{SpendableMsat: spendable, SpendableKnown: true}
				d := Next(s, baseVehicle(), baseOffer(), p, sp)
				fits := spendable-amount-fee >= reserve
				if fits && d.Action != Pay || !fits && (d.Action != Wait || d.Reason != LowBalance) {
					t.Fatalf("fee %d, %d payments, spendable %d: %v %v, want pay=%v", fee, p.Payments, spendable, d.Action, d.Reason, fits)
				}
				if d.Action == Pay && spendable-d.AmountMsat-fee < reserve {
					t.Fatalf("paid %d msat from %d leaving less than the reserve", d.AmountMsat, spendable)
				}
			}
		}
	}
}

// LowBalance is a wait, not an end: the car resumes once the node has
// enough, without any state kept here.
func TestNextLowBalanceResumes(t *testing.T) {
	steps := []struct {
		spendable int64
		known     bool
		action    Action
		reason    Reason
	}{
		{reserve + incMsat - 1, true, Wait, LowBalance},
		{0, false, Wait, NodeUnreachable},
		{reserve + 10, true, Wait, LowBalance},
		{reserve + incMsat, true, Pay, CreditLow},
		{reserve + 5*incMsat, true, Pay, CreditLow},
	}
	for i, st := range steps {
		d := Next(baseSettings(), baseVehicle(), baseOffer(), creditAt(-1000), Spend{SpendableMsat: st.spendable, SpendableKnown: st.known})
		if d.Action != st.action || d.Reason != st.reason {
			t.Errorf("step %d (spendable %d): %v %v, want %v %v", i, st.spendable, d.Action, d.Reason, st.action, st.reason)
		}
	}
}

func TestLowBalanceSoon(t *testing.T) {
	const plan = 5_000_000 // 198 payments: the whole fixture plan
	tests := []struct {
		name      string
		mutS      func(*Settings)
		v         Vehicle
		p         Progress
		spendable int64
		action    Action
		want      bool
	}{
		{"covers the plan", nil, baseVehicle(), Progress{}, reserve + plan, Pay, false},
		{"one msat short of the plan: pay, but warn", nil, baseVehicle(), Progress{}, reserve + plan - 1, Pay, true},
		{"fees count", func(s *Settings) { s.MaxFeeMsat = 10 }, baseVehicle(), Progress{}, reserve + plan + 198*10 - 1, Pay, true},
		{"fees covered", func(s *Settings) { s.MaxFeeMsat = 10 }, baseVehicle(), Progress{}, reserve + plan + 198*10, Pay, false},
		{"warned while credit ahead", nil, baseVehicle(), afterFirst(), reserve + incMsat, Wait, true},
		{"credit counts toward the plan", nil, baseVehicle(), afterFirst(), reserve + plan - firstPayMsat, Wait, false},
		{"budget limits the plan", func(s *Settings) { s.BudgetSessionMsat = 1_000_000 }, baseVehicle(), Progress{}, reserve + 1_000_000, Pay, false},
		{"budget plan one short", func(s *Settings) { s.BudgetSessionMsat = 1_000_000 }, baseVehicle(), Progress{}, reserve + 999_999, Pay, true},
		{"last payment: no false alarm", nil, Vehicle{SoCPermille: 799, SoCKnown: true, PackWh: 60_000, PackKnown: true},
			creditAt(0), reserve + incMsat, Pay, false},
		{"stale soc: next two cover", nil, Vehicle{PackWh: 60_000, PackKnown: true}, Progress{}, reserve + firstPayMsat + incMsat, Wait, false},
		{"stale soc: next two short", nil, Vehicle{PackWh: 60_000, PackKnown: true}, Progress{}, reserve + firstPayMsat + incMsat - 1, Wait, true},
		{"stale soc later: two increments", nil, Vehicle{PackWh: 60_000, PackKnown: true}, creditAt(0), reserve + 2*incMsat - 1, Wait, true},
		{"no pack: two increments cover", nil, Vehicle{SoCPermille: 500, SoCKnown: true}, creditAt(0), reserve + 2*incMsat, Wait, false},
		{"stop: no warning", nil, Vehicle{SoCPermille: 900, SoCKnown: true, PackWh: 60_000, PackKnown: true}, creditAt(0), 0, Stop, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := baseSettings()
			if tt.mutS != nil {
				tt.mutS(&s)
			}
			d := Next(s, tt.v, baseOffer(), tt.p, Spend{SpendableMsat: tt.spendable, SpendableKnown: true})
			if d.Action != tt.action || d.LowBalanceSoon != tt.want {
				t.Fatalf("%v %v (%s) low-balance-soon %v; want %v %v", d.Action, d.Reason, d.Detail, d.LowBalanceSoon, tt.action, tt.want)
			}
		})
	}
	// Unknown balance: no claim either way; the reason says why.
	d := Next(baseSettings(), baseVehicle(), baseOffer(), Progress{}, Spend{})
	if d.LowBalanceSoon || d.Reason != NodeUnreachable {
		t.Errorf("unknown balance: %v low-balance-soon %v", d.Reason, d.LowBalanceSoon)
	}
}

// Evaluate's plan in whole payments is what Next plans at the first call.
func TestEvaluateMatchesNext(t *testing.T) {
	for _, budget := range []int64{0, 1_000_000, firstPayMsat, 4_999_999} {
		s := baseSettings()
		s.BudgetSessionMsat = budget
		for _, soc := range []int64{0, 500, 799} {
			v := baseVehicle()
			v.SoCPermille = soc
			e := Evaluate(s, v, baseOffer())
			d := Next(s, v, baseOffer(), Progress{}, rich())
			if !e.Accept || d.Action != Pay {
				t.Fatalf("budget %d soc %d: %v / %v %v", budget, soc, e.Reason, d.Action, d.Reason)
			}
			if e.Plan.Payments != d.PlannedPayments || e.Plan.PaymentsMsat != d.PlannedMsat || e.Plan.Bound != d.Bound {
				t.Errorf("budget %d soc %d: evaluate plans %d payments / %d msat / %v, next %d / %d / %v", budget, soc,
					e.Plan.Payments, e.Plan.PaymentsMsat, e.Plan.Bound, d.PlannedPayments, d.PlannedMsat, d.Bound)
			}
		}
	}
}

// A whole session against a simulated wall and battery: 1 s steps, a
// payment takes latency to reach the wall, the wall delivers only what is
// paid plus its grace.
func TestSimulatedSession(t *testing.T) {
	const pack = 10_000 // Wh; 500‰ to 800‰ needs 3,334 Wh from the wall
	tests := []struct {
		name       string
		mutS       func(*Settings)
		priorDay   int64
		spendable  int64
		topUpAt    int // step at which spendable gains 10^9 msat; 0 never
		staleFrom  int // state of charge unknown from this step...
		staleTo    int // ...to this one
		latency    int // seconds from payment to the wall's credit
		reason     Reason
		wantLowBal bool
	}{
		{name: "to target", spendable: 1e9, latency: 5, reason: PlanPaid},
		{name: "slow payments within lead time", spendable: 1e9, latency: 19, reason: PlanPaid},
		{name: "session budget", mutS: func(s *Settings) { s.BudgetSessionMsat = 500_000 }, spendable: 1e9, latency: 5, reason: BudgetReached},
		{name: "day budget", mutS: func(s *Settings) { s.BudgetDayMsat = 2_000_000 }, priorDay: 1_600_000, spendable: 1e9, latency: 5, reason: BudgetReached},
		{name: "balance runs low, then topped up", spendable: reserve + firstPayMsat + 9*incMsat, topUpAt: 900, latency: 5, reason: PlanPaid, wantLowBal: true},
		{name: "soc stale mid-session", spendable: 1e9, staleFrom: 200, staleTo: 500, latency: 5, reason: PlanPaid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := baseSettings()
			if tt.mutS != nil {
				tt.mutS(&s)
			}
			o := baseOffer()
			type inflight struct {
				at  int
				amt int64
			}
			var (
				batteryMWh   = int64(500 * pack) // 500‰
				deliveredMWh int64
				wallPaid     int64 // credited by the wall
				carPaid      int64
				payments     int
				pending      []inflight
				spendable    = tt.spendable
				firstLowSoon = -1
				firstLow     = -1
				final        Decision
				suspended    bool
				lastTrouble  int // last step the car waited for something other than credit
			)
			for step := 1; step < 20_000; step++ {
				for len(pending) > 0 && pending[0].at <= step {
					wallPaid += pending[0].amt
					pending = pending[1:]
				}
				if step == tt.topUpAt {
					spendable += 1e9
				}
				// The wall: energised once the first payment is in, while
				// delivered stays within paid plus the grace.
				const fullStep = 11_000 * 1000 / 3600 // mWh in 1 s at 11 kW
				var e, powerW int64
				if wallPaid >= firstPayMsat {
					e = min(fullStep, max(paidMWh(wallPaid, price)+o.GraceWh*1000-deliveredMWh, 0))
					if e < fullStep && final.Action != Stop && step-lastTrouble > 2*tt.latency+2 {
						suspended = true // it ran dry while the car meant to keep it going
					}
				}
				if e > 0 {
					powerW = 11_000
				}
				deliveredMWh += e
				batteryMWh += e * s.EfficiencyPermille / 1000
				if final.Action == Stop {
					if e == 0 {
						break // the credit is used up
					}
					continue
				}
				v := Vehicle{SoCPermille: batteryMWh / pack, SoCKnown: step < tt.staleFrom || step >= tt.staleTo, PackWh: pack, PackKnown: true}
				p := Progress{PaidMsat: carPaid, DeliveredMWh: deliveredMWh, CreditMWh: paidMWh(wallPaid, price) - deliveredMWh, PowerW: powerW, Payments: payments}
				d := Next(s, v, o, p, Spend{DayPaidMsat: tt.priorDay + carPaid, SpendableMsat: spendable, SpendableKnown: true})
				if d.Reason != CreditAhead && d.Reason != CreditLow && d.Reason != FirstPayment {
					lastTrouble = step
				}
				if d.LowBalanceSoon && firstLowSoon < 0 {
					firstLowSoon = step
				}
				if d.Reason == LowBalance && firstLow < 0 {
					firstLow = step
				}
				switch d.Action {
				case Pay:
					if !v.SoCKnown {
						t.Fatalf("step %d: paid with the state of charge unknown", step)
					}
					carPaid += d.AmountMsat
					spendable -= d.AmountMsat
					payments++
					pending = append(pending, inflight{step + tt.latency, d.AmountMsat})
					if spendable < reserve {
						t.Fatalf("step %d: paid below the reserve: %d msat left", step, spendable)
					}
					if s.BudgetSessionMsat > 0 && carPaid > s.BudgetSessionMsat {
						t.Fatalf("step %d: paid %d msat, over the session budget", step, carPaid)
					}
					if s.BudgetDayMsat > 0 && tt.priorDay+carPaid > s.BudgetDayMsat {
						t.Fatalf("step %d: paid %d msat today, over the day budget", step, tt.priorDay+carPaid)
					}
				case Stop:
					final = d
				}
			}
			if final.Reason != tt.reason {
				t.Fatalf("ended with %v (%s), want %v", final.Reason, final.Detail, tt.reason)
			}
			if suspended {
				t.Errorf("the wall ran out of credit while the car was paying: the lead time did not cover the latency")
			}
			soc := batteryMWh / pack
			paidWh := carPaid / price
			switch tt.reason {
			case PlanPaid:
				// Reaches the target, buying less than one increment plus
				// one permille (the state of charge's resolution) too much.
				if soc < s.TargetSoCPermille {
					t.Errorf("ended at %d‰, under the target", soc)
				}
				if need := int64(3_334); paidWh >= need+o.IncrementWh+pack*1000/s.EfficiencyPermille/1000+1 {
					t.Errorf("bought %d Wh for a need of %d Wh", paidWh, need)
				}
			case BudgetReached:
				left := s.BudgetSessionMsat - carPaid
				if s.BudgetDayMsat > 0 {
					left = s.BudgetDayMsat - tt.priorDay - carPaid
				}
				if left < 0 || left >= incMsat {
					t.Errorf("stopped with %d msat of the budget left, want 0..one increment", left)
				}
			}
			if tt.wantLowBal {
				if firstLow < 0 {
					t.Fatalf("never waited for a low balance")
				}
				if firstLowSoon < 0 || firstLowSoon >= firstLow {
					t.Errorf("low balance soon first raised at step %d, after the payment came up short at %d", firstLowSoon, firstLow)
				}
			} else if firstLow >= 0 {
				t.Errorf("waited for a low balance at step %d", firstLow)
			}
		})
	}
}

// Budgets up to 10^15 msat and packs up to 200,000 Wh, and the extremes the
// bounds allow, neither overflow nor break the budgets.
func TestNoOverflow(t *testing.T) {
	big := baseOffer()
	big.PriceMsatPerWh, big.IncrementWh, big.FirstMultiple = MaxPriceLimitMsatPerWh, 1_000_000_000, 9 // first payment 9e18 msat
	tiny := baseOffer()
	tiny.PriceMsatPerWh, tiny.IncrementWh, tiny.FirstMultiple = 1, 1, 1
	tests := []struct {
		name string
		s    Settings
		v    Vehicle
		o    offer.Offer
		p    Progress
		sp   Spend
	}{
		{"1e15 budgets, 200 kWh pack",
			Settings{TargetSoCPermille: 1000, MaxPriceMsatPerWh: 1_000_000, EfficiencyPermille: 500, BudgetSessionMsat: 1e15, BudgetDayMsat: 1e15, MaxPaymentMsat: 1e15},
			Vehicle{SoCKnown: true, PackWh: 200_000, PackKnown: true}, func() offer.Offer { o := baseOffer(); o.PriceMsatPerWh = 1_000_000; return o }(),
			Progress{}, Spend{SpendableMsat: MaxMsat, SpendableKnown: true}},
		{"extremes, tiny increments",
			Settings{TargetSoCPermille: 1000, MaxPriceMsatPerWh: MaxPriceLimitMsatPerWh, EfficiencyPermille: 500, BudgetSessionMsat: MaxMsat, BudgetDayMsat: MaxMsat, ReserveMsat: MaxMsat, MaxPaymentMsat: MaxMsat, MaxFeeMsat: MaxMsat, PackWhFallback: MaxPackWh, LeadTime: MaxLeadTime},
			Vehicle{SoCKnown: true}, tiny,
			Progress{PaidMsat: MaxMsat, Payments: math.MaxInt32, DeliveredMWh: MaxSessionMWh, CreditMWh: -MaxSessionMWh, PowerW: math.MaxInt64},
			Spend{DayPaidMsat: MaxMsat, SpendableMsat: MaxMsat, SpendableKnown: true}},
		{"extremes, huge increments",
			Settings{TargetSoCPermille: 1000, MaxPriceMsatPerWh: MaxPriceLimitMsatPerWh, EfficiencyPermille: 500, MaxPaymentMsat: MaxMsat, MaxFeeMsat: MaxMsat, PackWhFallback: MaxPackWh},
			Vehicle{}, big, Progress{}, Spend{SpendableMsat: MaxMsat, SpendableKnown: true}},
		{"extremes, huge increments, soc known",
			Settings{TargetSoCPermille: 1000, MaxPriceMsatPerWh: MaxPriceLimitMsatPerWh, EfficiencyPermille: 500, MaxPaymentMsat: MaxMsat, PackWhFallback: MaxPackWh},
			Vehicle{SoCKnown: true}, big, Progress{PaidMsat: 1, Payments: 1, CreditMWh: -MaxSessionMWh}, Spend{SpendableMsat: MaxMsat, SpendableKnown: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := Evaluate(tt.s, tt.v, tt.o)
			p := e.Plan
			if p.EnergyWh < 0 || p.CostMsat < 0 || p.Payments < 0 || p.PaymentsMsat < 0 || p.EnergyWh > p.NeedWh {
				t.Errorf("evaluate plan %+v", p)
			}
			for _, b := range []int64{tt.s.BudgetSessionMsat, tt.s.BudgetDayMsat} {
				if b > 0 && (p.CostMsat > b || p.PaymentsMsat > b) {
					t.Errorf("plan %+v exceeds budget %d", p, b)
				}
			}
			d := Next(tt.s, tt.v, tt.o, tt.p, tt.sp)
			if d.AmountMsat < 0 || d.PlannedMsat < 0 || d.PlannedPayments < 0 || d.PayAtCreditMWh < 0 {
				t.Errorf("next %+v", d)
			}
			if d.Action == Pay && tt.sp.SpendableMsat-d.AmountMsat < tt.s.ReserveMsat {
				t.Errorf("paid below the reserve: %+v", d)
			}
			t.Logf("evaluate %v %+v; next %v %v %s", e.Reason, p, d.Action, d.Reason, d.Detail)
		})
	}
	// The 200 kWh pack at the 1e15 budget: the plan is exact.
	s := Settings{TargetSoCPermille: 1000, MaxPriceMsatPerWh: 1_000_000, EfficiencyPermille: 500, BudgetSessionMsat: 1e15, MaxPaymentMsat: 1e15}
	o := baseOffer()
	o.PriceMsatPerWh = 1_000_000
	e := Evaluate(s, Vehicle{SoCKnown: true, PackWh: 200_000, PackKnown: true}, o)
	if e.Plan.NeedWh != 400_000 || e.Plan.CostMsat != 400_000_000_000 || e.Plan.Bound != TargetBound {
		t.Errorf("200 kWh plan %+v", e.Plan)
	}
	s.BudgetSessionMsat = 1e11 + 999_999
	if e := Evaluate(s, Vehicle{SoCKnown: true, PackWh: 200_000, PackKnown: true}, o); e.Plan.EnergyWh != 100_000 || e.Plan.Bound != SessionBudget {
		t.Errorf("budget-bound 200 kWh plan %+v", e.Plan)
	}
}

func TestSameTerms(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*offer.Offer)
		want   bool
	}{
		{"same", func(*offer.Offer) {}, true},
		{"validity extended", func(o *offer.Offer) { o.ValidUntil = o.ValidUntil.Add(time.Hour) }, true},
		{"price", func(o *offer.Offer) { o.PriceMsatPerWh++ }, false},
		{"increment", func(o *offer.Offer) { o.IncrementWh++ }, false},
		{"first multiple", func(o *offer.Offer) { o.FirstMultiple++ }, false},
		{"grace", func(o *offer.Offer) { o.GraceWh++ }, false},
		{"power", func(o *offer.Offer) { o.MaxPowerW++ }, false},
		{"session", func(o *offer.Offer) { o.SessionID = "s2" }, false},
		{"wall", func(o *offer.Offer) { o.WallNodeKey = "03" + testKey[2:] }, false},
		{"network", func(o *offer.Offer) { o.Network = "mainnet" }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := baseOffer(), baseOffer()
			tt.mutate(&b)
			if got := SameTerms(a, b); got != tt.want {
				t.Errorf("SameTerms = %v, want %v", got, tt.want)
			}
			if got := SameTerms(b, a); got != tt.want {
				t.Errorf("SameTerms reversed = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestNames(t *testing.T) {
	seen := map[string]bool{}
	for r := Accepted; r <= PlanPaid; r++ {
		n := r.String()
		if strings.HasPrefix(n, "Reason(") || seen[n] {
			t.Errorf("reason %d: name %q missing or repeated", int(r), n)
		}
		seen[n] = true
	}
	tests := []struct{ got, want string }{
		{Reason(0).String(), "Reason(0)"},
		{(PlanPaid + 1).String(), "Reason(18)"},
		{LowBalance.String(), "low_balance"},
		{Pay.String(), "pay"}, {Wait.String(), "wait"}, {Stop.String(), "stop"},
		{Action(0).String(), "Action(0)"},
		{NoBound.String(), "none"}, {TargetBound.String(), "target"},
		{SessionBudget.String(), "session_budget"}, {DayBudget.String(), "day_budget"},
		{Bound(9).String(), "Bound(9)"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
	var zero Verdict
	if zero.Accept || zero.Reason == Accepted {
		t.Errorf("the zero Verdict reads as accepted")
	}
}
