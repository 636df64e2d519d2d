package chargepoint

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"satwatt/internal/evse"
	"satwatt/internal/lndclient"
	"satwatt/internal/metering"
	"satwatt/internal/offer"
	"satwatt/internal/wallstore"
)

// session is the controller's view of one session.
type session struct {
	m         *metering.Session
	offer     offer.Offer
	metadata  string
	descHash  [32]byte
	meterBase int64 // delivered before the EVSE's meter last restarted
	meterFrom int64 // the EVSE meter reading that counts as meterBase
	// meteredAt and meteredMWh are the last reading applied, from which
	// the next reading's look-ahead learns how fast the meter really runs.
	meteredAt  time.Time
	meteredMWh int64
	powerW     int64
	enabled    bool // what the controller last told the EVSE
	sampled    time.Time
	payments   []Payment
	lndDark    bool // power withheld because lnd cannot be seen
	// socPermille is the state of charge the car chose to share with its
	// last invoice request, -1 if it did not. Shown, never trusted.
	socPermille int64
}

// Payment is one settled payment as the status shows it.
type Payment struct {
	Hash       string    `json:"payment_hash"`
	AmountMsat int64     `json:"amount_msat"`
	SettledAt  time.Time `json:"settled_at"`
	Late       bool      `json:"late,omitempty"`
}

const maxStatusPayments = 20

// Run drives the connector until ctx ends. The EVSE is disabled first and
// last, whatever happens in between, and a panic disables it too.
func (c *Controller) Run(ctx context.Context) (err error) {
	defer c.failSafe()
	defer func() {
		if p := recover(); p != nil {
			c.log.Error("chargepoint: panic, power off", "panic", p)
			err = fmt.Errorf("chargepoint: panic: %v", p)
		}
	}()
	c.disable(ctx, "wall starting")

	evseCtx, stopEVSE := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := c.evse.Run(evseCtx); err != nil && evseCtx.Err() == nil {
			c.log.Error("chargepoint: EVSE driver stopped", "err", err)
		}
	}()
	defer func() {
		c.disable(context.WithoutCancel(ctx), "wall stopping")
		stopEVSE()
		wg.Wait()
	}()

	if err := c.loadSettings(ctx); err != nil {
		return err
	}
	if err := c.recover(ctx); err != nil {
		return err
	}
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	w := c.watch(watchCtx, c.openHashes)
	c.mu.Lock()
	c.watcher = w
	c.ready = true
	c.mu.Unlock()
	c.reconcile(ctx)
	c.publish()

	guardCtx, stopGuard := context.WithCancel(ctx)
	defer stopGuard()
	wg.Add(1)
	go func() {
		defer wg.Done()
		c.guardStalls(guardCtx)
	}()

	tick := c.clk.After(0)
	for {
		c.busySince.Store(0)
		select {
		case <-ctx.Done():
			c.shutdown()
			return nil
		case s, ok := <-w.Settlements():
			c.busy()
			if !ok {
				if ctx.Err() == nil {
					return errors.New("chargepoint: settlement watch ended")
				}
				continue
			}
			c.settle(ctx, s, false)
		case <-c.evse.Changes():
			c.busy()
			c.step(ctx)
		case <-tick:
			c.busy()
			c.step(ctx)
			c.retrySettlements(ctx)
			c.expireInvoices(ctx)
			tick = c.clk.After(c.cfg.MeterInterval)
		}
	}
}

// busy marks the control loop as taken up with work from now.
func (c *Controller) busy() { c.busySince.Store(c.clk.Now().UnixNano()) }

// guardStalls withdraws power when the control loop has been busy with one
// thing for longer than StallAfter: a write waiting out the busy timeout of
// a database another process holds, a driver or lnd call hanging. Nobody
// meters while the loop is stuck, so the EVSE must not deliver. The loop,
// once free, sees stallOff and, after stallHold without another stall (so
// that a lasting fault does not cycle the contactor), switches power back
// on if the credit allows.
func (c *Controller) guardStalls(ctx context.Context) {
	poll := max(c.cfg.MeterInterval/4, time.Millisecond)
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.clk.After(poll):
		}
		since := c.busySince.Load()
		now := c.clk.Now()
		if since == 0 || now.Sub(time.Unix(0, since)) < c.cfg.StallAfter {
			continue
		}
		episode := now.Sub(time.Unix(0, c.stalledAt.Load())) > c.stallHold()
		c.stalledAt.Store(now.UnixNano())
		if !c.powerOn.Load() {
			continue
		}
		dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := c.evse.Disable(dctx)
		cancel()
		c.powerOn.Store(false)
		c.stallOff.Store(true)
		if episode {
			c.log.Warn("chargepoint: control loop stalled; power withdrawn until it runs freely again",
				"busy_for", now.Sub(time.Unix(0, since)).Round(time.Millisecond), "disable_err", err)
		}
	}
}

