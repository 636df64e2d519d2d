package sdp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"time"

	"satwatt/internal/clock"
)

// Defaults from ISO 15118-2: the car repeats its request every 250 ms, at
// most 50 times.
const (
	DefaultInterval = 250 * time.Millisecond
	DefaultAttempts = 50
)

// ErrNoResponse means no usable answer came before the attempts ran out.
var ErrNoResponse = errors.New("no SDP response")

// Config configures the car's side.
type Config struct {
	// Iface is the powerline modem's interface. Required unless Target
	// is set.
	Iface string
	// Port is the SECC's UDP port; 0 means DefaultPort.
	Port uint16
	// Target replaces [ff02::1%Iface]:Port with a unicast address, for
	// static setups and tests. It must be IPv6.
	Target    netip.AddrPort
	Security  byte
	Transport byte
	Interval  time.Duration // 0: DefaultInterval
	Attempts  int           // 0: DefaultAttempts
	// Settle, after the first usable answer, keeps listening this long
	// for other SECCs answering the same request (two walls on one
	// link, or a device spliced into it); they are reported in
	// Result.Others. 0 returns at the first answer.
	Settle time.Duration
	Clock  clock.Clock  // nil: clock.Real{}
	Logger *slog.Logger // nil: slog.Default()
}

// Result is a successful discovery, or the counts of a failed one.
type Result struct {
	// Response is the first usable answer. A link-local Addr carries the
	// index of Iface as its zone (e.g. fe80::1%3), so it can be dialled
	// as is; From likewise.
	Response Response
	From     netip.AddrPort // who sent it
	// Others are the other SECCs whose usable answers came within
	// Config.Settle, each once.
	Others []netip.AddrPort
	// Requests is how many requests were sent, the answered one included.
	Requests int
	// Malformed and Ignored count datagrams skipped on the way: garbage,
	// and well-formed messages that are no usable response (another
	// payload type such as an echoed request, or an unusable address).
	Malformed int
	Ignored   int
}

// datagram is what the reader goroutine passes on: a parsed response or
// what was wrong with it, or the error that ended reading.
type datagram struct {
	resp Response
	from netip.AddrPort
	f    fault
	n    int
	err  error
}

