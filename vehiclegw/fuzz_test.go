package main

import (
	"errors"
	"flag"
	"io"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"satwatt/internal/buypolicy"
	"satwatt/internal/canbus"
	"satwatt/internal/fuzzcheck"
	"satwatt/internal/lndclient"
	"satwatt/internal/subcmd"
)

// A syntactically valid lndconnect URI (a macaroon, no certificate), as
// $VEHICLEGW_LNDCONNECT or --lndconnect hands it over.
const fuzzLndConnect = "lndconnect://127.0.0.1:10009?macaroon=AgEDbG5kAvgBAwoQ_v_7"

// Allocation: flag parsing copies the arguments a few times, and an
// lndconnect URI is decoded, certificate and all.
const (
	runFlagsAllocPerByte = 64
	runFlagsAllocFixed   = 128 << 10
)

// parseRunFlags parses and validates a run command line as runRun does,
// up to the point where it would read the profile or start anything.
func parseRunFlags(args []string, env map[string]string) (*runFlags, buypolicy.Settings, error) {
	fs, f := runFlagSet(io.Discard)
	if err := parseFlags(fs, args); err != nil {
		return f, buypolicy.Settings{}, err
	}
	s, err := f.validate(func(k string) string { return env[k] })
	return f, s, err
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

// The run command line is the car's configuration, money limits included:
// every mistake in it must be refused, before the gateway touches the bus
// or the node, by an error that names the flag at fault; whatever passes
// must be settings the buying policy, the payer and the loop take as the
// owner wrote them, with nothing wrapped around by a multiplication.
func FuzzRunFlags(f *testing.F) {
	lnd := []string{"--lnd-rpc", "127.0.0.1:10009", "--lnd-tlscert", "tls.cert", "--lnd-macaroon", "pay.macaroon"}
	for _, s := range []struct {
		args []string
		env  string // $VEHICLEGW_LNDCONNECT
	}{
		// The README's and the tests' real command lines.
		{[]string{"--can", "socketcand://127.0.0.1:29536/sim0", "--wall", "http://127.0.0.1:8080/", "--db", "car.db", "--target", "80"}, fuzzLndConnect},
		{[]string{"--can", "vcan0", "--wall", "http://127.0.0.1:8080/", "--db", "car.db", "--lndconnect", fuzzLndConnect, "--target", "80", "--max-price", "150"}, ""},
		{[]string{"--can", "can0", "--iface", "eth1", "--target", "80", "--max-price", "200", "--sim-speed", "60", "--json", "--log-level", "debug"}, fuzzLndConnect},
		{append([]string{"--can", "socketcan:can1", "--iface", "eth1", "--profile", "tesla-model3", "--budget-session", "5000", "--budget-day", "20000",
			"--reserve", "1000", "--max-payment", "1000", "--max-fee", "10", "--lead-time", "30s", "--pay-timeout", "45s", "--share-soc=false"}, lnd...), ""},
		// Edge cases.
		{nil, ""},
		{[]string{"-h"}, ""},
		{[]string{"--can", "vcan0", "--wall", "http://127.0.0.1:1/", "--sim-speed", "NaN"}, fuzzLndConnect},
		{[]string{"--can", "vcan0", "--wall", "http://127.0.0.1:1/", "--target", "1844674407370955162"}, fuzzLndConnect},
		{[]string{"--can", "vcan0", "--wall", "http://127.0.0.1:1/", "--budget-session", "18446744073709552"}, fuzzLndConnect},
		{[]string{"--can", "vcan0", "--wall", "http://127.0.0.1:1/", "--pay-timeout", "0s"}, fuzzLndConnect},
		{[]string{"--can", "vcan0", "--wall", "http://[fe80::1%eth1]:8080/"}, fuzzLndConnect},
		{[]string{"--can", "model3.candump.log", "--wall", "http://127.0.0.1:1/"}, fuzzLndConnect},
		{[]string{"--can", "vcan0", "--iface", "eth1", "--wall", "http://127.0.0.1:1/"}, fuzzLndConnect},
		{[]string{"--can", "vcan0", "--iface", "a/b"}, fuzzLndConnect},
		{[]string{"--can", "vcan0", "--iface", "eth1", "--meter-tolerance", "0", "--meter-slack-wh", "-1"}, fuzzLndConnect},
		{[]string{"--can", "vcan0", "--iface", "eth1", "--lnd-rpc", "h"}, ""},
		{[]string{"--can", "vcan0", "--iface", "eth1", "--lndconnect", "lndconnect://h:1?macaroon="}, ""},
		{[]string{"--can", "vcan0", "--iface", "eth1", "extra"}, fuzzLndConnect},
	} {
		f.Add(seedLine(s.args...), s.env)
	}
	f.Fuzz(func(t *testing.T, line, lndEnv string) {
		env := map[string]string{lndConnectEnv: lndEnv}
		args := fuzzArgs(line)
		var fl *runFlags
		var set buypolicy.Settings
		var err error
		fuzzcheck.Alloc(t, "vehiclegw run flags", len(line)+len(lndEnv), runFlagsAllocPerByte, runFlagsAllocFixed, func() {
			fl, set, err = parseRunFlags(args, env)
		})
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		if err != nil {
			fs, _ := runFlagSet(io.Discard)
			if !errors.Is(err, subcmd.ErrUsage) {
				t.Fatalf("error %q is not a usage error", err)
			}
			fuzzcheck.NamesFlag(t, err, fs, "$"+lndConnectEnv)
			fuzzcheck.NoMacaroon(t, err, fl.lndConnect, lndEnv)
			return
		}
		checkRunSettings(t, fl, set)
	})
}

// checkRunSettings checks accepted settings against the flags they came
// from and what the parts they go to need.
func checkRunSettings(t *testing.T, f *runFlags, s buypolicy.Settings) {
	t.Helper()
	if err := s.Validate(); err != nil {
		t.Fatalf("settings %+v accepted: %v", s, err)
	}
	// Each money and share figure is the flag's, scaled exactly.
	for _, c := range []struct {
		name      string
		got, flag int64
		scale     int64
	}{
		{"--target", s.TargetSoCPermille, f.targetPct, 10},
		{"--efficiency", s.EfficiencyPermille, f.efficiencyPct, 10},
		{"--budget-session", s.BudgetSessionMsat, f.budgetSession, 1000},
		{"--budget-day", s.BudgetDayMsat, f.budgetDay, 1000},
		{"--reserve", s.ReserveMsat, f.reserve, 1000},
		{"--max-payment", s.MaxPaymentMsat, f.maxPayment, 1000},
		{"--max-fee", s.MaxFeeMsat, f.maxFee, 1000},
		{"--max-price", s.MaxPriceMsatPerWh, f.maxPrice, 1},
	} {
		if c.got/c.scale != c.flag || c.got%c.scale != 0 {
			t.Fatalf("%s %d became %d", c.name, c.flag, c.got)
		}
	}
	// What the loop gets: the per-mille tolerance and the slack in mWh,
	// neither 0 (which the loop would replace by its default).
	if tol, slack := f.meterTolPct*10, f.meterSlackWh*1000; tol/10 != f.meterTolPct || slack/1000 != f.meterSlackWh || tol < 1 || slack < 1 {
		t.Fatalf("--meter-tolerance %d, --meter-slack-wh %d", f.meterTolPct, f.meterSlackWh)
	}
	// lnd takes the timeout in whole seconds as an int32, and not 0.
	if secs := (f.payTimeout + time.Second - 1) / time.Second; secs < 1 || secs > 1<<31-1 {
		t.Fatalf("--pay-timeout %s", f.payTimeout)
	}
	if !(f.simSpeed > 0) || f.simSpeed > 1000 {
		t.Fatalf("--sim-speed %v", f.simSpeed)
	}
	if _, err := subcmd.NewLogger(io.Discard, f.logLevel); err != nil {
		t.Fatalf("log level %q accepted: %v", f.logLevel, err)
	}
	if spec, err := canbus.ParseSpec(f.can); err != nil || spec.Kind == canbus.KindReplay {
		t.Fatalf("--can %q accepted: %+v, %v", f.can, spec, err)
	}
	if (f.iface == "") == (f.wall == "") {
		t.Fatalf("--iface %q and --wall %q", f.iface, f.wall)
	}
	if f.wall != "" {
		if u, err := url.Parse(f.wall); err != nil || u.Host == "" {
			t.Fatalf("--wall %q accepted: %v", f.wall, err)
		}
	}
	if f.lndConnect != "" {
		if f.lndRPC != "" || f.lndCert != "" || f.lndMacaroon != "" {
			t.Fatal("both an lndconnect URI and lnd flags accepted")
		}
		if err := lndclient.CheckLndConnect(f.lndConnect); err != nil {
			t.Fatalf("lndconnect URI accepted: %v", err)
		}
	} else if _, _, err := net.SplitHostPort(f.lndRPC); err != nil || f.lndCert == "" || f.lndMacaroon == "" {
		t.Fatalf("lnd %q, %q, %q accepted: %v", f.lndRPC, f.lndCert, f.lndMacaroon, err)
	}
}

// TestRunFlagsValidate holds what fuzzing FuzzRunFlags found: flags that
// used to pass, wrapped around into other values, or failed only after
// the gateway had opened the bus, its ledger and the node, or at the first
// payment.
func TestRunFlagsValidate(t *testing.T) {
	base := []string{"--can", "vcan0", "--wall", "http://127.0.0.1:8080/"}
	with := func(extra ...string) []string { return append(append([]string(nil), base...), extra...) }
	lnd := []string{"--lnd-rpc", "127.0.0.1:10009", "--lnd-tlscert", "tls.cert", "--lnd-macaroon", "pay.macaroon"}
	for _, tc := range []struct {
		name string
		args []string
		env  string // $VEHICLEGW_LNDCONNECT
		err  string // empty: accepted
	}{
		{"defaults with lndconnect", base, fuzzLndConnect, ""},
		{"defaults with lnd flags", with(lnd...), "", ""},
		{"wall URL with a zone", with("--wall", "http://[fe80::1%25eth1]:8080/"), fuzzLndConnect, ""},
		// 1844674407370955162 × 10 wraps around to 4 ‰, which the policy
		// took as a target of 0.4 %.
		{"target wrapping around", with("--target", "1844674407370955162"), fuzzLndConnect, "--target 1844674407370955162"},
		// × 1000 wraps around to 384 msat.
		{"session budget wrapping around", with("--budget-session", "18446744073709552"), fuzzLndConnect, "--budget-session"},
		{"payment limit wrapping around", with("--max-payment", "18446744073709552"), fuzzLndConnect, "--max-payment"},
		{"efficiency wrapping around", with("--efficiency", "1844674407370955212"), fuzzLndConnect, "--efficiency"},
		// lnd refuses a timeout of 0 s: every payment would fail.
		{"zero payment timeout", with("--pay-timeout", "0s"), fuzzLndConnect, "--pay-timeout 0s"},
		// Whole seconds as an int32 on the wire to lnd.
		{"payment timeout beyond int32 seconds", with("--pay-timeout", "600000h"), fuzzLndConnect, "--pay-timeout"},
		{"zero meter tolerance silently 15 %", with("--meter-tolerance", "0"), fuzzLndConnect, "--meter-tolerance 0"},
		{"negative meter slack after the node was dialled", with("--meter-slack-wh", "-1"), fuzzLndConnect, "--meter-slack-wh -1"},
		{"NaN simulation speed", with("--sim-speed", "NaN"), fuzzLndConnect, "--sim-speed NaN"},
		{"huge simulation speed", with("--sim-speed", "1e300"), fuzzLndConnect, "--sim-speed 1e+300"},
		// The flag's own help showed this form; url.Parse refuses it, and
		// the gateway found out only when it looked for the wall.
		{"wall URL with a bare zone", with("--wall", "http://[fe80::1%eth1]:8080/"), fuzzLndConnect, `--wall "http://[fe80::1%eth1]:8080/"`},
		{"wall without a scheme", with("--wall", "127.0.0.1:8080"), fuzzLndConnect, `--wall "127.0.0.1:8080"`},
		{"plain wall with TLS required", with("--require-tls"), fuzzLndConnect, `--wall "http://127.0.0.1:8080/" with --require-tls`},
		{"https wall with TLS required", with("--require-tls", "--wall", "https://[fe80::1%25eth1]:8081/"), fuzzLndConnect, ""},
		{"recording as the bus", []string{"--can", "car.log", "--iface", "eth1"}, fuzzLndConnect, `--can "car.log" is a recording`},
		{"bad bus", []string{"--can", "can0:1", "--iface", "eth1"}, fuzzLndConnect, "--can: canbus: bad source"},
		{"bad interface", []string{"--can", "vcan0", "--iface", "eth 1"}, fuzzLndConnect, `--iface "eth 1"`},
		{"both the interface and the wall", with("--iface", "eth1"), fuzzLndConnect, "--iface IFACE"},
		{"lndconnect URI with the lnd flags", with(append([]string{"--lndconnect", fuzzLndConnect}, lnd...)...), "", "--lndconnect and --lnd-rpc"},
		{"the lnd flags win over the environment URI", with(lnd...), fuzzLndConnect, ""},
		{"lndconnect URI without a macaroon", base, "lndconnect://h:1", "$VEHICLEGW_LNDCONNECT: lndconnect URI: no macaroon"},
		{"lnd flags without the macaroon", with("--lnd-tlscert", "tls.cert"), "", "--lnd-macaroon is required"},
		{"lnd address without a port", with("--lnd-rpc", "127.0.0.1", "--lnd-tlscert", "c", "--lnd-macaroon", "m"), "", `--lnd-rpc "127.0.0.1"`},
		{"log level", with("--log-level", "loud"), fuzzLndConnect, `--log-level "loud"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := parseRunFlags(tc.args, map[string]string{lndConnectEnv: tc.env})
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
}
