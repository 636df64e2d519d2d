package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"satwatt/internal/buypolicy"
	"satwatt/internal/canbus"
	"satwatt/internal/carpay"
	"satwatt/internal/carstore"
	"satwatt/internal/clock"
	"satwatt/internal/lndclient"
	"satwatt/internal/sdp"
	vp "satwatt/internal/vehicleprofile"
	"satwatt/internal/vehiclestate"
	"satwatt/internal/wallclient"
	"satwatt/vehiclegw/internal/payloop"
	"satwatt/vehiclegw/internal/status"
)

// lndConnectEnv carries the car's lndconnect URI, so the macaroon stays out
// of the process list.
const lndConnectEnv = "VEHICLEGW_LNDCONNECT"

type runFlags struct {
	profile, dbcPath, can, iface, wall, db, logLevel string
	lndRPC, lndCert, lndMacaroon, lndConnect         string
	targetPct, efficiencyPct, meterTolPct            int64
	maxPrice, budgetSession, budgetDay, reserve      int64 // sat (sat/kWh for the price)
	maxPayment, maxFee, packWh, meterSlackWh         int64
	leadTime, payTimeout                             time.Duration
	simSpeed                                         float64
	asJSON, shareSoC, requireTLS                     bool
}

func runFlagSet(stderr io.Writer) (*flag.FlagSet, *runFlags) {
	f := &runFlags{}
	fs := newFlagSet("run", stderr)
	fs.StringVar(&f.profile, "profile", "generic", "vehicle profile: a built-in name (see 'vehiclegw profiles') or a .toml file")
	fs.StringVar(&f.dbcPath, "dbc", "", "DBC file to use instead of the profile's own")
	fs.StringVar(&f.can, "can", "", "the vehicle bus, live: IFACE (SocketCAN, e.g. can0) or socketcand://HOST:PORT/BUS; the gateway reads it and sends its status on it")
	fs.StringVar(&f.iface, "iface", "", "the PLC modem's interface: find the wall there with ISO 15118 SDP")
	fs.BoolVar(&f.requireTLS, "require-tls", false, "pay only a wall that serves TLS and names its certificate in the offer (a wall on plain HTTP is otherwise used, with a warning)")
	fs.StringVar(&f.wall, "wall", "", "the wall's URL instead of SDP (static set-ups), e.g. http://[fe80::1%25eth1]:8080/ (a URL writes the zone's % as %25)")
	fs.StringVar(&f.db, "db", "car.db", "the car's ledger (SQLite, created if missing)")
	fs.StringVar(&f.lndRPC, "lnd-rpc", "", "the owner's lnd gRPC address (default 127.0.0.1:10009 unless --lndconnect is given)")
	fs.StringVar(&f.lndCert, "lnd-tlscert", "", "lnd's tls.cert")
	fs.StringVar(&f.lndMacaroon, "lnd-macaroon", "", "a macaroon with info:read, offchain:read and offchain:write (see the README)")
	fs.StringVar(&f.lndConnect, "lndconnect", "", "lndconnect:// URI instead of the three flags above (or $"+lndConnectEnv+")")
	fs.Int64Var(&f.targetPct, "target", 80, "stop buying at this state of charge, %")
	fs.Int64Var(&f.maxPrice, "max-price", 300, "refuse walls asking more than this, sat/kWh")
	fs.Int64Var(&f.efficiencyPct, "efficiency", 90, "share of the wall's energy that reaches the battery, %")
	fs.Int64Var(&f.budgetSession, "budget-session", 0, "most sat paid in one session (0: no limit)")
	fs.Int64Var(&f.budgetDay, "budget-day", 0, "most sat paid in one day, all sessions (0: no limit)")
	fs.Int64Var(&f.reserve, "reserve", 0, "sat always kept spendable in the node")
	fs.Int64Var(&f.maxPayment, "max-payment", 1_000, "most sat in one payment")
	fs.Int64Var(&f.maxFee, "max-fee", 0, "most sat of routing fees per payment (0: only fee-free routes, such as a direct channel to the wall)")
	fs.Int64Var(&f.packWh, "pack-wh", 0, "the pack's energy, Wh, for profiles without a pack energy signal")
	fs.DurationVar(&f.leadTime, "lead-time", 0, "pay this long before the credit runs out (0: the policy's default)")
	fs.BoolVar(&f.shareSoC, "share-soc", true, "send the battery's state of charge with each invoice request, for the wall's page (--share-soc=false keeps it private)")
	fs.Int64Var(&f.meterTolPct, "meter-tolerance", 15, "how far, %, the wall's meter may run ahead of the car's (charger losses)")
	fs.Int64Var(&f.meterSlackWh, "meter-slack-wh", 5, "and by how many Wh on top, for readings taken at different moments")
	fs.DurationVar(&f.payTimeout, "pay-timeout", time.Minute, "give up on a payment after this long")
	fs.Float64Var(&f.simSpeed, "sim-speed", 1, "simulations only: run the gateway's vehicle-side clock this many times faster, "+
		"to match 'simcar --speed' and 'wallctl serve --sim-speed'")
	fs.BoolVar(&f.asJSON, "json", false, "print the gateway's status as one JSON object per line")
	fs.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	return fs, f
}

