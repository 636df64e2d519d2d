package rapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"satwatt/internal/clock"
	"satwatt/internal/evse"
)

// Defaults and the numbers behind heartbeat supervision.
const (
	DefaultBaud           = 115200 // the firmware's SERIAL_BAUD
	DefaultCommandTimeout = 2 * time.Second
	DefaultHeartbeat      = 10 * time.Second

	// SupervisionFactor: the EVSE is told to expect a heartbeat within
	// this many heartbeat periods (rounded up to whole seconds, the unit
	// of $SY), so one lost or late pulse does not trip it. With the
	// default heartbeat that is 30 s.
	SupervisionFactor = 3
	// FallbackCurrentA is the current the EVSE falls back to when
	// heartbeats stop. The firmware clamps any lower value up to J1772's
	// minimum of 6 A, so supervision limits power (about 1.4 kW at 230 V)
	// rather than cutting it.
	FallbackCurrentA = 6
	// MinCurrentA and MaxCurrentA are J1772's pilot range.
	MinCurrentA = 6
	MaxCurrentA = 80

	hsAckCookie  = "165" // 0xA5: acknowledges a missed heartbeat
	silentLimit  = 2     // consecutive timeouts after which the link is reopened
	backoffFirst = time.Second
	backoffMax   = 30 * time.Second
	disableTries = 3
)

// Config says where the EVSE is and how to talk to it.
type Config struct {
	Device         string        // serial device, e.g. /dev/ttyUSB0
	Baud           int           // default 115200
	CommandTimeout time.Duration // per command; default 2 s
	// Heartbeat is how often Run sends the $SY pulse; default 10 s. The
	// supervision interval set in the EVSE is SupervisionFactor times
	// this, in whole seconds.
	Heartbeat time.Duration
	Clock     clock.Clock  // default clock.Real{}
	Logger    *slog.Logger // default slog.Default()
}

// Driver drives one OpenEVSE over RAPI. It satisfies the wall
// controller's EVSE interface.
type Driver struct {
	cfg     Config
	log     *slog.Logger
	clk     clock.Clock
	changes chan struct{}
	kick    chan struct{} // wakes Run: the link went silent or the EVSE rebooted
	done    chan struct{} // closed by Close
	sem     chan struct{} // one command in flight
	opMu    sync.Mutex    // Enable and Disable sequences do not interleave

	mu        sync.Mutex
	conn      *conn
	lastErr   error // why conn is nil
	closing   bool  // Close has begun
	closed    bool  // Close has released the device
	running   bool
	wantOn    bool // what the controller last asked for
	wantA     int
	seq       uint8
	timeouts  int  // consecutive command timeouts
	rebooted  bool // $AB seen on the current link
	enforce   bool // a notice showed the EVSE enabled against wantOn
	hsEnabled bool // the EVSE accepted $SY supervision
}

// conn is one open link; a reconnect makes a new one.
type conn struct {
	f       *os.File
	replies chan reply
	dead    chan struct{}
	once    sync.Once
	err     error // why it died; set before dead is closed
	seqIDs  atomic.Bool
}

type reply struct {
	f   Frame
	err error
}

func (c *conn) close(err error) {
	c.once.Do(func() {
		c.err = err
		close(c.dead)
		c.f.Close()
	})
}

var (
	errClosed = errors.New("rapi: driver closed")
	errSilent = errors.New("EVSE stopped answering")
)

