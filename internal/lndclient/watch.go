package lndclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/lightningnetwork/lnd/lnrpc"

	"satwatt/internal/clock"
)

// Reconnect backoff: the first retry comes quickly (a dropped connection is
// usually a blip), later ones no more than this far apart so a restarted
// node is found again within seconds.
const (
	minBackoff = 100 * time.Millisecond
	maxBackoff = 5 * time.Second
)

// nextBackoff doubles d up to maxBackoff.
func nextBackoff(d time.Duration) time.Duration {
	if d < minBackoff {
		return minBackoff
	}
	if d *= 2; d > maxBackoff {
		return maxBackoff
	}
	return d
}

// Settlement is a paid invoice.
type Settlement struct {
	PaymentHash    [32]byte
	AmountPaidMsat int64 // amt_paid_msat: what was paid, which may exceed the invoice
	Preimage       [32]byte
	SettledAt      time.Time // the node's settle time (whole seconds)
}

// Watcher reports settlements of the invoices its caller has open. Make
// one with WatchSettlements.
type Watcher struct {
	c    *Client
	open func() [][32]byte
	out  chan Settlement

	connected atomic.Bool
	connects  atomic.Int64

	// reported holds the hashes already sent on out, so that the catch-up
	// lookups and lnd's replay never report a settlement twice. Only the
	// run goroutine touches it.
	reported map[[32]byte]bool

	stopped chan struct{}
}

// WatchSettlements follows invoice settlements on the node until ctx ends,
// then closes the channel Settlements returns.
//
// open returns the hashes of the invoices the caller still waits for; it is
// called often and from another goroutine, so it must be cheap and safe for
// concurrent use. Only these invoices are reported, each at most once per
// Watcher. A hash must be in the set before its invoice is handed to a
// payer.
//
// It uses one lnrpc.SubscribeInvoices stream for all invoices rather than
// invoicesrpc.SubscribeSingleInvoice per invoice: one stream needs no
// bookkeeping of which invoices are being followed, is served by the main
// Lightning service with invoices:read (the invoice macaroon), and lnd can
// replay what the stream missed. When the stream breaks (lnd restart,
// dropped connection) it reconnects with backoff (100 ms doubling to 5 s,
// on the client's clock) and then:
//
//  1. looks up every open invoice and reports those that settled while it
//     was away;
//  2. subscribes with add_index just below the oldest of them that is still
//     open, so lnd replays the current state of each of those invoices
//     after it has registered the subscription. A settlement between the
//     lookups and the registration is therefore replayed, not lost.
func (c *Client) WatchSettlements(ctx context.Context, open func() [][32]byte) *Watcher {
	w := &Watcher{
		c:        c,
		open:     open,
		out:      make(chan Settlement),
		reported: map[[32]byte]bool{},
		stopped:  make(chan struct{}),
	}
	go w.run(ctx)
	return w
}

// Settlements delivers each settlement once; it is closed when the watch
// ends.
func (w *Watcher) Settlements() <-chan Settlement { return w.out }

// Connected tells whether the subscription is up and caught up. The wall
// stops delivering energy while it is not.
func (w *Watcher) Connected() bool { return w.connected.Load() }

// Connects counts how often the subscription came up and caught up.
func (w *Watcher) Connects() int { return int(w.connects.Load()) }

// Done is closed when the watch has ended.
func (w *Watcher) Done() <-chan struct{} { return w.stopped }

func (w *Watcher) run(ctx context.Context) {
	defer close(w.stopped)
	defer close(w.out)
	delay := time.Duration(0)
	for {
		caughtUp, err := w.session(ctx)
		w.connected.Store(false)
		if ctx.Err() != nil {
			return
		}
		if caughtUp {
			delay = 0 // it was healthy: retry at once after a short pause
		}
		delay = nextBackoff(delay)
		w.c.log.Warn("invoice subscription down; reconnecting", "err", err, "retry_in", delay)
		if clock.Sleep(ctx, w.c.clock, delay) != nil {
			return
		}
	}
}

// session catches up, then follows the stream until it breaks. caughtUp
// tells whether it got as far as the live stream.
func (w *Watcher) session(ctx context.Context) (caughtUp bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	openSet := w.openSet()
	for h := range w.reported {
		if !openSet[h] {
			delete(w.reported, h) // the caller is done with it
		}
	}

	var replayFrom uint64 // lowest add index of a watched invoice still open
	for h := range openSet {
		st, err := w.c.LookupInvoice(ctx, h)
		if err != nil {
			if errors.Is(err, ErrInvoiceNotFound) {
				w.c.log.Warn("watched invoice unknown to the node", "hash", fmt.Sprintf("%x", h))
				continue
			}
			return false, err
		}
		switch st.Status {
		case InvoiceSettled:
			if !w.emit(ctx, st) {
				return false, ctx.Err()
			}
		case InvoiceOpen, InvoiceAccepted:
			if replayFrom == 0 || st.AddIndex < replayFrom {
				replayFrom = st.AddIndex
			}
		}
	}

	req := &lnrpc.InvoiceSubscription{}
	if replayFrom > 0 {
		req.AddIndex = replayFrom - 1 // lnd replays invoices added after AddIndex
	}
	stream, err := w.c.ln.SubscribeInvoices(ctx, req)
	if err != nil {
		return false, w.c.wrap(ctx, "SubscribeInvoices", err)
	}
	w.connected.Store(true)
	w.connects.Add(1)
	w.c.log.Info("invoice subscription up", "open", len(openSet), "replay_from_add_index", req.AddIndex)
	for {
		inv, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			// lnd ends its streams cleanly when it shuts down.
			return true, fmt.Errorf("lndclient: SubscribeInvoices at %s: lnd ended the stream", w.c.addr)
		}
		if err != nil {
			return true, w.c.wrap(ctx, "SubscribeInvoices", err)
		}
		if inv.State != lnrpc.Invoice_SETTLED {
			continue
		}
		st, err := invoiceState(inv)
		if err != nil {
			w.c.log.Warn("skipping malformed invoice from subscription", "err", err)
			continue
		}
		if !w.openSet()[st.PaymentHash] {
			continue // not ours, or the caller is done with it
		}
		if !w.emit(ctx, st) {
			return true, ctx.Err()
		}
	}
}

// emit reports a settled invoice unless it was reported already. It
// returns false if ctx ended first.
func (w *Watcher) emit(ctx context.Context, st InvoiceState) bool {
	if w.reported[st.PaymentHash] {
		return true
	}
	w.reported[st.PaymentHash] = true
	s := Settlement{
		PaymentHash:    st.PaymentHash,
		AmountPaidMsat: st.AmountPaidMsat,
		Preimage:       st.Preimage,
		SettledAt:      st.SettledAt,
	}
	if s.SettledAt.IsZero() {
		s.SettledAt = w.c.clock.Now()
	}
	w.c.log.Info("invoice settled", "hash", fmt.Sprintf("%x", s.PaymentHash), "paid_msat", s.AmountPaidMsat)
	select {
	case w.out <- s:
		return true
	case <-ctx.Done():
		return false
	}
}

func (w *Watcher) openSet() map[[32]byte]bool {
	hashes := w.open()
	set := make(map[[32]byte]bool, len(hashes))
	for _, h := range hashes {
		set[h] = true
	}
	return set
}
