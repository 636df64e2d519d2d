package socketcand

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"go.einride.tech/can"

	"satwatt/internal/socketcand/socketcandtest"
)

// testTimeout bounds every wait in these tests; nothing sleeps for a fixed
// time.
const testTimeout = 10 * time.Second

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// startServer serves srv on a fresh loopback port until the test ends.
func startServer(t *testing.T, srv *Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(testTimeout):
			t.Error("Serve did not return after its context ended")
		}
	})
	return ln.Addr().String()
}

func dial(t *testing.T, addr, bus string) *Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	c, err := Dial(ctx, addr, bus)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

type receiver interface {
	Receive(context.Context, *can.Frame) (time.Time, error)
}

func receive(t *testing.T, r receiver) can.Frame {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	var f can.Frame
	if _, err := r.Receive(ctx, &f); err != nil {
		t.Fatalf("receive: %v", err)
	}
	return f
}

func send(t *testing.T, s interface {
	Send(context.Context, can.Frame) error
}, f can.Frame) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := s.Send(ctx, f); err != nil {
		t.Fatalf("send: %v", err)
	}
}

// waitFor polls cond until it holds or the test times out.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestFramesBothWays(t *testing.T) {
	srv := NewServer(ServerOptions{Logger: quietLogger()})
	addr := startServer(t, srv)
	a := dial(t, addr, "vcan0")
	b := dial(t, addr, "vcan0")
	other := dial(t, addr, "vcan1")
	port, err := srv.Attach("vcan0")
	if err != nil {
		t.Fatal(err)
	}
	defer port.Close()

	frames := []can.Frame{
		{ID: 0x123, Length: 4, Data: can.Data{0xDE, 0xAD, 0xBE, 0xEF}},
		{ID: 0x1F334455, IsExtended: true, Length: 8, Data: can.Data{1, 2, 3, 4, 5, 6, 7, 8}},
		{ID: 0x7FF},
		{ID: 0x100, IsRemote: true, Length: 3},
	}
	type member struct {
		name string
		r    receiver
		s    interface {
			Send(context.Context, can.Frame) error
		}
	}
	members := []member{{"a", a, a}, {"b", b, b}, {"port", port, port}}
	for _, from := range members {
		for _, f := range frames {
			send(t, from.s, f)
			for _, to := range members {
				if to.name == from.name {
					continue
				}
				if got := receive(t, to.r); got != f {
					t.Errorf("%s -> %s: got %v, want %v", from.name, to.name, got, f)
				}
			}
		}
	}
	// Nobody heard their own frames and the other bus heard nothing: a
	// marker frame sent now is the next thing each one sees.
	marker := can.Frame{ID: 0x42, Length: 1, Data: can.Data{0x42}}
	send(t, port, marker)
	for _, m := range members[:2] {
		if got := receive(t, m.r); got != marker {
			t.Errorf("%s: got %v, want only the marker", m.name, got)
		}
	}
	send(t, other, marker)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	var f can.Frame
	if _, err := a.Receive(ctx, &f); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a heard %v (err %v) from another bus", f, err)
	}
	// The cancelled Receive left the connection usable.
	send(t, b, marker)
	if got := receive(t, a); got != marker {
		t.Errorf("after a cancelled Receive: got %v, want %v", got, marker)
	}
}

// rawClient talks the protocol by hand, to send what a real client would
// not.
type rawClient struct {
	t  *testing.T
	nc net.Conn
	er elementReader
}

func dialRaw(t *testing.T, addr string) *rawClient {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &rawClient{t: t, nc: nc, er: elementReader{r: bufio.NewReader(nc)}}
}

func (c *rawClient) write(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.nc, s); err != nil {
		c.t.Fatal(err)
	}
}

func (c *rawClient) read() (string, error) {
	c.t.Helper()
	_ = c.nc.SetReadDeadline(time.Now().Add(testTimeout))
	el, err := c.er.next()
	return string(el), err
}

func (c *rawClient) expect(want string) {
	c.t.Helper()
	got, err := c.read()
	if err != nil {
		c.t.Fatalf("waiting for < %s >: %v", want, err)
	}
	if !strings.HasPrefix(got, want) {
		c.t.Fatalf("got < %s >, want < %s ... >", got, want)
	}
}