func runRun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, f := runFlagSet(stderr)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	settings, err := f.validate(os.Getenv)
	if err != nil {
		return err
	}
	log, err := newLogger(stderr, f.logLevel)
	if err != nil {
		return err
	}

	binding, err := vp.LoadBinding(f.profile, f.dbcPath)
	if err != nil {
		return err
	}
	enc, err := status.NewEncoder(binding)
	if err != nil {
		return fmt.Errorf("profile %s: %w", binding.Profile.Name, err)
	}
	store, err := carstore.Open(ctx, f.db)
	if err != nil {
		return err
	}
	defer store.Close()
	ln, err := lndclient.Dial(ctx, lndclient.Config{RPCAddr: f.lndRPC, TLSCertPath: f.lndCert, MacaroonPath: f.lndMacaroon,
		LndConnectURI: f.lndConnect, Logger: log, Needs: &lndclient.PayerPermissions})
	if err != nil {
		return fmt.Errorf("connect to the owner's lnd: %w", err)
	}
	defer ln.Close()
	if ln.Network() == "" {
		return fmt.Errorf("%w: the car's macaroon lacks info:read, so the gateway cannot check invoices' network; "+
			"bake one: lncli bakemacaroon --save_to pay.macaroon info:read offchain:read offchain:write", errUsage)
	}

	clk := newClocks(f.simSpeed)
	if f.simSpeed != 1 {
		log.Warn("vehiclegw: the vehicle's time runs SIMULATED, faster than real time (a demo and test feature): "+
			"use it only with a simulated car and wall", "sim_speed", f.simSpeed)
	}
	// The bus's own clock paces its reconnects: real time. Frames are
	// stamped again on the car's clock as the tracker takes them.
	bus, err := canbus.OpenBus(ctx, f.can, canbus.Options{Clock: clk.real, Logger: log,
		OnBadInput: func(err error) { log.Debug("skipped bad CAN input", "err", err) }})
	if err != nil {
		return err
	}
	defer bus.Close()
	car := &liveCar{tracker: vehiclestate.New(binding, nil), clk: clk.vehicle, log: log}
	// The status message is a display for people: once a real second.
	tx := status.NewTransmitter(enc, bus, clk.real, status.DefaultPeriod, func(err error) {
		log.Warn("could not send the status message", "err", err)
	})
	display := &statusOut{tx: tx, w: stdout, json: f.asJSON}

	find := func(ctx context.Context) (payloop.Wall, error) {
		base, err := findWall(ctx, f, log)
		if err != nil {
			return nil, err
		}
		return &wallAdapter{c: &wallclient.Client{Base: base, Logger: log}}, nil
	}
	payer := newPayer(ln, ln.Network(), settings, f, clk)
	loop, err := payloop.New(loopConfig(settings, ln.Network(), f, clk, log), car, find, payer, ln, ledgerAdapter{store}, display)
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	log.Info("vehiclegw: running", "profile", binding.Profile.Name, "can", f.can, "node", ln.PubKey(), "network", ln.Network(), "ledger", f.db)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		tx.Run(ctx)
	}()
	go func() {
		defer wg.Done()
		var fr canbus.Frame
		for {
			if err := bus.Receive(ctx, &fr); err != nil {
				if ctx.Err() == nil {
					log.Error("vehicle bus", "err", err)
				}
				cancel()
				return
			}
			car.update(&fr)
		}
	}()
	err = loop.Run(ctx)
	cancel()
	wg.Wait()
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// Bounds that validate sets on flags the buying policy does not bound
// itself, and on those it multiplies into msat or per mille before the
// policy sees them, so that no value wraps around into a valid one.
const (
	maxSatFlag        = buypolicy.MaxMsat / 1000
	maxMeterSlackWh   = 1_000_000
	maxPayTimeout     = time.Hour
	minRunSimSpeed    = 0.001
	maxRunSimSpeed    = 1_000
	maxMeterTolerance = 100 // %
)

