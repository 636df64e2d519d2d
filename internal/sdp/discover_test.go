package sdp

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"satwatt/internal/clock"
)

// fakeSECC is a UDP socket on [::1] that a test scripts by hand.
func fakeSECC(t *testing.T) (*net.UDPConn, netip.AddrPort) {
	t.Helper()
	c, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, c.LocalAddr().(*net.UDPAddr).AddrPort()
}

// readRequest waits for one datagram and checks it is a valid request.
func readRequest(t *testing.T, c *net.UDPConn) netip.AddrPort {
	t.Helper()
	buf := make([]byte, 1500)
	c.SetReadDeadline(time.Now().Add(hangGuard))
	n, from, err := c.ReadFromUDPAddrPort(buf)
	if err != nil {
		t.Fatalf("no request: %v", err)
	}
	if req, err := ParseRequest(buf[:n]); err != nil || req != (Request{SecurityNone, TransportTCP}) {
		t.Fatalf("request %+v, %v", req, err)
	}
	return from
}

// runDiscover starts Discover and returns its outcome on a channel.
func runDiscover(ctx context.Context, cfg Config) <-chan discoverOutcome {
	out := make(chan discoverOutcome, 1)
	go func() {
		res, err := Discover(ctx, cfg)
		out <- discoverOutcome{res, err}
	}()
	return out
}

type discoverOutcome struct {
	res Result
	err error
}

// Garbage and foreign answers before the real one are skipped and counted.
func TestDiscoverSkipsBadAnswers(t *testing.T) {
	secc, target := fakeSECC(t)
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	// A manual clock that nobody advances: exactly one request is sent.
	out := runDiscover(ctx, Config{
		Iface: "lo", Target: target, Security: SecurityNone, Transport: TransportTCP,
		Clock: clock.NewManual(t0), Logger: testLogger(t),
	})
	car := readRequest(t, secc)

	mustResponse := func(addr string, port uint16) []byte {
		b, err := AppendResponse(nil, Response{netip.MustParseAddr(addr), port, SecurityNone, TransportTCP})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	replies := [][]byte{
		[]byte("hello"),                    // malformed
		unhex(t, validRequest),             // a request echoed back: ignored
		unhex(t, validResponse+"00"),       // length mismatch: malformed
		unhex(t, "01fe8001 00000002 8098"), // EXI, not SDP: ignored
		mustResponse("::", 15118),          // unusable address: ignored
		mustResponse("ff02::1", 15118),     // unusable address: ignored
		mustResponse("fe80::1:2:3:4", 0),   // unusable port: ignored
		{},                                 // empty: malformed
		mustResponse("fe80::1:2:3:4", 51111),
		mustResponse("fe80::9", 1), // after the answer: never read
	}
	for _, b := range replies {
		if _, err := secc.WriteToUDPAddrPort(b, car); err != nil {
			t.Fatal(err)
		}
	}
	o := <-out
	if o.err != nil {
		t.Fatal(o.err)
	}
	want := Result{
		Response: Response{netip.MustParseAddr("fe80::1:2:3:4%" + loIndex(t)), 51111, SecurityNone, TransportTCP},
		From:     target, Requests: 1, Malformed: 3, Ignored: 5,
	}
	if !reflect.DeepEqual(o.res, want) {
		t.Errorf("result\n %+v\nwant\n %+v", o.res, want)
	}
}

// Nobody answers: exactly Attempts requests, then an error that names the
// interface, the target and the count. The clock is moved by hand.
func TestDiscoverGivesUp(t *testing.T) {
	secc, target := fakeSECC(t)
	m := clock.NewManual(t0)
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	out := runDiscover(ctx, Config{
		Iface: "lo", Target: target, Security: SecurityNone, Transport: TransportTCP,
		Attempts: 3, Clock: m, Logger: testLogger(t),
	})
	var o discoverOutcome
wait:
	for {
		select {
		case o = <-out:
			break wait
		case <-ctx.Done():
			t.Fatal("Discover did not give up")
		default:
			if m.Waiters() > 0 {
				m.Advance(DefaultInterval)
			} else {
				time.Sleep(time.Millisecond)
			}
		}
	}
	if !errors.Is(o.err, ErrNoResponse) {
		t.Fatalf("error %v, want ErrNoResponse", o.err)
	}
	for _, s := range []string{"on lo", target.String(), "after 3 requests 250ms apart"} {
		if !strings.Contains(o.err.Error(), s) {
			t.Errorf("error %q does not say %q", o.err, s)
		}
	}
	if o.res.Requests != 3 {
		t.Errorf("%d requests, want 3", o.res.Requests)
	}
	// Loopback delivers during the send, so all requests are queued.
	for range 3 {
		readRequest(t, secc)
	}
	secc.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if _, _, err := secc.ReadFromUDPAddrPort(make([]byte, 100)); err == nil {
		t.Error("more than 3 requests sent")
	}
	if elapsed := m.Now().Sub(t0); elapsed != 3*DefaultInterval {
		t.Errorf("gave up after %v on the clock, want %v", elapsed, 3*DefaultInterval)
	}
}

func TestDiscoverStopsWithContext(t *testing.T) {
	_, target := fakeSECC(t)
	ctx, cancel := context.WithCancel(context.Background())
	out := runDiscover(ctx, Config{Target: target, Security: SecurityNone, Clock: clock.NewManual(t0), Logger: testLogger(t)})
	cancel()
	select {
	case o := <-out:
		if !errors.Is(o.err, context.Canceled) {
			t.Errorf("error %v, want context.Canceled", o.err)
		}
	case <-time.After(hangGuard):
		t.Fatal("Discover ignored the cancelled context")
	}
}

func TestDiscoverRefuses(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		msg  string
		is   error
	}{
		{"nowhere to send", Config{}, "needs an interface or a unicast target", nil},
		{"missing interface", Config{Iface: "nosuchif0"}, `interface "nosuchif0"`, nil},
		{"ipv4 target", Config{Target: netip.MustParseAddrPort("192.0.2.1:15118")}, "192.0.2.1", ErrAddress},
		{"bad security", Config{Iface: "lo", Security: 0x42}, "security 0x42", ErrSecurity},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.Logger = testLogger(t)
			_, err := Discover(context.Background(), tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.msg) || (tt.is != nil && !errors.Is(err, tt.is)) {
				t.Errorf("error %v, want one saying %q (is %v)", err, tt.msg, tt.is)
			}
		})
	}
}