// Open opens the serial device, checks that an OpenEVSE answers, sets up
// heartbeat supervision and puts the EVSE to sleep: nothing charges until
// Enable. It fails, wrapping evse.ErrUnreachable, if nothing answers.
func Open(ctx context.Context, cfg Config) (*Driver, error) {
	if cfg.Device == "" {
		return nil, errors.New("rapi: no serial device configured")
	}
	if cfg.Baud == 0 {
		cfg.Baud = DefaultBaud
	}
	if cfg.CommandTimeout <= 0 {
		cfg.CommandTimeout = DefaultCommandTimeout
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = DefaultHeartbeat
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	d := &Driver{
		cfg:     cfg,
		log:     cfg.Logger.With("evse", "rapi", "device", cfg.Device),
		clk:     cfg.Clock,
		changes: make(chan struct{}, 1),
		kick:    make(chan struct{}, 1),
		done:    make(chan struct{}),
		sem:     make(chan struct{}, 1),
	}
	if err := d.connect(ctx); err != nil {
		return nil, err
	}
	return d, nil
}

// Changes signals, coalesced, that the EVSE reported something by itself
// (state notice, reboot) or that the link was lost or re-established.
func (d *Driver) Changes() <-chan struct{} { return d.changes }

func (d *Driver) signal() {
	select {
	case d.changes <- struct{}{}:
	default:
	}
}

func (d *Driver) wake() {
	select {
	case d.kick <- struct{}{}:
	default:
	}
}

// SupervisionInterval is the $SY interval the driver sets, in seconds.
func (d *Driver) SupervisionInterval() int {
	return supervisionSeconds(d.cfg.Heartbeat)
}

func supervisionSeconds(hb time.Duration) int {
	s := (SupervisionFactor*hb + time.Second - 1) / time.Second
	return int(min(max(s, 1), 65535))
}

// connect opens the device and greets the EVSE: sequence-id probe,
// heartbeat supervision, sleep. A new link always starts with the EVSE
// asleep, whatever the controller wanted before: after a silence or a
// reboot nobody knows what the EVSE did meanwhile, and the controller
// re-enables it if energy is still paid (it hears of the reconnect through
// Changes).
func (d *Driver) connect(ctx context.Context) error {
	f, err := openSerial(d.cfg.Device, d.cfg.Baud)
	if err != nil {
		return fmt.Errorf("%w: %w", evse.ErrUnreachable, err)
	}
	c := &conn{f: f, replies: make(chan reply, 4), dead: make(chan struct{})}
	go d.read(c)
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		c.close(errClosed)
		return errClosed
	}
	d.conn, d.timeouts, d.rebooted, d.enforce = c, 0, false, false
	d.mu.Unlock()

	if err := d.greet(ctx, c); err != nil {
		d.drop(c, err)
		return fmt.Errorf("%w (device %s)", err, d.cfg.Device)
	}
	d.signal()
	return nil
}

func (d *Driver) greet(ctx context.Context, c *conn) error {
	// Firmware with RAPI 3.0.0 or later echoes a sequence id; older
	// firmware ignores the extra token of $GV. With ids, a late reply to a
	// timed-out command can never be taken for the answer to the next one.
	v, err := d.doOn(ctx, c, Frame{Name: "GV"}, true)
	if err != nil {
		return err
	}
	c.seqIDs.Store(v.Seq != 0)
	d.log.Info("rapi: OpenEVSE answered", "version", v.Fields, "sequence_ids", v.Seq != 0)

	iv := d.SupervisionInterval()
	_, err = d.doOn(ctx, c, Frame{Name: "SY", Fields: []string{strconv.Itoa(iv), strconv.Itoa(FallbackCurrentA)}}, false)
	switch {
	case err == nil:
		d.log.Info("rapi: heartbeat supervision on", "interval_s", iv, "fallback_a", FallbackCurrentA)
	case errors.Is(err, ErrRefused):
		// Built without HEARTBEAT_SUPERVISION: Run still polls to notice a
		// silent line, but the EVSE will not fall back by itself.
		d.log.Warn("rapi: EVSE refused heartbeat supervision; it will not limit current by itself if the wall controller dies", "err", err)
	default:
		return err
	}
	d.mu.Lock()
	d.hsEnabled = err == nil
	d.mu.Unlock()
	if _, err := d.doOn(ctx, c, Frame{Name: "FS"}, false); err != nil {
		return err
	}
	return nil
}

// drop ends a link; Run notices and reconnects.
func (d *Driver) drop(c *conn, err error) {
	d.mu.Lock()
	if d.conn == c {
		d.conn, d.lastErr = nil, err
	}
	d.mu.Unlock()
	c.close(err)
	d.signal()
}

func (d *Driver) current() (*conn, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case d.closed:
		return nil, errClosed
	case d.conn == nil:
		return nil, fmt.Errorf("%w: link down: %v", evse.ErrUnreachable, d.lastErr)
	}
	return d.conn, nil
}

