package demo

import (
	"encoding/json"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"satwatt/internal/daemon"
	"satwatt/internal/prereq"
	"satwatt/internal/regtest"
)

// The system tests run the demo's site, driven by a test: real regtest
// Lightning, the simulated car and EVSE, wallctl and vehiclegw as built
// binaries, and (as root) the PLC link between two network namespaces.

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// builtBinaries builds vehiclegw and wallctl once per test binary.
func builtBinaries(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		root, err := regtest.FindRepoRoot()
		if err != nil {
			buildErr = err
			return
		}
		binDir, buildErr = os.MkdirTemp("", "satwatt-system-bin-")
		if buildErr != nil {
			return
		}
		cmd := exec.Command("go", "build", "-o", binDir+"/", "./vehiclegw", "./wallctl")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = err
			t.Logf("go build: %s", out)
		}
	})
	if buildErr != nil {
		t.Fatalf("build vehiclegw and wallctl: %v", buildErr)
	}
	return binDir
}

var subnets struct {
	sync.Mutex
	next int
}

// startSite starts a site for t and closes it when t ends. As root it
// uses network namespaces; otherwise loopback, saying so.
func startSite(t testing.TB, cfg Config) *Site {
	t.Helper()
	cfg.BinDir = builtBinaries(t)
	cfg.Dir = t.TempDir()
	if err := CanUseNamespaces(); err != nil {
		if prereq.InCI() {
			t.Fatalf("the system tests run as root under CI, to build the PLC link: %v", err)
		}
		t.Logf("PLC link on loopback (%v): the car is given the wall's URL", err)
	} else {
		cfg.Namespaces = true
		subnets.Lock()
		cfg.Subnet = 100 + subnets.next
		subnets.next++
		subnets.Unlock()
	}
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	s, err := Start(t.Context(), cfg)
	if err != nil {
		if s == nil {
			regtest.FailOrSkip(t, err)
		}
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, name := range []string{"vehiclegw", "wallctl", "simcar"} {
				b, _ := os.ReadFile(filepath.Join(cfg.Dir, name+".log"))
				t.Logf("%s log:\n%s", name, daemon.LastLines(string(b), 60))
			}
		}
		if err := s.Close(); err != nil {
			t.Errorf("close the site: %v", err)
		}
		if s.NS != nil && (nsExists(s.NS.Wall) || nsExists(s.NS.Car)) {
			t.Errorf("namespaces %s, %s left behind", s.NS.Wall, s.NS.Car)
		}
	})
	return s
}

