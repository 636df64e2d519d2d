// Package connlimit bounds the connections a server holds open: in total,
// so that a flood cannot exhaust the process's file descriptors (and with
// them the database and the EVSE's serial line), and per remote address,
// so that one hostile peer on the LAN or the charging cable cannot take
// every slot from the honest car. A connection over either bound is closed
// at once rather than left waiting in the kernel's backlog.
package connlimit

import (
	"net"
	"sync"
)

// Listener wraps a net.Listener with the two bounds.
type Listener struct {
	net.Listener
	total, perHost int
	// Refused, if set, is told of each connection closed for a bound; it
	// must not block.
	Refused func(remote string, total bool)

	mu     sync.Mutex
	open   int
	byHost map[string]int
}

// New bounds l to total connections in all and perHost from any one remote
// address (IP, without port).
func New(l net.Listener, total, perHost int) *Listener {
	return &Listener{Listener: l, total: total, perHost: perHost, byHost: map[string]int{}}
}

// Accept returns the next connection within the bounds.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		host := hostOf(c.RemoteAddr())
		l.mu.Lock()
		overTotal := l.open >= l.total
		overHost := l.byHost[host] >= l.perHost
		if !overTotal && !overHost {
			l.open++
			l.byHost[host]++
			l.mu.Unlock()
			return &conn{Conn: c, l: l, host: host}, nil
		}
		l.mu.Unlock()
		c.Close()
		if l.Refused != nil {
			l.Refused(host, overTotal)
		}
	}
}

// Open reports the connections held now.
func (l *Listener) Open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.open
}

func (l *Listener) release(host string) {
	l.mu.Lock()
	l.open--
	if l.byHost[host]--; l.byHost[host] <= 0 {
		delete(l.byHost, host)
	}
	l.mu.Unlock()
}

func hostOf(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.String() // the zone is the interface, not the peer
	}
	h, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return h
}

type conn struct {
	net.Conn
	l    *Listener
	host string
	once sync.Once
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.release(c.host) })
	return err
}
