// Package rapisim is a simulated OpenEVSE that speaks RAPI on a
// pseudo-terminal, for tests and demos of the rapi driver without a
// charging station. It is a simulator: it models the parts of the
// firmware the driver relies on (state machine, current capacity,
// ammeter, energy meter, heartbeat supervision, $AT notices, sequence
// ids) and offers knobs for misbehaviour (silence, bad checksums, a stuck
// relay). Point the driver's Config.Device at Sim.Path.
//
// Simulated vehicle: plugged in or not, asking for power or not, drawing
// the lesser of the advertised capacity and Options.VehicleMaxA while the
// contactor is closed and it asks for power. It does not stop drawing when
// the pilot stops oscillating, so a stuck relay shows as power flowing:
// the worst case.
package rapisim

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"

	"satwatt/internal/clock"
	"satwatt/internal/rapi"
)

// Options shape the simulated station. Zero values take the defaults.
type Options struct {
	Clock  clock.Clock  // default clock.Real{}
	Logger *slog.Logger // default: discard
	// VoltageMV is the line voltage $GG reports; default 240000, the
	// firmware's fixed L2 voltage when it has no voltmeter.
	VoltageMV int64
	// MaxCurrentA is the station's configured maximum, where $SC clamps
	// and an acknowledged heartbeat miss restores to; default 32.
	MaxCurrentA int
	// VehicleMaxA is what the simulated vehicle draws at most; default 32.
	VehicleMaxA int
	// Tick is how often, on Clock, the simulator re-evaluates by itself
	// (heartbeat expiry, notices); default 1 s. Energy is integrated
	// exactly from clock readings whatever the tick.
	Tick time.Duration
	// NoSequenceIDs makes it behave like firmware before RAPI 3.0.0,
	// which takes a ":SS" sequence token for an ordinary argument.
	NoSequenceIDs bool
	// Version is the firmware version $GV reports.
	Version string
}

// RAPIVersion is the RAPI protocol version the simulator reports.
const RAPIVersion = "6.0.0"

const (
	minCurrentA  = 6   // J1772 minimum; the firmware clamps to it
	hsAckCookie  = 165 // 0xA5
	hsMissedNoAk = 2   // trigger values of $GY/$SY replies
	hsMissedAckd = 1
	changedMask  = rapi.VFlagEVConnected | rapi.VFlagHardFault
	maxReceived  = 1000
)

// Sim is one simulated OpenEVSE.
type Sim struct {
	opts   Options
	clk    clock.Clock
	log    *slog.Logger
	ptmx   *os.File // the simulator's end
	tty    *os.File // kept open so the driver can come and go
	path   string
	out    chan []byte
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once

	mu sync.Mutex
	// vehicle
	plugged, wantsPower bool
	vehicleMaxA         int
	// station
	mode       rapi.State // StateA (enabled), StateSleeping or StateDisabled
	fault      rapi.State // 0 or a fault state
	contactor  bool
	capacityA  int
	chargedAt  time.Time // contactor closing
	elapsedS   int64
	hsInterval int // seconds; 0 = off
	hsFallback int
	hsTrigger  int
	hsLast     time.Time
	// meter: mV*mA*ms is nanojoules
	last      time.Time
	sessionNJ int64
	totalWh   int64
	// knobs
	silent, badChecksum, stuckRelay bool
	received                        []string
	sent                            notice
}

type notice struct {
	evse, pilot rapi.State
	capacityA   int
	vflags      uint16
}