func TestMalformedCommands(t *testing.T) {
	srv := NewServer(ServerOptions{Logger: quietLogger()})
	addr := startServer(t, srv)
	port, err := srv.Attach("vcan0")
	if err != nil {
		t.Fatal(err)
	}
	defer port.Close()
	c := dialRaw(t, addr)
	c.expect("hi")
	c.write("< send 123 0 >")
	c.expect("error unknown command send (open a bus first)")
	c.write("< open vcan0 >")
	c.expect("ok")
	c.write("< rawmode >")
	c.expect("ok")

	tests := []struct {
		cmd  string
		want string
	}{
		{"< send 123 >", "error usage: send ID LEN"},
		{"< send 12G 0 >", "error bad hex digit in CAN ID"},
		{"< send 800 0 >", "error standard CAN ID exceeds 0x7FF"},
		{"< send 123 9 00 00 00 00 00 00 00 00 00 >", "error length must be 0 to 8"},
		{"< send 123 2 00 >", "error length is 2 but 1 data bytes follow"},
		{"< send 123 1 0x1 >", "error data byte 1 is not 1 or 2 hex digits"},
		{"< send 123 1 ZZ >", "error bad hex digit in data byte 1"},
		{"< sendrtr 123 1 00 >", "error sendrtr takes no data bytes"},
		{"< subscribe 0 0 123 >", "error subscribe is a BCM command"},
		{"< >", "error empty command"},
		{"< fly me to the moon >", "error unknown command fly"},
		// Found by FuzzServe: the error quoting a 250-byte command was
		// longer than the 256 bytes a client accepts.
		{"< " + strings.Repeat("x", 250) + " >", "error unknown command xxxxxxxx"},
		{"garbage< echo >", "error unexpected text outside"},
	}
	for _, tt := range tests {
		c.write(tt.cmd)
		c.expect(tt.want)
	}
	// The connection still works: echo, and a good frame reaches the port.
	c.write("< echo >")
	c.expect("echo")
	c.write("< send 123 2 1 f1 >")
	want := can.Frame{ID: 0x123, Length: 2, Data: can.Data{0x01, 0xF1}}
	if got := receive(t, port); got != want {
		t.Errorf("port got %v, want %v", got, want)
	}
	// Only the good frame got through: nothing else is queued.
	if n := len(port.m.queue); n != 0 {
		t.Errorf("%d more frames reached the port", n)
	}
}

func TestOverlongCommandClosesConnection(t *testing.T) {
	srv := NewServer(ServerOptions{Logger: quietLogger()})
	addr := startServer(t, srv)
	c := dialRaw(t, addr)
	c.expect("hi")
	c.write("< open " + strings.Repeat("x", 300) + " >")
	c.expect("error command longer than 256 bytes")
	if el, err := c.read(); err == nil {
		t.Fatalf("connection still open, got < %s >", el)
	}
}

