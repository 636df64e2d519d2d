package chargepoint

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"

	"satwatt/internal/evse"
	"satwatt/internal/metering"
	"satwatt/internal/offer"
	"satwatt/internal/wallstore"
)

// step reads the EVSE and brings everything in line with it: plug-in opens
// a session, unplug ends it, the meter moves the credit, faults stop the
// sale.
func (c *Controller) step(ctx context.Context) {
	st, err := c.evse.Status(ctx)
	now := c.clk.Now()
	c.mu.Lock()
	defer c.publish()
	defer c.mu.Unlock()
	wasClosed := c.evseErr == nil && c.evseSt.ContactorClosed
	c.evseSt, c.evseErr = st, err
	if c.stallOff.Swap(false) && c.cur != nil {
		// The stall guard disabled the EVSE; let the meter below decide
		// afresh whether to enable it. (No event: what stalls is most
		// often the store.)
		c.cur.enabled = false
	}
	if err != nil {
		c.metrics.EVSEErrors++
		// Without a reading nothing can be metered: withhold power. A real
		// OpenEVSE also cuts power itself when our heartbeats stop.
		if c.cur != nil && c.cur.enabled {
			c.log.Error("chargepoint: EVSE not answering; withholding power", "err", err)
			c.driveLocked(ctx, false)
		}
		return
	}
	if st.Fault != "" && c.cur != nil && c.cur.m.State() != metering.Ended {
		c.event(ctx, c.cur.m.ID(), "charger_fault", st.Fault)
		c.endLocked(ctx, metering.ChargerFault)
	}
	if c.cur != nil && st.ContactorClosed != wasClosed {
		// When power really flowed, for the owner reading the events and
		// for time-to-energy measurements (plugged to contactor_closed).
		kind := "contactor_opened"
		if st.ContactorClosed {
			kind = "contactor_closed"
		}
		c.event(ctx, c.cur.m.ID(), kind, fmt.Sprintf("%d W", st.PowerW))
	}
	if c.cur != nil && !st.Pilot.VehicleConnected() {
		c.meterLocked(ctx, st, now)
		if c.cur.m.State() != metering.Ended {
			c.endLocked(ctx, metering.Unplugged)
		}
		c.last, c.cur = c.cur, nil
	}
	c.checkStuckLocked(ctx, st, now)
	if c.cur == nil && st.Pilot.VehicleConnected() && st.Fault == "" && c.fault == "" {
		c.openSessionLocked(ctx, st, now)
	}
	if c.cur == nil {
		if st.Enabled {
			c.driveLocked(ctx, false)
		}
		return
	}
	c.meterLocked(ctx, st, now)
	c.applyLocked(ctx, c.cur.m.Tick(now))
	if st.Enabled && !c.cur.enabled {
		// The EVSE is enabled though we did not ask (or a disable was
		// lost): say it again.
		c.driveLocked(ctx, false)
	}
	if c.cur.m.State() != metering.Ended && now.Sub(c.cur.sampled) >= c.cfg.SampleInterval {
		c.sampleLocked(ctx, now)
	}
}

// meterLocked applies the EVSE's meter to the session.
func (c *Controller) meterLocked(ctx context.Context, st evse.Status, now time.Time) {
	s := c.cur
	s.powerW = st.PowerW
	if st.SessionMWh < s.meterFrom {
		// The EVSE's meter restarted (EVSE reboot): keep what was counted
		// and count on from the new reading.
		s.meterBase = s.m.Snapshot().DeliveredMWh
		s.meterFrom = st.SessionMWh
		c.event(ctx, s.m.ID(), "meter_restart", fmt.Sprintf("EVSE meter went back to %d mWh", st.SessionMWh))
	}
	delivered := s.meterBase + st.SessionMWh - s.meterFrom
	// Look ahead to the next reading: at the power the EVSE reports, over
	// the meter interval or the last gap between readings if ticks come
	// late (a loaded machine), and at least what the meter itself counted
	// over that gap (a meter that runs faster than the power it reports).
	horizon, counted := c.cfg.MeterInterval, int64(0)
	if !s.meteredAt.IsZero() {
		horizon, counted = max(horizon, now.Sub(s.meteredAt)), delivered-s.meteredMWh
	}
	ahead := max(lookaheadMWh(st.PowerW, horizon, c.cfg.SimSpeedPermil), counted)
	s.meteredAt, s.meteredMWh = now, delivered
	d, err := s.m.MeterAhead(delivered, ahead, now)
	if err != nil {
		c.log.Error("chargepoint: meter", "session", s.m.ID(), "err", err)
		return
	}
	c.applyLocked(ctx, d)
}

