package main

import (
	"errors"
	"flag"
	"io"
	"math"
	"math/bits"
	"strings"
	"testing"
	"time"

	"satwatt/internal/fuzzcheck"
	"satwatt/internal/lndclient"
	"satwatt/internal/rapi"
	"satwatt/internal/simevse"
	"satwatt/internal/subcmd"
)

// fuzzToken is a valid $WALLCTL_TOKEN for the targets' environment.
const fuzzToken = "0123456789abcdef-token"

// A syntactically valid lndconnect URI (a macaroon, no certificate), as
// $WALLCTL_LNDCONNECT or --lndconnect hands it over.
const fuzzLndConnect = "lndconnect://127.0.0.1:10009?macaroon=AgEDbG5kAvgBAwoQ_v_7"

// Allocation: flag parsing copies the arguments a few times, and an
// lndconnect URI is decoded, certificate and all.
const (
	serveFlagsAllocPerByte = 64
	serveFlagsAllocFixed   = 128 << 10
)

// parseServe parses and validates a serve command line as runServe does,
// up to the point where it would start anything.
func parseServe(args []string, env map[string]string) (*serveFlags, serveSettings, error) {
	fs, f := serveFlagSet(io.Discard)
	if err := subcmd.Parse(fs, args, 0); err != nil {
		return f, serveSettings{}, err
	}
	set, err := f.validate(func(k string) string { return env[k] })
	return f, set, err
}

// fuzzArgs splits a fuzz string into arguments at NUL bytes, so that an
// argument can hold spaces as a shell would pass them.
func fuzzArgs(line string) []string {
	if line == "" {
		return nil
	}
	return strings.Split(line, "\x00")
}

func seedLine(args ...string) string { return strings.Join(args, "\x00") }

// The serve command line is the wall's configuration: every mistake in it
// must be refused, before anything starts, by an error that names the
// flag at fault; whatever passes must be settings the controller, the
// EVSE drivers and lnd can use, without an overflow in the arithmetic on
// them.
func FuzzServeFlags(f *testing.F) {
	lnd := []string{"--lnd-rpc", "127.0.0.1:10009", "--lnd-tlscert", "tls.cert", "--lnd-macaroon", "wall.macaroon"}
	for _, s := range []struct {
		args []string
		env  string // $WALLCTL_LNDCONNECT
	}{
		// The README's and the tests' real command lines.
		{[]string{"--evse", "sim", "--db", "wall.db", "--listen", "127.0.0.1:8080"}, fuzzLndConnect},
		{[]string{"--evse", "sim", "--sim-car", "http://127.0.0.1:29537", "--db", "wall.db", "--listen", "127.0.0.1:8080", "--increment-wh", "20"}, fuzzLndConnect},
		{append([]string{"--evse", "openevse", "--serial", "/dev/serial/by-id/usb-FTDI_YOUR_ADAPTER-if00-port0", "--max-current", "32"}, lnd...), ""},
		{append([]string{"--listen", "127.0.0.1:0", "--db", "wall.db", "--evse", "sim", "--sim-car", "http://127.0.0.1:1", "--sim-speed", "30",
			"--max-current", "48", "--price", "100", "--increment-wh", "100", "--first-multiple", "2", "--grace-wh", "10"}, lnd...), ""},
		{append([]string{"--db", "wall.db", "--evse", "openevse", "--serial", "/dev/pts/3,/dev/pts/4", "--heartbeat", "1s", "--max-current", "16", "--log-level", "debug"}, lnd...), ""},
		{[]string{"--connectors", "50", "--public-url", "https://wall.example/"}, fuzzLndConnect},
		// Edge cases.
		{nil, ""},
		{[]string{"-h"}, ""},
		{[]string{"--sim-speed", "NaN"}, fuzzLndConnect},
		{[]string{"--sim-speed", "+Inf"}, fuzzLndConnect},
		{[]string{"--sim-speed", "1e-300"}, fuzzLndConnect},
		{[]string{"--increment-wh", "9223372036854775807", "--first-multiple", "2"}, fuzzLndConnect},
		{[]string{"--price", "9223372"}, fuzzLndConnect},
		{[]string{"--max-current", "0"}, fuzzLndConnect},
		{[]string{"--evse", "openevse", "--serial", "a,,b"}, fuzzLndConnect},
		{[]string{"--connectors", "2", "--sdp-iface", "eth1"}, fuzzLndConnect},
		{append([]string{"--lndconnect", fuzzLndConnect}, lnd...), ""},
		{[]string{"--lndconnect", "lndconnect://h:0?macaroon=AgEDbG5kAvgBAwoQ"}, ""},
		{[]string{"--lnd-rpc", "h:99999", "--lnd-tlscert", "c", "--lnd-macaroon", "m"}, ""},
		{[]string{"--invoice-expiry", "0s", "--max-open-invoices", "0"}, fuzzLndConnect},
		{[]string{"--log-level", "loud"}, fuzzLndConnect},
		{[]string{"--listen", "nope"}, fuzzLndConnect},
		{[]string{"serve", "extra"}, fuzzLndConnect},
		{[]string{"---price=1"}, fuzzLndConnect},
	} {
		f.Add(seedLine(s.args...), s.env)
	}
	f.Fuzz(func(t *testing.T, line, lndEnv string) {
		env := map[string]string{tokenEnv: fuzzToken, lndConnectEnv: lndEnv}
		args := fuzzArgs(line)
		var fl *serveFlags
		var set serveSettings
		var err error
		fuzzcheck.Alloc(t, "wallctl serve flags", len(line)+len(lndEnv), serveFlagsAllocPerByte, serveFlagsAllocFixed, func() {
			fl, set, err = parseServe(args, env)
		})
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		if err != nil {
			fs, _ := serveFlagSet(io.Discard)
			if !errors.Is(err, subcmd.ErrUsage) {
				t.Fatalf("error %q is not a usage error", err)
			}
			fuzzcheck.NamesFlag(t, err, fs, "$"+tokenEnv, "$"+lndConnectEnv)
			fuzzcheck.NoMacaroon(t, err, fl.lndConnect, lndEnv)
			return
		}
		checkServeSettings(t, fl, set)
	})
}