// read runs for the life of one link: it splits lines, hands replies to
// the waiting command and turns notices into Changes.
func (d *Driver) read(c *conn) {
	var sp Splitter
	buf := make([]byte, 256)
	for {
		n, err := c.f.Read(buf)
		sp.Feed(buf[:n], func(line []byte, lerr error) { d.handleLine(c, line, lerr) })
		if err != nil {
			d.drop(c, fmt.Errorf("read: %w", err))
			return
		}
	}
}

func (d *Driver) handleLine(c *conn, line []byte, lerr error) {
	if lerr == nil {
		f, err := ParseLine(line)
		if err == nil {
			switch {
			case f.IsReply():
				d.deliver(c, reply{f: f})
			case f.Name == "AT" || f.Name == "ST":
				d.log.Debug("rapi: notice", "notice", f.String())
				if n, err := ParseStateNotice(f); err == nil && n.EVSE >= StateA && n.EVSE <= StateC {
					d.mu.Lock()
					d.enforce = !d.wantOn
					d.mu.Unlock()
					d.wake()
				}
				d.signal()
			case f.Name == "AB":
				d.log.Warn("rapi: EVSE rebooted", "notice", f.String())
				d.mu.Lock()
				d.rebooted = true
				d.mu.Unlock()
				d.wake()
				d.signal()
			case f.IsAsync():
				d.log.Debug("rapi: notice", "notice", f.String())
				d.signal()
			default:
				d.log.Warn("rapi: unexpected line from the EVSE", "line", f.String())
			}
			return
		}
		lerr = err
	}
	if looksAsync(line) {
		// Something changed even if we cannot read what; a Status call
		// will find out.
		d.log.Warn("rapi: unreadable notice", "err", lerr)
		d.signal()
		return
	}
	d.log.Warn("rapi: unreadable line", "err", lerr)
	// It may be the reply to the command in flight: fail that command
	// rather than wait for a timeout.
	d.deliver(c, reply{err: lerr})
}

func looksAsync(line []byte) bool {
	return len(line) >= 3 && line[0] == '$' &&
		(line[1] == 'A' || string(line[1:3]) == "ST" || string(line[1:3]) == "WF")
}

func (d *Driver) deliver(c *conn, r reply) {
	select {
	case c.replies <- r:
	default:
		d.log.Warn("rapi: dropping a reply nobody waits for")
	}
}

func (d *Driver) nextSeq() uint8 {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.seq++
	if d.seq == 0 { // 0 means "no id"
		d.seq = 1
	}
	return d.seq
}

// do sends one command on the current link and waits for its reply.
func (d *Driver) do(ctx context.Context, name string, args ...string) (Frame, error) {
	c, err := d.current()
	if err != nil {
		return Frame{}, fmt.Errorf("rapi: $%s: %w", name, err)
	}
	return d.doOn(ctx, c, Frame{Name: name, Fields: args}, false)
}