// Start opens a pseudo-terminal and runs the simulator until ctx ends or
// Close is called.
func Start(ctx context.Context, opts Options) (*Sim, error) {
	if opts.Clock == nil {
		opts.Clock = clock.Real{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.VoltageMV <= 0 {
		opts.VoltageMV = 240000
	}
	if opts.MaxCurrentA <= 0 {
		opts.MaxCurrentA = 32
	}
	if opts.VehicleMaxA <= 0 {
		opts.VehicleMaxA = 32
	}
	if opts.Tick <= 0 {
		opts.Tick = time.Second
	}
	if opts.Version == "" {
		opts.Version = "9.0.0-rapisim"
	}
	ptmx, tty, err := openPTY()
	if err != nil {
		return nil, fmt.Errorf("rapisim: open pseudo-terminal: %w", err)
	}
	// Raw from the start: a fresh pty echoes and turns CR into LF, which
	// would garble RAPI before the driver sets the line up itself.
	if err := makeRaw(int(tty.Fd())); err != nil {
		ptmx.Close()
		tty.Close()
		return nil, fmt.Errorf("rapisim: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	now := opts.Clock.Now()
	s := &Sim{
		opts: opts, clk: opts.Clock, log: opts.Logger.With("sim", "rapisim"),
		ptmx: ptmx, tty: tty, path: tty.Name(),
		out: make(chan []byte, 64), cancel: cancel,
		vehicleMaxA: opts.VehicleMaxA,
		last:        now, hsLast: now,
	}
	s.boot()
	s.sent = s.snapshotNotice()
	s.wg.Add(3)
	go s.readLoop()
	go s.writeLoop(ctx)
	go s.tickLoop(ctx)
	go func() {
		<-ctx.Done()
		s.Close()
	}()
	return s, nil
}

// openPTY opens a pseudo-terminal pair. pty.Open leaves the master in
// blocking mode (it calls Fd), where Close cannot interrupt a pending
// Read; a non-blocking duplicate goes through Go's poller instead.
func openPTY() (master, tty *os.File, err error) {
	p, tty, err := pty.Open()
	if err != nil {
		return nil, nil, err
	}
	defer p.Close()
	fd, err := unix.Dup(int(p.Fd()))
	if err == nil {
		err = unix.SetNonblock(fd, true)
		if err != nil {
			unix.Close(fd)
		}
	}
	if err != nil {
		tty.Close()
		return nil, nil, err
	}
	unix.CloseOnExec(fd)
	return os.NewFile(uintptr(fd), p.Name()), tty, nil
}

func makeRaw(fd int) error {
	t, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return fmt.Errorf("get termios: %w", err)
	}
	t.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR |
		unix.IGNCR | unix.ICRNL | unix.IXON
	t.Oflag &^= unix.OPOST
	t.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	t.Cflag &^= unix.CSIZE | unix.PARENB
	t.Cflag |= unix.CS8
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, t); err != nil {
		return fmt.Errorf("set termios: %w", err)
	}
	return nil
}

// boot is the firmware's power-on state: enabled, full capacity. Heartbeat
// settings live in EEPROM and survive.
func (s *Sim) boot() {
	s.mode = rapi.StateA
	s.fault = 0
	s.contactor = false
	s.capacityA = s.opts.MaxCurrentA
	s.hsTrigger = 0
	s.hsLast = s.clk.Now()
	s.apply(s.clk.Now())
}

// Path is the device to give the driver.
func (s *Sim) Path() string { return s.path }

// Close stops the simulator and closes the pseudo-terminal: to the driver
// the device vanishes.
func (s *Sim) Close() error {
	s.once.Do(func() {
		s.cancel()
		s.ptmx.Close()
		s.tty.Close()
		s.wg.Wait()
	})
	return nil
}

func (s *Sim) readLoop() {
	defer s.wg.Done()
	var sp rapi.Splitter
	buf := make([]byte, 256)
	for {
		n, err := s.ptmx.Read(buf)
		sp.Feed(buf[:n], func(line []byte, lerr error) { s.handle(line, lerr) })
		if err != nil {
			return
		}
	}
}

func (s *Sim) writeLoop(ctx context.Context) {
	defer s.wg.Done()
	for {
		select {
		case <-ctx.Done():
			return
		case b := <-s.out:
			if _, err := s.ptmx.Write(b); err != nil {
				return
			}
		}
	}
}

func (s *Sim) tickLoop(ctx context.Context) {
	defer s.wg.Done()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.clk.After(s.opts.Tick):
		}
		s.mu.Lock()
		s.apply(s.clk.Now())
		s.notifyLocked()
		s.mu.Unlock()
	}
}

// send queues one line; a full queue (nobody reading) drops it, like a
// serial line with nobody listening.
func (s *Sim) sendLocked(f rapi.Frame) {
	if s.silent {
		return
	}
	b, err := f.Append(nil)
	if err != nil {
		s.log.Error("rapisim: cannot encode", "frame", f.String(), "err", err)
		return
	}
	if s.badChecksum {
		// The two hex digits sit before the CR; flip them to another value.
		n := len(b)
		cs, _ := strconv.ParseUint(string(b[n-3:n-1]), 16, 8)
		copy(b[n-3:n-1], fmt.Sprintf("%02X", byte(cs)^0x5A))
	}
	select {
	case s.out <- b:
	default:
		s.log.Debug("rapisim: output queue full, dropping", "frame", f.String())
	}
}