// stallHold is how long the loop must run without stalling before power
// comes back after a stall.
func (c *Controller) stallHold() time.Duration { return 5 * c.cfg.MeterInterval }

// stalledRecently says the stall guard saw the loop stuck within stallHold.
func (c *Controller) stalledRecently(now time.Time) bool {
	at := c.stalledAt.Load()
	return at != 0 && now.Sub(time.Unix(0, at)) < c.stallHold()
}

// failSafe is the last word: whatever state the controller is in, the EVSE
// is told to stop delivering.
func (c *Controller) failSafe() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.evse.Disable(ctx); err != nil {
		c.log.Error("chargepoint: could not disable the EVSE on the way out", "err", err)
	}
}

func (c *Controller) disable(ctx context.Context, why string) {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := c.evse.Disable(cctx); err != nil {
		c.log.Error("chargepoint: disable EVSE", "why", why, "err", err)
		return
	}
	c.log.Info("chargepoint: EVSE disabled", "why", why)
}

// The owner's settings, stored so a restart keeps them.
const (
	priceKey     = "price_msat_per_wh"
	incrementKey = "increment_wh"
	graceKey     = "grace_wh"
)

// loadSettings applies the stored settings over the configured terms. A
// stored value that is not usable is ignored with a warning: the wall
// still starts, on its configured terms.
func (c *Controller) loadSettings(ctx context.Context) error {
	c.mu.Lock()
	t := c.terms
	c.mu.Unlock()
	for _, kv := range []struct {
		key string
		dst *int64
		min int64
	}{{priceKey, &t.PriceMsatPerWh, 1}, {incrementKey, &t.IncrementWh, 1}, {graceKey, &t.GraceWh, 0}} {
		v, err := c.store.GetSetting(ctx, kv.key)
		if errors.Is(err, wallstore.ErrNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("chargepoint: read the stored %s: %w", kv.key, err)
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < kv.min {
			c.log.Warn("chargepoint: stored setting is not usable; using the configured one", "key", kv.key, "stored", v)
			continue
		}
		*kv.dst = n
	}
	if err := t.Validate(); err != nil {
		c.log.Warn("chargepoint: stored settings are not usable together; using the configured ones", "err", err)
		return nil
	}
	c.mu.Lock()
	c.terms = t
	c.mu.Unlock()
	return nil
}

// shutdown ends the open session: the wall is stopping.
func (c *Controller) shutdown() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cur != nil && c.cur.m.State() != metering.Ended {
		c.endLocked(ctx, metering.WallShutdown)
	}
}

// recover ends or resumes sessions a crash left open, from the EVSE's state:
// the newest one resumes if a vehicle is still connected, every other one
// ends.
func (c *Controller) recover(ctx context.Context) error {
	rows, err := c.store.OpenSessions(ctx, c.cfg.Connector)
	if err != nil {
		return fmt.Errorf("chargepoint: sessions left open: %w", err)
	}
	if len(rows) == 0 {
		return nil
	}
	st, stErr := c.evse.Status(ctx)
	now := c.clk.Now()
	newest := 0
	for i, r := range rows {
		if r.StartedAt.After(rows[newest].StartedAt) {
			newest = i
		}
	}
	for i, r := range rows {
		if i == newest && stErr == nil && st.Pilot.VehicleConnected() && st.Fault == "" {
			if err := c.resume(ctx, r, st, now); err == nil {
				continue
			} else {
				c.log.Error("chargepoint: cannot resume session; ending it", "session", r.ID, "err", err)
			}
		}
		reason := metering.Unplugged
		if stErr != nil {
			reason = metering.ChargerFault
		}
		if err := c.store.EndSession(ctx, r.ID, now, reason.String(), r.DeliveredMWh); err != nil {
			return fmt.Errorf("chargepoint: end session %s left open: %w", r.ID, err)
		}
		c.event(ctx, r.ID, "recovered", "ended after a restart: "+reason.String())
		c.log.Warn("chargepoint: ended a session left open by a restart", "session", r.ID, "reason", reason)
	}
	return nil
}

