package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"satwatt/internal/clock"
	"satwatt/internal/linktls"
	"satwatt/internal/lndclient"
	"satwatt/internal/metering"
	"satwatt/internal/rapi"
	"satwatt/internal/sdp"
	"satwatt/internal/simevse"
	"satwatt/internal/subcmd"
	"satwatt/internal/wallstore"
	"satwatt/wallctl/internal/chargepoint"
	"satwatt/wallctl/internal/httpapi"
)

// plcCertPath is where the wall keeps the certificate it serves the car
// with: beside the database unless --plc-cert says otherwise, so that a
// wall keeps it across restarts as it keeps its sessions.
func (f *serveFlags) plcCertPath() string {
	if f.plcCert != "" {
		return f.plcCert
	}
	return f.db + ".plc.pem"
}

// tokenEnv carries the owner's token, so it stays out of the process list.
const tokenEnv = "WALLCTL_TOKEN"

type serveFlags struct {
	db, listen, publicURL, sdpIface, logLevel string
	plcCert                                   string
	plcTLS                                    bool
	lndRPC, lndCert, lndMacaroon, lndConnect  string
	evseKind, serial, simCarURL               string
	simSpeed                                  float64
	simMeterHigh                              int64
	price, increment, firstMultiple, grace    int64
	maxCurrentA, maxOpenInvoices, connectors  int
	maxConns, maxConnsPerHost, plcPort        int
	unpaidTimeout, invoiceExpiry              time.Duration
	heartbeat                                 time.Duration
}

