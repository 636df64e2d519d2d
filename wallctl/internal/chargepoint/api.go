package chargepoint

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"

	"satwatt/internal/lndclient"
	"satwatt/internal/metering"
	"satwatt/internal/offer"
	"satwatt/internal/wallstore"
)

// OfferInfo is what the LNURL-pay first response needs.
type OfferInfo struct {
	Offer    offer.Offer
	Metadata string
	MinMsat  int64
	MaxMsat  int64
}

// CurrentOffer is the open session's offer and the payment bounds that
// apply now: the first payment before anything is paid, one increment
// after.
func (c *Controller) CurrentOffer() (OfferInfo, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.notSellingLocked(); err != nil {
		return OfferInfo{}, err
	}
	s := c.cur
	if s == nil || s.m.State() == metering.Ended {
		return OfferInfo{}, fmt.Errorf("%w: no vehicle has an open session", ErrNotOpen)
	}
	lo, hi := c.boundsLocked(s)
	return OfferInfo{Offer: s.offer, Metadata: s.metadata, MinMsat: lo, MaxMsat: hi}, nil
}

// notSellingLocked says why the wall cannot sell energy now, if it
// cannot: a fault stops it until cleared; an EVSE that does not answer
// could not deliver what would be paid for.
func (c *Controller) notSellingLocked() error {
	switch {
	case c.fault != "":
		return fmt.Errorf("%w: %s", ErrNotSelling, c.fault)
	case c.evseErr != nil:
		return fmt.Errorf("%w: the charger is not answering; try again later", ErrNotSelling)
	}
	return nil
}

func (c *Controller) boundsLocked(s *session) (lo, hi int64) {
	t := s.m.Terms()
	lo = t.IncrementMsat()
	if s.m.Snapshot().PaidMsat < t.FirstPaymentMsat() {
		lo = t.FirstPaymentMsat() - s.m.Snapshot().PaidMsat
	}
	hi = max(t.FirstPaymentMsat(), c.cfg.MaxPaymentIncrements*t.IncrementMsat())
	return max(lo, 1), max(hi, lo)
}

// Invoice is an invoice handed out to the buyer.
type Invoice struct {
	Bolt11      string
	PaymentHash [32]byte
}