func (c *Controller) resume(ctx context.Context, r wallstore.Session, st evse.Status, now time.Time) error {
	o := r.Offer
	rc, err := c.store.Receipt(ctx, r.ID)
	if err != nil {
		return err
	}
	paid := rc.PaidMsat
	// delivered = meterBase + (EVSE reading - meterFrom). If the EVSE's
	// session meter kept counting while the wall was down, that energy was
	// delivered under this session; if it restarted, count from now.
	base, from := int64(0), r.EVSEStartMWh
	delivered := st.SessionMWh - r.EVSEStartMWh
	if delivered < r.DeliveredMWh {
		base, from, delivered = r.DeliveredMWh, st.SessionMWh, r.DeliveredMWh
	}
	m, err := metering.Restore(r.ID, c.termsFor(o), r.StartedAt, paid, len(rc.Payments), delivered, now)
	if err != nil {
		return err
	}
	cur := &session{m: m, offer: o, metadata: r.Metadata, descHash: offer.DescriptionHash(r.Metadata), meterBase: base, meterFrom: from, socPermille: -1}
	for _, p := range rc.Payments {
		cur.addPayment(Payment{Hash: p.PaymentHash, AmountMsat: p.AmountPaidMsat, SettledAt: p.SettledAt, Late: p.AfterEnd})
	}
	c.mu.Lock()
	c.cur = cur
	c.mu.Unlock()
	c.event(ctx, r.ID, "recovered", fmt.Sprintf("resumed after a restart: paid %d msat, delivered %d mWh, %s", paid, delivered, m.State()))
	c.log.Warn("chargepoint: resumed a session after a restart", "session", r.ID, "paid_msat", paid, "delivered_mwh", delivered, "state", m.State())
	return nil
}

func (c *Controller) termsFor(o offer.Offer) metering.Terms {
	return metering.Terms{
		PriceMsatPerWh: o.PriceMsatPerWh, IncrementWh: o.IncrementWh, FirstMultiple: o.FirstMultiple,
		GraceWh: o.GraceWh, UnpaidTimeout: c.cfg.Terms.UnpaidTimeout,
	}
}

// reconcile asks lnd about every invoice the store still has open:
// settled ones are credited (or recorded late), dead ones closed, live ones
// watched.
func (c *Controller) reconcile(ctx context.Context) {
	invs, err := c.store.OpenInvoices(ctx, c.cfg.Connector)
	if err != nil {
		c.log.Error("chargepoint: open invoices", "err", err)
		return
	}
	for _, inv := range invs {
		var h [32]byte
		if b, err := hex.DecodeString(inv.PaymentHash); err != nil || len(b) != 32 {
			c.log.Error("chargepoint: stored invoice has a bad payment hash", "hash", inv.PaymentHash)
			continue
		} else {
			copy(h[:], b)
		}
		c.mu.Lock()
		c.open[h] = &openInvoice{sessionID: inv.SessionID, bolt11: inv.Bolt11, amount: inv.AmountMsat, expiresAt: inv.ExpiresAt}
		c.mu.Unlock()
		c.checkInvoice(ctx, h, true)
	}
}

// checkInvoice looks an invoice up and acts on its state. Unless force, an
// invoice still open and not yet expired is left alone.
func (c *Controller) checkInvoice(ctx context.Context, h [32]byte, reconciling bool) {
	st, err := c.ln.LookupInvoice(ctx, h)
	if err != nil {
		if errors.Is(err, lndclient.ErrInvoiceNotFound) {
			c.closeInvoice(ctx, h, "canceled", "lnd does not know it")
			return
		}
		c.log.Warn("chargepoint: look up invoice", "hash", hex.EncodeToString(h[:]), "err", err)
		return
	}
	switch st.Status {
	case lndclient.InvoiceSettled:
		c.settle(ctx, lndclient.Settlement{PaymentHash: h, AmountPaidMsat: st.AmountPaidMsat, Preimage: st.Preimage, SettledAt: st.SettledAt}, reconciling)
	case lndclient.InvoiceCanceled:
		c.closeInvoice(ctx, h, "expired", "lnd canceled it")
	}
}

func (c *Controller) closeInvoice(ctx context.Context, h [32]byte, state, why string) {
	hx := hex.EncodeToString(h[:])
	if err := c.store.CloseInvoice(ctx, hx, state, c.clk.Now()); err != nil {
		c.log.Error("chargepoint: close invoice", "hash", hx, "err", err)
		return
	}
	c.mu.Lock()
	delete(c.open, h)
	c.mu.Unlock()
	c.log.Debug("chargepoint: invoice closed", "hash", hx, "state", state, "why", why)
}

