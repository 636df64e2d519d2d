package canbus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"

	"satwatt/internal/canlog"
	"satwatt/internal/clock"
	"satwatt/internal/socketcand"
)

// Options configures Open and OpenBus. The zero value works: wall clock,
// the default logger, replays as fast as possible, bad input logged.
type Options struct {
	Clock  clock.Clock
	Logger *slog.Logger
	// Speed paces replays: 1 is the recorded speed, 0 as fast as possible,
	// 10 ten times faster. Replayed frames keep their recorded spacing in
	// Frame.Time whatever the speed; to run a whole simulation faster and
	// keep frame times in step with the clock, give a scaled clock
	// (clock.NewScaled) and Speed 1 instead.
	Speed float64
	// OnBadInput gets each bad log line (a *canlog.LineError) or bad
	// element from a server; the input is skipped. Nil logs them, a few
	// at a time.
	OnBadInput func(error)
	// Loop starts a replay over at the end of the file, with times that
	// keep increasing.
	Loop bool
}

// ErrBusDown is wrapped by Send while a live bus is lost and being
// reopened.
var ErrBusDown = errors.New("canbus: bus down")

// ErrClosed is returned by a closed Source.
var ErrClosed = errors.New("canbus: source closed")

// Stats are counters a source keeps; get them with a type assertion to
// StatsSource.
type Stats struct {
	Frames      uint64 // frames delivered
	BadInput    uint64 // lines or elements skipped
	ErrorFrames uint64 // kernel error frames skipped (SocketCAN)
	Reconnects  uint64 // times a lost live bus was reopened
}

// StatsSource is implemented by every Source that Open returns.
type StatsSource interface {
	Stats() Stats
}

// Kind is what carries the frames.
type Kind int

const (
	KindSocketCAN  Kind = iota + 1 // a live SocketCAN interface
	KindReplay                     // a candump or GVRET log file
	KindSocketcand                 // a bus on a socketcand server
)

func (k Kind) String() string {
	switch k {
	case KindSocketCAN:
		return "socketcan"
	case KindReplay:
		return "replay"
	case KindSocketcand:
		return "socketcand"
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// Spec is a parsed source description.
type Spec struct {
	Kind   Kind
	Iface  string        // KindSocketCAN
	Path   string        // KindReplay
	Format canlog.Format // KindReplay
	Addr   string        // KindSocketcand: host:port
	Bus    string        // KindSocketcand
}

func (s Spec) String() string {
	switch s.Kind {
	case KindSocketCAN:
		return "socketcan:" + s.Iface
	case KindReplay:
		return s.Format.String() + ":" + s.Path
	case KindSocketcand:
		return "socketcand://" + s.Addr + "/" + s.Bus
	}
	return "invalid spec"
}

// specForms is the help text for a spec that does not parse.
const specForms = "accepted forms: socketcan:IFACE, a bare interface name such as can0 or vcan0, " +
	"candump:PATH, gvret:PATH, a path ending in .log (candump) or .csv (gvret), " +
	"socketcand://HOST:PORT/BUS"

// ParseSpec reads a source description; see Open for the forms.
func ParseSpec(spec string) (Spec, error) {
	bad := func(reason string) (Spec, error) {
		return Spec{}, fmt.Errorf("canbus: bad source %q: %s; %s", spec, reason, specForms)
	}
	switch {
	case spec == "":
		return bad("empty")
	case strings.HasPrefix(spec, "socketcand://"):
		u, err := url.Parse(spec)
		if err != nil {
			return bad(err.Error())
		}
		if u.Host == "" || u.Hostname() == "" {
			return bad("missing host")
		}
		bus := strings.TrimPrefix(u.Path, "/")
		if bus == "" || strings.Contains(bus, "/") {
			return bad("need exactly one bus name after the host, as in socketcand://host:29536/can0")
		}
		if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
			return bad("unexpected user, query or fragment")
		}
		port := u.Port()
		if port == "" {
			port = strconv.Itoa(socketcand.DefaultPort)
		} else if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return bad("bad port")
		}
		return Spec{Kind: KindSocketcand, Addr: net.JoinHostPort(u.Hostname(), port), Bus: bus}, nil
	case strings.HasPrefix(spec, "socketcan:"):
		iface := strings.TrimPrefix(spec, "socketcan:")
		if err := checkIface(iface); err != nil {
			return bad(err.Error())
		}
		return Spec{Kind: KindSocketCAN, Iface: iface}, nil
	case strings.HasPrefix(spec, "candump:"):
		if p := strings.TrimPrefix(spec, "candump:"); p != "" {
			return Spec{Kind: KindReplay, Path: p, Format: canlog.Candump}, nil
		}
		return bad("missing path")
	case strings.HasPrefix(spec, "gvret:"):
		if p := strings.TrimPrefix(spec, "gvret:"); p != "" {
			return Spec{Kind: KindReplay, Path: p, Format: canlog.GVRET}, nil
		}
		return bad("missing path")
	}
	lower := strings.ToLower(spec)
	switch {
	case strings.HasSuffix(lower, ".log"):
		return Spec{Kind: KindReplay, Path: spec, Format: canlog.Candump}, nil
	case strings.HasSuffix(lower, ".csv"):
		return Spec{Kind: KindReplay, Path: spec, Format: canlog.GVRET}, nil
	case strings.ContainsAny(spec, ":/"):
		return bad("unknown kind")
	}
	if err := checkIface(spec); err != nil {
		return bad(err.Error())
	}
	return Spec{Kind: KindSocketCAN, Iface: spec}, nil
}