// RequestInvoice creates an invoice of amountMsat for the open session
// sessionID. It is recorded before it is returned, so a payment can never
// arrive for an invoice the wall has forgotten.
func (c *Controller) RequestInvoice(ctx context.Context, sessionID string, amountMsat int64) (Invoice, error) {
	c.mu.Lock()
	s := c.cur
	notSelling := c.notSellingLocked()
	switch {
	case notSelling != nil:
		c.mu.Unlock()
		return Invoice{}, notSelling
	case s == nil || s.m.ID() != sessionID || s.m.State() == metering.Ended:
		c.mu.Unlock()
		return Invoice{}, fmt.Errorf("%w: %q", ErrNotOpen, sessionID)
	}
	lo, hi := c.boundsLocked(s)
	if amountMsat < lo || amountMsat > hi {
		c.mu.Unlock()
		return Invoice{}, fmt.Errorf("%w: %d msat, this session takes %d to %d msat now", ErrAmount, amountMsat, lo, hi)
	}
	n := 0
	for _, inv := range c.open {
		if inv.sessionID == sessionID {
			n++
		}
	}
	if n >= c.cfg.MaxOpenInvoices {
		c.metrics.InvoicesRefused++
		c.mu.Unlock()
		return Invoice{}, fmt.Errorf("%w: %d unpaid, at most %d", ErrTooManyInvoices, n, c.cfg.MaxOpenInvoices)
	}
	// Hold a slot while lnd is asked, so concurrent requests cannot pass
	// the limit together.
	var slot [32]byte
	if _, err := randRead(slot[:]); err != nil {
		c.mu.Unlock()
		return Invoice{}, err
	}
	c.open[slot] = &openInvoice{sessionID: sessionID, expiresAt: c.clk.Now().Add(c.cfg.InvoiceExpiry)}
	descHash := s.descHash
	c.mu.Unlock()
	release := func() {
		c.mu.Lock()
		delete(c.open, slot)
		c.mu.Unlock()
	}

	inv, err := c.ln.AddInvoice(ctx, amountMsat, descHash, c.cfg.InvoiceExpiry)
	if err != nil {
		release()
		return Invoice{}, fmt.Errorf("chargepoint: create invoice: %w", err)
	}
	hx := hex.EncodeToString(inv.PaymentHash[:])
	if err := c.store.AddInvoice(ctx, wallstore.Invoice{PaymentHash: hx, SessionID: sessionID, AmountMsat: amountMsat,
		Bolt11: inv.PaymentRequest, CreatedAt: c.clk.Now(), ExpiresAt: inv.ExpiresAt}); err != nil {
		release()
		// Never hand out an invoice that is not on record; make sure it
		// cannot be paid either.
		if cerr := c.ln.CancelInvoice(context.WithoutCancel(ctx), inv.PaymentHash); cerr != nil {
			c.log.Error("chargepoint: cancel an invoice that could not be recorded", "hash", hx, "err", cerr)
		}
		c.mu.Lock()
		c.metrics.StoreErrors++
		c.mu.Unlock()
		return Invoice{}, fmt.Errorf("chargepoint: record invoice: %w", err)
	}
	c.mu.Lock()
	delete(c.open, slot)
	c.open[inv.PaymentHash] = &openInvoice{sessionID: sessionID, bolt11: inv.PaymentRequest, amount: amountMsat, expiresAt: inv.ExpiresAt}
	c.metrics.InvoicesIssued++
	c.mu.Unlock()
	c.log.Info("chargepoint: invoice issued", "session", sessionID, "amount_msat", amountMsat, "hash", hx)
	return Invoice{Bolt11: inv.PaymentRequest, PaymentHash: inv.PaymentHash}, nil
}

// ErrSoC is returned for a state of charge outside 0 to 1000 per mille.
var ErrSoC = errors.New("state of charge out of range")

// ShareSoC records the state of charge the buyer of the open session
// shares, in per mille, for the page. It is information, never a reason to
// deliver or withhold energy.
func (c *Controller) ShareSoC(sessionID string, permille int64) error {
	if permille < 0 || permille > 1000 {
		return fmt.Errorf("%w: %d per mille", ErrSoC, permille)
	}
	c.mu.Lock()
	if c.cur == nil || c.cur.m.ID() != sessionID || c.cur.m.State() == metering.Ended {
		c.mu.Unlock()
		return fmt.Errorf("%w: %q", ErrNotOpen, sessionID)
	}
	changed := c.cur.socPermille != permille
	c.cur.socPermille = permille
	c.mu.Unlock()
	if changed {
		c.publish()
	}
	return nil
}

// Settings are the owner's terms for new sessions.
type Settings struct {
	PriceMsatPerWh int64 `json:"price_msat_per_wh"`
	IncrementWh    int64 `json:"increment_wh"`
	GraceWh        int64 `json:"grace_wh"`
}

// Settings returns the terms the next session will get.
func (c *Controller) Settings() Settings {
	c.mu.Lock()
	defer c.mu.Unlock()
	return Settings{PriceMsatPerWh: c.terms.PriceMsatPerWh, IncrementWh: c.terms.IncrementWh, GraceWh: c.terms.GraceWh}
}

// SetPrice sets the price for the next session; the open one keeps its own.
func (c *Controller) SetPrice(ctx context.Context, msatPerWh int64) error {
	s := c.Settings()
	s.PriceMsatPerWh = msatPerWh
	return c.SetSettings(ctx, s)
}

