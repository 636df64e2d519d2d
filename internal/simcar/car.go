package simcar

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"go.einride.tech/can"

	"satwatt/dbc"
	"satwatt/internal/clock"
	vp "satwatt/internal/vehicleprofile"
)

// PowerInput is how the simulated EVSE drives the simulated car: it offers
// up to maxW watts (0 when its contactor is open) and reads what the car
// actually draws.
type PowerInput interface {
	Offer(maxW int64)
	DrawW() int64
}

// Sender is where the car's frames go (a SocketCAN bus, a socketcand hub).
type Sender interface {
	Send(ctx context.Context, f can.Frame) error
}

// Delays of the port's state machine, in simulated time.
const (
	latchDelay     = 500 * time.Millisecond
	doorCloseDelay = 2 * time.Second
	stepInterval   = 50 * time.Millisecond
	defaultCycle   = 100 * time.Millisecond
)

// State is what the simulated car reports about itself.
type State struct {
	SOCPermil   int64   `json:"soc_permil"`
	StoredWh    int64   `json:"stored_wh"`
	Plugged     bool    `json:"plugged"`
	Latched     bool    `json:"latched"`
	DoorOpen    bool    `json:"door_open"`
	OfferedW    int64   `json:"offered_w"`
	DrawW       int64   `json:"draw_w"`
	DrawnWh     int64   `json:"drawn_wh"` // energy drawn from the EVSE since start
	Charging    string  `json:"charging"` // idle, ready, charging, complete
	PackVoltage float64 `json:"pack_voltage_v"`
}

// Car is the simulated car.
type Car struct {
	mu      sync.Mutex
	clk     clock.Clock
	log     *slog.Logger
	binding *vp.Binding
	bat     *battery
	lineV   float64

	plugged   bool
	latched   bool
	doorOpen  bool
	pluggedAt time.Time
	unplugAt  time.Time
	offeredW  int64
	drawW     int64
	drawnNJ   int64
	lastStep  time.Time

	msgs []*emitted
}

type emitted struct {
	msg   *dbc.Message
	cycle time.Duration
	next  time.Time
	roles []string
}

// New builds a simulated car that speaks the bound profile's messages.
// lineVoltage is the AC supply voltage it reports (230 in Europe).
func New(b *vp.Binding, p Params, lineVoltage float64, clk clock.Clock, log *slog.Logger) (*Car, error) {
	if p.CapacityWh <= 0 || p.InitialSOCPermil < 0 || p.InitialSOCPermil > 1000 || p.TargetSOCPermil <= 0 || p.TargetSOCPermil > 1000 {
		return nil, fmt.Errorf("simulated car: capacity must be positive and state of charge within 0..100 %%")
	}
	if p.EfficiencyPermil <= 0 || p.EfficiencyPermil > 1000 {
		return nil, fmt.Errorf("simulated car: efficiency must be within 0..100 %%")
	}
	if log == nil {
		log = slog.Default()
	}
	c := &Car{clk: clk, log: log, binding: b, bat: newBattery(p), lineV: lineVoltage}
	byMsg := map[*dbc.Message]*emitted{}
	for _, role := range vp.Roles() {
		bound, ok := b.Roles[role]
		if !ok {
			continue
		}
		m := bound.Signal.Message
		e := byMsg[m]
		if e == nil {
			e = &emitted{msg: m, cycle: m.CycleTime}
			if e.cycle <= 0 {
				e.cycle = defaultCycle
			}
			byMsg[m] = e
			c.msgs = append(c.msgs, e)
		}
		e.roles = append(e.roles, role)
	}
	sort.Slice(c.msgs, func(i, j int) bool { return c.msgs[i].msg.ID < c.msgs[j].msg.ID })
	c.lastStep = clk.Now()
	return c, nil
}

// Plug plugs the cable in: the door opens, the cable connects, and after a
// moment the latch engages.
func (c *Car) Plug() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.step(c.clk.Now())
	if c.plugged {
		return
	}
	c.doorOpen, c.plugged, c.latched = true, true, false
	c.pluggedAt = c.clk.Now()
}