// checkStuckLocked raises a fault when the contactor stays closed after
// power was withdrawn: the wall stops selling until it is looked at.
func (c *Controller) checkStuckLocked(ctx context.Context, st evse.Status, now time.Time) {
	allowed := c.cur != nil && c.cur.enabled
	if !st.ContactorClosed || allowed {
		c.stuckFrom = time.Time{}
		return
	}
	if c.stuckFrom.IsZero() {
		c.stuckFrom = now
		c.driveLocked(ctx, false)
		return
	}
	if now.Sub(c.stuckFrom) < c.cfg.StuckAfter || c.fault != "" {
		return
	}
	c.fault = "contactor stays closed after power was withdrawn"
	c.metrics.Faults++
	c.log.Error("chargepoint: FAULT: contactor stuck closed; selling stopped", "since", c.stuckFrom)
	id := ""
	if c.cur != nil {
		id = c.cur.m.ID()
		if c.cur.m.State() != metering.Ended {
			c.endLocked(ctx, metering.ChargerFault)
		}
	}
	c.event(ctx, id, "fault", c.fault)
}

// applyLocked makes the EVSE follow a metering decision and records state
// changes.
func (c *Controller) applyLocked(ctx context.Context, d metering.Decision) {
	s := c.cur
	if s == nil {
		return
	}
	want := d.Enable && c.fault == ""
	snap := s.m.Snapshot()
	dark := c.watcher != nil && !c.watcher.Connected() && snap.CreditMsat <= 0
	if dark != s.lndDark {
		s.lndDark = dark
		if dark {
			c.log.Warn("chargepoint: lnd out of sight and the credit is used up; withholding power", "session", s.m.ID())
			c.event(ctx, s.m.ID(), "lnd_unreachable", "credit used up while payments cannot be seen")
		}
	}
	if dark || c.stalledRecently(c.clk.Now()) {
		want = false
	}
	c.driveLocked(ctx, want)
	if d.Changed {
		c.log.Info("chargepoint: session state", "session", s.m.ID(), "state", d.State,
			"paid_msat", snap.PaidMsat, "delivered_mwh", snap.DeliveredMWh, "credit_msat", snap.CreditMsat)
		c.event(ctx, s.m.ID(), "state", d.State.String())
		c.sampleLocked(ctx, c.clk.Now())
	}
}

// driveLocked tells the EVSE to deliver or not, if that changes anything.
func (c *Controller) driveLocked(ctx context.Context, on bool) {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	s := c.cur
	if on {
		if s == nil || s.enabled {
			return
		}
		if err := c.evse.Enable(cctx, c.cfg.MaxCurrentA); err != nil {
			c.log.Error("chargepoint: enable EVSE", "err", err)
			return
		}
		s.enabled = true
		c.powerOn.Store(true)
		c.metrics.Enables++
		return
	}
	if s != nil {
		s.enabled = false
	}
	c.powerOn.Store(false)
	if err := c.evse.Disable(cctx); err != nil {
		c.log.Error("chargepoint: disable EVSE", "err", err)
	}
}

