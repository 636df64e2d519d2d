package sdp

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"satwatt/internal/clock"
)

// hangGuard bounds waits that only end early when something is broken; no
// test asserts how long anything takes.
const hangGuard = 30 * time.Second

var t0 = time.Date(2026, 11, 25, 2, 0, 0, 0, time.UTC)

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// capture keeps log records so tests can count lines.
type capture struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (c *capture) Enabled(context.Context, slog.Level) bool { return true }
func (c *capture) Handle(_ context.Context, r slog.Record) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.recs = append(c.recs, r.Clone())
	return nil
}
func (c *capture) WithAttrs([]slog.Attr) slog.Handler { return c }
func (c *capture) WithGroup(string) slog.Handler      { return c }

func (c *capture) at(level slog.Level) []slog.Record {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []slog.Record
	for _, r := range c.recs {
		if r.Level == level {
			out = append(out, r)
		}
	}
	return out
}

func attr(r slog.Record, key string) slog.Value {
	var v slog.Value
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == key {
			v = a.Value
			return false
		}
		return true
	})
	return v
}

func loIndex(t testing.TB) string {
	t.Helper()
	ifi, err := net.InterfaceByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	return strconv.Itoa(ifi.Index)
}

// freePort finds a UDP port nobody uses right now.
func freePort(t testing.TB) uint16 {
	t.Helper()
	c, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6unspecified})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return uint16(c.LocalAddr().(*net.UDPAddr).Port)
}

// serve runs a responder until the test ends and returns once it listens.
func serve(t *testing.T, r *Responder) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(hangGuard):
			t.Error("Serve did not return after cancel")
		}
	})
	select {
	case <-r.Listening():
	case err := <-done:
		t.Fatalf("Serve returned before listening: %v", err)
	case <-time.After(hangGuard):
		t.Fatal("responder never started listening")
	}
}

func loResponder(t testing.TB, cfg ResponderConfig) *Responder {
	t.Helper()
	if cfg.Iface == "" {
		cfg.Iface = "lo"
	}
	if !cfg.Announce.IsValid() {
		cfg.Announce = netip.MustParseAddrPort("[::1]:8443")
	}
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	r, err := NewResponder(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestNewResponderRefuses(t *testing.T) {
	ap := netip.MustParseAddrPort("[fe80::1]:80")
	tests := []struct {
		name string
		cfg  ResponderConfig
		msg  string
	}{
		{"no interface", ResponderConfig{Announce: ap}, "needs an interface"},
		{"bad security", ResponderConfig{Iface: "x", Announce: ap, Security: 3}, "security 0x03"},
		{"bad transport", ResponderConfig{Iface: "x", Announce: ap, Transport: 3}, "transport 0x03"},
		{"ipv4 announce", ResponderConfig{Iface: "x", Announce: netip.MustParseAddrPort("192.0.2.1:80")}, "not an IPv6 address"},
		{"nothing to announce", ResponderConfig{Iface: "x"}, "needs Announce or ServerPort"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewResponder(tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %v, want one saying %q", err, tt.msg)
			}
		})
	}
}

func TestServeFailsClearly(t *testing.T) {
	tests := []struct {
		name string
		cfg  ResponderConfig
		is   error
		msg  string
	}{
		{"missing interface", ResponderConfig{Iface: "nosuchif0", ServerPort: 80}, nil, `interface "nosuchif0"`},
		// lo has ::1 but no fe80:: address.
		{"no link-local address", ResponderConfig{Iface: "lo", ServerPort: 80}, ErrNoLinkLocal, `interface "lo": no IPv6 link-local address`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.Logger = testLogger(t)
			r, err := NewResponder(tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			err = r.Serve(context.Background())
			if err == nil || !strings.Contains(err.Error(), tt.msg) || (tt.is != nil && !errors.Is(err, tt.is)) {
				t.Errorf("error %v, want one saying %q (is %v)", err, tt.msg, tt.is)
			}
		})
	}
}

func TestServeTwice(t *testing.T) {
	r := loResponder(t, ResponderConfig{Port: freePort(t)})
	serve(t, r)
	if err := r.Serve(context.Background()); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Errorf("second Serve: %v", err)
	}
}