// checkServeSettings checks accepted settings against what the parts they
// go to need.
func checkServeSettings(t *testing.T, f *serveFlags, set serveSettings) {
	t.Helper()
	if set.token != fuzzToken {
		t.Fatalf("token %q", set.token)
	}
	if _, err := subcmd.NewLogger(io.Discard, f.logLevel); err != nil {
		t.Fatalf("log level %q accepted: %v", f.logLevel, err)
	}
	if f.connectors < 1 || f.connectors > maxConnectors || len(set.serials) != f.connectors {
		t.Fatalf("%d connectors, %d serial devices", f.connectors, len(set.serials))
	}
	openevse := strings.EqualFold(f.evseKind, "openevse")
	for _, s := range set.serials {
		if (s == "") == openevse {
			t.Fatalf("EVSE %q with serial devices %q", f.evseKind, set.serials)
		}
	}
	if err := set.terms.Validate(); err != nil {
		t.Fatalf("terms %+v accepted: %v", set.terms, err)
	}
	// The first payment in msat, computed without overflow, must be what
	// the terms compute.
	hi, lo := bits.Mul64(uint64(set.terms.FirstMultiple), uint64(set.terms.IncrementWh))
	hi2, lo2 := bits.Mul64(lo, uint64(set.terms.PriceMsatPerWh))
	if hi != 0 || hi2 != 0 || lo2 > math.MaxInt64 || set.terms.FirstPaymentMsat() != int64(lo2) {
		t.Fatalf("terms %+v: first payment overflows (%d msat)", set.terms, set.terms.FirstPaymentMsat())
	}
	if f.lndConnect != "" {
		if f.lndRPC != "" || f.lndCert != "" || f.lndMacaroon != "" {
			t.Fatal("both an lndconnect URI and lnd flags accepted")
		}
		if err := lndclient.CheckLndConnect(f.lndConnect); err != nil {
			t.Fatalf("lndconnect URI accepted: %v", err)
		}
	} else if err := lndclient.CheckHostPort(f.lndRPC); err != nil || f.lndCert == "" || f.lndMacaroon == "" {
		t.Fatalf("lnd %q, %q, %q accepted: %v", f.lndRPC, f.lndCert, f.lndMacaroon, err)
	}
	if f.maxCurrentA < rapi.MinCurrentA || f.maxCurrentA > rapi.MaxCurrentA || f.maxCurrentA < simevse.MinCurrentA {
		t.Fatalf("max current %d A", f.maxCurrentA)
	}
	if f.invoiceExpiry < time.Second || f.maxOpenInvoices < 1 || f.heartbeat < 0 {
		t.Fatalf("invoice expiry %s, open invoices %d, heartbeat %s", f.invoiceExpiry, f.maxOpenInvoices, f.heartbeat)
	}
	// What serve computes from the simulation's speed: a positive
	// per-mille speed and watchdog.
	if permil, watchdog := int64(f.simSpeed*1000), time.Duration(float64(simevse.DefaultWatchdogTimeout)*f.simSpeed); permil < 1 || watchdog <= 0 {
		t.Fatalf("--sim-speed %v gives %d per mille and a watchdog of %s", f.simSpeed, permil, watchdog)
	}
	if f.simMeterHigh < -1000 || f.simMeterHigh > 1000 {
		t.Fatalf("--sim-meter-high %d", f.simMeterHigh)
	}
	if f.simCarURL != "" && !isHTTPURL(f.simCarURL) || f.publicURL != "" && !isHTTPURL(f.publicURL) {
		t.Fatalf("--sim-car %q, --public-url %q", f.simCarURL, f.publicURL)
	}
}

