package canbus

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"go.einride.tech/can"

	"satwatt/internal/clock"
	"satwatt/internal/socketcand"
	"satwatt/internal/socketcand/socketcandtest"
)

// serveOn runs srv on ln until stop is called; stop waits for Serve.
func serveOn(t *testing.T, srv *socketcand.Server, ln net.Listener) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Serve: %v", err)
				}
			case <-time.After(testTimeout):
				t.Error("Serve did not stop")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func listen(t *testing.T, addr string) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

func openBus(t *testing.T, spec string, opts Options) Bus {
	t.Helper()
	b, err := OpenBus(timeout(t), spec, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func recv(t *testing.T, s Source) Frame {
	t.Helper()
	var f Frame
	if err := s.Receive(timeout(t), &f); err != nil {
		t.Fatalf("receive: %v", err)
	}
	return f
}

func TestSocketcandEndToEnd(t *testing.T) {
	clk := clock.NewManual(epoch)
	srv := socketcand.NewServer(socketcand.ServerOptions{Clock: clk, Logger: quiet()})
	ln := listen(t, "127.0.0.1:0")
	serveOn(t, srv, ln)
	port, err := srv.Attach("vcan0")
	if err != nil {
		t.Fatal(err)
	}
	sim := NewPortBus(port)
	defer sim.Close()
	spec := "socketcand://" + ln.Addr().String() + "/vcan0"
	opts := Options{Clock: clk, Logger: quiet()}
	a := openBus(t, spec, opts)
	b := openBus(t, spec, opts)
	ctx := timeout(t)

	members := map[string]Bus{"a": a, "b": b, "sim": sim}
	frames := []can.Frame{
		{ID: 0x264, Length: 6, Data: can.Data{1, 2, 3, 4, 5, 6}},
		{ID: 0x18DAF110, IsExtended: true, Length: 2, Data: can.Data{0xAA, 0xBB}},
		{ID: 0x7FF},
	}
	for _, from := range []string{"a", "b", "sim"} {
		for _, f := range frames {
			if err := members[from].Send(ctx, f); err != nil {
				t.Fatalf("%s send: %v", from, err)
			}
			for name, to := range members {
				if name == from {
					continue
				}
				got := recv(t, to)
				if got.Frame != f {
					t.Errorf("%s -> %s: %v, want %v", from, name, got.Frame, f)
				}
				if !got.Time.Equal(epoch) {
					t.Errorf("%s -> %s: time %v, want the clock's %v", from, name, got.Time, epoch)
				}
			}
		}
	}

	// A malformed command from another client gets an error and changes
	// nothing for the others.
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	io.WriteString(nc, "< open vcan0 >< rawmode >< send 12G 1 00 >< send 123 1 5A >")
	_ = nc.SetReadDeadline(time.Now().Add(testTimeout))
	br := bufio.NewReader(nc)
	var replies []string
	for len(replies) < 4 {
		s, err := br.ReadString('>')
		if err != nil {
			t.Fatalf("reading replies %q: %v", replies, err)
		}
		replies = append(replies, strings.TrimSpace(s))
	}
	if !strings.HasPrefix(replies[3], "< error bad hex digit") {
		t.Errorf("replies %q, want an error for the bad ID", replies)
	}
	want := can.Frame{ID: 0x123, Length: 1, Data: can.Data{0x5A}}
	for name, m := range members {
		if got := recv(t, m); got.Frame != want {
			t.Errorf("%s got %v, want %v", name, got.Frame, want)
		}
	}
}

func TestSocketcandSlowClient(t *testing.T) {
	srv := socketcand.NewServer(socketcand.ServerOptions{QueueLen: 64, Logger: quiet()})
	ln := listen(t, "127.0.0.1:0")
	serveOn(t, srv, ln)
	port, err := srv.Attach("vcan0")
	if err != nil {
		t.Fatal(err)
	}
	defer port.Close()
	spec := "socketcand://" + ln.Addr().String() + "/vcan0"
	slow := openBus(t, spec, Options{Logger: quiet()}) // never read
	_ = slow
	fast := openBus(t, spec, Options{Logger: quiet()})
	ctx := timeout(t)

	// Batches small enough for the fast client to keep up; the slow one
	// reads nothing, so once its buffers are full the hub drops for it.
	seq := uint32(0)
	for srv.Drops() < 1000 {
		for range 32 {
			seq++
			f := can.Frame{ID: 0x100, Length: 4, Data: can.Data{byte(seq >> 24), byte(seq >> 16), byte(seq >> 8), byte(seq)}}
			if err := port.Send(ctx, f); err != nil {
				t.Fatal(err)
			}
		}
		for i := range uint32(32) {
			got := recv(t, fast)
			want := seq - 31 + i
			if g := uint32(got.Data[0])<<24 | uint32(got.Data[1])<<16 | uint32(got.Data[2])<<8 | uint32(got.Data[3]); g != want {
				t.Fatalf("fast client got frame %d, want %d: frames were lost for it", g, want)
			}
		}
	}
	t.Logf("sent %d frames; %d dropped for the slow client", seq, srv.Drops())
}

func TestSocketcandReconnectsAfterServerRestart(t *testing.T) {
	clk := clock.NewManual(epoch)
	log, logs := newLog()
	srv1 := socketcand.NewServer(socketcand.ServerOptions{Logger: quiet()})
	ln := listen(t, "127.0.0.1:0")
	addr := ln.Addr().String()
	stop1 := serveOn(t, srv1, ln)
	port1, err := srv1.Attach("vcan0")
	if err != nil {
		t.Fatal(err)
	}
	defer port1.Close()
	bus := openBus(t, "socketcand://"+addr+"/vcan0", Options{Clock: clk, Logger: log})
	ctx := timeout(t)
	f1 := can.Frame{ID: 0x1, Length: 1, Data: can.Data{1}}
	if err := port1.Send(ctx, f1); err != nil {
		t.Fatal(err)
	}
	if got := recv(t, bus); got.Frame != f1 {
		t.Fatalf("before restart: %v", got.Frame)
	}

	stop1()
	waitFor(t, "Send to report the bus down", func() bool {
		return errors.Is(bus.Send(ctx, can.Frame{ID: 2}), ErrBusDown)
	})
	// Receive blocks across the outage.
	ch := receiveAsync(bus, ctx)
	// One attempt while the server is away fails and doubles the wait.
	waitWaiters(t, clk, 1)
	clk.Advance(100 * time.Millisecond)
	waitFor(t, "the failed attempt to be logged", func() bool { return logs.count("reopening the bus failed") == 1 })

	srv2 := socketcand.NewServer(socketcand.ServerOptions{Logger: quiet()})
	serveOn(t, srv2, listen(t, addr))
	port2, err := srv2.Attach("vcan0")
	if err != nil {
		t.Fatal(err)
	}
	defer port2.Close()
	waitWaiters(t, clk, 1)
	clk.Advance(200 * time.Millisecond)
	waitFor(t, "the bus to come back", func() bool { return bus.Send(ctx, can.Frame{ID: 3}) == nil })
	if got := recv(t, NewPortBus(port2)); got.Frame.ID != 3 {
		t.Errorf("server 2 got %v, want ID 3", got.Frame)
	}
	f4 := can.Frame{ID: 0x4, Length: 1, Data: can.Data{4}}
	if err := port2.Send(ctx, f4); err != nil {
		t.Fatal(err)
	}
	if r := <-ch; r.err != nil || r.f.Frame != f4 {
		t.Errorf("after restart: %+v, want %v", r, f4)
	}
	if st := bus.(StatsSource).Stats(); st.Reconnects != 1 {
		t.Errorf("stats %+v, want 1 reconnect", st)
	}
}

func TestSocketcandBadInputIsSkipped(t *testing.T) {
	addr := socketcandtest.Scripted(t, "< frame 123 1.000000 01 >< frame XYZ 1.0 00 >< error 004 1.5 >junk< frame 124 2.000000 0203 >")
	var mu sync.Mutex
	var bad []error
	src := openBus(t, "socketcand://"+addr+"/can0", Options{Logger: quiet(), OnBadInput: func(err error) {
		mu.Lock()
		defer mu.Unlock()
		bad = append(bad, err)
	}})
	if got := recv(t, src); got.ID != 0x123 {
		t.Errorf("first frame %v", got.Frame)
	}
	if got := recv(t, src); got.ID != 0x124 || got.Length != 2 {
		t.Errorf("second frame %v", got.Frame)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(bad) != 3 {
		t.Fatalf("bad input reported %d times (%v), want 3", len(bad), bad)
	}
	var pe *socketcand.ProtocolError
	var se *socketcand.ServerError
	if !errors.As(bad[0], &pe) || !errors.As(bad[1], &se) || !errors.As(bad[2], &pe) {
		t.Errorf("bad input %v, want protocol, server, protocol errors", bad)
	}
	if st := src.(StatsSource).Stats(); st.BadInput != 3 || st.Frames != 2 {
		t.Errorf("stats %+v", st)
	}
}