func serveFlagSet(stderr io.Writer) (*flag.FlagSet, *serveFlags) {
	f := &serveFlags{}
	fs := subcmd.NewFlagSet("wallctl", "serve", stderr)
	fs.StringVar(&f.db, "db", "wall.db", "SQLite database of sessions (created if missing)")
	fs.StringVar(&f.listen, "listen", "[::]:8080", "HTTP address of the page, the owner's API and metrics (and of the car's routes unless --sdp-iface is given)")
	fs.StringVar(&f.publicURL, "public-url", "", "base URL handed to the car (default: built from each request's Host)")
	fs.StringVar(&f.sdpIface, "sdp-iface", "", "answer ISO 15118 SDP on this interface (the powerline modem) and serve the car there only, on --plc-port; empty: no SDP, the car's routes on --listen")
	fs.IntVar(&f.plcPort, "plc-port", 8081, "with --sdp-iface: the port of the car's routes on that interface's link-local address")
	fs.BoolVar(&f.plcTLS, "plc-tls", true, "with --sdp-iface: serve the car over TLS with the wall's own certificate, named in every offer (false: plain HTTP)")
	fs.StringVar(&f.plcCert, "plc-cert", "", "with --plc-tls: the wall's certificate and key in PEM, made on first start (default: the database's path + .plc.pem)")
	fs.StringVar(&f.lndRPC, "lnd-rpc", "", "the wall's lnd gRPC address (default 127.0.0.1:10009 unless --lndconnect is given)")
	fs.StringVar(&f.lndCert, "lnd-tlscert", "", "lnd's tls.cert")
	fs.StringVar(&f.lndMacaroon, "lnd-macaroon", "", "a macaroon with info:read, invoices:read and invoices:write (see the README)")
	fs.StringVar(&f.lndConnect, "lndconnect", "", "lndconnect:// URI instead of the three flags above (or $WALLCTL_LNDCONNECT)")
	fs.StringVar(&f.evseKind, "evse", "sim", "EVSE driver: sim (the simulated EVSE) or openevse (RAPI over --serial)")
	fs.StringVar(&f.serial, "serial", "", "serial device of the OpenEVSE, e.g. /dev/ttyUSB0; one per connector, comma-separated, on a wall with several")
	fs.IntVar(&f.connectors, "connectors", 0, "connectors on this wall, each with its own EVSE and sessions, served below /c/1 ... /c/N (default: one, or one per --serial device)")
	fs.StringVar(&f.simCarURL, "sim-car", "", "simulated EVSE only: couple to vehiclegw simcar's control URL (token in $SATWATT_SIMCAR_TOKEN); empty: a built-in simulated vehicle plugged with POST /api/sim/plug")
	fs.Float64Var(&f.simSpeed, "sim-speed", 1, "simulated EVSE only: run its clock this many times faster (the demo's speed factor)")
	fs.Int64Var(&f.simMeterHigh, "sim-meter-high", 0, "simulated EVSE only, a fault for demos and tests: its meter reads this many per mille high (-1000..1000)")
	fs.Int64Var(&f.price, "price", 100, "price in msat per Wh (= sat per kWh) for new sessions; POST /api/price changes it")
	fs.Int64Var(&f.increment, "increment-wh", 50, "energy one normal payment buys, Wh")
	fs.Int64Var(&f.firstMultiple, "first-multiple", 2, "the first payment buys this many increments")
	fs.Int64Var(&f.grace, "grace-wh", 10, "energy delivered beyond what is paid before the EVSE is suspended, Wh")
	fs.IntVar(&f.maxCurrentA, "max-current", 32, "current the EVSE is enabled at, A")
	fs.IntVar(&f.maxOpenInvoices, "max-open-invoices", 3, "unpaid invoices one session may hold")
	fs.IntVar(&f.maxConns, "max-conns", 2048, "HTTP connections held open at once, in all; more are closed at once")
	fs.IntVar(&f.maxConnsPerHost, "max-conns-per-host", 64, "HTTP connections held open at once from one address, so one peer cannot take every slot")
	fs.DurationVar(&f.unpaidTimeout, "unpaid-timeout", 10*time.Minute, "end a session that waits this long for a payment")
	fs.DurationVar(&f.invoiceExpiry, "invoice-expiry", 2*time.Minute, "how long an invoice can be paid")
	fs.DurationVar(&f.heartbeat, "heartbeat", 0, "openevse only: heartbeat supervision interval (0: the driver's default)")
	fs.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	return fs, f
}

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, f := serveFlagSet(stderr)
	if err := subcmd.Parse(fs, args, 0); err != nil {
		return err
	}
	set, err := f.validate(os.Getenv)
	if err != nil {
		return err
	}
	log, err := subcmd.NewLogger(stderr, f.logLevel)
	if err != nil {
		return err
	}
	crashStep, err := crashAt()
	if err != nil {
		return fmt.Errorf("%w: %v", subcmd.ErrUsage, err)
	}
	if crashStep != "" {
		log.Warn("wallctl: FAULT INJECTION armed (a test feature): the process kills itself at this step of the first payment", "step", crashStep)
	}
	token, terms, serials := set.token, set.terms, set.serials
	// The EVSEs first, so that they are disabled whatever fails next.
	devs := make([]chargepoint.EVSE, f.connectors)
	sims := make([]*simevse.EVSE, f.connectors)
	for i := range devs {
		clog := log
		if f.connectors > 1 {
			clog = log.With("connector", i+1)
		}
		dev, sim, err := openEVSE(ctx, f, serials[i], clog)
		if err != nil {
			return err
		}
		defer dev.Close()
		if err := dev.Disable(ctx); err != nil {
			clog.Warn("wallctl: could not disable the EVSE at start; continuing, the controller retries", "err", err)
		}
		devs[i], sims[i] = dev, sim
	}

	store, err := wallstore.Open(ctx, f.db)
	if err != nil {
		return err
	}
	defer store.Close()
	var plcCert *tls.Certificate
	var plcCertHash string
	if f.sdpIface != "" && f.plcTLS {
		cert, hash, err := linktls.LoadOrCreate(f.plcCertPath(), time.Now())
		if err != nil {
			return err
		}
		plcCert, plcCertHash = &cert, hash
		log.Info("wallctl: the car is served over TLS", "cert", f.plcCertPath(), "sha256", hash)
	}

	lnCfg := lndclient.Config{RPCAddr: f.lndRPC, TLSCertPath: f.lndCert, MacaroonPath: f.lndMacaroon, LndConnectURI: f.lndConnect, Logger: log,
		Needs: &lndclient.PayeePermissions}
	ln, err := lndclient.Dial(ctx, lnCfg)
	if err != nil {
		return fmt.Errorf("connect to the wall's lnd: %w", err)
	}
	defer ln.Close()
	if ln.PubKey() == "" {
		// The offer names the wall's node so that the car can check every
		// invoice's payee; lnd's invoice.macaroon cannot read it.
		return fmt.Errorf("%w: the wall's macaroon lacks info:read, so wallctl cannot learn its node key for the offer; "+
			"bake one that holds only what the wall needs: lncli bakemacaroon --save_to wall.macaroon info:read invoices:read invoices:write",
			subcmd.ErrUsage)
	}
	log.Info("wallctl: lnd connected", "node", ln.PubKey(), "network", ln.Network(), "addr", ln.Addr())

	var simSpeedPermil int64
	if sims[0] != nil {
		simSpeedPermil = int64(f.simSpeed * 1000)
	}
	// One invoice stream for every connector: lnd sends each invoice event
	// to every stream, so a stream per connector costs it N times over.
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	settlements := ln.ShareSettlements(watchCtx)
	cpLn, cpStore, cpWatch := armCrash(crashStep, ln, store, func(ctx context.Context, open func() [][32]byte) chargepoint.Watch {
		return settlements.Watch(ctx, open)
	})
	cps := make([]*chargepoint.Controller, f.connectors)
	for i := range cps {
		cps[i], err = chargepoint.New(chargepoint.Config{Connector: i + 1, Terms: terms, MaxCurrentA: f.maxCurrentA,
			InvoiceExpiry: f.invoiceExpiry, MaxOpenInvoices: f.maxOpenInvoices, SimSpeedPermil: simSpeedPermil,
			TLSCertSHA256: plcCertHash, Logger: log}, devs[i], cpLn,
			cpWatch, cpStore)
		if err != nil {
			return fmt.Errorf("%w: %v", subcmd.ErrUsage, err)
		}
	}
	conns := make([]httpapi.Connector, len(cps))
	for i, cp := range cps {
		conns[i].Wall = wallConnector{Controller: cp, all: cps}
		if sims[i] != nil {
			if fv, ok := sims[i].Vehicle().(*simevse.FixedVehicle); ok {
				conns[i].Sim = fv
			}
		}
	}
	hcfg := httpapi.Config{Token: token, PublicURL: f.publicURL, Logger: log}
	if f.sdpIface != "" {
		hcfg.Side = httpapi.OwnerSide
	}
	h, err := httpapi.NewWall(hcfg, conns, store)
	if err != nil {
		return err
	}
	inner, err := net.Listen("tcp", f.listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", f.listen, err)
	}
	if f.sdpIface != "" {
		inner = notOver{Listener: inner, iface: f.sdpIface, log: log}
	}
	lis := bounded(inner, f, log)
	srv := httpapi.NewServer(f.listen, h)
	var plcLis net.Listener
	var plcSrv *http.Server
	if f.sdpIface != "" {
		if plcLis, err = listenPLC(ctx, f.sdpIface, f.plcPort, 10*time.Second); err != nil {
			return err
		}
		hcfg.Side = httpapi.CarSide
		carH, err := httpapi.NewWall(hcfg, conns, store)
		if err != nil {
			return err
		}
		plcLis = bounded(plcLis, f, log)
		plcSrv = httpapi.NewServer(plcLis.Addr().String(), carH)
		if plcCert != nil {
			plcSrv.TLSConfig = linktls.ServerConfig(*plcCert)
		}
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, 3+len(cps))
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := srv.Serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("http: %w", err)
		}
	}()
	if f.sdpIface != "" {
		wg.Add(1)
		go func() {
			defer wg.Done()
			serve := plcSrv.Serve
			if plcCert != nil {
				serve = func(l net.Listener) error { return plcSrv.ServeTLS(l, "", "") }
			}
			if err := serve(plcLis); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("http for the car on %s: %w", f.sdpIface, err)
			}
		}()
		security := sdp.SecurityNone
		if plcCert != nil {
			security = sdp.SecurityTLS
		}
		r, err := sdp.NewResponder(sdp.ResponderConfig{Iface: f.sdpIface, ServerPort: uint16(plcLis.Addr().(*net.TCPAddr).Port),
			Security: security, Transport: sdp.TransportTCP, Logger: log})
		if err != nil {
			return fmt.Errorf("%w: --sdp-iface: %v", subcmd.ErrUsage, err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := r.Serve(ctx); err != nil && ctx.Err() == nil {
				errc <- fmt.Errorf("sdp on %s: %w", f.sdpIface, err)
			}
		}()
	}
	for _, cp := range cps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errc <- cp.Run(ctx)
		}()
	}
	if plcLis != nil {
		carScheme := "http"
		if plcCert != nil {
			carScheme = "https"
		}
		fmt.Fprintf(stdout, "wallctl: serving the page on http://%s and the car (LNURL /lnurlp, status) on %s://%s, announced by SDP on %s; EVSE %s, database %s\n",
			lis.Addr(), carScheme, plcLis.Addr(), f.sdpIface, f.evseKind, f.db)
	} else {
		fmt.Fprintf(stdout, "wallctl: serving on http://%s (status /api/status, LNURL /lnurlp), EVSE %s, database %s\n",
			lis.Addr(), f.evseKind, f.db)
	}
	if len(cps) > 1 {
		fmt.Fprintf(stdout, "wallctl: %d connectors, each below /c/1 ... /c/%d (connector 1 also at /); all of them at /api/connectors\n",
			len(cps), len(cps))
	}

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	}
	cancel()
	shutCtx, done := context.WithTimeout(context.Background(), 5*time.Second)
	defer done()
	srv.Shutdown(shutCtx)
	if plcSrv != nil {
		plcSrv.Shutdown(shutCtx)
	}
	wg.Wait()
	if runErr != nil {
		return runErr
	}
	return nil
}