// TestServeFlagsValidate holds what fuzzing FuzzServeFlags found: settings
// that used to pass the flags and fail (or misbehave) only later, after
// the EVSE was opened, the database created and lnd dialled, or once a
// car had paid.
func TestServeFlagsValidate(t *testing.T) {
	lnd := []string{"--lnd-rpc", "127.0.0.1:10009", "--lnd-tlscert", "tls.cert", "--lnd-macaroon", "wall.macaroon"}
	for _, tc := range []struct {
		name string
		args []string
		env  string // $WALLCTL_LNDCONNECT
		err  string // empty: accepted
	}{
		{"defaults with lndconnect", nil, fuzzLndConnect, ""},
		{"defaults with lnd flags", lnd, "", ""},
		{"NaN simulation speed", []string{"--sim-speed", "NaN"}, fuzzLndConnect, "--sim-speed NaN"},
		{"infinite simulation speed", []string{"--sim-speed", "Inf"}, fuzzLndConnect, "--sim-speed +Inf"},
		{"simulation speed rounding to 0 per mille", []string{"--sim-speed", "0.0001"}, fuzzLndConnect, "--sim-speed"},
		{"increment overflowing the first payment", []string{"--increment-wh", "4611686018427387904"}, fuzzLndConnect, "--increment-wh"},
		{"first multiple overflowing the first payment", []string{"--first-multiple", "4611686018427387904"}, fuzzLndConnect, "--first-multiple"},
		{"zero current silently 32 A", []string{"--max-current", "0"}, fuzzLndConnect, "--max-current 0"},
		{"current beyond J1772 fails only when a car has paid", []string{"--evse", "openevse", "--serial", "/dev/ttyUSB0", "--max-current", "100"}, fuzzLndConnect, "--max-current 100"},
		{"empty device in the serial list", []string{"--evse", "openevse", "--serial", "/dev/ttyUSB0,"}, fuzzLndConnect, `--serial "/dev/ttyUSB0,": device 2`},
		{"unknown EVSE", []string{"--evse", "tesla"}, fuzzLndConnect, `--evse "tesla"`},
		{"zero open invoices silently 3", []string{"--max-open-invoices", "0"}, fuzzLndConnect, "--max-open-invoices 0"},
		{"zero invoice expiry silently 2 minutes", []string{"--invoice-expiry", "0s"}, fuzzLndConnect, "--invoice-expiry 0s"},
		{"negative heartbeat silently the default", []string{"--heartbeat", "-1s"}, fuzzLndConnect, "--heartbeat -1s"},
		{"meter fault out of range after the EVSE opened", []string{"--sim-meter-high", "2000"}, fuzzLndConnect, "--sim-meter-high 2000"},
		{"bad public URL after lnd was dialled", []string{"--public-url", "wall.example"}, fuzzLndConnect, `--public-url "wall.example"`},
		{"bad simulated car URL", []string{"--sim-car", "127.0.0.1:1"}, fuzzLndConnect, `--sim-car "127.0.0.1:1"`},
		{"lndconnect URI with the lnd flags", append([]string{"--lndconnect", fuzzLndConnect}, lnd...), "", "--lndconnect and --lnd-rpc"},
		{"the lnd flags win over the environment URI", lnd, fuzzLndConnect, ""},
		{"lndconnect URI with port 0", []string{"--lndconnect", "lndconnect://h:0?macaroon=AgEDbG5kAvgBAwoQ"}, "", `--lndconnect: lndconnect URI: port "0"`},
		{"lndconnect URI from the environment", nil, "lndconnect://h:1", "$WALLCTL_LNDCONNECT: lndconnect URI: no macaroon"},
		{"lnd flags without the certificate", []string{"--lnd-rpc", "127.0.0.1:10009", "--lnd-macaroon", "m"}, "", "--lnd-tlscert is required"},
		{"lnd address without a port", []string{"--lnd-rpc", "127.0.0.1", "--lnd-tlscert", "c", "--lnd-macaroon", "m"}, "", `--lnd-rpc "127.0.0.1"`},
		{"listen address", []string{"--listen", "8080"}, fuzzLndConnect, `--listen "8080"`},
		{"log level", []string{"--log-level", "loud"}, fuzzLndConnect, `--log-level "loud"`},
		{"certificate without the PLC link", []string{"--plc-cert", "c.pem"}, fuzzLndConnect, `--plc-cert "c.pem"`},
		{"certificate with TLS off", []string{"--sdp-iface", "plc0", "--plc-tls=false", "--plc-cert", "c.pem"}, fuzzLndConnect, "leave --plc-tls on"},
		{"certificate on the PLC link", []string{"--sdp-iface", "plc0", "--plc-cert", "c.pem"}, fuzzLndConnect, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := parseServe(tc.args, map[string]string{tokenEnv: fuzzToken, lndConnectEnv: tc.env})
			if tc.err == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if !errors.Is(err, subcmd.ErrUsage) || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("error %v, want a usage error saying %q", err, tc.err)
			}
		})
	}
	// The token is checked before anything else that needs the
	// environment.
	if _, _, err := parseServe(nil, map[string]string{lndConnectEnv: fuzzLndConnect}); err == nil || !strings.Contains(err.Error(), "$"+tokenEnv) {
		t.Fatalf("without a token: %v", err)
	}
}