// doOn sends f on c and waits for the reply. With probe, f carries a
// sequence id whatever c supports, and any reply is taken.
func (d *Driver) doOn(ctx context.Context, c *conn, f Frame, probe bool) (Frame, error) {
	select {
	case d.sem <- struct{}{}:
	case <-ctx.Done():
		return Frame{}, fmt.Errorf("rapi: %s: %w", f, ctx.Err())
	}
	defer func() { <-d.sem }()

	// Whatever arrived while nobody asked is stale: late replies to
	// timed-out commands, noise.
	for drained := false; !drained; {
		select {
		case <-c.replies:
		default:
			drained = true
		}
	}
	seqIDs := c.seqIDs.Load()
	if seqIDs || probe {
		f.Seq = d.nextSeq()
	}
	line, err := f.Append(nil)
	if err != nil {
		return Frame{}, err
	}
	// The write deadline is the kernel's, in real time: a wedged adapter
	// must not hang the caller even when the driver runs on a test clock.
	_ = c.f.SetWriteDeadline(time.Now().Add(d.cfg.CommandTimeout))
	if _, err := c.f.Write(line); err != nil {
		d.drop(c, fmt.Errorf("write: %w", err))
		return Frame{}, fmt.Errorf("rapi: %s: %w: %w", f, evse.ErrUnreachable, err)
	}
	timeout := d.clk.After(d.cfg.CommandTimeout)
	for {
		select {
		case r := <-c.replies:
			if r.err != nil {
				return Frame{}, fmt.Errorf("rapi: %s: garbled reply: %w", f, r.err)
			}
			if seqIDs && r.f.Seq != f.Seq {
				if r.f.Seq == 0 && !r.f.OK() {
					// The firmware answers a line it could not read with
					// a bare $NK: our command arrived damaged.
					d.answered()
					return r.f, fmt.Errorf("%w: %s: the EVSE could not read the command (%s)", ErrRefused, f, r.f)
				}
				d.log.Debug("rapi: dropping a reply to an earlier command", "reply", r.f.String(), "want_seq", f.Seq)
				continue
			}
			d.answered()
			if !r.f.OK() {
				return r.f, fmt.Errorf("%w: %s answered %s", ErrRefused, f, r.f)
			}
			return r.f, nil
		case <-c.dead:
			return Frame{}, fmt.Errorf("rapi: %s: %w: %v", f, evse.ErrUnreachable, c.err)
		case <-timeout:
			d.timedOut()
			return Frame{}, fmt.Errorf("rapi: %s: no reply within %v: %w", f, d.cfg.CommandTimeout, evse.ErrUnreachable)
		case <-ctx.Done():
			return Frame{}, fmt.Errorf("rapi: %s: %w", f, ctx.Err())
		}
	}
}

func (d *Driver) answered() {
	d.mu.Lock()
	d.timeouts = 0
	d.mu.Unlock()
}

func (d *Driver) timedOut() {
	d.mu.Lock()
	d.timeouts++
	silent := d.timeouts >= silentLimit
	d.mu.Unlock()
	if silent {
		d.wake()
	}
}

// Run keeps the link: heartbeat pulses, reopening a silent or vanished
// device with backoff. It returns when ctx ends or the driver is closed,
// putting the EVSE to sleep first.
func (d *Driver) Run(ctx context.Context) error {
	d.mu.Lock()
	switch {
	case d.closed:
		d.mu.Unlock()
		return errClosed
	case d.running:
		d.mu.Unlock()
		return errors.New("rapi: Run called twice")
	}
	d.running = true
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		d.running = false
		d.mu.Unlock()
	}()
	defer d.sleepOnExit()

	backoff := backoffFirst
	beat := d.clk.After(d.cfg.Heartbeat)
	for {
		c, err := d.current()
		if errors.Is(err, errClosed) {
			return err
		}
		if c == nil {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-d.done:
				return errClosed
			case <-d.clk.After(backoff):
			}
			if err := d.connect(ctx); err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				backoff = min(2*backoff, backoffMax)
				d.log.Warn("rapi: EVSE unreachable", "err", err, "retry_in", backoff)
				continue
			}
			d.log.Info("rapi: link re-established")
			backoff = backoffFirst
			beat = d.clk.After(d.cfg.Heartbeat)
			continue
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-d.done:
			return errClosed
		case <-c.dead:
			d.log.Warn("rapi: link lost", "err", c.err)
		case <-d.kick:
			d.mu.Lock()
			silent, rebooted, enforce := d.timeouts >= silentLimit, d.rebooted, d.enforce
			d.enforce = false
			d.mu.Unlock()
			switch {
			case silent:
				d.log.Warn("rapi: EVSE silent, reopening the device")
				d.drop(c, errSilent)
			case rebooted:
				// It may have come up enabled; a new greeting puts it to
				// sleep and restores supervision.
				d.drop(c, errors.New("EVSE rebooted"))
			case enforce:
				d.enforceSleep()
			}
		case <-beat:
			d.heartbeat(ctx)
			beat = d.clk.After(d.cfg.Heartbeat)
		}
	}
}