// validate checks the parsed flags, and the environment read through
// getenv, settles their defaults and returns the buying policy's
// settings. It opens, dials and creates nothing (it does not read the
// profile either), so that a mistake is reported before anything starts.
// Every error is a usage error that names the flag (or variable) at fault.
func (f *runFlags) validate(getenv func(string) string) (buypolicy.Settings, error) {
	usage := func(format string, a ...any) (buypolicy.Settings, error) {
		return buypolicy.Settings{}, fmt.Errorf("%w: "+format, append([]any{errUsage}, a...)...)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
		return usage("--log-level %q: use debug, info, warn or error", f.logLevel)
	}
	if f.profile == "" {
		return usage("--profile is empty: give a built-in profile's name or a .toml file")
	}
	if f.db == "" {
		return usage("--db is empty: give the SQLite file of the car's ledger")
	}
	if f.can == "" {
		return usage("--can is required: the gateway reads the car and shows its status on that bus")
	}
	spec, err := canbus.ParseSpec(f.can)
	if err != nil {
		return usage("--can: %w", err)
	}
	if spec.Kind == canbus.KindReplay {
		return usage("--can %q is a recording: the gateway sends its status on the bus, so give a live one", f.can)
	}
	switch {
	case (f.iface == "") == (f.wall == ""):
		return usage("give --iface IFACE (find the wall by SDP) or --wall URL, one of them")
	case f.iface != "" && (len(f.iface) > 15 || strings.ContainsAny(f.iface, "/: \t\n")):
		return usage("--iface %q is not a network interface name", f.iface)
	case f.wall != "":
		if u, err := url.Parse(f.wall); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return usage("--wall %q: want the wall's URL, such as http://[fe80::1%%25eth1]:8080/ (a URL writes a zone's %% as %%25)", f.wall)
		} else if f.requireTLS && u.Scheme != "https" {
			return usage("--wall %q with --require-tls: give the wall's https URL", f.wall)
		}
	}
	if !(f.simSpeed >= minRunSimSpeed && f.simSpeed <= maxRunSimSpeed) { // NaN fails too
		return usage("--sim-speed %v: give a positive number, %v to %v", f.simSpeed, minRunSimSpeed, maxRunSimSpeed)
	}

	// The car's lnd: an lndconnect URI, or the three flags.
	lnd := lndclient.Flags{RPCAddr: f.lndRPC, TLSCertPath: f.lndCert, MacaroonPath: f.lndMacaroon, LndConnect: f.lndConnect}
	if err := lnd.Resolve(getenv, lndConnectEnv); err != nil {
		return usage("%w", err)
	}
	f.lndRPC, f.lndConnect = lnd.RPCAddr, lnd.LndConnect

	// The flags the policy takes multiplied: bounded first, so that none
	// wraps around into a value the policy accepts.
	switch {
	case f.targetPct < 1 || f.targetPct > 100:
		return usage("--target %d: give 1 to 100 %%", f.targetPct)
	case f.efficiencyPct != 0 && (f.efficiencyPct < 50 || f.efficiencyPct > 100):
		return usage("--efficiency %d: give 50 to 100 %% (0: the default)", f.efficiencyPct)
	case f.maxPrice < 1 || f.maxPrice > buypolicy.MaxPriceLimitMsatPerWh:
		return usage("--max-price %d: give 1 to %d sat/kWh", f.maxPrice, buypolicy.MaxPriceLimitMsatPerWh)
	case f.budgetSession < 0 || f.budgetSession > maxSatFlag:
		return usage("--budget-session %d: give 0 (no limit) to %d sat", f.budgetSession, maxSatFlag)
	case f.budgetDay < 0 || f.budgetDay > maxSatFlag:
		return usage("--budget-day %d: give 0 (no limit) to %d sat", f.budgetDay, maxSatFlag)
	case f.reserve < 0 || f.reserve > maxSatFlag:
		return usage("--reserve %d: give 0 to %d sat", f.reserve, maxSatFlag)
	case f.maxPayment < 1 || f.maxPayment > maxSatFlag:
		return usage("--max-payment %d: give 1 to %d sat", f.maxPayment, maxSatFlag)
	case f.maxFee < 0 || f.maxFee > maxSatFlag:
		return usage("--max-fee %d: give 0 to %d sat", f.maxFee, maxSatFlag)
	case f.packWh < 0 || f.packWh > buypolicy.MaxPackWh:
		return usage("--pack-wh %d: give 0 (from the car) to %d Wh", f.packWh, buypolicy.MaxPackWh)
	case f.leadTime < 0 || f.leadTime > buypolicy.MaxLeadTime:
		return usage("--lead-time %s: give 0 (the default) to %s", f.leadTime, buypolicy.MaxLeadTime)
	// 0 would mean the loop's default, not what the flag says.
	case f.meterTolPct < 1 || f.meterTolPct > maxMeterTolerance:
		return usage("--meter-tolerance %d: give 1 to %d %%", f.meterTolPct, maxMeterTolerance)
	case f.meterSlackWh < 1 || f.meterSlackWh > maxMeterSlackWh:
		return usage("--meter-slack-wh %d: give 1 to %d Wh", f.meterSlackWh, maxMeterSlackWh)
	// lnd takes the payment timeout in whole seconds, and refuses 0.
	case f.payTimeout < time.Second || f.payTimeout > maxPayTimeout:
		return usage("--pay-timeout %s: give 1s to %s", f.payTimeout, maxPayTimeout)
	}
	settings := buypolicy.Settings{TargetSoCPermille: f.targetPct * 10, MaxPriceMsatPerWh: f.maxPrice,
		EfficiencyPermille: f.efficiencyPct * 10, BudgetSessionMsat: f.budgetSession * 1000, BudgetDayMsat: f.budgetDay * 1000,
		ReserveMsat: f.reserve * 1000, MaxPaymentMsat: f.maxPayment * 1000, MaxFeeMsat: f.maxFee * 1000,
		PackWhFallback: f.packWh, LeadTime: f.leadTime}
	if err := settings.Validate(); err != nil {
		return usage("--target, --max-price, --efficiency, --budget-*, --reserve, --max-payment, --max-fee, --pack-wh or --lead-time: %w", err)
	}
	return settings, nil
}

