package rapi_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"satwatt/internal/clock"
	"satwatt/internal/evse"
	"satwatt/internal/rapi"
	"satwatt/internal/rapi/rapisim"
)

var t0 = time.Date(2026, 11, 25, 2, 0, 0, 0, time.UTC)

// The driver satisfies the wall controller's interface.
var _ interface {
	Run(ctx context.Context) error
	Status(ctx context.Context) (evse.Status, error)
	Enable(ctx context.Context, maxCurrentA int) error
	Disable(ctx context.Context) error
	Changes() <-chan struct{}
	Close() error
} = (*rapi.Driver)(nil)

// logBuf collects the driver's and simulator's logs and prints them when
// a test fails; goroutines may log after the test ends, so not t.Log.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func testLogger(t *testing.T) *slog.Logger {
	lb := &logBuf{}
	t.Cleanup(func() {
		if t.Failed() {
			lb.mu.Lock()
			t.Logf("log:\n%s", lb.b.String())
			lb.mu.Unlock()
		}
	})
	return slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func startSim(t *testing.T, opts rapisim.Options) *rapisim.Sim {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	s, err := rapisim.Start(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func open(t *testing.T, cfg rapi.Config) *rapi.Driver {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	if cfg.CommandTimeout == 0 {
		cfg.CommandTimeout = 2 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d, err := rapi.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// waitFor polls cond in real time until it holds or a deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// advanceUntil moves a manual clock in steps until cond holds. Before
// each step it lets a command in flight get its reply (up to a real-time
// grace, after which the device is taken to be silent), so a loaded
// machine cannot turn a slow reply into a timeout.
func advanceUntil(t *testing.T, m *clock.Manual, d *rapi.Driver, step time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s (clock at %v)", what, m.Now().Sub(t0))
		}
		if d != nil {
			grace := time.Now().Add(200 * time.Millisecond)
			for rapi.InFlight(d) && time.Now().Before(grace) {
				time.Sleep(time.Millisecond)
			}
		}
		m.Advance(step)
		time.Sleep(time.Millisecond)
	}
}

// drive runs fn, which may wait on the manual clock, while advancing it.
func drive[T any](t *testing.T, m *clock.Manual, d *rapi.Driver, step time.Duration, fn func() (T, error)) (T, error) {
	t.Helper()
	type result struct {
		v   T
		err error
	}
	done := make(chan result, 1)
	go func() {
		v, err := fn()
		done <- result{v, err}
	}()
	var r result
	advanceUntil(t, m, d, step, "call to return", func() bool {
		select {
		case r = <-done:
			return true
		default:
			return false
		}
	})
	return r.v, r.err
}

func drain(ch <-chan struct{}) {
	select {
	case <-ch:
	default:
	}
}

// commands lists the commands the simulator received, "$SC 16 V" style:
// names and fields, without sequence ids and checksums.
func commands(t *testing.T, s *rapisim.Sim) []string {
	var out []string
	for _, l := range s.Received() {
		f, err := rapi.ParseCommandLine([]byte(l))
		if err != nil {
			out = append(out, "bad: "+l)
			continue
		}
		f.Seq = 0
		out = append(out, f.String())
	}
	return out
}

// containsInOrder reports whether want appears in got as a subsequence.
func containsInOrder(got, want []string) bool {
	i := 0
	for _, g := range got {
		if i < len(want) && g == want[i] {
			i++
		}
	}
	return i == len(want)
}

func TestOpenGreetsAndSleeps(t *testing.T) {
	sim := startSim(t, rapisim.Options{})
	open(t, rapi.Config{Device: sim.Path(), Heartbeat: 10 * time.Second})
	if got, want := commands(t, sim), []string{"$GV", "$SY 30 6", "$FS"}; !containsInOrder(got, want) {
		t.Errorf("greeting %q, want %q in order", got, want)
	}
	st := sim.State()
	if st.Enabled || st.HeartbeatIntervalS != 30 || st.HeartbeatFallbackA != rapi.FallbackCurrentA {
		t.Errorf("after Open the simulator is %+v; want asleep, supervision 30 s / 6 A", st)
	}
	// The probe carried a sequence id, and so do later commands.
	for _, l := range sim.Received() {
		if !strings.Contains(l, " :") {
			t.Errorf("command %q has no sequence id", l)
		}
	}
}

func TestOpenFails(t *testing.T) {
	silent := startSim(t, rapisim.Options{})
	silent.SetSilent(true)
	tests := []struct {
		name   string
		device string
	}{
		{"missing device", filepath.Join(t.TempDir(), "ttyUSB9")},
		{"silent device", silent.Path()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := rapi.Open(ctxT(t), rapi.Config{Device: tt.device, CommandTimeout: 50 * time.Millisecond, Logger: testLogger(t)})
			if err == nil {
				d.Close()
				t.Fatal("Open succeeded")
			}
			if !errors.Is(err, evse.ErrUnreachable) || !strings.Contains(err.Error(), tt.device) {
				t.Errorf("Open: %v; want evse.ErrUnreachable naming %s", err, tt.device)
			}
		})
	}
}

func TestEnableStatusEnergyDisable(t *testing.T) {
	m := clock.NewManual(t0)
	sim := startSim(t, rapisim.Options{Clock: m, VoltageMV: 240_000, MaxCurrentA: 32})
	// No Run here, so no heartbeats: a long period keeps the simulator's
	// supervision (3 periods) from limiting the current during the hour.
	d := open(t, rapi.Config{Device: sim.Path(), Heartbeat: time.Hour})
	ctx := ctxT(t)

	st, err := d.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := (evse.Status{Pilot: evse.PilotA, VoltageMV: 240_000}); st != want {
		t.Errorf("idle: %+v, want %+v", st, want)
	}

	sim.Plug()
	sim.RequestPower(true)
	st, err = d.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Asleep, the pilot does not oscillate, so the vehicle stays in B.
	if want := (evse.Status{Pilot: evse.PilotB, VoltageMV: 240_000}); st != want {
		t.Errorf("plugged, asleep: %+v, want %+v", st, want)
	}

	sim.ClearReceived()
	if err := d.Enable(ctx, 16); err != nil {
		t.Fatal(err)
	}
	if got, want := commands(t, sim), []string{"$SB", "$SC 16 V", "$FE"}; !containsInOrder(got, want) {
		t.Errorf("Enable sent %q, want %q in order", got, want)
	}
	st, err = d.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	charging := evse.Status{Pilot: evse.PilotC, Enabled: true, ContactorClosed: true,
		PowerW: 3840, VoltageMV: 240_000, CurrentMA: 16_000}
	if st != charging {
		t.Errorf("charging: %+v, want %+v", st, charging)
	}

	// One hour at 3840 W is 3840 Wh; the meter counts Ws, the driver
	// converts in integers.
	m.Advance(time.Hour)
	st, err = d.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	charging.SessionMWh = 3_840_000
	if st != charging {
		t.Errorf("after an hour: %+v, want %+v", st, charging)
	}

	if err := d.Disable(ctx); err != nil {
		t.Fatal(err)
	}
	st, err = d.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := (evse.Status{Pilot: evse.PilotB, VoltageMV: 240_000, SessionMWh: 3_840_000}); st != want {
		t.Errorf("disabled: %+v, want %+v", st, want)
	}
	if s := sim.State(); s.Enabled || s.ContactorClosed {
		t.Errorf("simulator after Disable: %+v", s)
	}

	// A new session starts at zero.
	sim.Unplug()
	sim.Plug()
	if st, err = d.Status(ctx); err != nil || st.SessionMWh != 0 {
		t.Errorf("new session: %+v, %v; want 0 mWh", st, err)
	}
}

func TestEnableCurrentLimits(t *testing.T) {
	sim := startSim(t, rapisim.Options{MaxCurrentA: 32})
	d := open(t, rapi.Config{Device: sim.Path()})
	ctx := ctxT(t)
	tests := []struct {
		askA     int
		wantA    int // capacity in the simulator afterwards
		wantErr  string
		wantSent bool
	}{
		{askA: 16, wantA: 16, wantSent: true},
		{askA: 6, wantA: 6, wantSent: true},
		{askA: 40, wantA: 32, wantSent: true}, // capped by the EVSE: fine, it is less
		{askA: 5, wantErr: "J1772 allows 6 to 80 A"},
		{askA: 0, wantErr: "J1772 allows"},
		{askA: 81, wantErr: "J1772 allows"},
	}
	for _, tt := range tests {
		sim.ClearReceived()
		err := d.Enable(ctx, tt.askA)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Enable(%d): %v, want %q", tt.askA, err, tt.wantErr)
			}
			if got := sim.Received(); len(got) != 0 {
				t.Errorf("Enable(%d) sent %q", tt.askA, got)
			}
			continue
		}
		if err != nil {
			t.Errorf("Enable(%d): %v", tt.askA, err)
			continue
		}
		if s := sim.State(); !s.Enabled || s.CurrentCapacityA != tt.wantA {
			t.Errorf("Enable(%d): simulator %+v, want enabled at %d A", tt.askA, s, tt.wantA)
		}
	}
}

