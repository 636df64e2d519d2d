// Package payloop is the car's side of a charging session: from the cable
// on CAN to the wall found, the offer judged, the first payment, then each
// next increment paid before the credit runs out, until the target, the
// budget or the unplug. It is the gateway's domain logic: the wall, the
// node, the ledger and the vehicle bus come in through interfaces declared
// here, and time through injected clocks: real time for pacing and the
// ledger, the car's own (faster in a simulation) for its state.
//
// Every invoice is checked before it is paid (carpay and invoicecheck),
// with the offer's terms held fixed for the session. The car pays on its
// own reckoning, not the wall's: credit is what the car itself paid less
// what the wall says it delivered, and what the wall says it delivered is
// cross-checked against the energy the car measures on its own bus. A wall
// that lies about either gets no more money.
package payloop

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"satwatt/internal/buypolicy"
	"satwatt/internal/clock"
	"satwatt/internal/invoicecheck"
	"satwatt/internal/lndclient"
	"satwatt/internal/offer"
	"satwatt/internal/vehiclestate"
	"satwatt/vehiclegw/internal/status"
)

// Vehicle is what the car's own bus says now. now is read from
// Config.VehicleClock, the clock the bus's frames are stamped with.
type Vehicle interface {
	Snapshot(now time.Time) vehiclestate.State
}

// Notifier is a Vehicle that also says when its state may have changed.
// The loop then sees the cable the moment it is plugged in instead of at
// its next tick: up to a second sooner to energy.
type Notifier interface {
	Changed() <-chan struct{}
}

// Offer is the wall's offer for the open session: its terms and the
// metadata string exactly as served (the invoices' description hash).
type Offer struct {
	Terms    offer.Offer
	Metadata string
}

// WallSession is the wall's account of the session, as it reports it.
type WallSession struct {
	ID             string
	State          string
	PriceMsatPerWh int64
	DeliveredMWh   int64
	PowerW         int64
}

// WallStatus is one report from the wall. Ended names the session the wall
// has just ended (with its reason), if any.
type WallStatus struct {
	Session     *WallSession
	Ended       *WallSession
	EndedReason string
}

// Wall is the wall controller found for this session.
type Wall interface {
	// Offer fetches the wall's offer; the loop fetches it afresh before
	// each invoice (the amounts the wall takes change after the first
	// payment) and Invoice asks under the offer fetched last.
	Offer(ctx context.Context) (Offer, error)
	// socPermille is the car's state of charge shared with the wall's
	// page, -1 to share nothing.
	Invoice(ctx context.Context, amountMsat, socPermille int64) (bolt11 string, err error)
	// Follow delivers the wall's status as it changes (the newest one
	// first when the reader is slow) until ctx ends.
	Follow(ctx context.Context) <-chan WallStatus
	// URL is where the wall was found (configured or discovered by SDP),
	// for the ledger.
	URL() string
}

// Discover finds the wall (SDP on the PLC link, or a static address).
type Discover func(ctx context.Context) (Wall, error)

// Payer pays an invoice only if it passes every check (carpay.Payer).
type Payer interface {
	Pay(ctx context.Context, bolt11 string, exp invoicecheck.Expect) (lndclient.PaymentResult, error)
}

// Node is the owner's lnd node: its spendable balance, and the outcome of
// a payment that was still in flight (lndclient.Client.Track).
type Node interface {
	SpendableMsat(ctx context.Context) (int64, error)
	Track(ctx context.Context, hash [32]byte) (lndclient.PaymentResult, error)
}

// Display shows the gateway's status on the vehicle bus (status.Transmitter).
type Display interface {
	Set(s status.Status)
}

