//go:build !linux

package regtest

import "testing"

// becomeSubreaper has no portable equivalent; orphans go to init.
func becomeSubreaper(t *testing.T) {}

// reaped: without a subreaper the orphans are never ours to collect.
func reaped(pid int) bool { return true }
