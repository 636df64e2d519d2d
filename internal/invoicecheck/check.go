// Package invoicecheck holds the checks the car runs on a wall's BOLT11
// invoice before paying it: what LUD-06 asks a wallet to check, and the
// owner's limits. It is the only place that decodes invoices. Check is
// pure; Decode uses lnd's zpay32 but no network.
package invoicecheck

import (
	"errors"
	"fmt"
	"time"

	"satwatt/internal/offer"
)

// Reason says why an invoice was refused.
type Reason int

// Reasons, in no particular order; Check's order is documented on Check.
const (
	AmountMismatch Reason = iota + 1
	MissingAmount
	DescriptionHashMismatch
	PayeeMismatch
	Expired
	WrongNetwork
	AboveCap
	PriceAboveLimit
	OfferExpired
)

var reasonNames = map[Reason]string{
	AmountMismatch:          "amount mismatch",
	MissingAmount:           "missing amount",
	DescriptionHashMismatch: "description hash mismatch",
	PayeeMismatch:           "payee mismatch",
	Expired:                 "invoice expired",
	WrongNetwork:            "wrong network",
	AboveCap:                "above payment cap",
	PriceAboveLimit:         "price above limit",
	OfferExpired:            "offer expired",
}

func (r Reason) String() string {
	if s, ok := reasonNames[r]; ok {
		return s
	}
	return fmt.Sprintf("Reason(%d)", int(r))
}

// Refusal is the error for an invoice (or offer) the car must not pay.
// Detail says what was expected and what the invoice had.
type Refusal struct {
	Reason Reason
	Detail string
}

func (r *Refusal) Error() string {
	return "invoice refused: " + r.Reason.String() + ": " + r.Detail
}

func refuse(r Reason, format string, args ...any) *Refusal {
	return &Refusal{Reason: r, Detail: fmt.Sprintf(format, args...)}
}

// ReasonOf returns the Reason of a Refusal anywhere in err's chain.
func ReasonOf(err error) (Reason, bool) {
	var r *Refusal
	if errors.As(err, &r) {
		return r.Reason, true
	}
	return 0, false
}

// Invoice is a decoded BOLT11 invoice, reduced to what the checks need.
type Invoice struct {
	AmountMsat      int64 // 0: the invoice names no amount
	DescriptionHash *[32]byte
	Payee           string // lower-case hex compressed public key
	PaymentHash     [32]byte
	Timestamp       time.Time
	Expiry          time.Duration
	Network         string // offer network name, see offer.Networks
}

// Expect is what the car asked for and what its owner allows.
type Expect struct {
	AmountMsat        int64       // the amount the car asked the callback for
	Metadata          string      // the offer's metadata string, exactly as served
	Offer             offer.Offer // the offer parsed from Metadata
	Now               time.Time
	MaxPaymentMsat    int64 // owner's cap on one payment
	MaxPriceMsatPerWh int64 // owner's price limit
}

// CheckOffer runs the offer-only checks (price limit, validity), which
// the car can run as soon as it has the offer, before asking for an
// invoice.
func CheckOffer(o offer.Offer, maxPriceMsatPerWh int64, now time.Time) error {
	if o.PriceMsatPerWh > maxPriceMsatPerWh {
		return refuse(PriceAboveLimit, "owner's limit is %d msat/Wh, the offer asks %d msat/Wh",
			maxPriceMsatPerWh, o.PriceMsatPerWh)
	}
	if !now.Before(o.ValidUntil) {
		return refuse(OfferExpired, "offer was valid until %s, now is %s",
			o.ValidUntil.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	return nil
}

// Check returns nil if the car may pay inv, a *Refusal if it must not,
// and a plain error if exp itself is unusable (a caller bug). The checks
// run in this fixed order and the first failure is returned:
// WrongNetwork, PayeeMismatch, DescriptionHashMismatch, MissingAmount,
// AmountMismatch, AboveCap, PriceAboveLimit, OfferExpired, Expired.
// Who the invoice is from and what it is for come first, then how much,
// then the owner's limits, then time.
func Check(inv Invoice, exp Expect) error {
	if err := checkExpect(exp); err != nil {
		return err
	}
	o := exp.Offer
	if inv.Network != o.Network {
		return refuse(WrongNetwork, "offer is for %s, invoice is for %s", o.Network, inv.Network)
	}
	if inv.Payee != o.WallNodeKey {
		return refuse(PayeeMismatch, "offer names wall node %s, invoice pays %s", o.WallNodeKey, inv.Payee)
	}
	want := offer.DescriptionHash(exp.Metadata)
	if inv.DescriptionHash == nil {
		return refuse(DescriptionHashMismatch, "want description hash %x (sha256 of the metadata), invoice has none", want)
	}
	if *inv.DescriptionHash != want {
		return refuse(DescriptionHashMismatch, "want description hash %x (sha256 of the metadata), invoice has %x", want, *inv.DescriptionHash)
	}
	if inv.AmountMsat <= 0 {
		return refuse(MissingAmount, "asked for %d msat, invoice names no amount", exp.AmountMsat)
	}
	if inv.AmountMsat != exp.AmountMsat {
		return refuse(AmountMismatch, "asked for %d msat, invoice asks %d msat", exp.AmountMsat, inv.AmountMsat)
	}
	if inv.AmountMsat > exp.MaxPaymentMsat {
		return refuse(AboveCap, "owner's cap is %d msat per payment, invoice asks %d msat", exp.MaxPaymentMsat, inv.AmountMsat)
	}
	if err := CheckOffer(o, exp.MaxPriceMsatPerWh, exp.Now); err != nil {
		return err
	}
	expires := inv.Timestamp.Add(inv.Expiry)
	if !exp.Now.Before(expires) {
		return refuse(Expired, "invoice created %s expired at %s, now is %s",
			inv.Timestamp.UTC().Format(time.RFC3339), expires.UTC().Format(time.RFC3339), exp.Now.UTC().Format(time.RFC3339))
	}
	return nil
}

// checkExpect refuses expectations that would make the checks meaningless,
// such as an offer that is not the one in the metadata.
func checkExpect(exp Expect) error {
	if exp.AmountMsat <= 0 {
		return fmt.Errorf("invoicecheck: expected amount %d msat must be positive", exp.AmountMsat)
	}
	if exp.MaxPaymentMsat <= 0 {
		return fmt.Errorf("invoicecheck: payment cap %d msat must be positive", exp.MaxPaymentMsat)
	}
	if exp.MaxPriceMsatPerWh <= 0 {
		return fmt.Errorf("invoicecheck: price limit %d msat/Wh must be positive", exp.MaxPriceMsatPerWh)
	}
	if exp.Now.IsZero() {
		return errors.New("invoicecheck: current time not set")
	}
	md, _, err := offer.ParseMetadata(exp.Metadata)
	if err != nil {
		return fmt.Errorf("invoicecheck: expected metadata: %w", err)
	}
	if !md.Equal(exp.Offer) {
		return fmt.Errorf("invoicecheck: expected offer %+v is not the one in the metadata (%+v)", exp.Offer, md)
	}
	return nil
}