// Discover sends SDP requests until a usable response arrives, the
// attempts run out (an error wrapping ErrNoResponse, with the counts in
// Result) or ctx ends.
func Discover(ctx context.Context, cfg Config) (Result, error) {
	if cfg.Port == 0 {
		cfg.Port = DefaultPort
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Attempts <= 0 {
		cfg.Attempts = DefaultAttempts
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	req, err := AppendRequest(nil, Request{Security: cfg.Security, Transport: cfg.Transport})
	if err != nil {
		return Result{}, err
	}
	if cfg.Target.IsValid() && !cfg.Target.Addr().Is6() {
		return Result{}, fmt.Errorf("sdp: target %v: %w", cfg.Target, ErrAddress)
	}
	if !cfg.Target.IsValid() && cfg.Iface == "" {
		return Result{}, errors.New("sdp: Discover needs an interface or a unicast target")
	}
	// Zones are the interface's index, not its name: Go caches names for a
	// minute, so a modem interface re-created under the same name would
	// otherwise be addressed by its dead index ("network is unreachable").
	where, zone := "any interface", ""
	if cfg.Iface != "" {
		ifi, err := net.InterfaceByName(cfg.Iface)
		if err != nil {
			return Result{}, fmt.Errorf("sdp: discovery interface %q: %w", cfg.Iface, err)
		}
		where, zone = cfg.Iface, strconv.Itoa(ifi.Index)
	}
	target, shown := cfg.Target, cfg.Target
	if !target.IsValid() {
		target = netip.AddrPortFrom(AllNodes.WithZone(zone), cfg.Port)
		shown = netip.AddrPortFrom(AllNodes.WithZone(cfg.Iface), cfg.Port)
	}
	log := cfg.Logger.With("iface", where, "target", shown.String())

	lc := net.ListenConfig{Control: bindControl(cfg.Iface)}
	pc, err := lc.ListenPacket(ctx, "udp6", "[::]:0")
	if err != nil {
		return Result{}, fmt.Errorf("sdp: discovery on %s: listen: %w", where, err)
	}
	conn := pc.(*net.UDPConn)
	done := make(chan struct{})
	in := make(chan datagram, 16)
	var wg sync.WaitGroup
	wg.Go(func() { readResponses(conn, in, done) })
	defer func() {
		close(done)
		conn.Close()
		wg.Wait()
	}()

	d := discovery{log: log, clk: cfg.Clock, zone: zone,
		badLog: limiter{every: DefaultLogEvery}, ignoreLog: limiter{every: DefaultLogEvery}}
	res := &d.res
	var sendErr error
	for {
		if res.Requests < cfg.Attempts {
			res.Requests++
			// A send can fail while the link is still coming up (no
			// address yet): keep trying, and report the last failure if
			// nothing ever answers.
			if _, err := conn.WriteToUDPAddrPort(req, target); err != nil {
				sendErr = err
				log.Debug("sdp: sending request failed", "attempt", res.Requests, "err", err)
			}
		}
		timer := cfg.Clock.After(cfg.Interval)
	wait:
		for {
			select {
			case <-ctx.Done():
				return *res, fmt.Errorf("sdp: discovery on %s stopped after %d requests: %w", where, res.Requests, ctx.Err())
			case <-timer:
				break wait
			case dg := <-in:
				if dg.err != nil {
					return *res, fmt.Errorf("sdp: discovery on %s: read: %w", where, dg.err)
				}
				if d.accept(dg) {
					d.settle(ctx, in, cfg.Settle)
					return *res, nil
				}
			}
		}
		if res.Requests >= cfg.Attempts {
			err := fmt.Errorf("sdp: %w on %s to %v after %d requests %v apart (%d malformed, %d ignored datagrams)",
				ErrNoResponse, where, shown, res.Requests, cfg.Interval, res.Malformed, res.Ignored)
			if sendErr != nil {
				err = fmt.Errorf("%w; last send error: %w", err, sendErr)
			}
			return *res, err
		}
	}
}

// discovery is the state of one Discover call.
type discovery struct {
	res               Result
	log               *slog.Logger
	clk               clock.Clock
	zone              string // for link-local addresses; "" leaves them alone
	badLog, ignoreLog limiter
}

// accept counts and logs a datagram that is no usable answer, or records a
// usable one in res and reports true.
func (d *discovery) accept(dg datagram) bool {
	switch {
	case dg.f.foreign():
		d.res.Ignored++
		if ok, n := d.ignoreLog.allow(d.clk.Now()); ok {
			d.log.Info("sdp: ignoring V2GTP message that is not an SDP response", "from", dg.from.String(),
				"payload_type", fmt.Sprintf("0x%04x", dg.f.got), "suppressed", n)
		}
		return false
	case dg.f.kind != faultNone:
		d.res.Malformed++
		if ok, n := d.badLog.allow(d.clk.Now()); ok {
			d.log.Warn("sdp: ignoring malformed datagram", "from", dg.from.String(), "bytes", dg.n,
				"err", dg.f.err(), "suppressed", n)
		}
		return false
	case !usable(dg.resp):
		d.res.Ignored++
		if ok, n := d.ignoreLog.allow(d.clk.Now()); ok {
			d.log.Warn("sdp: ignoring response with an unusable address", "from", dg.from.String(),
				"addr", dg.resp.Addr.String(), "port", dg.resp.Port, "suppressed", n)
		}
		return false
	}
	resp, from := dg.resp, dg.from
	if d.zone != "" {
		if resp.Addr.IsLinkLocalUnicast() {
			resp.Addr = resp.Addr.WithZone(d.zone)
		}
		if from.Addr().Zone() != "" {
			from = netip.AddrPortFrom(from.Addr().WithZone(d.zone), from.Port())
		}
	}
	d.res.Response, d.res.From = resp, from
	d.log.Info("sdp: found SECC", "from", dg.from.String(),
		"server", netip.AddrPortFrom(resp.Addr, resp.Port).String(),
		"security", SecurityName(resp.Security), "transport", TransportName(resp.Transport),
		"requests", d.res.Requests)
	return true
}

// settle listens for other SECCs' answers for a while after the first.
func (d *discovery) settle(ctx context.Context, in <-chan datagram, wait time.Duration) {
	if wait <= 0 {
		return
	}
	timer := d.clk.After(wait)
	for {
		select {
		case <-ctx.Done():
		case <-timer:
		case dg := <-in:
			if dg.err != nil {
				break
			}
			if dg.f.kind != faultNone || !usable(dg.resp) || sameSender(dg.from, d.res.From) ||
				slices.ContainsFunc(d.res.Others, func(o netip.AddrPort) bool { return sameSender(o, dg.from) }) {
				continue
			}
			from := dg.from
			if d.zone != "" && from.Addr().Zone() != "" {
				from = netip.AddrPortFrom(from.Addr().WithZone(d.zone), from.Port())
			}
			d.res.Others = append(d.res.Others, from)
			continue
		}
		break
	}
	if len(d.res.Others) > 0 {
		d.log.Warn("sdp: more than one SECC answered; using the first (two walls on one link, or a device spliced into it)",
			"first", d.res.From.String(), "others", fmt.Sprint(d.res.Others))
	}
}

// sameSender compares senders without the zone, which settle may have
// rewritten.
func sameSender(a, b netip.AddrPort) bool {
	return a.Addr().WithZone("") == b.Addr().WithZone("") && a.Port() == b.Port()
}

// usable reports whether a response names somewhere a car can connect to.
func usable(r Response) bool {
	return r.Port != 0 && r.Addr.IsValid() && !r.Addr.IsUnspecified() && !r.Addr.IsMulticast()
}

// readResponses parses every datagram on conn until it is closed.
func readResponses(conn *net.UDPConn, out chan<- datagram, done <-chan struct{}) {
	buf := make([]byte, maxDatagram)
	for {
		n, from, err := conn.ReadFromUDPAddrPort(buf)
		d := datagram{from: from, n: n, err: err}
		if err == nil {
			d.resp, d.f = parseResponse(buf[:n])
		}
		select {
		case out <- d:
		case <-done:
			return
		}
		if err != nil {
			return
		}
	}
}