func (s *Sim) handle(line []byte, lerr error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	raw := string(line)
	if lerr != nil {
		raw = fmt.Sprintf("%v", lerr)
	}
	s.received = append(s.received, raw)
	if len(s.received) > maxReceived {
		s.received = s.received[len(s.received)-maxReceived:]
	}
	if lerr != nil {
		return // the firmware drops over-long input silently
	}
	cmd, err := rapi.ParseCommandLine(line)
	if err != nil {
		// Like the firmware: a line it cannot tokenize gets a bare $NK.
		s.log.Debug("rapisim: bad command", "err", err)
		s.sendLocked(rapi.Frame{Name: "NK"})
		return
	}
	if s.opts.NoSequenceIDs && cmd.Seq != 0 {
		cmd.Fields = append(cmd.Fields, fmt.Sprintf(":%02X", cmd.Seq))
		cmd.Seq = 0
	}
	now := s.clk.Now()
	s.apply(now)
	ok, fields := s.exec(cmd, now)
	s.apply(now)
	name := "NK"
	if ok {
		name = "OK"
	}
	s.sendLocked(rapi.Frame{Name: name, Fields: fields, Seq: cmd.Seq})
	// The firmware sends a state notice after the reply when the command
	// changed something.
	s.notifyLocked()
}

func (s *Sim) exec(cmd rapi.Frame, now time.Time) (bool, []string) {
	args := cmd.Fields
	hsFields := func() []string {
		return []string{strconv.Itoa(s.hsInterval), strconv.Itoa(s.hsFallback), strconv.Itoa(s.hsTrigger)}
	}
	switch cmd.Name {
	case "GV":
		return true, []string{s.opts.Version, RAPIVersion}
	case "GS":
		n := s.snapshotNotice()
		return true, []string{fmt.Sprintf("%02x", uint8(n.evse)), strconv.FormatInt(s.elapsedS, 10),
			fmt.Sprintf("%02x", uint8(n.pilot)), fmt.Sprintf("%04x", n.vflags)}
	case "GG":
		return true, []string{strconv.FormatInt(s.currentMA(), 10), strconv.FormatInt(s.opts.VoltageMV, 10)}
	case "GU":
		return true, []string{strconv.FormatInt(s.sessionNJ/1e9, 10), strconv.FormatInt(s.totalWh, 10)}
	case "GE":
		return true, []string{strconv.Itoa(s.capacityA), "0000"}
	case "GC":
		return true, []string{strconv.Itoa(minCurrentA), strconv.Itoa(s.opts.MaxCurrentA),
			strconv.Itoa(s.capacityA), strconv.Itoa(s.opts.MaxCurrentA)}
	case "G0":
		return true, []string{map[bool]string{false: "0", true: "1"}[s.plugged]}
	case "GY":
		return true, hsFields()
	case "FE":
		s.mode = rapi.StateA
		return true, nil
	case "FS":
		s.mode = rapi.StateSleeping
		return true, nil
	case "FD":
		s.mode = rapi.StateDisabled
		return true, nil
	case "SB":
		return true, []string{"0"}
	case "SC":
		if len(args) < 1 || len(args) > 2 || (len(args) == 2 && args[1] == "M") {
			return false, nil
		}
		a, err := strconv.Atoi(args[0])
		if err != nil {
			return false, nil
		}
		set := min(max(a, minCurrentA), s.opts.MaxCurrentA)
		s.capacityA = set
		return set == a, []string{strconv.Itoa(set)}
	case "SY":
		switch len(args) {
		case 0: // pulse
			s.hsLast = now
			return s.hsTrigger != hsMissedNoAk, hsFields()
		case 1: // acknowledge a missed pulse
			c, err := strconv.Atoi(args[0])
			if err != nil || c != hsAckCookie || s.hsTrigger != hsMissedNoAk {
				return false, hsFields()
			}
			s.capacityA = s.opts.MaxCurrentA
			s.hsTrigger = hsMissedAckd
			s.hsLast = now
			return true, hsFields()
		case 2:
			iv, err1 := strconv.Atoi(args[0])
			fb, err2 := strconv.Atoi(args[1])
			if err1 != nil || err2 != nil || iv < 0 || iv > 65535 || fb < 0 || fb > 255 {
				return false, hsFields()
			}
			if iv == 0 && s.hsTrigger != 0 {
				s.capacityA = s.opts.MaxCurrentA
			}
			s.hsInterval, s.hsFallback, s.hsTrigger, s.hsLast = iv, fb, 0, now
			return true, hsFields()
		}
		return false, hsFields()
	}
	return false, nil
}

