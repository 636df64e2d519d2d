// Package lnfake is an in-memory stand-in for the wall's lnd, for unit
// tests and benchmarks of the charge point's own logic. It is a test
// double, never the product: wallctl serve always talks to a real lnd,
// and the regtest tests in wallctl drive one.
package lnfake

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"strings"
	"sync"
	"time"

	"satwatt/internal/lndclient"
)

// Node holds invoices in memory. It satisfies the charge point's
// Lightning and Watch interfaces.
type Node struct {
	mu        sync.Mutex
	invoices  map[[32]byte]*invoice
	out       chan lndclient.Settlement
	connected bool
	added     int
}

type invoice struct {
	amount   int64
	preimage [32]byte
	state    lndclient.InvoiceStatus
	paid     int64
}

// New returns a connected node with no invoices.
func New() *Node {
	return &Node{invoices: map[[32]byte]*invoice{}, out: make(chan lndclient.Settlement, 16), connected: true}
}

// AddInvoice makes an open invoice with a fresh preimage.
func (n *Node) AddInvoice(_ context.Context, amt int64, _ [32]byte, expiry time.Duration) (lndclient.Invoice, error) {
	var pre [32]byte
	rand.Read(pre[:])
	h := sha256.Sum256(pre[:])
	n.mu.Lock()
	defer n.mu.Unlock()
	n.invoices[h] = &invoice{amount: amt, preimage: pre}
	n.added++
	return lndclient.Invoice{PaymentRequest: fmt.Sprintf("lnbcrt-fake-%d", n.added), PaymentHash: h, ExpiresAt: time.Now().Add(expiry)}, nil
}

// LookupInvoice reports an invoice's state, as lnd's LookupInvoice does.
func (n *Node) LookupInvoice(_ context.Context, h [32]byte) (lndclient.InvoiceState, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	inv, ok := n.invoices[h]
	if !ok {
		return lndclient.InvoiceState{}, lndclient.ErrInvoiceNotFound
	}
	return lndclient.InvoiceState{PaymentHash: h, Status: inv.state, ValueMsat: inv.amount, AmountPaidMsat: inv.paid, Preimage: inv.preimage}, nil
}

// CancelInvoice cancels an open invoice; others are left alone.
func (n *Node) CancelInvoice(_ context.Context, h [32]byte) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if inv, ok := n.invoices[h]; ok && inv.state == lndclient.InvoiceOpen {
		inv.state = lndclient.InvoiceCanceled
	}
	return nil
}

// PubKey is a fixed, well-formed node key.
func (n *Node) PubKey() string { return "02" + strings.Repeat("11", 32) }

// Network is always regtest.
func (n *Node) Network() string { return "regtest" }

// Settlements delivers only what Deliver hands it: tests decide when (and
// whether) the controller hears of a payment.
func (n *Node) Settlements() <-chan lndclient.Settlement { return n.out }

// Connected reports what SetConnected last set (true at first).
func (n *Node) Connected() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.connected
}

// SetConnected makes the node look reachable or not.
func (n *Node) SetConnected(on bool) {
	n.mu.Lock()
	n.connected = on
	n.mu.Unlock()
}

// Pay settles an open invoice with amt msat (more than asked is allowed,
// as in lnd) and returns the settlement a watcher would report.
func (n *Node) Pay(hash [32]byte, amt int64) (lndclient.Settlement, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	inv := n.invoices[hash]
	if inv == nil || inv.state != lndclient.InvoiceOpen {
		return lndclient.Settlement{}, fmt.Errorf("lnfake: invoice %x is not open", hash[:4])
	}
	inv.state, inv.paid = lndclient.InvoiceSettled, amt
	return lndclient.Settlement{PaymentHash: hash, AmountPaidMsat: amt, Preimage: inv.preimage, SettledAt: time.Now()}, nil
}

// Deliver reports a settlement on Settlements, as lnd's invoice stream would.
func (n *Node) Deliver(s lndclient.Settlement) { n.out <- s }
