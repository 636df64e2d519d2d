// Package socketcandtest is a scripted socketcand peer for tests of code
// that talks to a socketcand server: it plays back exactly the bytes a test
// gives, garbage included, which a well-behaved server never sends.
package socketcandtest

import (
	"bufio"
	"io"
	"net"
	"testing"
)

// Scripted listens on loopback, accepts one client, answers its open and
// rawmode commands, sends script, and holds the connection until the client
// closes it. It returns the address to dial.
func Scripted(t testing.TB, script string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		br := bufio.NewReader(nc)
		io.WriteString(nc, "< hi >")
		for range 2 { // open, rawmode
			if _, err := br.ReadString('>'); err != nil {
				return
			}
			io.WriteString(nc, "< ok >")
		}
		io.WriteString(nc, script)
		io.Copy(io.Discard, br)
	}()
	return ln.Addr().String()
}