// checkIface applies Linux's rules for interface names (at most 15 bytes,
// no '/', ':' or blanks).
func checkIface(name string) error {
	if name == "" {
		return errors.New("missing interface name")
	}
	if len(name) > 15 {
		return errors.New("interface name longer than 15 characters")
	}
	if strings.ContainsAny(name, "/: \t\n") {
		return errors.New("interface name contains '/', ':' or a blank")
	}
	return nil
}

// Open opens a source of frames. spec is one of:
//
//	socketcan:IFACE, or a bare interface name (can0, vcan0)  live SocketCAN
//	candump:PATH, or PATH ending in .log                     candump -l replay
//	gvret:PATH, or PATH ending in .csv                       SavvyCAN/GVRET replay
//	socketcand://HOST:PORT/BUS                               socketcand server (port defaults to 29536)
//
// Live sources come back as a Bus (the result can be asserted to one), and
// reconnect by themselves when the interface or server goes away. A live
// source must be reachable when opened.
func Open(ctx context.Context, spec string, opts Options) (Source, error) {
	s, err := ParseSpec(spec)
	if err != nil {
		return nil, err
	}
	opts, err = opts.withDefaults()
	if err != nil {
		return nil, err
	}
	switch s.Kind {
	case KindReplay:
		return openReplay(s, opts)
	case KindSocketCAN:
		return openSocketCAN(ctx, s, opts)
	case KindSocketcand:
		return openSocketcand(ctx, s, opts)
	}
	return nil, fmt.Errorf("canbus: unsupported source kind %v", s.Kind)
}

// OpenBus opens a live source that can also transmit. Replays are refused.
func OpenBus(ctx context.Context, spec string, opts Options) (Bus, error) {
	s, err := ParseSpec(spec)
	if err != nil {
		return nil, err
	}
	if s.Kind == KindReplay {
		return nil, fmt.Errorf("canbus: open %q as a bus: a replay cannot transmit", spec)
	}
	src, err := Open(ctx, spec, opts)
	if err != nil {
		return nil, err
	}
	return src.(Bus), nil
}

func (o Options) withDefaults() (Options, error) {
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Speed < 0 || math.IsNaN(o.Speed) || math.IsInf(o.Speed, 0) {
		return o, fmt.Errorf("canbus: replay speed %v must be a finite number >= 0", o.Speed)
	}
	if o.OnBadInput == nil {
		o.OnBadInput = badInputLogger(o.Logger)
	}
	return o, nil
}

// badInputLogger logs the first few bad inputs and then every thousandth,
// so a garbage file cannot flood the log.
func badInputLogger(log *slog.Logger) func(error) {
	var n atomic.Uint64
	return func(err error) {
		if c := n.Add(1); c <= 10 || c%1000 == 0 {
			log.Warn("canbus: skipping bad input", "err", err, "bad_so_far", c)
		}
	}
}
