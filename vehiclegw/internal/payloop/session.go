package payloop

import (
	"context"
	"errors"
	"fmt"
	"time"

	"satwatt/internal/buypolicy"
	"satwatt/internal/invoicecheck"
	"satwatt/internal/lndclient"
	"satwatt/internal/vehiclestate"
	"satwatt/vehiclegw/internal/status"
)

// Session end reasons, as the ledger records them.
const (
	EndUnplugged     = "unplugged"
	EndRefused       = "offer_refused"
	EndWallEnded     = "wall_ended"
	EndShutdown      = "gateway_stopped"
	EndNoWall        = "no_wall"
	EndStoppedBuying = "stopped_buying"
)

// session is one plug-in, from the car's side.
type session struct {
	l        *Loop
	wall     Wall
	offer    Offer
	id       string
	startMWh int64 // the car's energy integral at the start

	paidMsat   int64 // succeeded and in flight
	spentMsat  int64 // succeeded, fees included
	boughtMWh  int64 // energy the succeeded payments bought at the session price
	payments   int
	wallMWh    int64
	powerW     int64
	pending    map[[32]byte]int64 // payments in flight: hash -> msat, counted in paidMsat
	stopped    bool               // the car buys nothing more (target, budget, mismatch, hostile wall)
	stopCode   status.Code
	stopState  status.State
	lastSpend  time.Time
	spendRetry time.Duration // backoff while the node does not answer
	spendable  int64
	spendKnown bool
	balanceSat int64
	// warn is the latest decision's standing warning (low balance soon,
	// or why the car waits). Every status the session shows carries it
	// unless a worse error replaces it, so the bus never flickers
	// between NONE and the warning within one step.
	warn status.Code
	// trackBackoff and trackNext pace asking an unanswering node how the
	// payments in flight ended.
	trackBackoff time.Duration
	trackNext    time.Time
}

// session runs one plug-in to unplug. Failures are shown on the vehicle
// and recorded; it returns when the cable comes out or ctx ends.
func (l *Loop) session(ctx context.Context) {
	l.show(status.Status{State: status.Discovering, BalanceSat: l.shown.BalanceSat})
	var wall Wall
	err := l.retry(ctx, "discovery", status.NoWallFound, status.Discovering, func() error {
		w, err := l.find(ctx)
		wall = w
		return err
	})
	if err != nil {
		return
	}
	l.show(status.Status{State: status.Negotiating, BalanceSat: l.shown.BalanceSat})
	var o Offer
	err = l.retry(ctx, "offer", status.WallError, status.Negotiating, func() error {
		var err error
		o, err = wall.Offer(ctx)
		return err
	})
	if err != nil {
		return
	}
	// Judge the offer on the car's data: wait, within reason, for what a
	// waking bus has not sent yet.
	var v buypolicy.Verdict
	snap := l.snapshot()
	day, _ := l.ledger.PaidSince(ctx, startOfDay(l.clk.Now()))
	for deadline := l.clk.Now().Add(l.cfg.DataWait); ; snap = l.snapshot() {
		v = buypolicy.EvaluateToday(l.cfg.Policy, vehicleOf(snap), o.Terms, day)
		waiting := v.Reason == buypolicy.NoPackSize || v.Reason == buypolicy.VehicleDataStale
		if !waiting || !l.clk.Now().Before(deadline) || unplugged(snap) {
			break
		}
		if err := l.pause(ctx, min(l.cfg.Tick, 100*time.Millisecond)); err != nil {
			return
		}
	}
	now := l.clk.Now()
	s := &session{l: l, wall: wall, offer: o, id: o.Terms.SessionID, startMWh: snap.ChargedEnergyMWh, balanceSat: l.shown.BalanceSat,
		pending: map[[32]byte]int64{}}
	if err := l.ledger.OpenSession(ctx, LedgerSession{ID: s.id, WallURL: wall.URL(), Offer: o.Terms, Metadata: o.Metadata,
		StartedAt: now, SoCPermille: socPermille(snap)}); err != nil {
		// Without a ledger row nothing may be paid: the record comes first.
		l.log.Error("payloop: cannot record the session; paying nothing", "session", s.id, "err", err)
		l.show(status.Status{State: status.Failed, Error: status.PaymentFailed, BalanceSat: s.balanceSat})
		return
	}
	if !v.Accept {
		l.log.Warn("payloop: offer refused", "session", s.id, "reason", v.Reason, "detail", v.Detail)
		l.ledger.RecordRefusal(ctx, s.id, "", v.Reason.String(), v.Detail, now)
		s.halt(codeOf(v.Reason), v.Detail)
	} else {
		l.log.Info("payloop: offer accepted", "session", s.id, "price_msat_per_wh", o.Terms.PriceMsatPerWh,
			"plan_wh", v.Plan.EnergyWh, "plan_msat", v.Plan.CostMsat, "bound", v.Plan.Bound)
	}
	reason := s.run(ctx)
	// A payment still in flight is followed to its end and recorded as it
	// really ended, unplugged or not.
	s.settlePending(context.WithoutCancel(ctx), 2*time.Minute)
	end := l.clk.Now()
	snap = l.snapshot()
	if err := l.ledger.EndSession(context.WithoutCancel(ctx), s.id, end, reason, s.wallMWh, s.carMWh(snap), socPermille(snap)); err != nil {
		l.log.Error("payloop: record the end of the session", "session", s.id, "err", err)
	}
	l.log.Info("payloop: session over", "session", s.id, "reason", reason, "paid_msat", s.paidMsat,
		"wall_mwh", s.wallMWh, "car_mwh", s.carMWh(snap))
}

