// Package chargepoint runs one connector of the wall: it opens a session
// when a vehicle plugs in, makes the offer, hands out invoices, credits
// settlements, meters energy and switches the EVSE on only while energy is
// paid for. The rules live in metering; this package wires them to the
// EVSE, lnd and the session store, and fails safe: power off whenever in
// doubt.
package chargepoint

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"satwatt/internal/clock"
	"satwatt/internal/evse"
	"satwatt/internal/lndclient"
	"satwatt/internal/metering"
	"satwatt/internal/wallstore"
)

// EVSE is what the controller needs of a charger driver (simevse, rapi).
type EVSE interface {
	Run(ctx context.Context) error
	Status(ctx context.Context) (evse.Status, error)
	Enable(ctx context.Context, maxCurrentA int) error
	Disable(ctx context.Context) error
	Changes() <-chan struct{}
	Close() error
}

// Lightning is what the controller needs of the wall's lnd.
type Lightning interface {
	AddInvoice(ctx context.Context, amountMsat int64, descriptionHash [32]byte, expiry time.Duration) (lndclient.Invoice, error)
	LookupInvoice(ctx context.Context, hash [32]byte) (lndclient.InvoiceState, error)
	CancelInvoice(ctx context.Context, hash [32]byte) error
	PubKey() string
	Network() string
}

// Watch follows settlements (lndclient.Watcher).
type Watch interface {
	Settlements() <-chan lndclient.Settlement
	Connected() bool
}

// WatchFunc starts a Watch over the invoices open returns; with lnd it is
// lndclient.Client.WatchSettlements.
type WatchFunc func(ctx context.Context, open func() [][32]byte) Watch

// Store is what the controller needs of the session records.
type Store interface {
	OpenSession(ctx context.Context, s wallstore.SessionOpen) error
	AddInvoice(ctx context.Context, inv wallstore.Invoice) error
	SettleInvoice(ctx context.Context, hash string, amtPaidMsat int64, preimageHex string, at time.Time) (wallstore.Settlement, error)
	CloseInvoice(ctx context.Context, hash, state string, at time.Time) error
	OpenInvoices(ctx context.Context, connector int) ([]wallstore.Invoice, error)
	Receipt(ctx context.Context, id string) (wallstore.Receipt, error)
	RecordProgress(ctx context.Context, sessionID string, at time.Time, state string, deliveredMWh, powerW int64) error
	AddEvent(ctx context.Context, sessionID string, at time.Time, kind, detail string) error
	EndSession(ctx context.Context, id string, at time.Time, reason string, deliveredMWh int64) error
	OpenSessions(ctx context.Context, connector int) ([]wallstore.Session, error)
	GetSetting(ctx context.Context, key string) (string, error)
	SetSetting(ctx context.Context, key, value string) error
}

// Config holds the wall's terms and limits.
type Config struct {
	// Connector numbers this controller's connector on a wall with several
	// (from 1; 0 means 1). Its sessions are recorded under the number, and
	// after a restart it resumes or ends only its own.
	Connector int
	Terms     metering.Terms // for new sessions; the price can change at run time
	// MaxPowerW is announced in the offer; MaxCurrentA is what the EVSE is
	// enabled at.
	MaxPowerW   int64
	MaxCurrentA int
	// InvoiceExpiry is how long an invoice can be paid. Short, so an
	// unpaid invoice does not hold the buyer's money hostage for long.
	InvoiceExpiry time.Duration
	// MaxOpenInvoices bounds unpaid invoices per session, so a peer cannot
	// flood lnd with invoices.
	MaxOpenInvoices int
	// MaxPaymentIncrements bounds one payment to this many increments (at
	// least the first payment), so neither side is exposed to more.
	MaxPaymentIncrements int64
	// OfferValidity is how long an offer's terms hold.
	OfferValidity time.Duration
	// MeterInterval is how often the EVSE is read and the meter applied;
	// SampleInterval how often a meter sample is stored.
	MeterInterval  time.Duration
	SampleInterval time.Duration
	// SimSpeedPermil is the simulated EVSE's speed factor in thousandths
	// (0 or 1000 for a real charger): its energy flows that much faster
	// than the meter interval's real time, and the look-ahead to the next
	// reading must cover it.
	SimSpeedPermil int64
	// StuckAfter is how long the contactor may stay closed after power was
	// withdrawn before the wall declares a fault.
	StuckAfter time.Duration
	// StallAfter is how long the control loop may be busy with one thing
	// (a write waiting on a locked database, a slow lnd lookup) before a
	// guard withdraws power, since nobody is metering meanwhile. Zero:
	// one and a half meter intervals.
	StallAfter time.Duration
	// TLSCertSHA256 is the fingerprint of the certificate the car's
	// listener serves (linktls), named in every offer; empty when the car
	// is served plain HTTP.
	TLSCertSHA256 string
	// ReceiptURL, given a session id, is the absolute URL of its receipt
	// (the LNURL success action); empty leaves success actions out.
	ReceiptURL func(sessionID string) string
	Clock      clock.Clock
	Logger     *slog.Logger
}