// refusalLog logs connections closed for a bound, at most one line a
// minute with the count since the last, so a flood does not flood the log.
func refusalLog(log *slog.Logger) func(remote string, total bool) {
	var mu sync.Mutex
	var last time.Time
	var n int
	return func(remote string, total bool) {
		mu.Lock()
		defer mu.Unlock()
		n++
		if time.Since(last) < time.Minute {
			return
		}
		bound := "--max-conns-per-host"
		if total {
			bound = "--max-conns"
		}
		log.Warn("wallctl: HTTP connections closed at once: over a bound", "bound", bound, "latest_from", remote, "closed", n)
		last, n = time.Now(), 0
	}
}

// lndConnectEnv carries the wall's lndconnect URI, so the macaroon stays
// out of the process list.
const lndConnectEnv = "WALLCTL_LNDCONNECT"

// serveSettings is what validate settles from the flags and environment.
type serveSettings struct {
	token   string
	terms   metering.Terms
	serials []string // each connector's serial device; "" for the simulated EVSE
}

// Bounds that validate sets beyond its packages' own checks. They keep the
// arithmetic on the flags far from overflowing: the first payment is
// first-multiple × increment × price msat (at most 1e15 here), the
// simulation's timeouts are multiplied by its speed.
const (
	maxPriceMsatPerWh = 1_000_000 // 1,000 sat per Wh
	maxIncrementWh    = 1_000_000 // 1 MWh
	maxFirstMultiple  = 1_000
	maxGraceWh        = 1_000_000
	maxOpenInvoices   = 100
	maxConns          = 100_000 // each one is a file descriptor
	minSimSpeed       = 0.001
	maxSimSpeed       = 1_000
	maxSimMeterHigh   = 1_000 // per mille, the simulated EVSE's own bound
)