// run follows the wall and pays until the end; it returns the end reason.
func (s *session) run(ctx context.Context) string {
	l := s.l
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	updates := s.wall.Follow(ctx)
	lastMeter := time.Time{}
	for {
		select {
		case <-ctx.Done():
			return EndShutdown
		case st, ok := <-updates:
			if !ok {
				return EndShutdown
			}
			if ended := s.apply(st); ended != "" {
				return ended
			}
		case <-l.clk.After(l.cfg.Tick):
		}
		now := l.clk.Now()
		snap := l.snapshot()
		if unplugged(snap) {
			return EndUnplugged
		}
		if now.Sub(lastMeter) >= 5*l.cfg.Tick {
			lastMeter = now
			l.ledger.RecordMeter(ctx, s.id, now, s.wallMWh, s.carMWh(snap))
		}
		s.step(ctx, snap)
	}
}

// apply takes in the wall's report. A report about another session, or
// with another price, is a wall not keeping its word: the car stops buying.
func (s *session) apply(st WallStatus) (ended string) {
	if st.Ended != nil && st.Ended.ID == s.id {
		s.wallMWh = max(s.wallMWh, st.Ended.DeliveredMWh)
		return EndWallEnded + ":" + st.EndedReason
	}
	ws := st.Session
	if ws == nil {
		return ""
	}
	switch {
	case ws.ID != s.id:
		s.stop(status.WallError, fmt.Sprintf("the wall reports session %q, the offer was for %q", ws.ID, s.id))
		return ""
	case ws.PriceMsatPerWh != s.offer.Terms.PriceMsatPerWh:
		s.stop(status.WallError, fmt.Sprintf("the wall's price changed mid-session from %d to %d msat/Wh",
			s.offer.Terms.PriceMsatPerWh, ws.PriceMsatPerWh))
		return ""
	case ws.DeliveredMWh < s.wallMWh:
		s.stop(status.WallError, fmt.Sprintf("the wall's meter went back from %d to %d mWh", s.wallMWh, ws.DeliveredMWh))
		return ""
	}
	s.wallMWh, s.powerW = ws.DeliveredMWh, ws.PowerW
	return ""
}

// carMWh is the energy the car measured on its bus since the session began.
func (s *session) carMWh(snap vehiclestate.State) int64 {
	return max(snap.ChargedEnergyMWh-s.startMWh, 0)
}

// meterOK cross-checks the wall's meter against the car's.
func (s *session) meterOK(snap vehiclestate.State) (bool, string) {
	car := s.carMWh(snap)
	limit := car*(1000+s.l.cfg.MeterTolerancePermille)/1000 + s.l.cfg.MeterSlackMWh
	if s.wallMWh > limit {
		return false, fmt.Sprintf("the wall reports %d mWh delivered, the car measured %d mWh (allowed up to %d mWh)", s.wallMWh, car, limit)
	}
	return true, ""
}

