package sdp

import (
	"fmt"
	"syscall"

	"golang.org/x/sys/unix"
)

// bindControl ties a socket to one interface before it is bound, so it only
// sees datagrams that arrived there and several responders (one per charge
// point's modem) can share port 15118.
func bindControl(iface string) func(network, address string, c syscall.RawConn) error {
	if iface == "" {
		return nil
	}
	return func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) { serr = unix.BindToDevice(int(fd), iface) }); err != nil {
			return err
		}
		if serr != nil {
			return fmt.Errorf("bind to device %s: %w", iface, serr)
		}
		return nil
	}
}