// validate checks the parsed flags, and the environment read through
// getenv, and settles their defaults. It opens, dials, listens on and
// creates nothing, so that a mistake is reported before anything starts.
// Every error is a usage error that names the flag (or variable) at fault.
func (f *serveFlags) validate(getenv func(string) string) (serveSettings, error) {
	usage := func(format string, a ...any) (serveSettings, error) {
		return serveSettings{}, fmt.Errorf("%w: "+format, append([]any{subcmd.ErrUsage}, a...)...)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
		return usage("--log-level %q: use debug, info, warn or error", f.logLevel)
	}
	token := getenv(tokenEnv)
	if len(token) < httpapi.MinTokenLen {
		return usage("set $%s to a secret of at least %d characters; it guards every route that changes state",
			tokenEnv, httpapi.MinTokenLen)
	}
	if f.db == "" {
		return usage("--db is empty: give the SQLite file of the sessions")
	}
	if _, _, err := net.SplitHostPort(f.listen); err != nil {
		return usage("--listen %q: want HOST:PORT, such as [::]:8080: %w", f.listen, err)
	}
	if f.publicURL != "" && !isHTTPURL(f.publicURL) {
		return usage("--public-url %q: want an absolute http:// or https:// URL", f.publicURL)
	}

	// The wall's lnd: an lndconnect URI, or the three flags.
	lnd := lndclient.Flags{RPCAddr: f.lndRPC, TLSCertPath: f.lndCert, MacaroonPath: f.lndMacaroon, LndConnect: f.lndConnect}
	if err := lnd.Resolve(getenv, lndConnectEnv); err != nil {
		return usage("%w", err)
	}
	f.lndRPC, f.lndConnect = lnd.RPCAddr, lnd.LndConnect

	// The terms of sale.
	switch {
	case f.price < 1 || f.price > maxPriceMsatPerWh:
		return usage("--price %d: give 1 to %d msat per Wh", f.price, maxPriceMsatPerWh)
	case f.increment < 1 || f.increment > maxIncrementWh:
		return usage("--increment-wh %d: give 1 to %d Wh", f.increment, maxIncrementWh)
	case f.firstMultiple < 1 || f.firstMultiple > maxFirstMultiple:
		return usage("--first-multiple %d: give 1 to %d increments", f.firstMultiple, maxFirstMultiple)
	case f.grace < 0 || f.grace > maxGraceWh:
		return usage("--grace-wh %d: give 0 to %d Wh", f.grace, maxGraceWh)
	case f.unpaidTimeout < 0:
		return usage("--unpaid-timeout %s must not be negative", f.unpaidTimeout)
	case f.invoiceExpiry < time.Second:
		return usage("--invoice-expiry %s: an invoice must stay payable for a second at least", f.invoiceExpiry)
	case f.maxOpenInvoices < 1 || f.maxOpenInvoices > maxOpenInvoices:
		return usage("--max-open-invoices %d: give 1 to %d", f.maxOpenInvoices, maxOpenInvoices)
	case f.maxConns < 1 || f.maxConns > maxConns:
		return usage("--max-conns %d: give 1 to %d", f.maxConns, maxConns)
	case f.plcPort < 0 || f.plcPort > 65535:
		return usage("--plc-port %d: give 0 (any) to 65535", f.plcPort)
	case f.maxConnsPerHost < 1 || f.maxConnsPerHost > f.maxConns:
		return usage("--max-conns-per-host %d: give 1 to --max-conns (%d)", f.maxConnsPerHost, f.maxConns)
	case f.plcCert != "" && (f.sdpIface == "" || !f.plcTLS):
		return usage("--plc-cert %q: the certificate is for the car's TLS on the PLC link; give --sdp-iface and leave --plc-tls on", f.plcCert)
	}
	terms := metering.Terms{PriceMsatPerWh: f.price, IncrementWh: f.increment, FirstMultiple: f.firstMultiple,
		GraceWh: f.grace, UnpaidTimeout: f.unpaidTimeout}
	if err := terms.Validate(); err != nil {
		return usage("--price, --increment-wh, --first-multiple, --grace-wh or --unpaid-timeout: %w", err)
	}

	// The EVSEs.
	switch strings.ToLower(f.evseKind) {
	case "sim", "openevse":
	default:
		return usage("--evse %q: use sim or openevse", f.evseKind)
	}
	serials, err := connectorCount(f)
	if err != nil {
		return serveSettings{}, err
	}
	if strings.EqualFold(f.evseKind, "openevse") {
		for i, s := range serials {
			if strings.TrimSpace(s) == "" {
				return usage("--serial %q: device %d of the list is empty", f.serial, i+1)
			}
		}
	}
	// The controller, the simulated EVSE and the OpenEVSE all work in
	// J1772's pilot range; a current outside it would fail only once a
	// car had paid.
	if f.maxCurrentA < rapi.MinCurrentA || f.maxCurrentA > rapi.MaxCurrentA {
		return usage("--max-current %d: J1772 allows %d to %d A", f.maxCurrentA, rapi.MinCurrentA, rapi.MaxCurrentA)
	}
	if f.heartbeat < 0 {
		return usage("--heartbeat %s must not be negative (0: the driver's default)", f.heartbeat)
	}
	if !(f.simSpeed >= minSimSpeed && f.simSpeed <= maxSimSpeed) { // NaN fails too
		return usage("--sim-speed %v: give %v to %v", f.simSpeed, minSimSpeed, maxSimSpeed)
	}
	if f.simMeterHigh < -maxSimMeterHigh || f.simMeterHigh > maxSimMeterHigh {
		return usage("--sim-meter-high %d: give -%d to %d per mille", f.simMeterHigh, maxSimMeterHigh, maxSimMeterHigh)
	}
	if f.simCarURL != "" && !isHTTPURL(f.simCarURL) {
		return usage("--sim-car %q: want the simulated car's control URL, http://HOST:PORT", f.simCarURL)
	}
	return serveSettings{token: token, terms: terms, serials: serials}, nil
}

