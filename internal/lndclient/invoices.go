package lndclient

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/lightningnetwork/lnd/lnrpc"
	"github.com/lightningnetwork/lnd/lnrpc/invoicesrpc"
)

// Invoice is an invoice the node has just created.
type Invoice struct {
	PaymentRequest string // BOLT 11
	PaymentHash    [32]byte
	AddIndex       uint64
	// ExpiresAt counts the expiry from just before the call, so it is at
	// most a round trip earlier than the node's own expiry, never later.
	ExpiresAt time.Time
}

// InvoiceStatus is where an invoice stands on the node.
type InvoiceStatus int

const (
	InvoiceOpen     InvoiceStatus = iota
	InvoiceSettled                // paid: Preimage and AmountPaidMsat are set
	InvoiceCanceled               // canceled or expired unpaid
	InvoiceAccepted               // HTLCs held, not settled yet (hold invoices only)
)

func (s InvoiceStatus) String() string {
	switch s {
	case InvoiceOpen:
		return "open"
	case InvoiceSettled:
		return "settled"
	case InvoiceCanceled:
		return "canceled"
	case InvoiceAccepted:
		return "accepted"
	}
	return fmt.Sprintf("InvoiceStatus(%d)", int(s))
}

// InvoiceState is an invoice as the node knows it now.
type InvoiceState struct {
	PaymentHash    [32]byte
	Status         InvoiceStatus
	ValueMsat      int64 // asked; 0 for an amount-less invoice
	AmountPaidMsat int64 // paid; may exceed ValueMsat
	Preimage       [32]byte
	SettledAt      time.Time // zero unless settled
	AddIndex       uint64
	SettleIndex    uint64
}

// AddInvoice creates an invoice for amountMsat (0 makes an amount-less
// invoice, which the payer fills in) committing to descriptionHash (the
// LNURL metadata hash), valid for expiry, whole seconds, at least one.
func (c *Client) AddInvoice(ctx context.Context, amountMsat int64, descriptionHash [32]byte,
	expiry time.Duration) (Invoice, error) {
	if amountMsat < 0 {
		return Invoice{}, fmt.Errorf("lndclient: AddInvoice: amount %d msat is negative", amountMsat)
	}
	secs := int64(expiry / time.Second)
	if secs < 1 {
		// lnd reads 0 as its default of a day: never what a short-lived
		// increment wants.
		return Invoice{}, fmt.Errorf("lndclient: AddInvoice: expiry %v is under one second", expiry)
	}
	start := c.clock.Now()
	cctx, cancel := c.unary(ctx)
	defer cancel()
	resp, err := c.ln.AddInvoice(cctx, &lnrpc.Invoice{
		ValueMsat:       amountMsat,
		DescriptionHash: descriptionHash[:],
		Expiry:          secs,
	})
	if err != nil {
		return Invoice{}, c.wrap(cctx, "AddInvoice", err)
	}
	inv := Invoice{
		PaymentRequest: resp.PaymentRequest,
		AddIndex:       resp.AddIndex,
		ExpiresAt:      start.Add(time.Duration(secs) * time.Second),
	}
	if err := hash32(&inv.PaymentHash, resp.RHash); err != nil {
		return Invoice{}, fmt.Errorf("lndclient: AddInvoice at %s: payment hash: %w", c.addr, err)
	}
	c.log.Debug("invoice added", "hash", fmt.Sprintf("%x", inv.PaymentHash),
		"amount_msat", amountMsat, "add_index", inv.AddIndex)
	return inv, nil
}

// LookupInvoice asks the node for an invoice's state. An unknown hash gives
// ErrInvoiceNotFound.
func (c *Client) LookupInvoice(ctx context.Context, hash [32]byte) (InvoiceState, error) {
	cctx, cancel := c.unary(ctx)
	defer cancel()
	inv, err := c.ln.LookupInvoice(cctx, &lnrpc.PaymentHash{RHash: hash[:]})
	if err != nil {
		return InvoiceState{}, c.wrap(cctx, "LookupInvoice", err)
	}
	st, err := invoiceState(inv)
	if err != nil {
		return InvoiceState{}, fmt.Errorf("lndclient: LookupInvoice at %s: %w", c.addr, err)
	}
	return st, nil
}

// CancelInvoice cancels an open invoice so it can no longer be paid.
// Canceling an already canceled invoice succeeds; a paid one gives
// ErrAlreadySettled. It needs lnd built with the invoicesrpc tag.
func (c *Client) CancelInvoice(ctx context.Context, hash [32]byte) error {
	cctx, cancel := c.unary(ctx)
	defer cancel()
	if _, err := c.invoices.CancelInvoice(cctx, &invoicesrpc.CancelInvoiceMsg{PaymentHash: hash[:]}); err != nil {
		return c.wrap(cctx, "CancelInvoice", err)
	}
	return nil
}

func invoiceState(inv *lnrpc.Invoice) (InvoiceState, error) {
	st := InvoiceState{
		ValueMsat:      inv.ValueMsat,
		AmountPaidMsat: inv.AmtPaidMsat,
		AddIndex:       inv.AddIndex,
		SettleIndex:    inv.SettleIndex,
	}
	if err := hash32(&st.PaymentHash, inv.RHash); err != nil {
		return InvoiceState{}, fmt.Errorf("payment hash: %w", err)
	}
	switch inv.State {
	case lnrpc.Invoice_OPEN:
		st.Status = InvoiceOpen
	case lnrpc.Invoice_SETTLED:
		st.Status = InvoiceSettled
		if err := hash32(&st.Preimage, inv.RPreimage); err != nil {
			return InvoiceState{}, fmt.Errorf("preimage of settled invoice %x: %w", st.PaymentHash, err)
		}
		if inv.SettleDate > 0 {
			st.SettledAt = time.Unix(inv.SettleDate, 0)
		}
	case lnrpc.Invoice_CANCELED:
		st.Status = InvoiceCanceled
	case lnrpc.Invoice_ACCEPTED:
		st.Status = InvoiceAccepted
	default:
		return InvoiceState{}, fmt.Errorf("invoice %x in unknown state %v", st.PaymentHash, inv.State)
	}
	return st, nil
}

// hash32 copies a 32-byte hash or preimage.
func hash32(dst *[32]byte, b []byte) error {
	if len(b) != 32 {
		return errors.New("not 32 bytes long")
	}
	copy(dst[:], b)
	return nil
}