// apply brings the simulation to now: energy, heartbeat expiry (split at
// the exact moment, so a long clock jump integrates correctly), contactor.
func (s *Sim) apply(now time.Time) {
	for {
		step := now
		expiry := s.hsLast.Add(time.Duration(s.hsInterval) * time.Second)
		hsDue := s.hsInterval > 0 && step.After(expiry)
		if hsDue {
			step = expiry
		}
		s.integrate(step)
		if !hsDue {
			break
		}
		// The firmware lowers the capacity to the fallback, which its
		// SetCurrentCapacity clamps to the J1772 minimum of 6 A.
		if s.hsFallback < s.capacityA {
			s.capacityA = max(s.hsFallback, minCurrentA)
		}
		s.hsTrigger = hsMissedNoAk
		s.hsLast = expiry
		s.log.Debug("rapisim: heartbeat missed, current limited", "capacity_a", s.capacityA)
	}
	s.settle(now)
}

func (s *Sim) integrate(to time.Time) {
	if dt := to.Sub(s.last).Milliseconds(); dt > 0 {
		s.sessionNJ += s.currentMA() * s.opts.VoltageMV * dt
		s.last = s.last.Add(time.Duration(dt) * time.Millisecond)
	}
	if s.contactor {
		s.elapsedS = int64(to.Sub(s.chargedAt) / time.Second)
	}
}

// settle moves the contactor where the state says it should be.
func (s *Sim) settle(now time.Time) {
	want := s.mode == rapi.StateA && s.fault == 0 && s.plugged && s.wantsPower
	switch {
	case want && !s.contactor:
		s.contactor = true
		s.chargedAt, s.elapsedS = now, 0
	case !want && s.contactor:
		if s.stuckRelay {
			s.fault = rapi.StateStuckRelay
		} else {
			s.contactor = false
		}
	}
	if s.fault == rapi.StateStuckRelay && !s.stuckRelay {
		s.fault = 0
		s.settle(now)
	}
}

func (s *Sim) currentMA() int64 {
	if !s.contactor || !s.plugged || !s.wantsPower {
		return 0
	}
	return int64(min(s.capacityA, s.vehicleMaxA)) * 1000
}

func (s *Sim) snapshotNotice() notice {
	n := notice{capacityA: s.capacityA, pilot: rapi.StateA}
	if s.plugged {
		n.pilot = rapi.StateB
		n.vflags |= rapi.VFlagEVConnected
		// The vehicle closes its S2 switch only on an oscillating pilot.
		if s.wantsPower && s.mode == rapi.StateA && s.fault == 0 {
			n.pilot = rapi.StateC
		}
	}
	if s.contactor {
		n.vflags |= rapi.VFlagChargingOn
	}
	switch {
	case s.fault != 0:
		n.evse = s.fault
		n.vflags |= rapi.VFlagHardFault
	case s.mode != rapi.StateA:
		n.evse = s.mode
	default:
		n.evse = n.pilot
	}
	return n
}

// notifyLocked sends $AT when state, pilot, capacity or the connection and
// fault flags changed since the last one, as the firmware does.
func (s *Sim) notifyLocked() {
	n := s.snapshotNotice()
	old := s.sent
	if n.evse == old.evse && n.pilot == old.pilot && n.capacityA == old.capacityA &&
		n.vflags&changedMask == old.vflags&changedMask {
		return
	}
	s.sent = n
	s.sendLocked(rapi.Frame{Name: "AT", Fields: []string{
		fmt.Sprintf("%02x", uint8(n.evse)), fmt.Sprintf("%02x", uint8(n.pilot)),
		strconv.Itoa(n.capacityA), fmt.Sprintf("%04x", n.vflags)}})
}

// change runs fn on the simulation brought up to now, then settles the
// contactor and sends a notice if needed.
func (s *Sim) change(fn func(now time.Time)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.clk.Now()
	s.apply(now)
	fn(now)
	s.apply(now)
	s.notifyLocked()
}

