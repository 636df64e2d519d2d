// Package status is the gateway's own status message: what it shows on the
// vehicle bus (state, error, credit, energy bought, sats spent, balance) so a
// display node can show it. It is sent periodically and at once on a change.
package status

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"

	"go.einride.tech/can"

	"satwatt/dbc"
	"satwatt/internal/clock"
	vp "satwatt/internal/vehicleprofile"
)

// State is the gateway's state, as shown on the vehicle.
type State int

const (
	Idle State = iota
	Plugged
	Discovering
	Negotiating
	Charging
	Suspended
	Complete
	Stopped
	Failed
)

// String returns the value-table name the status DBC uses for s.
func (s State) String() string {
	if s < 0 || int(s) >= len(vp.StatusStates) {
		return fmt.Sprintf("State(%d)", int(s))
	}
	return vp.StatusStates[s]
}

// Code is an error code shown on the vehicle.
type Code int

const (
	NoError Code = iota
	LowBalance
	PriceAboveLimit
	NoWallFound
	WallError
	PaymentFailed
	NodeUnreachable
	MeterMismatch
	BudgetReached
	InvoiceRejected
	VehicleDataStale
)

// String returns the value-table name the status DBC uses for c.
func (c Code) String() string {
	if c < 0 || int(c) >= len(vp.StatusErrors) {
		return fmt.Sprintf("Code(%d)", int(c))
	}
	return vp.StatusErrors[c]
}

// Status is everything the message carries. Money and energy are integers.
type Status struct {
	State          State
	Error          Code
	CreditWh       int64
	EnergyBoughtWh int64
	SatsSpent      int64
	BalanceSat     int64
}

// Encoder turns a Status into the profile's status frames.
type Encoder struct {
	b        *vp.Binding
	stateRaw []int64
	errorRaw []int64
}

// NewEncoder prepares the raw values of every state and error code, which
// the profile binding has already checked exist.
func NewEncoder(b *vp.Binding) (*Encoder, error) {
	if len(b.StatusMessages) == 0 {
		return nil, fmt.Errorf("profile %s defines no status message", b.Profile.Name)
	}
	e := &Encoder{b: b}
	for _, name := range vp.StatusStates {
		raw, _ := b.Status[vp.StatusState].RawValue(name)
		e.stateRaw = append(e.stateRaw, raw)
	}
	for _, name := range vp.StatusErrors {
		raw, _ := b.Status[vp.StatusError].RawValue(name)
		e.errorRaw = append(e.errorRaw, raw)
	}
	return e, nil
}

// Frames encodes s. Numbers beyond a signal's range are shown at the end of
// the range: the message is a display, and the real figures live in the
// gateway's ledger.
func (e *Encoder) Frames(s Status, counter uint8) ([]can.Frame, error) {
	if s.State < 0 || int(s.State) >= len(e.stateRaw) || s.Error < 0 || int(s.Error) >= len(e.errorRaw) {
		return nil, fmt.Errorf("status %v/%v out of range", s.State, s.Error)
	}
	vals := map[string]int64{
		vp.StatusState:          e.stateRaw[s.State],
		vp.StatusError:          e.errorRaw[s.Error],
		vp.StatusCounter:        int64(counter),
		vp.StatusCreditWh:       s.CreditWh,
		vp.StatusEnergyBoughtWh: s.EnergyBoughtWh,
		vp.StatusSatsSpent:      s.SatsSpent,
		vp.StatusBalanceSat:     s.BalanceSat,
	}
	frames := make([]can.Frame, 0, len(e.b.StatusMessages))
	for _, m := range e.b.StatusMessages {
		phys := map[string]float64{}
		for name, sig := range e.b.Status {
			if sig.Message != m {
				continue
			}
			v := float64(vals[name])
			switch name {
			case vp.StatusState, vp.StatusError:
				v = v*sig.Desc.Scale + sig.Desc.Offset // raw to physical
			case vp.StatusCounter:
				v = float64(vals[name] % (int64(1) << sig.Desc.Length))
			default:
				v = clampToSignal(sig, v)
			}
			phys[sig.Name] = v
		}
		f, err := m.Encode(phys)
		if err != nil {
			return nil, fmt.Errorf("encode status message %s: %w", m.Name, err)
		}
		frames = append(frames, f)
	}
	return frames, nil
}

func clampToSignal(sig *dbc.Signal, v float64) float64 {
	lo, hi := sig.Desc.Min, sig.Desc.Max
	if lo == 0 && hi == 0 {
		n := float64(sig.Desc.Length)
		if sig.Desc.IsSigned {
			lo, hi = -math.Pow(2, n-1), math.Pow(2, n-1)-1
		} else {
			lo, hi = 0, math.Pow(2, n)-1
		}
		lo, hi = lo*sig.Desc.Scale+sig.Desc.Offset, hi*sig.Desc.Scale+sig.Desc.Offset
		if lo > hi {
			lo, hi = hi, lo
		}
	}
	return math.Max(lo, math.Min(hi, v))
}

// Sender is where the frames go.
type Sender interface {
	Send(ctx context.Context, f can.Frame) error
}

// Transmitter sends the status every period and at once when it changes.
type Transmitter struct {
	enc     *Encoder
	out     Sender
	clk     clock.Clock
	period  time.Duration
	mu      sync.Mutex
	cur     Status
	counter uint8
	changed chan struct{}
	onError func(error)
}

// DefaultPeriod matches the status message's cycle time in satwatt.dbc.
const DefaultPeriod = time.Second

// NewTransmitter returns a transmitter; onError (may be nil) hears send
// failures, which never stop it.
func NewTransmitter(enc *Encoder, out Sender, clk clock.Clock, period time.Duration, onError func(error)) *Transmitter {
	if period <= 0 {
		period = DefaultPeriod
	}
	return &Transmitter{enc: enc, out: out, clk: clk, period: period, changed: make(chan struct{}, 1), onError: onError}
}

// Set replaces the status; a change is sent at once.
func (t *Transmitter) Set(s Status) {
	t.mu.Lock()
	same := s == t.cur
	t.cur = s
	t.mu.Unlock()
	if !same {
		select {
		case t.changed <- struct{}{}:
		default:
		}
	}
}

// Run sends until ctx ends.
func (t *Transmitter) Run(ctx context.Context) error {
	for {
		// This send carries the latest status, so a change signalled
		// before now needs no second send.
		select {
		case <-t.changed:
		default:
		}
		t.mu.Lock()
		s, counter := t.cur, t.counter
		t.counter++
		t.mu.Unlock()
		frames, err := t.enc.Frames(s, counter)
		if err == nil {
			for _, f := range frames {
				if err = t.out.Send(ctx, f); err != nil {
					break
				}
			}
		}
		if err != nil && t.onError != nil && ctx.Err() == nil {
			t.onError(err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.changed:
		case <-t.clk.After(t.period):
		}
	}
}