// endLocked ends the current session and records it.
func (c *Controller) endLocked(ctx context.Context, r metering.EndReason) {
	s := c.cur
	now := c.clk.Now()
	s.m.End(r, now)
	c.driveLocked(ctx, false)
	snap := s.m.Snapshot()
	if err := c.store.EndSession(ctx, snap.ID, now, r.String(), snap.DeliveredMWh); err != nil {
		c.log.Error("chargepoint: record session end", "session", snap.ID, "err", err)
	}
	c.metrics.SessionsEnded++
	c.log.Info("chargepoint: session ended", "session", snap.ID, "reason", r,
		"delivered_mwh", snap.DeliveredMWh, "paid_msat", snap.PaidMsat, "credit_msat", snap.CreditMsat)
}

func (c *Controller) sampleLocked(ctx context.Context, now time.Time) {
	s := c.cur
	snap := s.m.Snapshot()
	if err := c.store.RecordProgress(ctx, snap.ID, now, snap.State.String(), snap.DeliveredMWh, s.powerW); err != nil {
		c.log.Error("chargepoint: record progress", "session", snap.ID, "err", err)
		c.metrics.StoreErrors++
		return
	}
	s.sampled = now
}

// openSessionLocked opens a session for a vehicle that just plugged in, at
// the current price. If the session cannot be recorded, nothing is sold.
func (c *Controller) openSessionLocked(ctx context.Context, st evse.Status, now time.Time) {
	id := newSessionID(now)
	t := c.terms
	o := offer.Offer{
		SessionID: id, PriceMsatPerWh: t.PriceMsatPerWh, IncrementWh: t.IncrementWh,
		FirstMultiple: t.FirstMultiple, GraceWh: t.GraceWh, MaxPowerW: c.cfg.MaxPowerW,
		WallNodeKey: c.ln.PubKey(), ValidUntil: now.Add(c.cfg.OfferValidity), Network: c.ln.Network(),
		TLSCertSHA256: c.cfg.TLSCertSHA256,
	}
	desc := fmt.Sprintf("satwatt charging session %s: %d msat per Wh", id, t.PriceMsatPerWh)
	meta, err := offer.Metadata(o, desc)
	if err != nil {
		c.log.Error("chargepoint: build offer", "err", err)
		return
	}
	m, err := metering.New(id, t, now)
	if err != nil {
		c.log.Error("chargepoint: open session", "err", err)
		return
	}
	if err := c.store.OpenSession(ctx, wallstore.SessionOpen{ID: id, Connector: c.cfg.Connector, StartedAt: now, Offer: o, Metadata: meta, EVSEStartMWh: st.SessionMWh}); err != nil {
		c.log.Error("chargepoint: record new session; not selling until it can be recorded", "err", err)
		c.metrics.StoreErrors++
		return
	}
	c.cur = &session{m: m, offer: o, metadata: meta, descHash: offer.DescriptionHash(meta), meterFrom: st.SessionMWh, sampled: now, socPermille: -1}
	c.metrics.SessionsOpened++
	c.log.Info("chargepoint: vehicle plugged in; session open", "session", id, "price_msat_per_wh", t.PriceMsatPerWh,
		"first_payment_msat", t.FirstPaymentMsat())
	c.event(ctx, id, "plugged", "pilot "+st.Pilot.String())
}

// newSessionID is sortable by time and unguessable enough that one car
// cannot address another's session by counting.
func newSessionID(now time.Time) string {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("chargepoint: no randomness: %v", err))
	}
	return now.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:])
}

// lookaheadMWh is the energy until the next reading at this power: W x s /
// 3.6 = mWh, times the speed of a simulated EVSE, whose energy flows that
// much faster than real time.
func lookaheadMWh(powerW int64, interval time.Duration, simSpeedPermil int64) int64 {
	ahead := max(powerW, 0) * interval.Milliseconds() / 3_600
	if simSpeedPermil > 0 {
		ahead = ahead * simSpeedPermil / 1000
	}
	return ahead
}
