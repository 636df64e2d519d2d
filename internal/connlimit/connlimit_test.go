package connlimit

import (
	"io"
	"net"
	"testing"
	"time"
)

// dialFrom connects to addr from the loopback address src (all of
// 127.0.0.0/8 is local on Linux), as a distinct peer.
func dialFrom(t *testing.T, src, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial from %s: %v", src, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// served says whether the server kept c open: it echoes one byte on a
// connection it accepted, and a refused one reads EOF.
func served(t *testing.T, c net.Conn) bool {
	t.Helper()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte{'x'}); err != nil {
		return false
	}
	var b [1]byte
	_, err := io.ReadFull(c, b[:])
	return err == nil
}

func TestBounds(t *testing.T) {
	tests := []struct {
		name          string
		total, host   int
		dials         []string // source address of each connection, in order
		want          []bool   // served or not
		wantTotalRefs int
	}{
		{"within both", 4, 2, []string{"127.0.0.2", "127.0.0.2", "127.0.0.3"}, []bool{true, true, true}, 0},
		{"one host over its share", 8, 2, []string{"127.0.0.2", "127.0.0.2", "127.0.0.2", "127.0.0.3"}, []bool{true, true, false, true}, 0},
		{"total reached", 2, 2, []string{"127.0.0.2", "127.0.0.3", "127.0.0.4"}, []bool{true, true, false}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inner, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			refusals := make(chan bool, 16)
			l := New(inner, tt.total, tt.host)
			l.Refused = func(_ string, total bool) { refusals <- total }
			defer l.Close()
			go func() {
				for {
					c, err := l.Accept()
					if err != nil {
						return
					}
					go func() { // echo, then hold the connection open
						var b [1]byte
						if _, err := io.ReadFull(c, b[:]); err == nil {
							c.Write(b[:])
						}
						io.Copy(io.Discard, c)
						c.Close()
					}()
				}
			}()
			for i, src := range tt.dials {
				c := dialFrom(t, src, inner.Addr().String())
				if got := served(t, c); got != tt.want[i] {
					t.Fatalf("connection %d from %s: served %v, want %v", i+1, src, got, tt.want[i])
				}
			}
			close(refusals)
			n := 0
			for total := range refusals {
				if total {
					n++
				}
			}
			if n != tt.wantTotalRefs {
				t.Errorf("%d refusals for the total bound, want %d", n, tt.wantTotalRefs)
			}
		})
	}
}

// TestReleased: a closed connection frees its slot for the same host.
func TestReleased(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := New(inner, 1, 1)
	defer l.Close()
	accepted := make(chan net.Conn, 4)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	dialFrom(t, "127.0.0.2", inner.Addr().String())
	first := <-accepted
	if l.Open() != 1 {
		t.Fatalf("open %d, want 1", l.Open())
	}
	first.Close()
	first.Close() // twice: released once
	if l.Open() != 0 {
		t.Fatalf("open %d after close, want 0", l.Open())
	}
	dialFrom(t, "127.0.0.2", inner.Addr().String())
	select {
	case <-accepted:
	case <-time.After(5 * time.Second):
		t.Fatal("the freed slot was not given to the next connection")
	}
}