func TestOpenUnknownBus(t *testing.T) {
	srv := NewServer(ServerOptions{Buses: []string{"vcan0"}, Logger: quietLogger()})
	addr := startServer(t, srv)
	c := dialRaw(t, addr)
	c.expect("hi")
	c.write("< open can9 >")
	c.expect("error could not open bus")
	if el, err := c.read(); err == nil {
		t.Fatalf("connection still open, got < %s >", el)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	var se *ServerError
	if _, err := Dial(ctx, addr, "can9"); !errors.As(err, &se) {
		t.Errorf("Dial to an unknown bus: err = %v, want a ServerError", err)
	}
	if _, err := Dial(ctx, addr, "vcan0"); err != nil {
		t.Errorf("Dial to a listed bus: %v", err)
	}
}

func TestSlowClientDoesNotBlockHub(t *testing.T) {
	srv := NewServer(ServerOptions{QueueLen: 64, Logger: quietLogger()})
	addr := startServer(t, srv)
	// The slow client opens the bus and then never reads again.
	slow := dialRaw(t, addr)
	if err := slow.nc.(*net.TCPConn).SetReadBuffer(4096); err != nil {
		t.Fatal(err)
	}
	slow.expect("hi")
	slow.write("< open vcan0 >< rawmode >")
	slow.expect("ok")
	slow.expect("ok")
	src, err := srv.Attach("vcan0")
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := srv.Attach("vcan0")
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()

	slowName := slow.nc.LocalAddr().String()
	slowDrops := func() uint64 {
		for _, st := range srv.Stats() {
			if st.Member == slowName {
				return st.Drops
			}
		}
		t.Fatal("the slow client is no longer a member")
		return 0
	}
	// Send in batches that fit dst's queue and let dst drain each one, so
	// only a member that stopped reading can fall behind. Go on until the
	// slow client has lost far more than its queue and socket buffers could
	// hold: it is stuck, frames for it are dropped, and dst still gets
	// every one.
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	f := can.Frame{ID: 0x123, Length: 8}
	sent := 0
	const wantDrops = 20000
	for slowDrops() < wantDrops {
		for range 32 {
			sent++
			f.Data[0], f.Data[1], f.Data[2] = byte(sent), byte(sent>>8), byte(sent>>16)
			if err := src.Send(ctx, f); err != nil {
				t.Fatalf("send after %d frames: %v", sent, err)
			}
		}
		for range 32 {
			var got can.Frame
			if _, err := dst.Receive(ctx, &got); err != nil {
				t.Fatalf("dst after %d frames: %v", sent, err)
			}
		}
	}
	if d := dst.Drops(); d != 0 {
		t.Errorf("%d frames dropped for a member that kept up", d)
	}
	// The hub still serves new clients both ways.
	fresh := dial(t, addr, "vcan0")
	marker := can.Frame{ID: 0x7FF, Length: 1, Data: can.Data{0xAA}}
	send(t, fresh, marker)
	if got := receive(t, dst); got != marker {
		t.Errorf("dst got %v, want %v", got, marker)
	}
	send(t, src, marker)
	if got := receive(t, fresh); got != marker {
		t.Errorf("fresh client got %v, want %v", got, marker)
	}
	t.Logf("sent %d frames; %d dropped for the slow client", sent, slowDrops())
}

func TestClientReportsGarbage(t *testing.T) {
	script := "< frame 123 1.000000 11 >" +
		"< frame 1Z3 1.000000 11 >" +
		"noise" +
		"< frame 124 2.5 2233 >" +
		"< error 004 3.000000 >" +
		"< fdframe 123 00 1.0 11 >" +
		"< " + strings.Repeat("A", 400) + " >" +
		"< bogus >" +
		"< ok >< frame 1FFFFFFF 4.000001 >"
	addr := socketcandtest.Scripted(t, script)
	c := dial(t, addr, "can0")
	want := []struct {
		id     uint32
		reason string
	}{
		{id: 0x123},
		{reason: "bad hex digit in CAN ID"},
		{reason: "unexpected text outside < >"},
		{id: 0x124},
		{reason: "server error: 004 3.000000"},
		{reason: "CAN FD frames are not supported"},
		{reason: "element longer than 256 bytes"},
		{reason: "unknown element"},
		{id: 0x1FFFFFFF},
	}
	for i, w := range want {
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		var f can.Frame
		ts, err := c.Receive(ctx, &f)
		cancel()
		if w.reason != "" {
			var pe *ProtocolError
			var se *ServerError
			if !errors.As(err, &pe) && !errors.As(err, &se) {
				t.Fatalf("step %d: err = %v, want a protocol or server error", i, err)
			}
			if !strings.Contains(err.Error(), w.reason) {
				t.Errorf("step %d: err = %v, want %q", i, err, w.reason)
			}
			continue
		}
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if f.ID != w.id {
			t.Errorf("step %d: ID %X, want %X", i, f.ID, w.id)
		}
		if ts.IsZero() {
			t.Errorf("step %d: zero timestamp", i)
		}
	}
}

func TestDialErrors(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	tests := []struct {
		name string
		bus  string
		want string
	}{
		{"bad bus name", "has space", "contains"},
		{"long bus name", strings.Repeat("b", 17), "longer than 16"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Dial(ctx, "127.0.0.1:1", tt.bus)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want %q", err, tt.want)
			}
		})
	}
}