// Ledger is the car's record of sessions and payments. Every invoice is
// recorded before it is paid, and its outcome after.
type Ledger interface {
	OpenSession(ctx context.Context, s LedgerSession) error
	AddInvoice(ctx context.Context, sessionID string, hash [32]byte, amountMsat int64, bolt11 string, at time.Time) error
	RecordPayment(ctx context.Context, sessionID string, r lndclient.PaymentResult, at time.Time) error
	// RecordRefusal notes what the car refused; hash is the refused
	// invoice's payment hash in hex, or "" for a refusal of the wall itself.
	RecordRefusal(ctx context.Context, sessionID, hash, reason, detail string, at time.Time) error
	RecordMeter(ctx context.Context, sessionID string, at time.Time, wallMWh, carMWh int64) error
	EndSession(ctx context.Context, id string, at time.Time, reason string, wallMWh, carMWh, socPermille int64) error
	PaidSince(ctx context.Context, t time.Time) (int64, error)
}

// LedgerSession is a session as the ledger opens it.
type LedgerSession struct {
	ID          string
	WallURL     string
	Offer       offer.Offer
	Metadata    string
	StartedAt   time.Time
	SoCPermille int64 // -1 when unknown
}

// Config holds the owner's settings and the loop's timing.
type Config struct {
	Policy  buypolicy.Settings
	Network string // the owner's node's network, e.g. "regtest"
	// MeterTolerancePermille and MeterSlackMWh bound how far the wall's
	// meter may run ahead of the car's: charger losses make the wall's
	// figure higher, so the defaults (150 permille and 5,000 mWh) leave
	// room for an on-board charger of 87 % efficiency and for the two
	// meters reading at different moments.
	MeterTolerancePermille int64
	MeterSlackMWh          int64
	// ShareSoC sends the battery's state of charge with each invoice
	// request, for the wall's page; it buys nothing and costs privacy, so
	// the owner chooses.
	ShareSoC bool
	Tick     time.Duration // default 1 s, on Clock
	// DataWait is how long after the offer the loop waits for the car's
	// state of charge and pack energy to be known before it judges the
	// offer without them: a bus that wakes at plug-in sends its slow
	// messages a second or more after the cable (default 5 s, on Clock).
	DataWait time.Duration
	RetryMin time.Duration // first backoff between retries; default 100 ms, on Clock
	RetryMax time.Duration // longest backoff between retries; default 30 s, on Clock
	// Clock is real time: it paces the loop (tick, retry backoff, how
	// often lnd and the ledger are asked), bounds waits on payments in
	// flight and stamps the ledger, whose day budget runs on calendar
	// days. A simulation's speed must turn neither into more calls to lnd
	// per second nor into ledger rows dated in the future.
	Clock clock.Clock
	// VehicleClock is the car's time, at which the vehicle is asked for
	// its state (nil: Clock). It must be the clock the bus's frames are
	// stamped with, so a simulated car running faster than real time
	// (vehiclegw run --sim-speed) measures its energy, and its staleness,
	// in simulated time, as the simulated wall's meter does. The policy
	// has no clock: its lead time becomes energy at the power the wall
	// reports, the simulation's power, so it is in simulated time too.
	VehicleClock clock.Clock
	Logger       *slog.Logger
}

// Loop runs one car's sessions, one after another.
type Loop struct {
	cfg     Config
	vehicle Vehicle
	find    Discover
	payer   Payer
	node    Node
	ledger  Ledger
	display Display
	log     *slog.Logger
	clk     clock.Clock // pacing, timeouts, ledger: real time
	vclk    clock.Clock // the vehicle's state: the car's time

	shown status.Status
}