// stop records why the car buys nothing more in this session, and halts.
func (s *session) stop(code status.Code, why string) {
	if !s.stopped && code != status.NoError {
		s.l.ledger.RecordRefusal(context.Background(), s.id, "", code.String(), why, s.l.clk.Now())
	}
	s.halt(code, why)
}

// halt stops the buying without a ledger row, for a refusal already
// recorded with its reason.
func (s *session) halt(code status.Code, why string) {
	if !s.stopped {
		if code == status.NoError {
			s.l.log.Info("payloop: bought enough this session", "session", s.id, "why", why)
		} else {
			s.l.log.Warn("payloop: buying nothing more this session", "session", s.id, "code", code, "why", why)
		}
	}
	s.stopped, s.stopCode = true, code
	s.stopState = status.Stopped
	if code == status.NoError {
		s.stopState = status.Complete
	}
	s.show()
}

func (s *session) show() {
	st := status.Status{State: status.Charging, Error: s.warn, CreditWh: (s.boughtMWh - s.wallMWh) / 1000, EnergyBoughtWh: s.boughtMWh / 1000,
		SatsSpent: s.spentMsat / 1000, BalanceSat: s.balanceSat}
	switch {
	case s.stopped:
		st.State, st.Error = s.stopState, s.stopCode
	case s.payments == 0:
		st.State = status.Negotiating
	case s.powerW <= 0 && s.boughtMWh <= s.wallMWh:
		st.State = status.Suspended
	}
	s.l.show(st)
}

// step asks the policy what to do now and does it.
func (s *session) step(ctx context.Context, snap vehiclestate.State) {
	if s.stopped {
		s.show()
		return
	}
	if ok, why := s.meterOK(snap); !ok {
		s.stop(status.MeterMismatch, why)
		return
	}
	s.refreshSpend(ctx)
	if now := s.l.clk.Now(); !now.Before(s.trackNext) {
		s.settlePending(ctx, time.Second)
	}
	if len(s.pending) > 0 {
		// Never pay on top of a payment whose outcome is not known.
		s.show()
		return
	}
	l := s.l
	now := l.clk.Now()
	day, err := l.ledger.PaidSince(ctx, startOfDay(now))
	if err != nil {
		l.log.Error("payloop: read today's spending; paying nothing until it can be read", "err", err)
		return
	}
	p := buypolicy.Progress{PaidMsat: s.paidMsat, DeliveredMWh: s.wallMWh, CreditMWh: s.paidMWh() - s.wallMWh,
		PowerW: s.powerW, Payments: s.payments}
	sp := buypolicy.Spend{DayPaidMsat: day, SpendableMsat: s.spendable, SpendableKnown: s.spendKnown}
	d := buypolicy.Next(l.cfg.Policy, vehicleOf(snap), s.offer.Terms, p, sp)
	s.warn = status.NoError
	if d.LowBalanceSoon {
		s.warn = status.LowBalance
	}
	switch d.Action {
	case buypolicy.Stop:
		if d.Reason == buypolicy.PlanPaid {
			// Enough is paid for the target at the set efficiency; if the
			// credit runs out short of the target, the policy asks for more.
			s.show()
			return
		}
		if d.Reason == buypolicy.InvalidProgress || d.Reason == buypolicy.InvalidSettings {
			l.log.Error("payloop: the purchase policy refused the gateway's own numbers (a bug); buying nothing more", "session", s.id, "why", d.Detail)
		}
		s.stop(codeOf(d.Reason), d.Detail)
		return
	case buypolicy.Wait:
		if c := codeOf(d.Reason); c != status.NoError {
			s.warn = c
		}
		s.show()
		return
	}
	soc := int64(-1)
	if l.cfg.ShareSoC {
		soc = socPermille(snap)
	}
	s.pay(ctx, d.AmountMsat, soc)
}

// paidMWh is the energy the car's payments buy at the session price.
func (s *session) paidMWh() int64 { return s.paidMsat * 1000 / s.offer.Terms.PriceMsatPerWh }