// isHTTPURL reports whether s is an absolute http or https URL with a host.
func isHTTPURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

// maxConnectors bounds --connectors: every connector runs a controller, an
// EVSE driver and an invoice stream.
const maxConnectors = 256

// connectorCount settles f.connectors from the flags and returns each
// connector's serial device ("" for the simulated EVSE).
func connectorCount(f *serveFlags) ([]string, error) {
	var serials []string
	if f.serial != "" {
		serials = strings.Split(f.serial, ",")
	}
	n := f.connectors
	switch {
	case n == 0 && strings.EqualFold(f.evseKind, "openevse") && len(serials) > 0:
		n = len(serials)
	case n == 0:
		n = 1
	case n < 1 || n > maxConnectors:
		return nil, fmt.Errorf("%w: --connectors %d: a wall has 1 to %d", subcmd.ErrUsage, n, maxConnectors)
	}
	if strings.EqualFold(f.evseKind, "openevse") && len(serials) != n {
		return nil, fmt.Errorf("%w: --connectors %d but --serial names %d device(s): give one OpenEVSE per connector, comma-separated",
			subcmd.ErrUsage, n, len(serials))
	}
	if n > 1 && f.sdpIface != "" {
		// The SDP answer carries an address and a port, no path: each
		// connector would need its own powerline modem and listener.
		return nil, fmt.Errorf("%w: --sdp-iface answers for one connector only; run one wallctl per connector with SDP", subcmd.ErrUsage)
	}
	if n > 1 && f.simCarURL != "" {
		return nil, fmt.Errorf("%w: --sim-car couples one simulated car; with --connectors, plug each connector's built-in vehicle with POST /c/N/api/sim/plug", subcmd.ErrUsage)
	}
	f.connectors = n
	if !strings.EqualFold(f.evseKind, "openevse") {
		serials = make([]string, n) // the simulated EVSE has no device
	}
	return serials, nil
}

