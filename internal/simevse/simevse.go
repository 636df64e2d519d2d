// Package simevse is the simulated EVSE: a product feature for the demo and
// the tests, never a stand-in for a real charger in the product. It models
// the IEC 61851 control pilot (A, B, C and the error states E and F), a
// contactor that closes after a relay delay, a power ramp, an energy meter
// that counts in exact integers, and the heartbeat supervision of a real
// OpenEVSE. Time comes from an injected clock, so a speed factor or a
// manual test clock drives it, and Faults make it misbehave on purpose.
//
// Heartbeat supervision: the wall controller must call Status or Enable at
// least every Config.WatchdogTimeout (10 s of the clock by default). When
// it falls silent while the simulated EVSE is enabled, the simulated EVSE
// opens its contactor and goes to sleep by itself, so a dead controller
// cannot leave the power on.
package simevse

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"satwatt/internal/clock"
	"satwatt/internal/evse"
)

// Defaults of Config.
const (
	DefaultLineVoltageV    = 230
	DefaultMaxCurrentA     = 32
	DefaultStep            = 100 * time.Millisecond
	DefaultRelayDelay      = 300 * time.Millisecond
	DefaultRampTime        = 2 * time.Second
	DefaultWatchdogTimeout = 10 * time.Second
)

// MinCurrentA is the lowest current an IEC 61851 pilot can offer; Enable
// refuses less.
const MinCurrentA = 6

// Bounds that keep the integer arithmetic far from overflowing.
const (
	maxLineVoltageV = 1000
	maxCurrentA     = 1000
	maxPermil       = 1000
)

// wusPerMWh: 1 mWh = 3.6 J = 3,600,000 W·µs.
const wusPerMWh = 3_600_000

// chunkUs bounds one integration step (an hour), so a long gap in the
// clock cannot overflow the W·µs·‰ product.
const chunkUs = int64(time.Hour / time.Microsecond)

// ErrClosed is returned by calls on a closed simulated EVSE.
var ErrClosed = errors.New("simulated EVSE: closed")

// Config sets up a simulated EVSE. Zero fields take the defaults.
type Config struct {
	Clock clock.Clock  // default clock.Real{}
	Log   *slog.Logger // default slog.Default()
	// Vehicle is what the cable is connected to. Nil means a built-in
	// FixedVehicle drawing up to 7,360 W, unplugged at start; Vehicle()
	// returns it so a test or demo can plug it in. A vehicle that also has
	// a Run(ctx) error method (HTTPVehicle) is run alongside Run.
	Vehicle      Vehicle
	LineVoltageV int64 // supply voltage, V
	MaxCurrentA  int   // hardware limit: Enable asks for at most this
	// Step is the simulated interval at which Run advances the physics.
	Step       time.Duration
	RelayDelay time.Duration // from "enabled and pilot C" to contactor closed
	// RampTime is how long power takes to rise from zero to the hardware
	// limit (MaxCurrentA × LineVoltageV); it falls at the same rate.
	RampTime time.Duration
	// WatchdogTimeout: with no Status or Enable for this long, the
	// simulated EVSE sleeps by itself. Negative turns supervision off.
	WatchdogTimeout time.Duration
}

// Faults are test knobs that make the simulated EVSE misbehave. They take
// effect at once and can be changed at run time with SetFaults.
type Faults struct {
	// MeterHighPermil makes the meter read high by this many per mille
	// (negative reads low), from the moment it is set: power, current and
	// the energy counted from then on. Within -1000..1000.
	MeterHighPermil int64
	// ContactorStuck welds the contactor: it still closes but does not
	// open when told (Disable, watchdog, unplug, fault). Status then shows
	// ContactorClosed with Enabled false; the vehicle, seeing no pilot
	// oscillation, ramps its draw down.
	ContactorStuck bool
	// VehicleFault, when evse.PilotE or evse.PilotF, puts the pilot in that
	// error state with a Fault text, and the contactor opens. The zero
	// value (evse.PilotUnknown) means no fault.
	VehicleFault evse.Pilot
	// Unreachable makes Status, Enable and Disable fail with an error
	// wrapping evse.ErrUnreachable, as if the serial line were cut. The
	// device itself carries on, so its watchdog ends any charging.
	Unreachable bool
}

func (f Faults) validate() error {
	if f.MeterHighPermil < -maxPermil || f.MeterHighPermil > maxPermil {
		return fmt.Errorf("simulated EVSE: MeterHighPermil %d outside -%d..%d", f.MeterHighPermil, maxPermil, maxPermil)
	}
	switch f.VehicleFault {
	case evse.PilotUnknown, evse.PilotE, evse.PilotF:
	default:
		return fmt.Errorf("simulated EVSE: VehicleFault must be pilot E or F, not %s", f.VehicleFault)
	}
	return nil
}

