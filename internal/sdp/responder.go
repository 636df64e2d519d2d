package sdp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync/atomic"
	"time"

	"golang.org/x/net/ipv6"

	"satwatt/internal/clock"
)

// DefaultLogEvery is how often, at most, the responder logs each kind of
// unexpected datagram; the line carries how many went unlogged.
const DefaultLogEvery = 10 * time.Second

// maxDatagram is a whole UDP payload, so an oversized datagram is reported
// with its true length instead of being cut to fit.
const maxDatagram = 1 << 16

// ErrNoLinkLocal means an interface has no IPv6 link-local address to
// announce.
var ErrNoLinkLocal = errors.New("no IPv6 link-local address")

// AllNodes is the link-local all-nodes group cars send requests to.
var AllNodes = netip.MustParseAddr("ff02::1")

// ResponderConfig configures the wall's side.
type ResponderConfig struct {
	// Iface is the powerline modem's interface. Required.
	Iface string
	// Port is the UDP port to listen on; 0 means DefaultPort.
	Port uint16
	// Announce is the address and port of the wall's server, sent in
	// every answer. When it is the zero value, the link-local address of
	// Iface with ServerPort is announced.
	Announce   netip.AddrPort
	ServerPort uint16
	// Security and Transport are what the server really offers; the
	// answer says so whatever the car asked for, and the car decides.
	Security  byte
	Transport byte
	Clock     clock.Clock   // nil: clock.Real{}
	Logger    *slog.Logger  // nil: slog.Default()
	LogEvery  time.Duration // 0: DefaultLogEvery
}

// Stats counts what the responder has seen.
type Stats struct {
	Answered   uint64 // requests answered
	Malformed  uint64 // datagrams that are not a valid SDP request
	Ignored    uint64 // well-formed V2GTP messages of another payload type
	SendFailed uint64 // answers the kernel refused to send
}

// Responder answers SDP requests on one interface.
type Responder struct {
	cfg       ResponderConfig
	log       *slog.Logger
	clk       clock.Clock
	started   atomic.Bool
	listening chan struct{}

	// answer is the encoded response, fixed when Serve starts: it only
	// depends on the configuration and the interface's address.
	answer   []byte
	announce netip.AddrPort

	answered, malformed, ignored, sendFailed atomic.Uint64

	// Only the Serve goroutine touches these.
	badLog, ignoredLog, answeredLog, failLog limiter
}

// NewResponder checks cfg and fills in defaults. It does no I/O.
func NewResponder(cfg ResponderConfig) (*Responder, error) {
	if cfg.Iface == "" {
		return nil, errors.New("sdp: responder needs an interface")
	}
	if err := checkValues(cfg.Security, cfg.Transport); err != nil {
		return nil, err
	}
	if cfg.Announce.IsValid() {
		if !cfg.Announce.Addr().Is6() {
			return nil, fmt.Errorf("sdp: announced address %v: %w", cfg.Announce, ErrAddress)
		}
	} else if cfg.ServerPort == 0 {
		return nil, errors.New("sdp: responder needs Announce or ServerPort")
	}
	if cfg.Port == 0 {
		cfg.Port = DefaultPort
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.LogEvery <= 0 {
		cfg.LogEvery = DefaultLogEvery
	}
	r := &Responder{
		cfg:       cfg,
		log:       cfg.Logger.With("iface", cfg.Iface),
		clk:       cfg.Clock,
		listening: make(chan struct{}),
	}
	for _, l := range []*limiter{&r.badLog, &r.ignoredLog, &r.answeredLog, &r.failLog} {
		l.every = cfg.LogEvery
	}
	return r, nil
}

// Stats returns the counters so far. Safe to call at any time.
func (r *Responder) Stats() Stats {
	return Stats{
		Answered:   r.answered.Load(),
		Malformed:  r.malformed.Load(),
		Ignored:    r.ignored.Load(),
		SendFailed: r.sendFailed.Load(),
	}
}

// Listening is closed once Serve's socket is bound and joined, so a caller
// knows requests will no longer be lost. It stays open if Serve fails.
func (r *Responder) Listening() <-chan struct{} { return r.listening }

// LinkLocalAddr returns the first IPv6 link-local address of an interface,
// zoned with its name.
func LinkLocalAddr(iface string) (netip.Addr, error) {
	ifi, err := net.InterfaceByName(iface)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("sdp: interface %q: %w", iface, err)
	}
	return linkLocalAddr(ifi)
}

func linkLocalAddr(ifi *net.Interface) (netip.Addr, error) {
	addrs, err := ifi.Addrs()
	if err != nil {
		return netip.Addr{}, fmt.Errorf("sdp: addresses of %q: %w", ifi.Name, err)
	}
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok || ipn.IP.To4() != nil {
			continue
		}
		if ip, ok := netip.AddrFromSlice(ipn.IP); ok && ip.IsLinkLocalUnicast() {
			return ip.WithZone(ifi.Name), nil
		}
	}
	return netip.Addr{}, fmt.Errorf("sdp: interface %q: %w (is IPv6 enabled on it?)", ifi.Name, ErrNoLinkLocal)
}

