package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"syscall"
	"time"

	"satwatt/internal/lndclient"
	"satwatt/internal/wallstore"
	"satwatt/wallctl/internal/chargepoint"
)

// Fault injection for the fault table: with $SATWATT_CRASH_AT naming a step
// of a payment, wallctl kills itself with SIGKILL (a power cut, as far as
// the database and lnd can tell) the first time it reaches that step. The
// table then restarts it and checks that nothing was lost or credited
// twice. Without the variable none of this is installed.
const crashEnv = "SATWATT_CRASH_AT"

// The steps of a payment at which the wall can be killed.
const (
	// lnd holds the invoice; the wall's database does not, and the car
	// has not received it.
	crashInvoiceCreated = "invoice-created"
	// lnd reports the invoice paid; the database does not know yet.
	crashSettlementSeen = "settlement-seen"
	// The database holds the settlement; the session has not been
	// credited with its energy, nor the EVSE told.
	crashSettlementStored = "settlement-stored"
)

var crashPoints = []string{crashInvoiceCreated, crashSettlementSeen, crashSettlementStored}

// crashAt reads $SATWATT_CRASH_AT: "" when unset, else a known step.
func crashAt() (string, error) {
	at := os.Getenv(crashEnv)
	if at == "" || slices.Contains(crashPoints, at) {
		return at, nil
	}
	return "", fmt.Errorf("$%s=%q: not a step; use one of %v", crashEnv, at, crashPoints)
}

// crash kills the process at once: no deferred function, no flush.
func crash(at string) {
	fmt.Fprintf(os.Stderr, "wallctl: fault injection: SIGKILL at %s ($%s)\n", at, crashEnv)
	syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {} // the signal is on its way
}

// crashLightning kills the wall once lnd has made an invoice.
type crashLightning struct {
	chargepoint.Lightning
	at string
}

func (c crashLightning) AddInvoice(ctx context.Context, amountMsat int64, descriptionHash [32]byte, expiry time.Duration) (lndclient.Invoice, error) {
	inv, err := c.Lightning.AddInvoice(ctx, amountMsat, descriptionHash, expiry)
	if err == nil && c.at == crashInvoiceCreated {
		crash(c.at)
	}
	return inv, err
}

// crashStore kills the wall once a settlement is stored.
type crashStore struct {
	chargepoint.Store
	at string
}

func (c crashStore) SettleInvoice(ctx context.Context, hash string, amtPaidMsat int64, preimageHex string, at time.Time) (wallstore.Settlement, error) {
	s, err := c.Store.SettleInvoice(ctx, hash, amtPaidMsat, preimageHex, at)
	if err == nil && c.at == crashSettlementStored {
		crash(c.at)
	}
	return s, err
}

// crashWatch kills the wall when lnd reports a settlement, before the
// controller sees it.
type crashWatch struct {
	chargepoint.Watch
	out chan lndclient.Settlement
}

func (c *crashWatch) Settlements() <-chan lndclient.Settlement { return c.out }

func crashWatchFunc(inner chargepoint.WatchFunc, at string) chargepoint.WatchFunc {
	if at != crashSettlementSeen {
		return inner
	}
	return func(ctx context.Context, open func() [][32]byte) chargepoint.Watch {
		w := &crashWatch{Watch: inner(ctx, open), out: make(chan lndclient.Settlement)}
		go func() {
			defer close(w.out)
			for range w.Watch.Settlements() {
				crash(at)
			}
		}()
		return w
	}
}

// armCrash puts the crash wrappers for step (if any) around what the
// controllers use.
func armCrash(step string, ln chargepoint.Lightning, st chargepoint.Store, watch chargepoint.WatchFunc) (chargepoint.Lightning, chargepoint.Store, chargepoint.WatchFunc) {
	if step == "" {
		return ln, st, watch
	}
	return crashLightning{Lightning: ln, at: step}, crashStore{Store: st, at: step}, crashWatchFunc(watch, step)
}