// refreshSpend reads the node's spendable balance every few ticks, and
// with a growing backoff (up to RetryMax) while the node does not answer.
func (s *session) refreshSpend(ctx context.Context) {
	now := s.l.clk.Now()
	wait := 5 * s.l.cfg.Tick
	if !s.spendKnown {
		wait = s.spendRetry
	}
	if !s.lastSpend.IsZero() && now.Sub(s.lastSpend) < wait {
		return
	}
	s.lastSpend = now
	v, err := s.l.node.SpendableMsat(ctx)
	if err != nil {
		s.spendKnown = false
		s.spendRetry = min(max(2*s.spendRetry, s.l.cfg.Tick), s.l.cfg.RetryMax)
		s.l.log.Warn("payloop: the owner's node does not answer", "err", err, "retry_in", s.spendRetry)
		return
	}
	s.spendable, s.spendKnown, s.balanceSat, s.spendRetry = v, true, v/1000, 0
}

// pay asks the wall for an invoice and pays it if every check passes.
// The invoice is recorded before it is paid; a payment in flight when the
// car is unplugged is still followed to its end and recorded as it ended.
func (s *session) pay(ctx context.Context, amt, socPermille int64) {
	l := s.l
	// The offer afresh: its terms must read exactly as the accepted ones.
	o, err := s.wall.Offer(ctx)
	if err == nil && o.Metadata != s.offer.Metadata {
		s.stop(status.WallError, fmt.Sprintf("the wall changed its offer mid-session: session %s now reads %q",
			s.id, clip(o.Metadata, 200)))
		return
	}
	var bolt11 string
	if err == nil {
		bolt11, err = s.wall.Invoice(ctx, amt, socPermille)
	}
	if err != nil {
		l.log.Warn("payloop: the wall gave no invoice", "session", s.id, "amount_msat", amt, "err", err)
		st := l.shown
		st.Error = status.WallError
		l.show(st)
		return
	}
	now := l.clk.Now()
	inv, err := invoicecheck.Decode(bolt11, l.cfg.Network)
	if err != nil {
		s.stop(status.InvoiceRejected, "undecodable invoice: "+err.Error())
		return
	}
	if err := l.ledger.AddInvoice(ctx, s.id, inv.PaymentHash, amt, bolt11, now); err != nil {
		l.log.Error("payloop: cannot record the invoice; not paying it", "session", s.id, "err", err)
		return
	}
	exp := invoicecheck.Expect{AmountMsat: amt, Metadata: s.offer.Metadata, Offer: s.offer.Terms,
		MaxPaymentMsat: l.cfg.Policy.MaxPaymentMsat, MaxPriceMsatPerWh: l.cfg.Policy.MaxPriceMsatPerWh}
	s.paidMsat += amt // counted while in flight, so it is never paid twice
	// The payment outlives an unplug or a stop: it is followed to its end.
	res, err := l.payer.Pay(context.WithoutCancel(ctx), bolt11, exp)
	var refusal *invoicecheck.Refusal
	switch {
	case errors.As(err, &refusal):
		s.paidMsat -= amt
		l.ledger.RecordRefusal(ctx, s.id, hexHash(inv.PaymentHash), refusal.Reason.String(), refusal.Detail, l.clk.Now())
		s.halt(status.InvoiceRejected, refusal.Error())
		return
	case err != nil:
		// The outcome is unknown: keep it counted as in flight, so it is
		// not paid again, and show the failure.
		l.log.Error("payloop: payment outcome unknown", "session", s.id, "hash", hexHash(inv.PaymentHash), "err", err)
		res = lndclient.PaymentResult{PaymentHash: inv.PaymentHash, Status: lndclient.InFlight}
	}
	if res.PaymentHash == ([32]byte{}) {
		res.PaymentHash = inv.PaymentHash
	}
	s.outcome(ctx, res, amt)
}