// EVSE is the simulated EVSE. It satisfies the wall controller's EVSE
// interface; all methods are safe for concurrent use.
type EVSE struct {
	cfg     Config
	clk     clock.Clock
	log     *slog.Logger
	v       Vehicle
	changes chan struct{}
	done    chan struct{} // closed by Close, ends Run

	// mu also serialises every call into the vehicle, so an offer computed
	// by one step can never overwrite a later Disable's zero offer.
	mu     sync.Mutex
	closed bool
	faults Faults
	last   time.Time // the physics is up to date to here
	heard  time.Time // last Status or Enable: the heartbeat

	plugged   bool
	pilot     evse.Pilot
	enabled   bool
	limitA    int
	contactor bool
	closeAt   time.Time // when the relay will have closed; zero: not closing
	stuckSaid bool      // the welded contactor was reported
	rampW     int64     // power offered to the vehicle while the contactor is closed
	powerW    int64     // power flowing now, held until the next step
	trueWus   int64     // energy since plug-in, W·µs
	meterWus  int64     // the same as the meter counts it (MeterHighPermil)
	meterRem  int64     // remainder of meterWus in W·µs/1000, so no rounding drifts
	seen      observed  // last state signalled on Changes
}

// observed is what a Changes signal is about.
type observed struct {
	pilot     evse.Pilot
	enabled   bool
	contactor bool
	fault     string
}

// runner is a vehicle with background duties (HTTPVehicle).
type runner interface {
	Run(ctx context.Context) error
}

// New builds a simulated EVSE, disabled with its contactor open.
func New(cfg Config) (*EVSE, error) {
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Vehicle == nil {
		cfg.Vehicle = NewFixedVehicle(DefaultLineVoltageV * DefaultMaxCurrentA)
	}
	if cfg.LineVoltageV == 0 {
		cfg.LineVoltageV = DefaultLineVoltageV
	}
	if cfg.MaxCurrentA == 0 {
		cfg.MaxCurrentA = DefaultMaxCurrentA
	}
	if cfg.Step == 0 {
		cfg.Step = DefaultStep
	}
	if cfg.RelayDelay == 0 {
		cfg.RelayDelay = DefaultRelayDelay
	}
	if cfg.RampTime == 0 {
		cfg.RampTime = DefaultRampTime
	}
	if cfg.WatchdogTimeout == 0 {
		cfg.WatchdogTimeout = DefaultWatchdogTimeout
	}
	switch {
	case cfg.LineVoltageV < 1 || cfg.LineVoltageV > maxLineVoltageV:
		return nil, fmt.Errorf("simulated EVSE: line voltage %d V outside 1..%d", cfg.LineVoltageV, maxLineVoltageV)
	case cfg.MaxCurrentA < MinCurrentA || cfg.MaxCurrentA > maxCurrentA:
		return nil, fmt.Errorf("simulated EVSE: max current %d A outside %d..%d", cfg.MaxCurrentA, MinCurrentA, maxCurrentA)
	case cfg.Step < time.Microsecond || cfg.RelayDelay < 0 || cfg.RampTime < time.Microsecond:
		return nil, fmt.Errorf("simulated EVSE: step and ramp time must be positive, relay delay not negative")
	}
	now := cfg.Clock.Now()
	e := &EVSE{
		cfg:     cfg,
		clk:     cfg.Clock,
		log:     cfg.Log,
		v:       cfg.Vehicle,
		changes: make(chan struct{}, 1),
		done:    make(chan struct{}),
		last:    now,
		heard:   now,
		limitA:  cfg.MaxCurrentA,
		pilot:   evse.PilotA,
	}
	e.mu.Lock()
	e.stepLocked(now)
	e.seen = e.observeLocked()
	e.mu.Unlock()
	return e, nil
}

// Vehicle returns what the cable is connected to (the built-in
// FixedVehicle when Config.Vehicle was nil).
func (e *EVSE) Vehicle() Vehicle { return e.v }

// Changes signals, coalesced, when the pilot, the contactor, the enabled
// state or the fault changes, whether by itself (plug-in, unplug, relay,
// watchdog, fault) or after a call. It is never closed.
func (e *EVSE) Changes() <-chan struct{} { return e.changes }

// Run advances the physics every Config.Step of the clock until ctx ends or
// the EVSE is closed, then leaves it disabled. It returns nil then.
func (e *EVSE) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	vctx, stopVehicle := context.WithCancel(ctx)
	defer stopVehicle()
	if r, ok := e.v.(runner); ok {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := r.Run(vctx); err != nil && vctx.Err() == nil {
				e.log.Error("simulated EVSE: vehicle link stopped", "err", err)
			}
		}()
	}
	// Deferred last, so it runs first: power off, then stop the vehicle
	// link, which passes the zero offer on.
	defer e.sleep("run ended")
	e.log.Info("simulated EVSE running", "line_v", e.cfg.LineVoltageV, "max_a", e.cfg.MaxCurrentA,
		"step", e.cfg.Step, "watchdog", e.cfg.WatchdogTimeout)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-e.done:
			return nil
		case <-e.clk.After(e.cfg.Step):
			e.mu.Lock()
			if !e.closed {
				e.stepLocked(e.clk.Now())
			}
			e.mu.Unlock()
		}
	}
}

