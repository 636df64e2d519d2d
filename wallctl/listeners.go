package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"satwatt/internal/connlimit"
	"satwatt/internal/sdp"
)

// With a PLC interface (--sdp-iface) the wall has two sides. The car's
// routes (LNURL, status, receipts) listen on the interface's link-local
// address only, where nothing but the car on the cable can reach them, and
// SDP announces that listener. The owner's pages and API listen on
// --listen and refuse a connection that arrives over the PLC interface, so
// a car cannot reach the settings or the history of other people's
// sessions, and a LAN device cannot take the car's invoices.

// listenPLC listens on iface's link-local address at port. A link that has
// just come up holds its address as tentative for a moment (duplicate
// address detection), during which it cannot be bound: retry until wait.
func listenPLC(ctx context.Context, iface string, port int, wait time.Duration) (net.Listener, error) {
	deadline := time.Now().Add(wait)
	for {
		addr, err := sdp.LinkLocalAddr(iface)
		if err == nil {
			var l net.Listener
			l, err = net.Listen("tcp", netip.AddrPortFrom(addr, uint16(port)).String())
			if err == nil {
				return l, nil
			}
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("listen for the car on %s port %d: %w", iface, port, err)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// notOver closes connections that arrive over iface: the LAN listener
// usually binds every address, which includes the PLC interface's.
type notOver struct {
	net.Listener
	iface string
	log   *slog.Logger
}

func (l notOver) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if !arrivedOver(c, l.iface) {
			return c, nil
		}
		l.log.Debug("wallctl: closed a connection to the owner's side that came over the PLC interface",
			"iface", l.iface, "from", c.RemoteAddr())
		c.Close()
	}
}

// arrivedOver says whether c's local address belongs to iface: a
// link-local one zoned with it, or any address the interface holds.
func arrivedOver(c net.Conn, iface string) bool {
	la, ok := c.LocalAddr().(*net.TCPAddr)
	if !ok {
		return false
	}
	if la.Zone == iface {
		return true
	}
	ifi, err := net.InterfaceByName(iface)
	if err != nil {
		return false
	}
	addrs, err := ifi.Addrs()
	if err != nil {
		return false
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && ipn.IP.Equal(la.IP) {
			return true
		}
	}
	return false
}

// bounded puts the connection bounds around a listener.
func bounded(l net.Listener, f *serveFlags, log *slog.Logger) *connlimit.Listener {
	cl := connlimit.New(l, f.maxConns, f.maxConnsPerHost)
	cl.Refused = refusalLog(log)
	return cl
}