// Plug connects the vehicle; like the firmware's energy meter, this starts
// a new session at zero.
func (s *Sim) Plug() {
	s.change(func(time.Time) {
		if !s.plugged {
			s.plugged = true
			s.sessionNJ = 0
			s.elapsedS = 0
		}
	})
}

// Unplug disconnects the vehicle and adds the session to the total.
func (s *Sim) Unplug() {
	s.change(func(time.Time) {
		if s.plugged {
			s.plugged, s.wantsPower = false, false
			s.totalWh += s.sessionNJ / 3_600_000_000_000
		}
	})
}

// RequestPower makes the plugged-in vehicle ask for power (pilot C when
// the pilot oscillates) or stop asking (B).
func (s *Sim) RequestPower(on bool) {
	s.change(func(time.Time) { s.wantsPower = on && s.plugged })
}

// SetVehicleMaxCurrent sets what the vehicle draws at most.
func (s *Sim) SetVehicleMaxCurrent(a int) {
	s.change(func(time.Time) { s.vehicleMaxA = max(a, 0) })
}

// PressButton is a short press on the station's front button, which in
// the firmware's default build toggles between sleeping and enabled.
func (s *Sim) PressButton() {
	s.change(func(time.Time) {
		if s.mode == rapi.StateA {
			s.mode = rapi.StateSleeping
		} else {
			s.mode = rapi.StateA
		}
	})
}

// Reboot restarts the simulated firmware: it comes up enabled at full
// capacity and announces itself with $AB.
func (s *Sim) Reboot() {
	s.change(func(time.Time) {
		s.boot()
		s.sendLocked(rapi.Frame{Name: "AB", Fields: []string{"00", s.opts.Version}})
	})
}

// SetSilent makes the simulator read commands but answer nothing, notices
// included.
func (s *Sim) SetSilent(on bool) {
	s.mu.Lock()
	s.silent = on
	s.mu.Unlock()
}

// SetBadChecksum corrupts the checksum of everything sent from now on.
func (s *Sim) SetBadChecksum(on bool) {
	s.mu.Lock()
	s.badChecksum = on
	s.mu.Unlock()
}

// SetStuckRelay welds the contactor: once closed it does not open, and
// the station goes to fault state 8 (stuck relay) when it should have.
// Clearing it frees the relay and the fault.
func (s *Sim) SetStuckRelay(on bool) {
	s.change(func(time.Time) { s.stuckRelay = on })
}

// Received returns the lines received so far (the last 1000), raw
// without CR; unreadable stretches appear as their error text.
func (s *Sim) Received() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.received...)
}

// ClearReceived forgets the lines received so far.
func (s *Sim) ClearReceived() {
	s.mu.Lock()
	s.received = nil
	s.mu.Unlock()
}

// Snapshot is the simulator's state at one moment.
type Snapshot struct {
	EVSE, Pilot        rapi.State
	Plugged            bool
	WantsPower         bool
	Enabled            bool // not sleeping or disabled
	ContactorClosed    bool
	CurrentCapacityA   int
	CurrentMA          int64
	VoltageMV          int64
	PowerW             int64
	SessionWs          int64
	TotalWh            int64
	HeartbeatIntervalS int
	HeartbeatFallbackA int
	HeartbeatTrigger   int // 0 never missed, 2 missed and not acknowledged, 1 acknowledged
}

// State brings the simulation up to the clock's now and reports it.
func (s *Sim) State() Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.apply(s.clk.Now())
	s.notifyLocked()
	n := s.snapshotNotice()
	ma := s.currentMA()
	return Snapshot{
		EVSE: n.evse, Pilot: n.pilot,
		Plugged: s.plugged, WantsPower: s.wantsPower,
		Enabled:            s.mode == rapi.StateA,
		ContactorClosed:    s.contactor,
		CurrentCapacityA:   s.capacityA,
		CurrentMA:          ma,
		VoltageMV:          s.opts.VoltageMV,
		PowerW:             ma * s.opts.VoltageMV / 1_000_000,
		SessionWs:          s.sessionNJ / 1e9,
		TotalWh:            s.totalWh,
		HeartbeatIntervalS: s.hsInterval, HeartbeatFallbackA: s.hsFallback,
		HeartbeatTrigger: s.hsTrigger,
	}
}