func TestNoticesSignalChanges(t *testing.T) {
	sim := startSim(t, rapisim.Options{})
	d := open(t, rapi.Config{Device: sim.Path()})
	if err := d.Enable(ctxT(t), 16); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		action func()
	}{
		{"plug in", sim.Plug},
		{"vehicle asks for power", func() { sim.RequestPower(true) }},
		{"vehicle stops asking", func() { sim.RequestPower(false) }},
		{"unplug", sim.Unplug},
	}
	for _, tt := range tests {
		// A round trip: every notice sent before its replies has been
		// read, so the signal drained here is not stale.
		if _, err := d.Status(ctxT(t)); err != nil {
			t.Fatal(err)
		}
		drain(d.Changes())
		before := len(sim.Received())
		tt.action()
		select {
		case <-d.Changes():
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: no change signalled", tt.name)
		}
		// The signal came from a notice, not from a command of ours.
		if got := sim.Received()[before:]; len(got) != 0 {
			t.Errorf("%s: driver sent %q", tt.name, got)
		}
	}
}

func TestBadChecksumsFailCommandsNotTheDriver(t *testing.T) {
	sim := startSim(t, rapisim.Options{})
	d := open(t, rapi.Config{Device: sim.Path()})
	ctx := ctxT(t)
	sim.Plug()
	sim.RequestPower(true)

	sim.SetBadChecksum(true)
	_, err := d.Status(ctx)
	if !errors.Is(err, rapi.ErrChecksum) || errors.Is(err, evse.ErrUnreachable) {
		t.Errorf("Status with bad checksums: %v; want ErrChecksum, not ErrUnreachable", err)
	}
	if err == nil || !strings.Contains(err.Error(), `in line "$OK `) {
		t.Errorf("error %v does not quote the line", err)
	}
	// Enable cannot be confirmed: it fails, and the EVSE is put to sleep.
	if err := d.Enable(ctx, 16); err == nil {
		t.Error("Enable succeeded on garbled replies")
	}
	if s := sim.State(); s.Enabled || s.ContactorClosed {
		t.Errorf("after a failed Enable the simulator is %+v; want asleep", s)
	}

	sim.SetBadChecksum(false)
	if err := d.Enable(ctx, 16); err != nil {
		t.Fatalf("Enable after recovery: %v", err)
	}
	st, err := d.Status(ctx)
	if err != nil || !st.ContactorClosed {
		t.Errorf("Status after recovery: %+v, %v", st, err)
	}
}