// clocks is the gateway's time, split for --sim-speed.
type clocks struct {
	// real is wall-clock time, for everything that talks to the world
	// outside the simulation: Lightning payment timeouts and invoice
	// expiry, HTTP and gRPC timeouts, retry backoff, how often lnd and the
	// ledger are polled, the status message's period, ledger timestamps
	// and the day budget.
	real clock.Clock
	// vehicle is the car's time: the frames' stamps, and so the energy
	// integral and staleness in the tracker, and through them the meter
	// cross-check. Faster than real time when the car is simulated so.
	vehicle clock.Clock
}

// newClocks gives the vehicle a clock speed times faster than real time;
// at speed 1 both are the real clock.
func newClocks(speed float64) clocks {
	c := clocks{real: clock.Real{}, vehicle: clock.Real{}}
	if speed != 1 {
		c.vehicle = clock.NewScaled(speed)
	}
	return c
}

// newPayer pays on real time: a payment's latency and an invoice's expiry
// (stamped by the wall's node) do not speed up with a simulation.
func newPayer(node carpay.Node, network string, s buypolicy.Settings, f *runFlags, clk clocks) *carpay.Payer {
	return &carpay.Payer{Node: node, Network: network, MaxFeeMsat: s.MaxFeeMsat, Timeout: f.payTimeout, Clock: clk.real}
}

// loopConfig paces the loop on real time and reads the car on its own.
func loopConfig(s buypolicy.Settings, network string, f *runFlags, clk clocks, log *slog.Logger) payloop.Config {
	return payloop.Config{Policy: s, Network: network, MeterTolerancePermille: f.meterTolPct * 10,
		MeterSlackMWh: f.meterSlackWh * 1000, ShareSoC: f.shareSoC, Clock: clk.real, VehicleClock: clk.vehicle, Logger: log}
}