// SetSettings sets the terms for the next session; the open one keeps the
// terms its offer named. They are stored first, so a restart keeps them.
func (c *Controller) SetSettings(ctx context.Context, s Settings) error {
	t, err := c.termsWith(s)
	if err != nil {
		return err
	}
	for _, kv := range []struct {
		key string
		v   int64
	}{{priceKey, s.PriceMsatPerWh}, {incrementKey, s.IncrementWh}, {graceKey, s.GraceWh}} {
		if err := c.store.SetSetting(ctx, kv.key, strconv.FormatInt(kv.v, 10)); err != nil {
			return fmt.Errorf("chargepoint: store %s: %w", kv.key, err)
		}
	}
	c.useTerms(t)
	c.event(ctx, "", "settings", fmt.Sprintf("from the next session: %d msat/Wh, %d Wh increments, %d Wh grace",
		s.PriceMsatPerWh, s.IncrementWh, s.GraceWh))
	return nil
}

// UseSettings takes settings that another connector of the same wall has
// just stored with SetSettings: the terms for this connector's next
// session, without storing or recording them again.
func (c *Controller) UseSettings(s Settings) error {
	t, err := c.termsWith(s)
	if err != nil {
		return err
	}
	c.useTerms(t)
	return nil
}

func (c *Controller) termsWith(s Settings) (metering.Terms, error) {
	c.mu.Lock()
	t := c.terms
	c.mu.Unlock()
	t.PriceMsatPerWh, t.IncrementWh, t.GraceWh = s.PriceMsatPerWh, s.IncrementWh, s.GraceWh
	return t, t.Validate()
}

func (c *Controller) useTerms(t metering.Terms) {
	c.mu.Lock()
	c.terms = t
	c.mu.Unlock()
	c.publish()
}

// VerifyInvoice reports whether an invoice is settled and its preimage
// (LUD-21): the wall asks its own node.
func (c *Controller) VerifyInvoice(ctx context.Context, hash [32]byte) (settled bool, preimage [32]byte, err error) {
	st, err := c.ln.LookupInvoice(ctx, hash)
	if err != nil {
		return false, preimage, err
	}
	if st.Status == lndclient.InvoiceSettled {
		return true, st.Preimage, nil
	}
	return false, preimage, nil
}

// Stop ends the open session on the wall owner's word.
func (c *Controller) Stop(ctx context.Context, sessionID string) error {
	return c.stop(ctx, sessionID, metering.WallShutdown, "stopped by the wall's owner")
}

// BuyerStop ends the open session on the buyer's word. The buyer proves it
// is the buyer with the preimage of any payment it made in the session:
// only the payer learns it.
func (c *Controller) BuyerStop(ctx context.Context, sessionID, preimageHex string) error {
	pre, err := hex.DecodeString(preimageHex)
	if err != nil || len(pre) != 32 {
		return fmt.Errorf("%w: the proof must be a 32-byte payment preimage in hex", ErrNotBuyer)
	}
	h := sha256.Sum256(pre)
	c.mu.Lock()
	ok := false
	if c.cur != nil && c.cur.m.ID() == sessionID {
		want := hex.EncodeToString(h[:])
		for _, p := range c.cur.payments {
			if subtle.ConstantTimeCompare([]byte(p.Hash), []byte(want)) == 1 {
				ok = true
			}
		}
	}
	c.mu.Unlock()
	if !ok {
		return fmt.Errorf("%w: no payment of session %q has that preimage", ErrNotBuyer, sessionID)
	}
	return c.stop(ctx, sessionID, metering.BuyerStopped, "stopped by the buyer")
}

func (c *Controller) stop(ctx context.Context, sessionID string, r metering.EndReason, why string) error {
	c.mu.Lock()
	if c.cur == nil || c.cur.m.ID() != sessionID || c.cur.m.State() == metering.Ended {
		c.mu.Unlock()
		return fmt.Errorf("%w: %q", ErrNotOpen, sessionID)
	}
	c.event(ctx, sessionID, "stop", why)
	c.endLocked(ctx, r)
	c.mu.Unlock()
	c.publish()
	return nil
}