func TestSilentDeviceTimesOutAtCommandTimeout(t *testing.T) {
	m := clock.NewManual(t0)
	sim := startSim(t, rapisim.Options{})
	const timeout = 3 * time.Second
	d := open(t, rapi.Config{Device: sim.Path(), Clock: m, CommandTimeout: timeout})
	sim.SetSilent(true)

	// Manual clock waiters stay registered until due, the greeting's too.
	before := m.Waiters()
	done := make(chan error, 1)
	go func() {
		_, err := d.Status(ctxT(t))
		done <- err
	}()
	waitFor(t, "the command to wait", func() bool { return m.Waiters() == before+1 })
	m.Advance(timeout - time.Millisecond)
	if m.Waiters() != before+1 {
		t.Fatal("the timeout fired early")
	}
	m.Advance(time.Millisecond)
	var err error
	select {
	case err = <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Status did not return at the command timeout")
	}
	if !errors.Is(err, evse.ErrUnreachable) || !strings.Contains(err.Error(), "no reply within 3s") {
		t.Errorf("Status: %v; want evse.ErrUnreachable after 3s", err)
	}

	// Without Run the link stays open, and works as soon as the EVSE
	// speaks again.
	sim.SetSilent(false)
	if _, err := d.Status(ctxT(t)); err != nil {
		t.Errorf("Status after the device spoke again: %v", err)
	}
}