// Unplug pulls the cable: power stops at once, the door closes a moment
// later.
func (c *Car) Unplug() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.step(c.clk.Now())
	if !c.plugged {
		return
	}
	c.plugged, c.latched, c.offeredW, c.drawW = false, false, 0, 0
	c.unplugAt = c.clk.Now()
}

// Offer implements PowerInput.
func (c *Car) Offer(maxW int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.step(c.clk.Now())
	if maxW < 0 {
		maxW = 0
	}
	c.offeredW = maxW
	c.updateDraw()
}

// DrawW implements PowerInput.
func (c *Car) DrawW() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.step(c.clk.Now())
	return c.drawW
}

// State returns the car's own view of itself.
func (c *Car) State() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.step(c.clk.Now())
	return State{
		SOCPermil:   c.bat.socPermil(),
		StoredWh:    c.bat.storedWh(),
		Plugged:     c.plugged,
		Latched:     c.latched,
		DoorOpen:    c.doorOpen,
		OfferedW:    c.offeredW,
		DrawW:       c.drawW,
		DrawnWh:     c.drawnNJ / njPerWh,
		Charging:    c.chargingWord(),
		PackVoltage: c.bat.packVoltage(c.drawW),
	}
}

func (c *Car) chargingWord() string {
	switch {
	case !c.latched:
		return "idle"
	case c.drawW > 0:
		return "charging"
	case c.bat.acceptW() == 0:
		return "complete"
	default:
		return "ready"
	}
}

// updateDraw sets what the car draws: nothing unless the cable is latched,
// and never more than offered or than the battery accepts.
func (c *Car) updateDraw() {
	if !c.latched {
		c.drawW = 0
		return
	}
	w := c.bat.acceptW()
	if c.offeredW < w {
		w = c.offeredW
	}
	c.drawW = w
}

// step advances the model to now in bounded steps, so a long gap (a slow
// caller, a high speed factor) tapers correctly instead of overshooting.
func (c *Car) step(now time.Time) {
	for c.lastStep.Before(now) {
		dt := now.Sub(c.lastStep)
		if dt > stepInterval {
			dt = stepInterval
		}
		t := c.lastStep.Add(dt)
		if c.plugged && !c.latched && t.Sub(c.pluggedAt) >= latchDelay {
			c.latched = true
		}
		if !c.plugged && c.doorOpen && !c.unplugAt.IsZero() && t.Sub(c.unplugAt) >= doorCloseDelay {
			c.doorOpen = false
		}
		c.updateDraw()
		c.bat.charge(c.drawW, dt.Microseconds())
		c.drawnNJ += c.drawW * dt.Microseconds() * 1000
		c.lastStep = t
	}
	c.updateDraw()
}

// Run transmits the profile's messages at their cycle times until ctx ends.
// A send error is logged (once per kind of error in a row) and the car keeps
// going: a simulator must survive its bus going away.
func (c *Car) Run(ctx context.Context, out Sender) error {
	var lastErr string
	start := c.clk.Now()
	for _, e := range c.msgs {
		e.next = start
	}
	for {
		now := c.clk.Now()
		next := now.Add(time.Hour)
		for _, e := range c.msgs {
			if !now.Before(e.next) {
				f, err := c.frame(e, now)
				if err == nil {
					err = out.Send(ctx, f)
				}
				if err != nil {
					if ctx.Err() != nil {
						return ctx.Err()
					}
					if err.Error() != lastErr {
						c.log.Warn("simulated car: cannot send", "message", e.msg.Name, "err", err)
						lastErr = err.Error()
					}
				} else {
					lastErr = ""
				}
				e.next = e.next.Add(e.cycle)
				if e.next.Before(now) {
					e.next = now.Add(e.cycle) // fell behind: skip, do not burst
				}
			}
			if e.next.Before(next) {
				next = e.next
			}
		}
		if err := clock.Sleep(ctx, c.clk, next.Sub(now)); err != nil {
			return err
		}
	}
}

// Frame encodes one message as the car would send it now. Tests use it to
// check the encoding without a bus.
func (c *Car) Frame(msg *dbc.Message) (can.Frame, error) {
	for _, e := range c.msgs {
		if e.msg == msg {
			return c.frame(e, c.clk.Now())
		}
	}
	return can.Frame{}, fmt.Errorf("simulated car does not send %s", msg.Name)
}