// sleep disables the EVSE whatever the link faults say: the simulated
// device itself goes to sleep.
func (e *EVSE) sleep(why string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return
	}
	now := e.clk.Now()
	e.stepLocked(now)
	if e.enabled {
		e.log.Info("simulated EVSE: sleeping", "why", why)
	}
	e.enabled = false
	e.stepLocked(now)
}

// Status reads the simulated EVSE. It counts as a heartbeat.
func (e *EVSE) Status(ctx context.Context) (evse.Status, error) {
	if err := ctx.Err(); err != nil {
		return evse.Status{}, fmt.Errorf("simulated EVSE: status: %w", err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return evse.Status{}, ErrClosed
	}
	now := e.clk.Now()
	e.stepLocked(now)
	if e.faults.Unreachable {
		return evse.Status{}, fmt.Errorf("simulated EVSE: status: %w", evse.ErrUnreachable)
	}
	e.heard = now
	return e.statusLocked(), nil
}

// Enable lets the contactor close when the vehicle asks for power, at up to
// maxCurrentA (capped at Config.MaxCurrentA). It counts as a heartbeat.
func (e *EVSE) Enable(ctx context.Context, maxCurrentA int) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("simulated EVSE: enable: %w", err)
	}
	if maxCurrentA < MinCurrentA {
		return fmt.Errorf("simulated EVSE: enable at %d A: below the %d A a pilot can offer", maxCurrentA, MinCurrentA)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return ErrClosed
	}
	now := e.clk.Now()
	e.stepLocked(now)
	if e.faults.Unreachable {
		return fmt.Errorf("simulated EVSE: enable: %w", evse.ErrUnreachable)
	}
	e.heard = now
	maxCurrentA = min(maxCurrentA, e.cfg.MaxCurrentA)
	if !e.enabled || e.limitA != maxCurrentA {
		e.log.Info("simulated EVSE: enabled", "max_a", maxCurrentA)
	}
	e.enabled, e.limitA = true, maxCurrentA
	e.stepLocked(now)
	return nil
}

// Disable puts the EVSE to sleep: the contactor opens at once.
func (e *EVSE) Disable(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("simulated EVSE: disable: %w", err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil // already off for good
	}
	now := e.clk.Now()
	e.stepLocked(now)
	if e.faults.Unreachable {
		return fmt.Errorf("simulated EVSE: disable: %w", evse.ErrUnreachable)
	}
	if e.enabled {
		e.log.Info("simulated EVSE: disabled")
	}
	e.enabled = false
	e.stepLocked(now)
	return nil
}

// Close disables the EVSE, cuts the vehicle's supply and ends Run. Later
// calls to Status and Enable return ErrClosed.
func (e *EVSE) Close() error {
	e.sleep("closed")
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil
	}
	e.closed = true
	e.rampW, e.powerW = 0, 0
	e.v.Offer(0)
	close(e.done)
	return nil
}

// SetFaults sets the test knobs; they apply from now on.
func (e *EVSE) SetFaults(f Faults) error {
	if err := f.validate(); err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.clk.Now()
	e.stepLocked(now) // count what came before under the old knobs
	if f != e.faults {
		e.log.Warn("simulated EVSE: test faults set", "meter_high_permil", f.MeterHighPermil,
			"contactor_stuck", f.ContactorStuck, "vehicle_fault", f.VehicleFault, "unreachable", f.Unreachable)
	}
	e.faults = f
	if !f.ContactorStuck {
		e.stuckSaid = false
	}
	e.stepLocked(now)
	return nil
}

// Faults returns the test knobs in force.
func (e *EVSE) Faults() Faults {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.faults
}