// Unexpected datagrams are logged at most once per LogEvery, with the
// number of datagrams that went unlogged.
func TestHandleCountsAndRateLimitsLogs(t *testing.T) {
	m := clock.NewManual(t0)
	logs := &capture{}
	r := loResponder(t, ResponderConfig{Clock: m, Logger: slog.New(logs), LogEvery: 10 * time.Second})
	if _, err := r.prepare(); err != nil {
		t.Fatal(err)
	}
	src := netip.MustParseAddrPort("[fe80::2%lo]:49153")
	garbage := []byte("not sdp at all")

	for range 10 {
		if a, _ := r.handle(garbage, src); a != nil {
			t.Fatal("answered garbage")
		}
	}
	m.Advance(9 * time.Second)
	r.handle(garbage, src)
	if n := len(logs.at(slog.LevelWarn)); n != 1 {
		t.Fatalf("%d warnings for 11 datagrams within 10 s, want 1", n)
	}
	m.Advance(time.Second)
	r.handle(garbage, src)
	warns := logs.at(slog.LevelWarn)
	if len(warns) != 2 {
		t.Fatalf("%d warnings after 10 s, want 2", len(warns))
	}
	if got := attr(warns[0], "suppressed").Uint64(); got != 0 {
		t.Errorf("first warning: suppressed %d, want 0", got)
	}
	if got := attr(warns[1], "suppressed").Uint64(); got != 10 {
		t.Errorf("second warning: suppressed %d, want 10", got)
	}
	if err := attr(warns[0], "err").Any().(error); !errors.Is(err, ErrVersion) {
		t.Errorf("first warning's error %v, want ErrVersion", err)
	}

	// A response sent to the responder is V2GTP, just not for it.
	resp := unhex(t, validResponse)
	if a, _ := r.handle(resp, src); a != nil {
		t.Fatal("answered a response")
	}
	if got, req := r.handle(unhex(t, validRequest), src); !bytes.Equal(got, r.answer) || req != (Request{SecurityNone, TransportTCP}) {
		t.Fatalf("answer % x for %+v, want % x", got, req, r.answer)
	}
	if got, want := r.Stats(), (Stats{Malformed: 12, Ignored: 1}); got != want {
		t.Errorf("stats %+v, want %+v (handle does not send, so nothing is answered yet)", got, want)
	}
}

func TestHandleDoesNotAllocate(t *testing.T) {
	r := loResponder(t, ResponderConfig{Logger: slog.New(slog.DiscardHandler), LogEvery: time.Hour})
	if _, err := r.prepare(); err != nil {
		t.Fatal(err)
	}
	src := netip.MustParseAddrPort("[fe80::2%lo]:49153")
	req, resp := unhex(t, validRequest), unhex(t, validResponse)
	garbage := unhex(t, "01fe9000 00000002 1077")
	// The first of each kind is logged, which may allocate.
	r.handle(garbage, src)
	r.handle(resp, src)
	for name, b := range map[string][]byte{"request": req, "garbage": garbage, "foreign": resp} {
		if n := testing.AllocsPerRun(1000, func() { r.handle(b, src) }); n != 0 {
			t.Errorf("%s: %v allocations per datagram", name, n)
		}
	}
}

func BenchmarkHandleDatagram(b *testing.B) {
	r := loResponder(b, ResponderConfig{Logger: slog.New(slog.DiscardHandler)})
	if _, err := r.prepare(); err != nil {
		b.Fatal(err)
	}
	src := netip.MustParseAddrPort("[fe80::2%lo]:49153")
	for _, bc := range []struct {
		name string
		in   string
	}{
		{"request", validRequest},
		{"garbage", "01fe9000 00000002 1077"},
		{"foreign", validResponse},
	} {
		in := unhex(b, bc.in)
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				r.handle(in, src)
			}
		})
	}
}

// Responder and Discover over real sockets on [::1]: lo has no MULTICAST
// flag, so the car is pointed at the responder by unicast.
func TestUnicastRoundTrip(t *testing.T) {
	tests := []struct {
		name     string
		announce string
		want     string // Addr of the result: link-local gets lo's index as zone
	}{
		{"loopback server", "[::1]:8443", "::1"},
		{"link-local server", "[fe80::1234]:30000", "fe80::1234%" + loIndex(t)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			port := freePort(t)
			ap := netip.MustParseAddrPort(tt.announce)
			r := loResponder(t, ResponderConfig{Port: port, Announce: ap, Security: SecurityTLS})
			serve(t, r)
			ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
			defer cancel()
			res, err := Discover(ctx, Config{
				Iface: "lo", Target: netip.AddrPortFrom(netip.IPv6Loopback(), port),
				Security: SecurityNone, Transport: TransportTCP, Logger: testLogger(t),
			})
			if err != nil {
				t.Fatal(err)
			}
			want := Response{Addr: netip.MustParseAddr(tt.want), Port: ap.Port(), Security: SecurityTLS, Transport: TransportTCP}
			if res.Response != want {
				t.Errorf("response %+v, want %+v", res.Response, want)
			}
			if res.From != netip.AddrPortFrom(netip.IPv6Loopback(), port) {
				t.Errorf("answer from %v", res.From)
			}
			if res.Requests < 1 || res.Malformed != 0 || res.Ignored != 0 {
				t.Errorf("result counts %+v", res)
			}
			if s := r.Stats(); s.Malformed != 0 || s.Ignored != 0 || s.SendFailed != 0 {
				t.Errorf("responder stats %+v", s)
			}
		})
	}
}