// checkMoney asserts the money and energy invariants at the end of a
// scenario: the wall's lnd settled what the wall's SQLite holds, which is
// what the car's ledger paid; no session delivered more than it paid for
// plus the grace; the EVSE is off.
func checkMoney(t *testing.T, s *Site) (paidMsat int64) {
	t.Helper()
	ctx := t.Context()
	out, err := s.Net.Nodes["wall"].Lncli(ctx, "listinvoices", "--max_invoices", "10000")
	if err != nil {
		t.Fatalf("listinvoices: %v %s", err, out)
	}
	var inv struct {
		Invoices []struct {
			State       string `json:"state"`
			AmtPaidMsat string `json:"amt_paid_msat"`
		} `json:"invoices"`
	}
	if err := json.Unmarshal(out, &inv); err != nil {
		t.Fatalf("listinvoices: %v", err)
	}
	var lnd int64
	for _, i := range inv.Invoices {
		if i.State == "SETTLED" {
			v, _ := strconv.ParseInt(i.AmtPaidMsat, 10, 64)
			lnd += v
		}
	}
	wall, err := s.WallTotals(ctx)
	if err != nil {
		t.Fatal(err)
	}
	car, err := s.CarTotals(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if lnd != wall.PaidMsat || wall.PaidMsat != car.PaidMsat {
		t.Errorf("money: the wall's lnd settled %d msat, the wall's SQLite holds %d, the car's ledger %d", lnd, wall.PaidMsat, car.PaidMsat)
	}
	st, err := s.ReadWall(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.EVSE.Enabled || st.EVSE.ContactorClosed || st.EVSE.PowerW != 0 {
		t.Errorf("the EVSE is not off at the end: %+v", st.EVSE)
	}
	if l := st.Last; l != nil && l.DeliveredMWh > l.PaidEnergyMWh+l.GraceWh*1000 {
		t.Errorf("session %s delivered %d mWh on %d mWh paid and %d Wh grace", l.ID, l.DeliveredMWh, l.PaidEnergyMWh, l.GraceWh)
	}
	toEnergy := "never"
	if l := st.Last; l != nil && !l.FirstEnergyAt.IsZero() {
		toEnergy = l.FirstEnergyAt.Sub(l.StartedAt).Round(time.Millisecond).String()
	}
	t.Logf("money: %d msat settled on the wall's lnd = wall SQLite = car ledger; wall delivered %d mWh, car measured %d mWh; plug-in to energy (the wall's clock) %s",
		lnd, wall.DeliveredMWh, car.MeasuredMWh, toEnergy)
	return lnd
}

// ended waits until the wall has ended the session and returns its record.
func ended(t *testing.T, s *Site) WallSession {
	t.Helper()
	var last WallSession
	err := poll(t.Context(), time.Minute, func() error {
		st, err := s.ReadWall(t.Context())
		if err != nil {
			return err
		}
		if st.Session != nil || st.Last == nil {
			return errString("the session is still open")
		}
		last = *st.Last
		return nil
	})
	if err != nil {
		t.Fatalf("the wall never ended the session: %v", err)
	}
	return last
}

type errString string

func (e errString) Error() string { return string(e) }

// systemConfig is the scenarios' site: a 20 kWh simulated pack at socPct,
// the owner's target 80 %, 60 times real speed, 200 Wh per payment at
// 300 sat/kWh. From 60 % that is 4.4 kWh from the wall: some 24 simulated
// minutes at 11 kW, 24 real seconds.
func systemConfig(socPct int64) Config {
	return Config{Speed: 60, CapacityKWh: 20, SOCPct: socPct, TargetPct: 80, IncrementWh: 200, PriceSat: 300}
}

// TestSystemHappyPath: plug-in to target, then unplug.
func TestSystemHappyPath(t *testing.T) {
	s := startSite(t, systemConfig(60))
	ctx := t.Context()
	plugged := time.Now()
	if err := s.Plug(ctx); err != nil {
		t.Fatal(err)
	}
	var toEnergy time.Duration
	err := poll(ctx, 3*time.Minute, func() error {
		if st, err := s.ReadWall(ctx); err == nil && toEnergy == 0 && st.Session != nil && st.Session.DeliveredMWh > 0 {
			toEnergy = time.Since(plugged)
		}
		if st := s.LastCar(); st.State != "COMPLETE" {
			return errString("car " + st.State + " " + st.Error)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("the car never reached its target: %v", err)
	}
	if st := s.LastCar(); st.Error != "NONE" {
		t.Errorf("complete with error %s", st.Error)
	}
	sim, err := s.ReadSimcar(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if sim.SOCPermil < 795 {
		t.Errorf("the car stopped at %d‰, target 800‰", sim.SOCPermil)
	}
	if err := s.Unplug(ctx); err != nil {
		t.Fatal(err)
	}
	last := ended(t, s)
	if last.EndReason != "unplugged" {
		t.Errorf("end reason %q, want unplugged", last.EndReason)
	}
	paid := checkMoney(t, s)
	t.Logf("happy path: plug-in to energy %s, %d payments, %d msat, %d mWh delivered, state of charge %d‰",
		toEnergy.Round(10*time.Millisecond), last.Payments, paid, last.DeliveredMWh, sim.SOCPermil)
}

// TestSystemUnplugMidSession: the cable comes out while energy flows.
func TestSystemUnplugMidSession(t *testing.T) {
	s := startSite(t, systemConfig(20))
	ctx := t.Context()
	if err := s.Plug(ctx); err != nil {
		t.Fatal(err)
	}
	err := poll(ctx, 2*time.Minute, func() error {
		st, err := s.ReadWall(ctx)
		if err != nil {
			return err
		}
		if st.Session == nil || st.Session.Payments < 2 || st.Session.DeliveredMWh == 0 {
			return errString("not charging yet")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Unplug(ctx); err != nil {
		t.Fatal(err)
	}
	last := ended(t, s)
	if last.EndReason != "unplugged" {
		t.Errorf("end reason %q, want unplugged", last.EndReason)
	}
	if err := s.WaitCar(ctx, func(st CarStatus) bool { return st.State == "IDLE" }, time.Minute); err != nil {
		t.Fatalf("the gateway did not go idle: %v", err)
	}
	paid := checkMoney(t, s)
	t.Logf("unplug mid-session: %d payments, %d msat, %d mWh delivered", last.Payments, paid, last.DeliveredMWh)
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}