func TestRunReopensSilentDevice(t *testing.T) {
	m := clock.NewManual(t0)
	sim := startSim(t, rapisim.Options{})
	d := open(t, rapi.Config{Device: sim.Path(), Clock: m, CommandTimeout: 500 * time.Millisecond, Heartbeat: time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan error, 1)
	go func() { runDone <- d.Run(ctx) }()
	defer func() {
		cancel()
		<-runDone
	}()

	sim.SetSilent(true)
	greetings := func() int {
		n := 0
		for _, c := range commands(t, sim) {
			if c == "$GV" {
				n++
			}
		}
		return n
	}
	// Two missed heartbeats, then Run reopens the device and greets again
	// (into the silence).
	advanceUntil(t, m, d, 100*time.Millisecond, "a reconnect attempt", func() bool { return greetings() >= 2 })
	_, err := drive(t, m, d, 100*time.Millisecond, func() (evse.Status, error) { return d.Status(context.Background()) })
	if !errors.Is(err, evse.ErrUnreachable) {
		t.Errorf("Status while silent: %v; want evse.ErrUnreachable", err)
	}

	sim.SetSilent(false)
	drain(d.Changes())
	sim.ClearReceived()
	// The next attempt succeeds, and the link starts with the EVSE asleep.
	advanceUntil(t, m, d, 100*time.Millisecond, "a completed greeting", func() bool {
		return containsInOrder(commands(t, sim), []string{"$GV", "$SY 3 6", "$FS"})
	})
	st, err := drive(t, m, d, 100*time.Millisecond, func() (evse.Status, error) { return d.Status(context.Background()) })
	if err != nil {
		t.Fatalf("Status after recovery: %v", err)
	}
	if st.Enabled {
		t.Errorf("after a reconnect the EVSE is enabled: %+v", st)
	}
	select {
	case <-d.Changes():
	default:
		t.Error("reconnect not signalled on Changes")
	}
}

func TestRunReopensVanishedDevice(t *testing.T) {
	m := clock.NewManual(t0)
	link := filepath.Join(t.TempDir(), "ttyEVSE")
	sim1 := startSim(t, rapisim.Options{})
	if err := os.Symlink(sim1.Path(), link); err != nil {
		t.Fatal(err)
	}
	d := open(t, rapi.Config{Device: link, Clock: m, CommandTimeout: 500 * time.Millisecond, Heartbeat: time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan error, 1)
	go func() { runDone <- d.Run(ctx) }()
	defer func() {
		cancel()
		<-runDone
	}()

	// Unplug the adapter.
	sim1.Close()
	os.Remove(link)
	waitFor(t, "the link to drop", func() bool {
		_, err := d.Status(context.Background())
		return err != nil && strings.Contains(err.Error(), "link down")
	})
	_, err := d.Status(context.Background())
	if !errors.Is(err, evse.ErrUnreachable) {
		t.Errorf("Status with the device gone: %v; want evse.ErrUnreachable", err)
	}
	// A few failed attempts with backoff...
	start := m.Now()
	advanceUntil(t, m, d, 250*time.Millisecond, "5 s without the device", func() bool { return m.Now().Sub(start) >= 5*time.Second })

	// ...then the adapter is back.
	sim2 := startSim(t, rapisim.Options{})
	if err := os.Symlink(sim2.Path(), link); err != nil {
		t.Fatal(err)
	}
	advanceUntil(t, m, d, 250*time.Millisecond, "the greeting on the new device", func() bool {
		return containsInOrder(commands(t, sim2), []string{"$GV", "$SY 3 6", "$FS"})
	})
	if _, err := drive(t, m, d, 100*time.Millisecond, func() (evse.Status, error) { return d.Status(context.Background()) }); err != nil {
		t.Errorf("Status on the new device: %v", err)
	}
}

func TestHeartbeatSupervision(t *testing.T) {
	m := clock.NewManual(t0)
	sim := startSim(t, rapisim.Options{Clock: m, MaxCurrentA: 32, VehicleMaxA: 32, VoltageMV: 240_000})
	d := open(t, rapi.Config{Device: sim.Path(), Clock: m, CommandTimeout: 500 * time.Millisecond, Heartbeat: time.Second})
	ctx := ctxT(t)
	sim.Plug()
	sim.RequestPower(true)
	if err := d.Enable(ctx, 32); err != nil {
		t.Fatal(err)
	}

	runCtx, stopRun := context.WithCancel(context.Background())
	runDone := make(chan error, 1)
	go func() { runDone <- d.Run(runCtx) }()

	// While Run pulses, supervision (3 s) never trips.
	start := m.Now()
	advanceUntil(t, m, d, 100*time.Millisecond, "10 s of heartbeats", func() bool { return m.Now().Sub(start) >= 10*time.Second })
	if s := sim.State(); s.HeartbeatTrigger != 0 || s.CurrentCapacityA != 32 || s.PowerW != 7680 {
		t.Fatalf("with heartbeats the simulator is %+v; want 32 A, 7680 W, never missed", s)
	}

	// Run returning leaves the EVSE asleep.
	stopRun()
	if err := <-runDone; !errors.Is(err, context.Canceled) {
		t.Errorf("Run returned %v", err)
	}
	if s := sim.State(); s.Enabled || s.ContactorClosed {
		t.Fatalf("after Run returned the simulator is %+v; want asleep", s)
	}

	// Now the controller is alive enough to enable but pulses no more, as
	// if it hung: the EVSE falls back by itself once supervision expires.
	if err := d.Enable(ctx, 32); err != nil {
		t.Fatal(err)
	}
	drain(d.Changes())
	m.Advance(3*time.Second + time.Millisecond)
	s := sim.State()
	if s.HeartbeatTrigger != 2 || s.CurrentCapacityA != rapi.FallbackCurrentA || s.CurrentMA != 6000 || s.PowerW != 1440 {
		t.Fatalf("after missed heartbeats the simulator is %+v; want 6 A, 1440 W, trigger 2", s)
	}
	select { // the capacity change came as an $AT notice
	case <-d.Changes():
	case <-time.After(5 * time.Second):
		t.Error("fallback not signalled on Changes")
	}

	// A new Run's first pulse is refused; it acknowledges and restores
	// the controller's limit.
	runCtx, stopRun = context.WithCancel(context.Background())
	go func() { runDone <- d.Run(runCtx) }()
	defer func() {
		stopRun()
		<-runDone
	}()
	// The firmware restores its capacity on the acknowledgement itself, so
	// wait for the driver's own "$SC" too before ending Run.
	advanceUntil(t, m, d, 100*time.Millisecond, "current restored", func() bool {
		s := sim.State()
		return s.HeartbeatTrigger == 1 && s.CurrentCapacityA == 32 &&
			containsInOrder(commands(t, sim), []string{"$SY", "$SY 165", "$SC 32 V"})
	})
	if !containsInOrder(commands(t, sim), []string{"$SY", "$SY 165", "$SC 32 V"}) {
		t.Errorf("no acknowledgement sequence in %q", commands(t, sim))
	}
}

func TestStuckRelayIsAFault(t *testing.T) {
	sim := startSim(t, rapisim.Options{})
	d := open(t, rapi.Config{Device: sim.Path()})
	ctx := ctxT(t)
	sim.Plug()
	sim.RequestPower(true)
	if err := d.Enable(ctx, 16); err != nil {
		t.Fatal(err)
	}
	sim.SetStuckRelay(true)
	drain(d.Changes())
	if err := d.Disable(ctx); err != nil {
		t.Fatal(err)
	}
	st, err := d.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Fault != "stuck relay" || !st.ContactorClosed || st.Enabled || st.PowerW == 0 {
		t.Errorf("stuck relay: %+v; want fault, contactor closed, power flowing, not enabled", st)
	}
	select {
	case <-d.Changes():
	case <-time.After(5 * time.Second):
		t.Error("fault not signalled on Changes")
	}
	sim.SetStuckRelay(false)
	st, err = d.Status(ctx)
	if err != nil || st.Fault != "" || st.ContactorClosed {
		t.Errorf("relay freed: %+v, %v", st, err)
	}
}

func TestRebootNoticeSleepsTheEVSE(t *testing.T) {
	m := clock.NewManual(t0)
	sim := startSim(t, rapisim.Options{})
	d := open(t, rapi.Config{Device: sim.Path(), Clock: m, CommandTimeout: 500 * time.Millisecond, Heartbeat: time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan error, 1)
	go func() { runDone <- d.Run(ctx) }()
	defer func() {
		cancel()
		<-runDone
	}()
	if err := d.Disable(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	sim.ClearReceived()
	sim.Reboot() // comes up enabled
	advanceUntil(t, m, d, 100*time.Millisecond, "the EVSE asleep again", func() bool {
		return !sim.State().Enabled && containsInOrder(commands(t, sim), []string{"$GV", "$FS"})
	})
}

func TestEnabledBehindTheControllersBackIsSleptAgain(t *testing.T) {
	sim := startSim(t, rapisim.Options{})
	d := open(t, rapi.Config{Device: sim.Path()})
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan error, 1)
	go func() { runDone <- d.Run(ctx) }()
	defer func() {
		cancel()
		<-runDone
	}()
	sim.Plug()
	sim.RequestPower(true)
	sim.ClearReceived()
	sim.PressButton() // someone at the wall resumes charging
	waitFor(t, "the EVSE asleep again", func() bool {
		return !sim.State().Enabled && containsInOrder(commands(t, sim), []string{"$FS"})
	})
	// While the controller wants power, a press that resumes is left alone.
	if err := d.Enable(ctxT(t), 16); err != nil {
		t.Fatal(err)
	}
	sim.PressButton()                            // stops
	sim.PressButton()                            // resumes
	if _, err := d.Status(ctxT(t)); err != nil { // a round trip: the notices are read
		t.Fatal(err)
	}
	if !sim.State().Enabled {
		t.Error("the driver slept an EVSE the controller wants on")
	}
}

func TestSequenceIDs(t *testing.T) {
	for _, tt := range []struct {
		name   string
		noSeq  bool
		wantID bool
	}{
		{"RAPI 3.0.0 and later", false, true},
		{"older firmware", true, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			sim := startSim(t, rapisim.Options{NoSequenceIDs: tt.noSeq})
			d := open(t, rapi.Config{Device: sim.Path()})
			sim.ClearReceived()
			if err := d.Enable(ctxT(t), 16); err != nil {
				t.Fatal(err)
			}
			if _, err := d.Status(ctxT(t)); err != nil {
				t.Fatal(err)
			}
			for _, l := range sim.Received() {
				if got := strings.Contains(l, " :"); got != tt.wantID {
					t.Errorf("command %q: sequence id %v, want %v", l, got, tt.wantID)
				}
			}
			if s := sim.State(); s.CurrentCapacityA != 16 {
				t.Errorf("capacity %d, want 16", s.CurrentCapacityA)
			}
		})
	}
}

func TestCloseSleepsAndReleases(t *testing.T) {
	sim := startSim(t, rapisim.Options{})
	d := open(t, rapi.Config{Device: sim.Path()})
	sim.Plug()
	sim.RequestPower(true)
	if err := d.Enable(ctxT(t), 16); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if s := sim.State(); s.Enabled || s.ContactorClosed {
		t.Errorf("after Close the simulator is %+v; want asleep", s)
	}
	if _, err := d.Status(ctxT(t)); err == nil {
		t.Error("Status works after Close")
	}
	if err := d.Run(ctxT(t)); err == nil {
		t.Error("Run works after Close")
	}
	if err := d.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}