func (c *Config) defaults() error {
	if c.Connector == 0 {
		c.Connector = 1
	}
	if c.Connector < 0 {
		return fmt.Errorf("chargepoint: connector %d; they count from 1", c.Connector)
	}
	if c.InvoiceExpiry == 0 {
		c.InvoiceExpiry = 120 * time.Second
	}
	if c.MaxOpenInvoices == 0 {
		c.MaxOpenInvoices = 3
	}
	if c.MaxPaymentIncrements == 0 {
		c.MaxPaymentIncrements = 10
	}
	if c.OfferValidity == 0 {
		c.OfferValidity = 24 * time.Hour
	}
	if c.MeterInterval == 0 {
		c.MeterInterval = time.Second
	}
	if c.SampleInterval == 0 {
		c.SampleInterval = 5 * time.Second
	}
	if c.StallAfter == 0 {
		c.StallAfter = c.MeterInterval + c.MeterInterval/2
	}
	if c.StuckAfter == 0 {
		c.StuckAfter = 3 * time.Second
	}
	if c.MaxCurrentA == 0 {
		c.MaxCurrentA = 32
	}
	if c.MaxPowerW == 0 {
		c.MaxPowerW = int64(c.MaxCurrentA) * 230
	}
	if c.Clock == nil {
		c.Clock = clock.Real{}
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.InvoiceExpiry < time.Second {
		return fmt.Errorf("chargepoint: invoice expiry %s is under a second", c.InvoiceExpiry)
	}
	if c.MaxOpenInvoices < 1 || c.MaxPaymentIncrements < 1 || c.MaxCurrentA < 1 {
		return errors.New("chargepoint: open invoices, payment increments and current must be positive")
	}
	return c.Terms.Validate()
}

// ErrNotOpen is returned for requests against a session that is not the
// open one (unknown, ended, or none plugged in).
var ErrNotOpen = errors.New("session is not open")

// ErrTooManyInvoices is returned when a session has its quota of unpaid
// invoices outstanding.
var ErrTooManyInvoices = errors.New("too many unpaid invoices for this session")

// ErrAmount is returned for an amount outside the session's bounds.
var ErrAmount = errors.New("amount out of range")

// ErrNotSelling is returned while the wall has stopped selling after a fault.
var ErrNotSelling = errors.New("the wall is not selling energy")

// Controller runs one connector. Make it with New and call Run.
type Controller struct {
	cfg   Config
	evse  EVSE
	ln    Lightning
	watch WatchFunc
	store Store
	clk   clock.Clock
	log   *slog.Logger

	mu    sync.Mutex
	terms metering.Terms // for the next session
	cur   *session       // the plugged-in vehicle's session, ended or not
	last  *session       // the most recent session after unplug
	open  map[[32]byte]*openInvoice
	// unrecorded holds settlements lnd reported that the store refused
	// to record; they are retried until it takes them.
	unrecorded map[[32]byte]lndclient.Settlement
	evseSt     evse.Status
	evseErr    error
	fault      string // set: selling stopped until restart or clear
	stuckFrom  time.Time
	watcher    Watch
	// busySince is when the control loop took up its current work (Unix
	// ns on clk), 0 while it waits; stalledAt when the stall guard last
	// saw it stuck; stallOff says the guard withdrew power behind the
	// loop's back; powerOn whether the EVSE was last told to deliver.
	busySince atomic.Int64
	stalledAt atomic.Int64
	stallOff  atomic.Bool
	powerOn   atomic.Bool
	subs      map[chan Status]struct{}
	ready     bool
	metrics   Metrics
}

type openInvoice struct {
	sessionID string
	bolt11    string
	amount    int64
	expiresAt time.Time
}

// New checks the configuration and makes a controller.
func New(cfg Config, e EVSE, ln Lightning, watch WatchFunc, st Store) (*Controller, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	return &Controller{
		cfg: cfg, evse: e, ln: ln, watch: watch, store: st,
		clk: cfg.Clock, log: cfg.Logger.With("connector", cfg.Connector),
		terms:      cfg.Terms,
		open:       map[[32]byte]*openInvoice{},
		unrecorded: map[[32]byte]lndclient.Settlement{},
		subs:       map[chan Status]struct{}{},
	}, nil
}
