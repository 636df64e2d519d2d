package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"satwatt/internal/sdp"
)

// discoverResult is what `vehiclegw discover --json` prints.
type discoverResult struct {
	Address   string `json:"address"`
	Port      uint16 `json:"port"`
	URL       string `json:"url"`
	Security  string `json:"security"`
	Transport string `json:"transport"`
	From      string `json:"from"`
	Requests  int    `json:"requests"`
	Malformed int    `json:"malformed"`
	Ignored   int    `json:"ignored"`
	// Others answered too: two walls on one link, or a device spliced
	// into it.
	Others []string `json:"others,omitempty"`
}

// discoverSettle is how long the car listens for other walls after the
// first answer: on a PLC link every SECC answers within milliseconds.
const discoverSettle = 50 * time.Millisecond

func runDiscover(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("discover", stderr)
	iface := fs.String("iface", "", "the powerline modem's interface: send the SDP request to [ff02::1]:15118 there")
	target := fs.String("target", "", "ask this IPv6 address:port instead of multicast (static set-ups, tests)")
	attempts := fs.Int("attempts", sdp.DefaultAttempts, "requests to send before giving up")
	interval := fs.Duration("interval", sdp.DefaultInterval, "time between requests")
	asJSON := fs.Bool("json", false, "print JSON")
	logLevel := fs.String("log-level", "warn", "debug, info, warn or error")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	log, err := newLogger(stderr, *logLevel)
	if err != nil {
		return err
	}
	cfg := sdp.Config{Iface: *iface, Attempts: *attempts, Interval: *interval, Logger: log,
		Security: sdp.SecurityTLS, Transport: sdp.TransportTCP, Settle: discoverSettle}
	if *target != "" {
		ap, err := netip.ParseAddrPort(*target)
		if err != nil || !ap.Addr().Is6() {
			return fmt.Errorf("%w: --target %q: want an IPv6 address and port, e.g. [fe80::1%%eth1]:15118", errUsage, *target)
		}
		cfg.Target = ap
	}
	if cfg.Iface == "" && !cfg.Target.IsValid() {
		return fmt.Errorf("%w: give --iface IFACE (the PLC modem's interface) or --target ADDR:PORT", errUsage)
	}
	if *attempts < 1 || *interval <= 0 {
		return fmt.Errorf("%w: --attempts must be at least 1 and --interval positive", errUsage)
	}
	start := time.Now()
	res, err := sdp.Discover(ctx, cfg)
	if errors.Is(err, sdp.ErrNoResponse) {
		return fmt.Errorf("no wall answered: %d SDP requests over %s on %s (%d malformed and %d foreign datagrams ignored); "+
			"is the cable plugged in and the PLC link paired?", res.Requests, time.Since(start).Round(time.Millisecond),
			where(cfg), res.Malformed, res.Ignored)
	}
	if err != nil {
		return fmt.Errorf("discover on %s: %w", where(cfg), err)
	}
	r := res.Response
	out := discoverResult{Address: r.Addr.String(), Port: r.Port, URL: wallURL(r).String(),
		Security: sdp.SecurityName(r.Security), Transport: sdp.TransportName(r.Transport), From: res.From.String(),
		Requests: res.Requests, Malformed: res.Malformed, Ignored: res.Ignored}
	for _, o := range res.Others {
		out.Others = append(out.Others, o.String())
	}
	if *asJSON {
		return json.NewEncoder(stdout).Encode(out)
	}
	fmt.Fprintf(stdout, "wall found after %d request(s) in %s\n  address    %s\n  port       %d\n  security   %s\n  transport  %s\n  url        %s\n",
		out.Requests, time.Since(start).Round(time.Millisecond), out.Address, out.Port, out.Security, out.Transport, out.URL)
	if out.Malformed+out.Ignored > 0 {
		fmt.Fprintf(stdout, "  skipped    %d malformed, %d foreign datagrams\n", out.Malformed, out.Ignored)
	}
	if len(out.Others) > 0 {
		fmt.Fprintf(stdout, "  WARNING    %d other SECC(s) answered too: %s (two walls on one link, or a device spliced into it)\n",
			len(out.Others), strings.Join(out.Others, ", "))
	}
	return nil
}

func where(cfg sdp.Config) string {
	if cfg.Target.IsValid() {
		return cfg.Target.String()
	}
	return "[ff02::1%" + cfg.Iface + "]:15118"
}

// wallURL is the root of the wall's routes that an SDP answer announces:
// https when the wall says it serves TLS.
func wallURL(r sdp.Response) *url.URL {
	scheme := "http"
	if r.Security == sdp.SecurityTLS {
		scheme = "https"
	}
	return &url.URL{Scheme: scheme, Host: netip.AddrPortFrom(r.Addr, r.Port).String(), Path: "/"}
}
