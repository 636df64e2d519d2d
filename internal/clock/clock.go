// Package clock lets code ask for the time and wait without touching the
// wall clock directly, so simulations can run faster than real time and tests
// can move time by hand instead of sleeping.
package clock

import (
	"context"
	"time"
)

// Clock is what time-dependent code receives instead of calling time.Now.
type Clock interface {
	Now() time.Time
	// After returns a channel that receives the clock's time once d has
	// passed on this clock.
	After(d time.Duration) <-chan time.Time
}

// Sleep waits for d on c, or until ctx is done.
func Sleep(ctx context.Context, c Clock, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-c.After(d):
		return nil
	}
}

// Real is the wall clock.
type Real struct{}

func (Real) Now() time.Time                         { return time.Now() }
func (Real) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Scaled runs factor times faster than the wall clock from the moment it is
// made: one real second is factor seconds on it. Simulators use it for their
// speed factor.
type Scaled struct {
	factor    float64
	realStart time.Time
	simStart  time.Time
}

// NewScaled returns a clock that starts at the current time and runs factor
// times faster than real time. A factor below or equal to zero means 1.
func NewScaled(factor float64) *Scaled {
	if factor <= 0 {
		factor = 1
	}
	now := time.Now()
	return &Scaled{factor: factor, realStart: now, simStart: now}
}

// Factor is how many simulated seconds pass per real second.
func (s *Scaled) Factor() float64 { return s.factor }

func (s *Scaled) Now() time.Time {
	elapsed := time.Since(s.realStart)
	return s.simStart.Add(time.Duration(float64(elapsed) * s.factor))
}

func (s *Scaled) After(d time.Duration) <-chan time.Time {
	out := make(chan time.Time, 1)
	real := time.Duration(float64(d) / s.factor)
	time.AfterFunc(real, func() { out <- s.Now() })
	return out
}