// prepare resolves the interface and encodes the answer.
func (r *Responder) prepare() (*net.Interface, error) {
	ifi, err := net.InterfaceByName(r.cfg.Iface)
	if err != nil {
		return nil, fmt.Errorf("sdp: responder interface %q: %w", r.cfg.Iface, err)
	}
	ap := r.cfg.Announce
	if !ap.IsValid() {
		a, err := linkLocalAddr(ifi)
		if err != nil {
			return nil, err
		}
		ap = netip.AddrPortFrom(a, r.cfg.ServerPort)
	}
	r.announce = ap
	r.answer, err = AppendResponse(make([]byte, 0, ResponseLen), Response{
		Addr: ap.Addr(), Port: ap.Port(), Security: r.cfg.Security, Transport: r.cfg.Transport,
	})
	if err != nil {
		return nil, err
	}
	return ifi, nil
}

// Serve listens on [::]:Port on the interface and answers requests until
// ctx ends, then returns nil. It may be called once. It returns an error
// at once if the interface is missing or has nothing to announce, and
// later only if reading the socket fails; bad datagrams never end it.
func (r *Responder) Serve(ctx context.Context) error {
	if !r.started.CompareAndSwap(false, true) {
		return errors.New("sdp: Responder.Serve called twice")
	}
	ifi, err := r.prepare()
	if err != nil {
		return err
	}
	if ctx.Err() != nil {
		return nil
	}
	lc := net.ListenConfig{Control: bindControl(ifi.Name)}
	addr := net.JoinHostPort("::", strconv.Itoa(int(r.cfg.Port)))
	pc, err := lc.ListenPacket(ctx, "udp6", addr)
	if err != nil {
		return fmt.Errorf("sdp: responder on %s: listen %s: %w", ifi.Name, addr, err)
	}
	conn := pc.(*net.UDPConn)
	defer conn.Close()
	if ifi.Flags&net.FlagMulticast != 0 {
		// Every IPv6 node is in ff02::1, so Linux delivers it anyway
		// unless IPV6_MULTICAST_ALL is off; joining makes that moot.
		group := &net.UDPAddr{IP: net.IPv6linklocalallnodes}
		if err := ipv6.NewPacketConn(conn).JoinGroup(ifi, group); err != nil {
			return fmt.Errorf("sdp: responder on %s: join %v: %w", ifi.Name, AllNodes, err)
		}
	} else {
		r.log.Warn("sdp: interface has no MULTICAST flag; answering unicast requests only")
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	close(r.listening)
	r.log.Info("sdp: responder listening", "port", r.cfg.Port, "announce", r.announce.String(),
		"security", SecurityName(r.cfg.Security), "transport", TransportName(r.cfg.Transport))

	buf := make([]byte, maxDatagram)
	for {
		n, src, err := conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if ctx.Err() != nil {
				r.log.Info("sdp: responder stopped", "stats", r.Stats())
				return nil
			}
			return fmt.Errorf("sdp: responder on %s: read: %w", ifi.Name, err)
		}
		answer, req := r.handle(buf[:n], src)
		if answer == nil {
			continue
		}
		if _, err := conn.WriteToUDPAddrPort(answer, src); err != nil {
			r.sendFailed.Add(1)
			if ok, skipped := r.failLog.allow(r.clk.Now()); ok {
				r.log.Warn("sdp: cannot send answer", "to", src.String(), "err", err, "suppressed", skipped)
			}
			continue
		}
		r.answered.Add(1)
		if ok, skipped := r.answeredLog.allow(r.clk.Now()); ok {
			r.log.Info("sdp: answered request", "from", src.String(),
				"asked_security", SecurityName(req.Security), "asked_transport", TransportName(req.Transport),
				"suppressed", skipped)
		}
	}
}

// handle looks at one datagram and returns the answer to send, or nil. It
// is the whole per-datagram cost, so it must not allocate unless it logs.
func (r *Responder) handle(b []byte, src netip.AddrPort) ([]byte, Request) {
	req, f := parseRequest(b)
	switch {
	case f.kind == faultNone:
		// Whatever the car asked for, the answer says what is offered
		// and the car decides.
		return r.answer, req
	case f.foreign():
		r.ignored.Add(1)
		if ok, skipped := r.ignoredLog.allow(r.clk.Now()); ok {
			r.log.Info("sdp: ignoring V2GTP message that is not an SDP request", "from", src.String(),
				"payload_type", fmt.Sprintf("0x%04x", f.got), "suppressed", skipped)
		}
	default:
		r.malformed.Add(1)
		if ok, skipped := r.badLog.allow(r.clk.Now()); ok {
			r.log.Warn("sdp: ignoring malformed datagram", "from", src.String(), "bytes", len(b),
				"err", f.err(), "suppressed", skipped)
		}
	}
	return nil, Request{}
}

// limiter lets one log line through per period and counts the rest, so a
// flood shows up as one line with a number instead of a flood of lines.
type limiter struct {
	every      time.Duration
	last       time.Time
	logged     bool
	suppressed uint64
}

// allow reports whether to log now and, if so, how many lines were
// suppressed since the last one.
func (l *limiter) allow(now time.Time) (bool, uint64) {
	if l.logged && now.Sub(l.last) < l.every {
		l.suppressed++
		return false, 0
	}
	n := l.suppressed
	l.last, l.logged, l.suppressed = now, true, 0
	return true, n
}