// stepLocked brings the physics up to now: meter the power that flowed
// since the last step, then re-evaluate watchdog, pilot, contactor and ramp
// and couple the vehicle. A zero interval only re-evaluates, so a call can
// step before and after changing the settings.
func (e *EVSE) stepLocked(now time.Time) {
	us := int64(0)
	if d := now.Sub(e.last); d > 0 {
		// Whole microseconds only; the rest waits for the next step.
		us = int64(d / time.Microsecond)
		e.last = e.last.Add(time.Duration(us) * time.Microsecond)
	}
	e.meterLocked(us)

	if e.enabled && e.cfg.WatchdogTimeout > 0 && now.Sub(e.heard) >= e.cfg.WatchdogTimeout {
		e.log.Warn("simulated EVSE: no word from the wall controller; sleeping (heartbeat supervision)",
			"silent_for", now.Sub(e.heard))
		e.enabled = false
	}

	plugged := e.v.Plugged()
	wants := plugged && wantsPower(e.v)
	if plugged && !e.plugged {
		e.trueWus, e.meterWus, e.meterRem = 0, 0, 0
		e.log.Info("simulated EVSE: vehicle connected")
	} else if !plugged && e.plugged {
		e.log.Info("simulated EVSE: vehicle disconnected", "session_mwh", e.meterWus/wusPerMWh)
	}
	e.plugged = plugged
	switch {
	case e.faults.VehicleFault != evse.PilotUnknown:
		e.pilot = e.faults.VehicleFault
	case !plugged:
		e.pilot = evse.PilotA
	case wants:
		e.pilot = evse.PilotC
	default:
		e.pilot = evse.PilotB
	}

	want := e.enabled && e.pilot == evse.PilotC
	justClosed := false
	switch {
	case want && !e.contactor:
		if e.closeAt.IsZero() {
			e.closeAt = now.Add(e.cfg.RelayDelay)
		}
		if !now.Before(e.closeAt) {
			e.contactor, e.closeAt, e.rampW, justClosed = true, time.Time{}, 0, true
			e.log.Info("simulated EVSE: contactor closed", "max_a", e.limitA)
		}
	case !want:
		e.closeAt = time.Time{}
		if e.contactor && e.faults.ContactorStuck {
			if !e.stuckSaid {
				e.stuckSaid = true
				e.log.Warn("simulated EVSE: contactor stuck closed (test fault)", "enabled", e.enabled, "pilot", e.pilot)
			}
		} else if e.contactor {
			e.contactor, e.rampW = false, 0
			e.log.Info("simulated EVSE: contactor opened", "enabled", e.enabled, "pilot", e.pilot)
		}
	}

	if e.contactor && !justClosed {
		target := int64(0)
		if want {
			target = int64(e.limitA) * e.cfg.LineVoltageV
		}
		e.rampLocked(target, us)
	}
	offer := int64(0)
	if e.contactor {
		offer = e.rampW
	}
	e.v.Offer(offer)
	// Meter what the vehicle draws, never more than it was offered: a
	// vehicle read late (over HTTP) may still report a larger draw.
	e.powerW = max(0, min(offer, e.v.DrawW()))

	if o := e.observeLocked(); o != e.seen {
		e.seen = o
		select {
		case e.changes <- struct{}{}:
		default:
		}
	}
}

// meterLocked counts the power that flowed for us microseconds, exactly:
// the true energy in W·µs and the meter's reading with its error, whose
// fraction of a W·µs is carried instead of dropped.
func (e *EVSE) meterLocked(us int64) {
	for us > 0 && e.powerW > 0 {
		c := min(us, chunkUs)
		us -= c
		e.trueWus += e.powerW * c
		e.meterRem += e.powerW * c * (1000 + e.faults.MeterHighPermil)
		q := e.meterRem / 1000
		e.meterWus += q
		e.meterRem -= q * 1000
	}
}

// rampLocked moves the offered power towards target at the rate that takes
// RampTime from zero to the hardware limit.
func (e *EVSE) rampLocked(target, us int64) {
	rampUs := int64(e.cfg.RampTime / time.Microsecond)
	if us >= rampUs {
		e.rampW = target
		return
	}
	inc := int64(e.cfg.MaxCurrentA) * e.cfg.LineVoltageV * us / rampUs
	if inc < 1 && us > 0 {
		inc = 1
	}
	if e.rampW < target {
		e.rampW = min(target, e.rampW+inc)
	} else {
		e.rampW = max(target, e.rampW-inc)
	}
}

func (e *EVSE) observeLocked() observed {
	return observed{pilot: e.pilot, enabled: e.enabled, contactor: e.contactor, fault: e.faultTextLocked()}
}

func (e *EVSE) faultTextLocked() string {
	switch e.faults.VehicleFault {
	case evse.PilotE:
		return "pilot error (state E): vehicle diode missing or pilot shorted"
	case evse.PilotF:
		return "EVSE fault (state F)"
	}
	return ""
}

func (e *EVSE) statusLocked() evse.Status {
	voltageMV := e.cfg.LineVoltageV * 1000
	powerW := e.powerW * (1000 + e.faults.MeterHighPermil) / 1000
	return evse.Status{
		Pilot:           e.pilot,
		Enabled:         e.enabled,
		ContactorClosed: e.contactor,
		PowerW:          powerW,
		VoltageMV:       voltageMV,
		CurrentMA:       powerW * 1_000_000 / voltageMV,
		SessionMWh:      e.meterWus / wusPerMWh,
		Fault:           e.faultTextLocked(),
	}
}