// The request Discover sends is exactly the one a real car sent.
func TestDiscoverSendsWhatACarSends(t *testing.T) {
	secc, target := fakeSECC(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := runDiscover(ctx, Config{Target: target, Security: SecurityNone, Transport: TransportTCP, Clock: clock.NewManual(t0), Logger: testLogger(t)})
	buf := make([]byte, 100)
	secc.SetReadDeadline(time.Now().Add(hangGuard))
	n, _, err := secc.ReadFromUDPAddrPort(buf)
	if err != nil {
		t.Fatal(err)
	}
	if want := unhex(t, validRequest); !bytes.Equal(buf[:n], want) {
		t.Errorf("sent % x, want % x", buf[:n], want)
	}
	cancel()
	<-out
}

// TestDiscoverReportsASecondSECC: two SECCs answer the same request (two
// walls on one link, or a device spliced into it). With Settle the first
// is used and the other reported, each SECC once however often it answers.
// Real time: the settle window (a second) is far longer than loopback
// datagrams take, so all four answers land inside it.
func TestDiscoverReportsASecondSECC(t *testing.T) {
	first, target := fakeSECC(t)
	second, _ := fakeSECC(t)
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	out := runDiscover(ctx, Config{
		Iface: "lo", Target: target, Security: SecurityNone, Transport: TransportTCP,
		Settle: time.Second, Logger: testLogger(t),
	})
	car := readRequest(t, first)
	answer := func(c *net.UDPConn, addr string) {
		b, err := AppendResponse(nil, Response{netip.MustParseAddr(addr), 51111, SecurityNone, TransportTCP})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.WriteToUDPAddrPort(b, car); err != nil {
			t.Fatal(err)
		}
	}
	answer(first, "fe80::1")
	answer(second, "fe80::2")
	answer(second, "fe80::2")
	answer(first, "fe80::1")
	o := <-out
	if o.err != nil {
		t.Fatal(o.err)
	}
	wantOther := second.LocalAddr().(*net.UDPAddr).AddrPort()
	if o.res.Response.Addr.WithZone("") != netip.MustParseAddr("fe80::1") || len(o.res.Others) != 1 ||
		!sameSender(o.res.Others[0], wantOther) {
		t.Errorf("result %+v, want the first SECC's answer and %v among the others", o.res, wantOther)
	}
}