// garbageDatagram returns the i-th of a mix of malformed datagrams: random
// bytes that cannot start a V2GTP header, and near misses of a request.
func garbageDatagram(rng *rand.Rand, i int) []byte {
	switch i % 6 {
	case 0:
		b := make([]byte, rng.IntN(64))
		for j := range b {
			b[j] = byte(rng.Uint32())
		}
		if len(b) > 0 && b[0] == ProtocolVersion {
			b[0] = 0x02
		}
		return b
	case 1:
		return []byte{0x01, 0xfd, 0x90, 0x00, 0, 0, 0, 2, 0x10, 0x00} // inverse
	case 2:
		return []byte{0x01, 0xfe, 0x90, 0x00, 0, 0, 0, 9, 0x10, 0x00} // length
	case 3:
		return []byte{0x01, 0xfe, 0x90, 0x00, 0, 0, 0, 2, byte(rng.IntN(0x0f) + 1), 0x00} // security
	case 4:
		return make([]byte, rng.IntN(HeaderLen)) // shorter than a header
	default:
		b := make([]byte, 2000) // oversized, length field says 2
		copy(b, []byte{0x01, 0xfe, 0x90, 0x00, 0, 0, 0, 2})
		return b
	}
}

// Thousands of garbage datagrams with valid requests among them: every
// request is answered and every bad datagram is counted.
func TestFlood(t *testing.T) {
	const (
		garbage = 5000
		every   = 50 // a valid request after this many bad datagrams
		foreign = 7
	)
	port := freePort(t)
	r := loResponder(t, ResponderConfig{Port: port})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Serve(ctx) }()
	defer cancel()
	select {
	case <-r.Listening():
	case err := <-done:
		t.Fatal(err)
	}

	conn, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	dst := netip.AddrPortFrom(netip.IPv6Loopback(), port)
	send := func(b []byte) {
		t.Helper()
		if _, err := conn.WriteToUDPAddrPort(b, dst); err != nil {
			t.Fatal(err)
		}
	}
	req, resp := unhex(t, validRequest), unhex(t, validResponse)
	answers := 0
	// Waiting for each answer keeps the responder's receive queue short,
	// so the kernel never drops a datagram and the counts are exact.
	ask := func() {
		t.Helper()
		send(req)
		buf := make([]byte, 100)
		conn.SetReadDeadline(time.Now().Add(hangGuard))
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("no answer to request %d: %v", answers+1, err)
		}
		if !bytes.Equal(buf[:n], r.answer) {
			t.Fatalf("answer % x, want % x", buf[:n], r.answer)
		}
		answers++
	}
	rng := rand.New(rand.NewPCG(15118, 1))
	for i := range garbage {
		send(garbageDatagram(rng, i))
		if i%(garbage/foreign) == 0 && i/(garbage/foreign) < foreign {
			send(resp)
		}
		if i%every == every-1 {
			ask()
		}
	}
	ask()

	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	want := Stats{Answered: uint64(answers), Malformed: garbage, Ignored: foreign}
	if got := r.Stats(); got != want {
		t.Errorf("stats %+v, want %+v", got, want)
	}
	if answers != garbage/every+1 {
		t.Errorf("%d answers", answers)
	}
}

// The whole serve loop, sockets included, does not allocate per datagram.
// Counting the process's allocations is coarse (the runtime and the test
// itself may allocate a little), so the bound is far below one per
// datagram rather than zero.
func TestServeLoopDoesNotAllocate(t *testing.T) {
	const datagrams = 5000
	port := freePort(t)
	r := loResponder(t, ResponderConfig{Port: port, Logger: slog.New(slog.DiscardHandler)})
	serve(t, r)
	conn, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	dst := netip.AddrPortFrom(netip.IPv6Loopback(), port)
	garbage, req := []byte("garbage"), unhex(t, validRequest)
	buf := make([]byte, 100)
	conn.SetReadDeadline(time.Now().Add(hangGuard))
	// Each request's answer proves everything sent before it was handled.
	run := func(n int) {
		for i := range n {
			conn.WriteToUDPAddrPort(garbage, dst)
			if i%50 == 49 || i == n-1 {
				conn.WriteToUDPAddrPort(req, dst)
				if _, _, err := conn.ReadFromUDPAddrPort(buf); err != nil {
					t.Fatalf("no answer: %v", err)
				}
			}
		}
	}
	run(100) // warm up: the first datagrams of each kind are logged
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	run(datagrams)
	runtime.ReadMemStats(&after)
	if n := after.Mallocs - before.Mallocs; n > datagrams/20 {
		t.Errorf("%d allocations for %d datagrams", n, datagrams+datagrams/50)
	}
}