// New checks the configuration and returns a loop.
func New(cfg Config, v Vehicle, find Discover, payer Payer, node Node, ledger Ledger, display Display) (*Loop, error) {
	if err := cfg.Policy.Validate(); err != nil {
		return nil, fmt.Errorf("payloop: %w", err)
	}
	if !offer.ValidNetwork(cfg.Network) {
		return nil, fmt.Errorf("payloop: unknown network %q", cfg.Network)
	}
	if cfg.MeterTolerancePermille == 0 {
		cfg.MeterTolerancePermille = 150
	}
	if cfg.MeterSlackMWh == 0 {
		cfg.MeterSlackMWh = 5_000
	}
	if cfg.MeterTolerancePermille < 0 || cfg.MeterSlackMWh < 0 {
		return nil, errors.New("payloop: meter tolerance and slack must not be negative")
	}
	if cfg.Tick <= 0 {
		cfg.Tick = time.Second
	}
	if cfg.DataWait <= 0 {
		cfg.DataWait = 5 * time.Second
	}
	if cfg.RetryMin <= 0 {
		cfg.RetryMin = 100 * time.Millisecond
	}
	if cfg.RetryMax <= 0 {
		cfg.RetryMax = 30 * time.Second
	}
	cfg.RetryMin = min(cfg.RetryMin, cfg.RetryMax)
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.VehicleClock == nil {
		cfg.VehicleClock = cfg.Clock
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Loop{cfg: cfg, vehicle: v, find: find, payer: payer, node: node, ledger: ledger, display: display,
		log: cfg.Logger, clk: cfg.Clock, vclk: cfg.VehicleClock}, nil
}

// snapshot is the vehicle's state now, in the car's time.
func (l *Loop) snapshot() vehiclestate.State { return l.vehicle.Snapshot(l.vclk.Now()) }

// Run waits for the cable, runs the session, and waits for the next one,
// until ctx ends.
func (l *Loop) Run(ctx context.Context) error {
	l.show(status.Status{State: status.Idle})
	for {
		if err := l.waitFor(ctx, plugged); err != nil {
			return err
		}
		l.session(ctx)
		if err := l.waitFor(ctx, unplugged); err != nil {
			return err
		}
		l.show(status.Status{State: status.Idle, BalanceSat: l.shown.BalanceSat})
	}
}

func plugged(s vehiclestate.State) bool {
	return s.Cable == vehiclestate.Connected || s.Cable == vehiclestate.Latched
}

func unplugged(s vehiclestate.State) bool { return s.Cable == vehiclestate.Disconnected }

// waitFor looks at the vehicle each tick, and at each change a Notifier
// reports, until cond holds.
func (l *Loop) waitFor(ctx context.Context, cond func(vehiclestate.State) bool) error {
	for {
		if cond(l.snapshot()) {
			return nil
		}
		if err := l.pause(ctx, l.cfg.Tick); err != nil {
			return err
		}
	}
}

// pause waits for d or until the vehicle reports a change.
func (l *Loop) pause(ctx context.Context, d time.Duration) error {
	var changed <-chan struct{}
	if n, ok := l.vehicle.(Notifier); ok {
		changed = n.Changed()
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-l.clk.After(d):
	case <-changed:
	}
	return nil
}

func (l *Loop) show(s status.Status) {
	l.shown = s
	if l.display != nil {
		l.display.Set(s)
	}
}

// errUnplugged ends a session's steps when the cable comes out.
var errUnplugged = errors.New("unplugged")

// retry runs try until it succeeds, backing off from RetryMin to
// RetryMax, while the car stays plugged in; each failure is shown with its
// code. The first retries come quickly: the commonest failure at plug-in
// is a wall that has not yet seen the cable the car already sees.
func (l *Loop) retry(ctx context.Context, what string, code status.Code, state status.State, try func() error) error {
	wait := l.cfg.RetryMin
	for {
		err := try()
		if err == nil {
			return nil
		}
		l.log.Warn("payloop: "+what+" failed; retrying", "err", err, "retry_in", wait)
		l.show(status.Status{State: state, Error: code, BalanceSat: l.shown.BalanceSat})
		deadline := l.clk.Now().Add(wait)
		for now := l.clk.Now(); now.Before(deadline); now = l.clk.Now() {
			if err := clock.Sleep(ctx, l.clk, min(l.cfg.Tick, deadline.Sub(now))); err != nil {
				return err
			}
			if unplugged(l.snapshot()) {
				return errUnplugged
			}
		}
		wait = min(2*wait, l.cfg.RetryMax)
	}
}

func hexHash(h [32]byte) string { return hex.EncodeToString(h[:]) }