// outcome records a payment's result and counts it.
func (s *session) outcome(ctx context.Context, res lndclient.PaymentResult, amt int64) {
	l := s.l
	if rerr := l.ledger.RecordPayment(context.WithoutCancel(ctx), s.id, res, l.clk.Now()); rerr != nil {
		l.log.Error("payloop: record the payment", "session", s.id, "hash", hexHash(res.PaymentHash), "err", rerr)
	}
	delete(s.pending, res.PaymentHash)
	switch res.Status {
	case lndclient.Succeeded:
		s.payments++
		s.spentMsat += res.AmountMsat + res.FeeMsat
		s.boughtMWh = s.paidMWh()
		// Shown at once; the node is asked again before the next payment.
		// An unknown balance stays unknown (and never goes below zero).
		if s.spendKnown {
			s.spendable = max(s.spendable-res.AmountMsat-res.FeeMsat, 0)
			s.balanceSat = s.spendable / 1000
		}
		s.lastSpend = time.Time{}
		l.log.Info("payloop: paid", "session", s.id, "amount_msat", res.AmountMsat, "fee_msat", res.FeeMsat,
			"hash", hexHash(res.PaymentHash))
		s.show()
	case lndclient.Failed:
		s.paidMsat -= amt
		l.log.Warn("payloop: payment failed", "session", s.id, "reason", res.FailureReason)
		st := l.shown
		st.Error = status.PaymentFailed
		if res.FailureReason == lndclient.ReasonInsufficientBalance {
			// Ask the node afresh before trying again, rather than ask the
			// wall for invoice after invoice on a stale balance.
			st.Error, s.lastSpend = status.LowBalance, time.Time{}
		}
		l.show(st)
	default:
		s.pending[res.PaymentHash] = amt
		st := l.shown
		st.Error = status.PaymentFailed
		l.show(st)
	}
}

// settlePending asks the node how each payment in flight ended, waiting up
// to wait for each.
func (s *session) settlePending(ctx context.Context, wait time.Duration) {
	var failing error
	for hash, amt := range s.pending {
		tctx, cancel := context.WithTimeout(ctx, wait)
		res, err := s.l.node.Track(tctx, hash)
		cancel()
		switch {
		case errors.Is(err, lndclient.ErrPaymentNotFound):
			// The node never sent it.
			s.outcome(ctx, lndclient.PaymentResult{PaymentHash: hash, Status: lndclient.Failed}, amt)
		case err != nil:
			failing = err
		case res.Status != lndclient.InFlight:
			res.PaymentHash = hash
			s.outcome(ctx, res, amt)
		}
	}
	s.trackFailed(failing)
}

// trackFailed notes whether the node told how the payments in flight
// ended. While it does not answer, the car shows NODE_UNREACHABLE (not a
// stale NONE) and asks again with a growing backoff, logging the change
// rather than every try.
func (s *session) trackFailed(err error) {
	if err == nil {
		if s.trackBackoff > 0 {
			s.l.log.Info("payloop: the node answers about the payments in flight again", "session", s.id)
		}
		s.trackBackoff, s.trackNext = 0, time.Time{}
		return
	}
	if errors.Is(err, lndclient.ErrUnreachable) {
		s.warn, s.spendKnown = status.NodeUnreachable, false
	}
	if s.trackBackoff == 0 {
		s.l.log.Warn("payloop: a payment's outcome is unknown; asking the node again with backoff", "session", s.id, "err", err)
	}
	s.trackBackoff = min(max(2*s.trackBackoff, s.l.cfg.Tick), s.l.cfg.RetryMax)
	s.trackNext = s.l.clk.Now().Add(s.trackBackoff)
}

// codeOf is what the vehicle shows for a policy reason.
func codeOf(r buypolicy.Reason) status.Code {
	switch r {
	case buypolicy.PriceAboveLimit:
		return status.PriceAboveLimit
	case buypolicy.BudgetTooSmall, buypolicy.BudgetReached, buypolicy.PaymentCapTooSmall:
		return status.BudgetReached
	case buypolicy.LowBalance:
		return status.LowBalance
	case buypolicy.NodeUnreachable:
		return status.NodeUnreachable
	case buypolicy.VehicleDataStale, buypolicy.NoPackSize:
		return status.VehicleDataStale
	case buypolicy.InvalidOffer:
		return status.WallError
	}
	return status.NoError
}

// vehicleOf turns the bus's snapshot into the policy's integers.
func vehicleOf(s vehiclestate.State) buypolicy.Vehicle {
	var v buypolicy.Vehicle
	if s.SOCPct != nil {
		v.SoCPermille, v.SoCKnown = int64(*s.SOCPct*10+0.5), true
	}
	if s.PackEnergyWh != nil {
		v.PackWh, v.PackKnown = *s.PackEnergyWh, true
	}
	return v
}

func socPermille(s vehiclestate.State) int64 {
	if s.SOCPct == nil {
		return -1
	}
	return int64(*s.SOCPct*10 + 0.5)
}

func startOfDay(t time.Time) time.Time {
	y, m, d := t.Local().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.Local)
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
