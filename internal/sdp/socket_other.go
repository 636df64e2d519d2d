//go:build !linux

package sdp

import "syscall"

// bindControl: without SO_BINDTODEVICE the socket sees every interface; the
// zone of link-local peers and the multicast join still pick the right one.
func bindControl(string) func(network, address string, c syscall.RawConn) error { return nil }
