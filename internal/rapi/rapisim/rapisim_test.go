package rapisim

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"satwatt/internal/clock"
	"satwatt/internal/rapi"
)

var t0 = time.Date(2026, 11, 25, 2, 0, 0, 0, time.UTC)

// client speaks raw RAPI lines to the simulator, as a terminal would.
type client struct {
	t *testing.T
	f *os.File
	r *bufio.Reader
}

func dial(t *testing.T, s *Sim) *client {
	t.Helper()
	f, err := os.OpenFile(s.Path(), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return &client{t: t, f: f, r: bufio.NewReader(f)}
}

func (c *client) send(line string) {
	c.t.Helper()
	if _, err := c.f.Write([]byte(line + "\r")); err != nil {
		c.t.Fatal(err)
	}
}

// next returns the next line, without CR.
func (c *client) next() string {
	c.t.Helper()
	c.f.SetReadDeadline(time.Now().Add(5 * time.Second))
	l, err := c.r.ReadString('\r')
	if err != nil {
		c.t.Fatalf("reading: %v (got %q)", err, l)
	}
	return strings.TrimSuffix(l, "\r")
}

// reply returns the next line that is not a notice.
func (c *client) reply() string {
	c.t.Helper()
	for {
		if l := c.next(); !strings.HasPrefix(l, "$A") {
			return l
		}
	}
}

func cs(body string) string { return fmt.Sprintf("%s^%02X", body, rapi.Checksum([]byte(body))) }

func start(t *testing.T, opts Options) *Sim {
	t.Helper()
	s, err := Start(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestCommandReplies(t *testing.T) {
	tests := []struct {
		name  string
		opts  Options
		send  string
		reply string
	}{
		{"version", Options{}, "$GV^35", cs("$OK 9.0.0-rapisim " + RAPIVersion)},
		{"sequence id echoed", Options{}, cs("$GV :2A"), cs("$OK 9.0.0-rapisim " + RAPIVersion + " :2A")},
		{"old firmware ignores sequence id", Options{NoSequenceIDs: true}, cs("$GV :2A"), cs("$OK 9.0.0-rapisim " + RAPIVersion)},
		{"no checksum accepted", Options{}, "$GE", cs("$OK 32 0000")},
		{"additive checksum accepted", Options{}, "$FE*AF", "$OK^20"},
		{"bad checksum: bare NK", Options{}, cs("$GS :05")[:len(cs("$GS :05"))-2] + "00", "$NK^21"},
		{"unknown command", Options{}, cs("$ZZ"), "$NK^21"},
		{"state after boot", Options{}, "$GS^30", cs("$OK 01 0 01 0000")},
		{"current set", Options{}, cs("$SC 16 V"), cs("$OK 16")},
		{"current clamped down", Options{MaxCurrentA: 32}, cs("$SC 40 V"), cs("$NK 32")},
		{"current clamped up", Options{}, cs("$SC 3"), cs("$NK 6")},
		{"current maximum not settable", Options{}, cs("$SC 40 M"), "$NK^21"},
		{"meter idle", Options{VoltageMV: 230_000}, "$GG^24", cs("$OK 0 230000")},
		{"energy idle", Options{}, "$GU^36", cs("$OK 0 0")},
		{"supervision set", Options{}, cs("$SY 30 6"), cs("$OK 30 6 0")},
		{"pulse without supervision", Options{}, cs("$SY"), cs("$OK 0 0 0")},
		{"ack without a miss", Options{}, cs("$SY 165"), cs("$NK 0 0 0")},
		{"boot lock cleared", Options{}, cs("$SB"), cs("$OK 0")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := start(t, tt.opts)
			c := dial(t, s)
			c.send(tt.send)
			if got := c.reply(); got != tt.reply {
				t.Errorf("%q answered %q, want %q", tt.send, got, tt.reply)
			}
			if got := s.Received(); len(got) != 1 || got[0] != tt.send {
				t.Errorf("Received() = %q, want [%q]", got, tt.send)
			}
		})
	}
}

func TestNoticesAndKnobs(t *testing.T) {
	s := start(t, Options{})
	c := dial(t, s)

	s.Plug()
	if got, want := c.next(), cs("$AT 02 02 32 0100"); got != want {
		t.Errorf("plug: %q, want %q", got, want)
	}
	s.RequestPower(true)
	if got, want := c.next(), cs("$AT 03 03 32 0140"); got != want {
		t.Errorf("request power: %q, want %q", got, want)
	}
	// $FS: the reply first, then the notice, as the firmware does.
	c.send("$FS^" + fmt.Sprintf("%02X", rapi.Checksum([]byte("$FS"))))
	if got := c.next(); got != "$OK^20" {
		t.Errorf("sleep: %q", got)
	}
	if got, want := c.next(), cs("$AT fe 02 32 0100"); got != want {
		t.Errorf("sleep notice: %q, want %q", got, want)
	}

	s.SetBadChecksum(true)
	c.send("$GE")
	got := c.next()
	if _, err := rapi.ParseLine([]byte(got)); err == nil || !strings.Contains(err.Error(), "checksum mismatch") {
		t.Errorf("bad-checksum knob: %q parses (%v)", got, err)
	}
	s.SetBadChecksum(false)

	s.SetSilent(true)
	c.send("$GE")
	deadline := time.Now().Add(5 * time.Second)
	for len(s.Received()) < 3 { // the command must arrive while silent
		if time.Now().After(deadline) {
			t.Fatal("the simulator did not receive the command")
		}
		time.Sleep(time.Millisecond)
	}
	s.SetSilent(false)
	c.send("$GV^35")
	// The first answer is to $GV: the silent one was never sent.
	if got := c.reply(); !strings.HasPrefix(got, "$OK 9.0.0") {
		t.Errorf("after silence: %q", got)
	}
	if n := len(s.Received()); n != 4 {
		t.Errorf("received %d lines, want 4: %q", n, s.Received())
	}
}

func TestStuckRelay(t *testing.T) {
	s := start(t, Options{})
	c := dial(t, s)
	s.Plug()
	s.RequestPower(true)
	s.SetStuckRelay(true)
	c.send(cs("$FS"))
	c.reply()
	st := s.State()
	if st.EVSE != rapi.StateStuckRelay || !st.ContactorClosed || st.Enabled {
		t.Errorf("stuck: %+v", st)
	}
	s.SetStuckRelay(false)
	if st := s.State(); st.EVSE != rapi.StateSleeping || st.ContactorClosed {
		t.Errorf("freed: %+v", st)
	}
}

// Supervision drops to the fallback current, clamped to 6 A like the
// firmware; energy is integrated across the moment it trips.
func TestHeartbeatExpiry(t *testing.T) {
	tests := []struct {
		name        string
		set         string
		wantA       int
		wantEnergWs int64
	}{
		// 10 s at 32 A, then 60 s at the fallback, all at 240 V.
		{"fallback 6 A", "$SY 10 6", 6, 10*32*240 + 60*6*240},
		{"fallback 0 A is clamped to 6 A", "$SY 10 0", 6, 10*32*240 + 60*6*240},
		{"fallback above capacity changes nothing", "$SY 10 40", 32, 70 * 32 * 240},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := clock.NewManual(t0)
			s := start(t, Options{Clock: m, MaxCurrentA: 32, VehicleMaxA: 32, VoltageMV: 240_000})
			c := dial(t, s)
			s.Plug()
			s.RequestPower(true)
			c.send(cs(tt.set))
			c.reply()
			m.Advance(70 * time.Second)
			st := s.State()
			if st.CurrentCapacityA != tt.wantA || st.SessionWs != tt.wantEnergWs {
				t.Errorf("after 70 s without pulses: %d A, %d Ws; want %d A, %d Ws", st.CurrentCapacityA, st.SessionWs, tt.wantA, tt.wantEnergWs)
			}
			if st.HeartbeatTrigger != 2 {
				t.Errorf("trigger %d, want 2 (missed, not acknowledged)", st.HeartbeatTrigger)
			}
			c.send(cs("$SY"))
			if got := c.reply(); !strings.HasPrefix(got, "$NK") {
				t.Errorf("pulse after a miss: %q, want $NK", got)
			}
			c.send(cs("$SY 165"))
			if got := c.reply(); !strings.HasPrefix(got, "$OK 10 ") {
				t.Errorf("acknowledgement: %q", got)
			}
			if st := s.State(); st.CurrentCapacityA != 32 || st.HeartbeatTrigger != 1 {
				t.Errorf("after acknowledgement: %+v", st)
			}
		})
	}
}

func TestSessionEnergy(t *testing.T) {
	m := clock.NewManual(t0)
	s := start(t, Options{Clock: m, VoltageMV: 230_000, VehicleMaxA: 10})
	s.Plug()
	s.RequestPower(true) // 10 A at 230 V: 2300 W
	m.Advance(90 * time.Minute)
	if st := s.State(); st.SessionWs != 2300*5400 || st.PowerW != 2300 {
		t.Errorf("after 90 min: %+v", st)
	}
	s.Unplug()
	s.Plug()
	if st := s.State(); st.SessionWs != 0 || st.TotalWh != 3450 {
		t.Errorf("next session: %d Ws, total %d Wh; want 0, 3450", st.SessionWs, st.TotalWh)
	}
}
