// Package ctxdeadline makes a context's end interrupt blocking reads or
// writes on a connection by setting a past deadline, since net.Conn I/O does
// not take a context.
package ctxdeadline

import (
	"context"
	"sync"
	"time"
)

// longAgo is a deadline already passed: setting it wakes blocked I/O.
var longAgo = time.Unix(1, 0)

func noop() {}

// Deadline interrupts the I/O guarded by one deadline setter, such as
// net.Conn.SetReadDeadline or SetWriteDeadline. Use one Deadline per
// direction; it must not be copied after first use.
type Deadline struct {
	// Set sets the deadline of the guarded I/O.
	Set func(time.Time) error

	mu  sync.Mutex
	gen uint64 // bumped by every Arm and late disarm, so a stale callback is ignored
}

// Arm makes ctx's end interrupt the I/O that follows; call disarm when the
// I/O is done. It watches ctx with context.AfterFunc rather than a goroutine
// per call, and a context that can never end costs nothing.
func (d *Deadline) Arm(ctx context.Context) (disarm func()) {
	if ctx.Done() == nil {
		return noop
	}
	d.mu.Lock()
	d.gen++
	gen := d.gen
	d.mu.Unlock()
	stop := context.AfterFunc(ctx, func() {
		d.mu.Lock()
		defer d.mu.Unlock()
		if d.gen == gen { // not disarmed yet
			_ = d.Set(longAgo)
		}
	})
	return func() {
		if stop() {
			return // ctx did not end; the deadline was never touched
		}
		// The callback ran or is about to: bump gen so a late one does
		// nothing, and clear a deadline it may have set.
		d.mu.Lock()
		d.gen++
		_ = d.Set(time.Time{})
		d.mu.Unlock()
	}
}
