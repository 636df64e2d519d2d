// Package carpay is how the car pays a wall's invoice: it decodes the
// invoice offline and runs every check against the offer it was asked under
// (amount, description hash, payee, expiry, network, per-payment cap, price
// limit), and only an invoice that passes all of them reaches the car's own
// lnd node.
package carpay

import (
	"context"
	"fmt"
	"time"

	"satwatt/internal/clock"
	"satwatt/internal/invoicecheck"
	"satwatt/internal/lndclient"
)

// Node is the car's lnd node as far as paying goes.
type Node interface {
	Pay(ctx context.Context, bolt11 string, opts lndclient.PayOptions) (lndclient.PaymentResult, error)
}

// Payer pays checked invoices.
type Payer struct {
	Node    Node
	Network string // "regtest", "mainnet", ...
	// MaxFeeMsat caps routing fees per payment; zero allows only fee-free
	// routes, such as a direct channel to the wall.
	MaxFeeMsat int64
	Timeout    time.Duration
	Clock      clock.Clock
}

// Pay decodes and checks bolt11 against exp, and pays it only if every
// check passes. A refused invoice returns an *invoicecheck.Refusal and
// nothing is sent. exp.Now is filled from the clock.
func (p *Payer) Pay(ctx context.Context, bolt11 string, exp invoicecheck.Expect) (lndclient.PaymentResult, error) {
	inv, err := invoicecheck.Decode(bolt11, p.Network)
	if err != nil {
		return lndclient.PaymentResult{}, fmt.Errorf("carpay: %w", err)
	}
	exp.Now = p.Clock.Now()
	if err := invoicecheck.Check(inv, exp); err != nil {
		return lndclient.PaymentResult{}, fmt.Errorf("carpay: refused before paying: %w", err)
	}
	res, err := p.Node.Pay(ctx, bolt11, lndclient.PayOptions{MaxFeeMsat: p.MaxFeeMsat, Timeout: p.Timeout, AmountMsat: exp.AmountMsat})
	if err != nil {
		return res, fmt.Errorf("carpay: pay: %w", err)
	}
	return res, nil
}