// wallConnector is one connector as the HTTP API sees it. The owner's
// settings are the whole wall's, so setting them on any connector sets
// them on all.
type wallConnector struct {
	*chargepoint.Controller
	all []*chargepoint.Controller
}

func (w wallConnector) SetPrice(ctx context.Context, msatPerWh int64) error {
	s := w.Settings()
	s.PriceMsatPerWh = msatPerWh
	return w.SetSettings(ctx, s)
}

// SetSettings stores the settings once, through this connector, and has
// every other connector take them.
func (w wallConnector) SetSettings(ctx context.Context, s chargepoint.Settings) error {
	if err := w.Controller.SetSettings(ctx, s); err != nil {
		return err
	}
	for _, c := range w.all {
		if c != w.Controller {
			if err := c.UseSettings(s); err != nil {
				return err
			}
		}
	}
	return nil
}

// openEVSE opens the configured driver, on serial for an OpenEVSE. For the
// simulated EVSE it also returns the simulation, whose built-in vehicle
// the API can plug in.
func openEVSE(ctx context.Context, f *serveFlags, serial string, log *slog.Logger) (chargepoint.EVSE, *simevse.EVSE, error) {
	switch strings.ToLower(f.evseKind) {
	case "sim":
		var clk clock.Clock = clock.Real{}
		if f.simSpeed != 1 {
			if f.simSpeed <= 0 {
				return nil, nil, fmt.Errorf("%w: --sim-speed must be positive", subcmd.ErrUsage)
			}
			clk = clock.NewScaled(f.simSpeed)
		}
		// The controller's heartbeat comes every real second; the
		// watchdog counts on the simulation's clock, so it gets the same
		// real-time allowance at any speed.
		cfg := simevse.Config{Clock: clk, Log: log, MaxCurrentA: max(f.maxCurrentA, simevse.MinCurrentA),
			WatchdogTimeout: time.Duration(float64(simevse.DefaultWatchdogTimeout) * f.simSpeed)}
		if f.simCarURL != "" {
			v, err := simevse.NewHTTPVehicle(simevse.HTTPVehicleConfig{BaseURL: f.simCarURL, Token: os.Getenv("SATWATT_SIMCAR_TOKEN"), Log: log})
			if err != nil {
				return nil, nil, fmt.Errorf("%w: --sim-car: %v", subcmd.ErrUsage, err)
			}
			// Read the car once before the controller looks: a real EVSE's
			// pilot tells at once whether a vehicle is connected, which is
			// what lets a restarted wall resume the session it left open.
			_ = v.Refresh(ctx) // logged inside; the car may not be up yet
			cfg.Vehicle = v
		}
		e, err := simevse.New(cfg)
		if err != nil {
			return nil, nil, err
		}
		if f.simMeterHigh != 0 {
			if err := e.SetFaults(simevse.Faults{MeterHighPermil: f.simMeterHigh}); err != nil {
				return nil, nil, fmt.Errorf("%w: --sim-meter-high: %v", subcmd.ErrUsage, err)
			}
			log.Warn("wallctl: the SIMULATED EVSE's meter reads high on purpose (a test fault)", "permil", f.simMeterHigh)
		}
		log.Warn("wallctl: driving the SIMULATED EVSE (a demo and test feature): no real charger is switched")
		return e, e, nil
	case "openevse":
		if serial == "" {
			return nil, nil, fmt.Errorf("%w: --evse openevse needs --serial DEVICE", subcmd.ErrUsage)
		}
		d, err := rapi.Open(ctx, rapi.Config{Device: serial, Heartbeat: f.heartbeat, Logger: log})
		if err != nil {
			return nil, nil, fmt.Errorf("open the OpenEVSE on %s: %w", serial, err)
		}
		return d, nil, nil
	}
	return nil, nil, fmt.Errorf("%w: --evse %q: use sim or openevse", subcmd.ErrUsage, f.evseKind)
}
