// Package canbus gives the gateway and the simulated car one way to read and
// write CAN frames, whatever carries them: live SocketCAN, a replayed
// can-utils or SavvyCAN log, or a socketcand server over TCP.
package canbus

import (
	"context"
	"time"

	"go.einride.tech/can"
)

// Frame is a CAN frame with the time it was seen: the receive time for a
// live bus, the recorded time (shifted onto the source's clock) for a replay.
type Frame struct {
	can.Frame
	Time time.Time
}

// Source delivers frames one at a time. Receive fills f and returns nil, or
// returns io.EOF at the end of a replay, or ctx's error. Bad input (a garbage
// log line, an impossible length) is reported through Options.OnBadInput and
// skipped; it is never returned as an error.
type Source interface {
	Receive(ctx context.Context, f *Frame) error
	Close() error
}

// Sender transmits frames on a live bus.
type Sender interface {
	Send(ctx context.Context, f can.Frame) error
}

// Bus is a live bus that can both receive and send.
type Bus interface {
	Source
	Sender
}