// enforceSleep puts the EVSE back to sleep when it enabled itself (its
// front button, another RAPI master) while the controller wants it off.
func (d *Driver) enforceSleep() {
	d.opMu.Lock()
	defer d.opMu.Unlock()
	d.mu.Lock()
	on := d.wantOn
	d.mu.Unlock()
	if !on {
		d.log.Warn("rapi: EVSE enabled without the controller asking (front button?); sleeping it")
		d.sleepBestEffort()
	}
}

// heartbeat sends the supervision pulse. A $NK means the EVSE missed
// pulses and fell back to FallbackCurrentA; acknowledging restores its
// full capacity, so the controller's limit is applied again.
func (d *Driver) heartbeat(ctx context.Context) {
	d.mu.Lock()
	hs := d.hsEnabled
	d.mu.Unlock()
	if !hs {
		// No supervision in the firmware: poll, to notice silence.
		if _, err := d.do(ctx, "GS"); err != nil {
			d.log.Warn("rapi: poll failed", "err", err)
		}
		return
	}
	_, err := d.do(ctx, "SY")
	if err == nil {
		return
	}
	if !errors.Is(err, ErrRefused) {
		d.log.Warn("rapi: heartbeat failed", "err", err)
		return
	}
	d.log.Warn("rapi: EVSE reports missed heartbeats and limited its current; acknowledging")
	if _, err := d.do(ctx, "SY", hsAckCookie); err != nil {
		d.log.Warn("rapi: heartbeat acknowledgement failed", "err", err)
	}
	d.mu.Lock()
	on, a := d.wantOn, d.wantA
	d.mu.Unlock()
	if on {
		if _, err := d.setCurrent(ctx, a); err != nil {
			d.log.Error("rapi: could not restore the current limit after a heartbeat acknowledgement; sleeping the EVSE", "err", err)
			d.sleepBestEffort()
		}
	}
	d.signal()
}

func (d *Driver) sleepOnExit() {
	ctx, cancel := context.WithTimeout(context.Background(), disableTries*d.cfg.CommandTimeout)
	defer cancel()
	if err := d.Disable(ctx); err != nil && !errors.Is(err, errClosed) {
		d.log.Error("rapi: could not put the EVSE to sleep on the way out", "err", err)
	}
}

func (d *Driver) sleepBestEffort() {
	ctx, cancel := context.WithTimeout(context.Background(), disableTries*d.cfg.CommandTimeout)
	defer cancel()
	if _, err := d.do(ctx, "FS"); err != nil {
		d.log.Error("rapi: could not put the EVSE to sleep", "err", err)
	}
}

// Status reads state ($GS), current and voltage ($GG) and the session's
// energy ($GU).
func (d *Driver) Status(ctx context.Context) (evse.Status, error) {
	f, err := d.do(ctx, "GS")
	if err != nil {
		return evse.Status{}, err
	}
	gs, err := parseGS(f.Fields)
	if err != nil {
		return evse.Status{}, fmt.Errorf("rapi: %w", err)
	}
	f, err = d.do(ctx, "GG")
	if err != nil {
		return evse.Status{}, err
	}
	gg, err := parseInts("$GG", true, f.Fields, "milliamps", "millivolts")
	if err != nil {
		return evse.Status{}, fmt.Errorf("rapi: %w", err)
	}
	f, err = d.do(ctx, "GU")
	if err != nil {
		return evse.Status{}, err
	}
	gu, err := parseInts("$GU", false, f.Fields, "watt-seconds", "watt-hours")
	if err != nil {
		return evse.Status{}, fmt.Errorf("rapi: %w", err)
	}
	return buildStatus(gs, meterReply{CurrentMA: gg[0], VoltageMV: gg[1], SessionWs: gu[0], TotalWh: gu[1]}), nil
}