func (c *Car) frame(e *emitted, now time.Time) (can.Frame, error) {
	c.mu.Lock()
	c.step(now)
	values := make(map[string]float64, len(e.roles))
	for _, role := range e.roles {
		b := c.binding.Roles[role]
		if _, taken := values[b.Signal.Name]; taken && b.Kind == vp.State && !c.asserted(role) {
			// Two state roles share one signal (cable and latch in one
			// enum): the role that is true decides its value.
			continue
		}
		v, ok := c.roleValue(role, b)
		if !ok {
			continue
		}
		values[b.Signal.Name] = v
	}
	c.mu.Unlock()
	f, err := e.msg.Encode(values)
	if err != nil {
		return can.Frame{}, fmt.Errorf("encode %s: %w", e.msg.Name, err)
	}
	return f, nil
}

// roleValue gives the physical value (in the signal's own unit) the car
// sends for a role.
func (c *Car) roleValue(role string, b *vp.Bound) (float64, bool) {
	numeric := func(canonical float64) (float64, bool) { return canonical / b.Factor, true }
	v := c.bat.packVoltage(c.drawW)
	packW := c.drawW * c.bat.p.EfficiencyPermil / 1000
	switch role {
	case vp.RoleSOC:
		return numeric(float64(c.bat.socPermil()) / 10)
	case vp.RolePackEnergy:
		if b.EnergyKind == "nominal" {
			return numeric(float64(c.bat.p.NominalWh))
		}
		return numeric(float64(c.bat.p.CapacityWh))
	case vp.RoleEnergyRemaining:
		return numeric(float64(c.bat.storedWh()))
	case vp.RolePackVoltage:
		return numeric(v)
	case vp.RolePackCurrent:
		return numeric(float64(packW) / v)
	case vp.RoleChargePower:
		return numeric(float64(c.drawW))
	case vp.RoleACVoltage:
		if !c.plugged {
			return numeric(0)
		}
		return numeric(c.lineV)
	case vp.RoleACCurrent:
		if c.lineV <= 0 {
			return numeric(0)
		}
		return numeric(float64(c.drawW) / c.lineV)
	case vp.RoleCable:
		return stateValue(b, "connected", c.plugged)
	case vp.RoleCableLatched:
		return stateValue(b, "latched", c.latched)
	case vp.RolePortDoor:
		return stateValue(b, "open", c.doorOpen)
	case vp.RoleChargingState:
		word := c.chargingWord()
		if word == "idle" {
			return float64(otherValue(b)), true
		}
		if raws := b.Sets[word]; len(raws) > 0 {
			return float64(raws[0]), true
		}
		return float64(otherValue(b)), true
	}
	return 0, false
}

// asserted tells whether a state role is true now.
func (c *Car) asserted(role string) bool {
	switch role {
	case vp.RoleCable:
		return c.plugged
	case vp.RoleCableLatched:
		return c.latched
	case vp.RolePortDoor:
		return c.doorOpen
	case vp.RoleChargingState:
		return c.chargingWord() != "idle"
	}
	return false
}

// stateValue picks the raw value for a yes/no state: the first value of the
// set for yes, a value outside every set for no.
func stateValue(b *vp.Bound, set string, yes bool) (float64, bool) {
	if yes {
		return float64(b.Sets[set][0]), true
	}
	return float64(otherValue(b)), true
}

// otherValue is a raw value in no set and not "not available": a value-table
// entry where there is one, else the smallest such integer.
func otherValue(b *vp.Bound) int64 {
	inSets := func(v int64) bool {
		for _, raws := range b.Sets {
			for _, r := range raws {
				if r == v {
					return true
				}
			}
		}
		return b.IsInvalid(v)
	}
	for _, vd := range b.Signal.Desc.ValueDescriptions {
		if !inSets(vd.Value) {
			return vd.Value
		}
	}
	for v := int64(0); ; v++ {
		if !inSets(v) {
			return v
		}
	}
}