// expireInvoices looks up invoices past their expiry: lnd may have settled
// one just before it expired, which must still be credited.
func (c *Controller) expireInvoices(ctx context.Context) {
	now := c.clk.Now()
	var due [][32]byte
	c.mu.Lock()
	for h, inv := range c.open {
		if now.After(inv.expiresAt.Add(2 * time.Second)) {
			due = append(due, h)
		}
	}
	c.mu.Unlock()
	for _, h := range due {
		c.checkInvoice(ctx, h, false)
		c.mu.Lock()
		_, still := c.open[h]
		c.mu.Unlock()
		if still {
			// Open on lnd beyond its expiry: cancel so it can never be
			// paid, then record it.
			if err := c.ln.CancelInvoice(ctx, h); err == nil || errors.Is(err, lndclient.ErrInvoiceNotFound) {
				c.closeInvoice(ctx, h, "expired", "past its expiry")
			} else if errors.Is(err, lndclient.ErrAlreadySettled) {
				c.checkInvoice(ctx, h, false)
			}
		}
	}
}

// retrySettlements records the settlements the store refused before.
func (c *Controller) retrySettlements(ctx context.Context) {
	c.mu.Lock()
	pending := make([]lndclient.Settlement, 0, len(c.unrecorded))
	for _, s := range c.unrecorded {
		pending = append(pending, s)
	}
	c.mu.Unlock()
	for _, s := range pending {
		c.settle(ctx, s, false)
	}
}

// openHashes is the watcher's view of the invoices being waited for.
func (c *Controller) openHashes() [][32]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([][32]byte, 0, len(c.open))
	for h := range c.open {
		out = append(out, h)
	}
	return out
}

// settle records a settlement and only then credits it.
func (c *Controller) settle(ctx context.Context, s lndclient.Settlement, reconciling bool) {
	hx := hex.EncodeToString(s.PaymentHash[:])
	at := s.SettledAt
	if at.IsZero() {
		at = c.clk.Now()
	}
	rec, err := c.store.SettleInvoice(ctx, hx, s.AmountPaidMsat, hex.EncodeToString(s.Preimage[:]), at)
	if err != nil {
		// Not recorded, so not credited. lnd will not report it again
		// on this stream, and the invoice's expiry check may be minutes
		// away while the car waits on power it paid for: keep it and
		// retry at every meter tick (a disk full or a locked database
		// usually clears).
		c.mu.Lock()
		_, again := c.unrecorded[s.PaymentHash]
		c.unrecorded[s.PaymentHash] = s
		c.metrics.StoreErrors++
		c.mu.Unlock()
		if again {
			c.log.Debug("chargepoint: record settlement, retry failed", "hash", hx, "err", err)
		} else {
			c.log.Error("chargepoint: record settlement; not credited until it is recorded, retrying every meter interval",
				"hash", hx, "amount_msat", s.AmountPaidMsat, "err", err)
		}
		return
	}
	c.mu.Lock()
	delete(c.open, s.PaymentHash)
	delete(c.unrecorded, s.PaymentHash)
	if !rec.New {
		c.mu.Unlock()
		return
	}
	c.metrics.PaymentsSettled++
	c.metrics.ReceivedMsat += s.AmountPaidMsat
	cur := c.cur
	if cur != nil && cur.m.ID() == rec.SessionID {
		d, err := cur.m.Pay(s.AmountPaidMsat, c.clk.Now())
		if err != nil {
			c.log.Error("chargepoint: credit", "session", rec.SessionID, "err", err)
		}
		cur.addPayment(Payment{Hash: hx, AmountMsat: s.AmountPaidMsat, SettledAt: at, Late: d.Late})
		c.log.Info("chargepoint: payment credited", "session", rec.SessionID, "amount_msat", s.AmountPaidMsat,
			"state", d.State, "late", d.Late, "while_down", reconciling)
		c.applyLocked(ctx, d)
	} else {
		c.metrics.LatePayments++
		c.log.Warn("chargepoint: payment for a session that is no longer open: recorded, not credited to energy",
			"session", rec.SessionID, "amount_msat", s.AmountPaidMsat, "while_down", reconciling)
	}
	c.mu.Unlock()
	kind := "payment"
	if reconciling {
		kind = "payment_while_down"
	}
	c.event(ctx, rec.SessionID, kind, fmt.Sprintf("%d msat, hash %s, after end %v", s.AmountPaidMsat, hx, rec.AfterEnd))
	c.publish()
}

func (s *session) addPayment(p Payment) {
	s.payments = append(s.payments, p)
	if len(s.payments) > maxStatusPayments {
		s.payments = s.payments[len(s.payments)-maxStatusPayments:]
	}
}

func (c *Controller) event(ctx context.Context, sessionID, kind, detail string) {
	if err := c.store.AddEvent(ctx, sessionID, c.clk.Now(), kind, detail); err != nil {
		c.log.Error("chargepoint: record event", "kind", kind, "err", err)
	}
}