// Enable lets the EVSE charge at up to maxCurrentA: $SB (clears the boot
// lock of firmware built with BOOTLOCK; others refuse it, harmlessly),
// $SC maxCurrentA V (volatile, so no EEPROM wear), $FE. If any step fails
// the EVSE is put back to sleep.
func (d *Driver) Enable(ctx context.Context, maxCurrentA int) error {
	if maxCurrentA < MinCurrentA || maxCurrentA > MaxCurrentA {
		return fmt.Errorf("rapi: enable at %d A: J1772 allows %d to %d A", maxCurrentA, MinCurrentA, MaxCurrentA)
	}
	d.opMu.Lock()
	defer d.opMu.Unlock()
	d.setWant(true, maxCurrentA)
	fail := func(err error) error {
		d.setWant(false, 0)
		d.sleepBestEffort()
		return err
	}
	if _, err := d.do(ctx, "SB"); err != nil && !errors.Is(err, ErrRefused) {
		return fail(err)
	}
	if _, err := d.setCurrent(ctx, maxCurrentA); err != nil {
		return fail(err)
	}
	if _, err := d.do(ctx, "FE"); err != nil {
		return fail(err)
	}
	return nil
}

// setCurrent sends $SC a V. The firmware clamps to its range and then
// answers $NK with the value it set: lower is fine, higher is not.
func (d *Driver) setCurrent(ctx context.Context, a int) (int, error) {
	f, err := d.do(ctx, "SC", strconv.Itoa(a), "V")
	if err != nil && !errors.Is(err, ErrRefused) {
		return 0, err
	}
	set, err := setCurrentReply(a, f, err)
	if err == nil && set < a {
		d.log.Info("rapi: EVSE capped the current below the request", "asked_a", a, "set_a", set)
	}
	return set, err
}

// setCurrentReply reads the current the EVSE set from its reply f to
// "$SC asked V"; refused is the error of a $NK reply, nil for $OK.
func setCurrentReply(asked int, f Frame, refused error) (int, error) {
	if len(f.Fields) == 0 {
		if refused != nil {
			return 0, fmt.Errorf("rapi: $SC %d V: reply %s carries no current: %w", asked, f, refused)
		}
		return 0, fmt.Errorf("rapi: $SC %d V: reply %s carries no current", asked, f)
	}
	// The firmware prints the current it set from a uint8_t, after
	// clamping it to J1772's range.
	v, perr := strconv.ParseUint(f.Fields[0], 10, 8)
	set := int(v)
	switch {
	case perr != nil:
		return 0, fmt.Errorf("rapi: $SC %d V: reply %s: current %q is not a decimal from 0 to 255", asked, f, f.Fields[0])
	case set < MinCurrentA:
		return 0, fmt.Errorf("rapi: $SC %d V: reply %s: %d A is below J1772's minimum of %d A", asked, f, set, MinCurrentA)
	case set > asked:
		return set, fmt.Errorf("rapi: $SC %d V: asked for at most %d A, the EVSE set %d A", asked, asked, set)
	}
	return set, nil
}

func (d *Driver) setWant(on bool, a int) {
	d.mu.Lock()
	d.wantOn, d.wantA = on, a
	d.mu.Unlock()
}

// Disable puts the EVSE to sleep ($FS): pilot steady, contactor open.
// It tries a few times, since it is the safety action.
func (d *Driver) Disable(ctx context.Context) error {
	d.opMu.Lock()
	defer d.opMu.Unlock()
	d.setWant(false, 0)
	var err error
	for try := 0; try < disableTries; try++ {
		if _, err = d.do(ctx, "FS"); err == nil {
			return nil
		}
		if ctx.Err() != nil || errors.Is(err, errClosed) {
			break
		}
		if _, cerr := d.current(); cerr != nil {
			break // no link: retrying cannot help
		}
	}
	return err
}

// Close puts the EVSE to sleep (bounded by a few command timeouts) and
// releases the device. Run returns.
func (d *Driver) Close() error {
	d.mu.Lock()
	if d.closing {
		d.mu.Unlock()
		return nil
	}
	d.closing = true
	d.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), disableTries*d.cfg.CommandTimeout)
	err := d.Disable(ctx)
	cancel()
	d.mu.Lock()
	d.closed = true
	c := d.conn
	d.conn, d.lastErr = nil, errClosed
	d.mu.Unlock()
	close(d.done)
	if c != nil {
		c.close(errClosed)
	}
	if err != nil {
		return fmt.Errorf("rapi: close: EVSE may still be enabled: %w", err)
	}
	return nil
}