// findWall is the static address, or SDP on the PLC interface.
func findWall(ctx context.Context, f *runFlags, log *slog.Logger) (*url.URL, error) {
	if f.wall != "" {
		u, err := url.Parse(f.wall)
		if err != nil {
			return nil, err
		}
		return checkTLS(u, f, log)
	}
	// Discover logs a warning naming any other wall that answers too.
	// Ask for TLS; the wall answers with what it serves.
	res, err := sdp.Discover(ctx, sdp.Config{Iface: f.iface, Security: sdp.SecurityTLS, Transport: sdp.TransportTCP,
		Settle: discoverSettle, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("SDP on %s: %w", f.iface, err)
	}
	r := res.Response
	if r.Transport != sdp.TransportTCP {
		return nil, fmt.Errorf("the wall at %s offers %s; this gateway speaks HTTP over TCP", r.Addr, sdp.TransportName(r.Transport))
	}
	return checkTLS(wallURL(r), f, log)
}

// checkTLS holds the wall's URL to --require-tls, and warns of a plain
// link otherwise: anyone on the powerline can read and alter it.
func checkTLS(u *url.URL, f *runFlags, log *slog.Logger) (*url.URL, error) {
	if u.Scheme == "https" {
		return u, nil
	}
	if f.requireTLS {
		return nil, fmt.Errorf("the wall at %s serves plain HTTP, and --require-tls is set", u.Host)
	}
	log.Warn("vehiclegw: the wall serves plain HTTP: its offer and the session's status cross the link unencrypted "+
		"(the invoice checks and the caps still hold)", "wall", u.Host)
	return u, nil
}

// liveCar feeds the tracker from the bus and answers the loop's questions.
type liveCar struct {
	mu      sync.Mutex
	tracker *vehiclestate.Tracker
	log     *slog.Logger
	// foreign and warned: frames of the gateway's own status messages
	// from another node, and when that was last logged.
	foreign uint64
	warned  time.Time
	clk     clock.Clock // the car's time (clocks.vehicle)
	// changed wakes a loop waiting for the cable; at most every
	// notifyEvery of real time, so a busy bus cannot spin it.
	changed  chan struct{}
	notified time.Time
}

const notifyEvery = 20 * time.Millisecond

// Changed implements payloop.Notifier.
func (c *liveCar) Changed() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.changed == nil {
		c.changed = make(chan struct{}, 1)
	}
	return c.changed
}

// update stamps the frame on the car's clock, not with the bus's real-time
// stamp, so that a simulated car's charging power is integrated over the
// simulated time it flowed for; the two differ by the microseconds since
// the frame was read.
func (c *liveCar) update(f *canbus.Frame) {
	c.mu.Lock()
	c.tracker.Update(&f.Frame, c.clk.Now())
	if n := c.tracker.ForeignStatus(); n != c.foreign && time.Since(c.warned) >= time.Minute && c.log != nil {
		// Another node sends the gateway's status IDs: a display may show
		// it instead of ours. Nothing the gateway decides reads them.
		c.log.Warn("vehiclegw: another node on the bus sends the gateway's own status message ID (a spoof, or an ID clash with the car)",
			"frame_id", fmt.Sprintf("0x%X", f.ID), "frames", n-c.foreign)
		c.foreign, c.warned = n, time.Now()
	}
	if c.changed != nil {
		if now := time.Now(); now.Sub(c.notified) >= notifyEvery {
			c.notified = now
			select {
			case c.changed <- struct{}{}:
			default:
			}
		}
	}
	c.mu.Unlock()
}

func (c *liveCar) Snapshot(now time.Time) vehiclestate.State {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.tracker.Snapshot(now)
}

// statusOut shows the status on the bus and prints each change.
type statusOut struct {
	tx   *status.Transmitter
	w    io.Writer
	json bool
	mu   sync.Mutex
	last status.Status
	seen bool
}

func (s *statusOut) Set(st status.Status) {
	s.tx.Set(st)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.seen && st == s.last {
		return
	}
	s.last, s.seen = st, true
	at := time.Now().Format(time.DateTime)
	if s.json {
		json.NewEncoder(s.w).Encode(map[string]any{"time": at, "state": st.State.String(), "error": st.Error.String(),
			"credit_wh": st.CreditWh, "energy_bought_wh": st.EnergyBoughtWh, "sats_spent": st.SatsSpent, "balance_sat": st.BalanceSat})
		return
	}
	fmt.Fprintf(s.w, "%s  %-12s error %-18s credit %6d Wh  bought %6d Wh  spent %8d sat  balance %9d sat\n",
		at, st.State, st.Error, st.CreditWh, st.EnergyBoughtWh, st.SatsSpent, st.BalanceSat)
}

// wallAdapter is the wall as the loop sees it.
type wallAdapter struct {
	c     *wallclient.Client
	mu    sync.Mutex
	offer wallclient.Offer
}

