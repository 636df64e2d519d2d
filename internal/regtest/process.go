package regtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// reserved holds every port this process handed out, so two networks in one
// test binary never get the same port even after the first one closed its
// probe listener.
var reserved struct {
	sync.Mutex
	ports map[int]bool
}

// freePorts returns n distinct free TCP ports on 127.0.0.1. The kernel picks
// them (bind to port 0); Linux hands out odd ports for bind and even ones for
// outgoing connections, so a daemon's own client connections rarely take a
// port picked here before its owner binds it.
func freePorts(n int) ([]int, error) {
	reserved.Lock()
	defer reserved.Unlock()
	if reserved.ports == nil {
		reserved.ports = map[int]bool{}
	}
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	for len(ports) < n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("pick a free port: %w", err)
		}
		ls = append(ls, l)
		p := l.Addr().(*net.TCPAddr).Port
		if reserved.ports[p] {
			continue
		}
		reserved.ports[p] = true
		ports = append(ports, p)
	}
	return ports, nil
}

// listening reports whether something accepts connections on addr.
func listening(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// waitPortsFree waits until none of addrs accepts connections.
func waitPortsFree(ctx context.Context, addrs ...string) error {
	return poll(ctx, 10*time.Second, 50*time.Millisecond, func() (bool, error) {
		for _, a := range addrs {
			if listening(a) {
				return false, fmt.Errorf("%s still accepts connections", a)
			}
		}
		return true, nil
	})
}

// errPollTimeout marks a poll that ran out of time.
var errPollTimeout = errors.New("timed out")

// finalError makes poll give up at once.
type finalError struct{ error }

func (e finalError) Unwrap() error { return e.error }

// final marks an error that waiting will not fix.
func final(err error) error { return finalError{err} }

// poll calls check every interval until it reports done, ctx ends or timeout
// passes. The last error check returned is part of the timeout error, so a
// failure says what it was waiting for.
func poll(parent context.Context, timeout, interval time.Duration, check func() (bool, error)) error {
	ctx, cancel := context.WithTimeout(parent, timeout)
	defer cancel()
	var last error
	for {
		ok, err := check()
		if ok {
			return nil
		}
		var fe finalError
		if errors.As(err, &fe) {
			return fe.error
		}
		if err != nil {
			last = err
		}
		select {
		case <-ctx.Done():
			if parent.Err() != nil {
				return fmt.Errorf("%w (last check: %v)", parent.Err(), last)
			}
			if last == nil {
				last = ctx.Err()
			}
			return fmt.Errorf("%w after %v: %w", errPollTimeout, timeout, last)
		case <-time.After(interval):
		}
	}
}