func (w *wallAdapter) URL() string { return w.c.Base.String() }

func (w *wallAdapter) Offer(ctx context.Context) (payloop.Offer, error) {
	o, err := w.c.Offer(ctx)
	if err != nil {
		return payloop.Offer{}, err
	}
	w.mu.Lock()
	w.offer = o
	w.mu.Unlock()
	return payloop.Offer{Terms: o.Terms, Metadata: o.Metadata}, nil
}

// Invoice asks under the offer fetched last (the loop refetches it and
// checks its terms before each invoice).
func (w *wallAdapter) Invoice(ctx context.Context, amt, socPermille int64) (string, error) {
	w.mu.Lock()
	o := w.offer
	w.mu.Unlock()
	return w.c.Invoice(ctx, o, amt, socPermille)
}

func (w *wallAdapter) Follow(ctx context.Context) <-chan payloop.WallStatus {
	in := w.c.Follow(ctx)
	out := make(chan payloop.WallStatus, 1)
	go func() {
		defer close(out)
		for st := range in {
			ps := payloop.WallStatus{Session: wallSession(st.Session)}
			if st.Last != nil {
				ps.Ended, ps.EndedReason = wallSession(st.Last), st.Last.EndReason
			}
			select { // the newest replaces an unread one
			case <-out:
			default:
			}
			out <- ps
		}
	}()
	return out
}

func wallSession(s *wallclient.WallSession) *payloop.WallSession {
	if s == nil {
		return nil
	}
	return &payloop.WallSession{ID: s.ID, State: s.State, PriceMsatPerWh: s.PriceMsatPerWh, DeliveredMWh: s.DeliveredMWh, PowerW: s.PowerW}
}

// ledgerAdapter records the loop's session in the car's SQLite ledger.
type ledgerAdapter struct{ s *carstore.Store }

func (a ledgerAdapter) OpenSession(ctx context.Context, s payloop.LedgerSession) error {
	return a.s.OpenSession(ctx, carstore.SessionOpen{Offer: s.Offer, WallURL: s.WallURL, Metadata: s.Metadata,
		StartedAt: s.StartedAt, SoCPermille: s.SoCPermille})
}

func (a ledgerAdapter) AddInvoice(ctx context.Context, sessionID string, hash [32]byte, amt int64, bolt11 string, at time.Time) error {
	return a.s.AddInvoice(ctx, carstore.Invoice{PaymentHash: hex.EncodeToString(hash[:]), SessionID: sessionID,
		AmountMsat: amt, Bolt11: bolt11, RequestedAt: at})
}

func (a ledgerAdapter) RecordPayment(ctx context.Context, _ string, r lndclient.PaymentResult, at time.Time) error {
	o := carstore.PaymentOutcome{PaymentHash: hex.EncodeToString(r.PaymentHash[:]), At: at}
	switch r.Status {
	case lndclient.Succeeded:
		o.Status, o.PaidMsat, o.FeeMsat, o.PreimageHex = carstore.StatusSucceeded, r.AmountMsat, r.FeeMsat, hex.EncodeToString(r.Preimage[:])
	case lndclient.Failed:
		o.Status, o.FailureReason = carstore.StatusFailed, r.FailureReason.String()
	default:
		o.Status = carstore.StatusInFlight
	}
	return a.s.RecordPayment(ctx, o)
}

func (a ledgerAdapter) RecordRefusal(ctx context.Context, sessionID, hash, reason, detail string, at time.Time) error {
	return a.s.RecordRefusal(ctx, carstore.Refusal{SessionID: sessionID, At: at, PaymentHash: hash, Reason: reason, Detail: detail})
}

func (a ledgerAdapter) RecordMeter(ctx context.Context, sessionID string, at time.Time, wallMWh, carMWh int64) error {
	return a.s.RecordMeter(ctx, carstore.MeterSample{SessionID: sessionID, At: at, DeliveredMWh: wallMWh, MeasuredMWh: carMWh})
}

func (a ledgerAdapter) EndSession(ctx context.Context, id string, at time.Time, reason string, wallMWh, carMWh, soc int64) error {
	return a.s.EndSession(ctx, carstore.SessionEnd{ID: id, At: at, Reason: reason, SoCPermille: soc, DeliveredMWh: wallMWh, MeasuredMWh: carMWh})
}

func (a ledgerAdapter) PaidSince(ctx context.Context, t time.Time) (int64, error) {
	return a.s.PaidSince(ctx, t)
}
