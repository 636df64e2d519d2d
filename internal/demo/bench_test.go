package demo

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3"

	"satwatt/internal/regtest"
)

// energyRuns is how many plug-ins BenchmarkSystemTimeToEnergy times.
const energyRuns = 5

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

func msOf(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// BenchmarkSystemTimeToEnergy runs the whole product at real speed, as the
// demo does (regtest Lightning, the simulated car and EVSE, wallctl and
// vehiclegw as built binaries, as root the PLC link between namespaces
// with SDP) and plugs the car in energyRuns times. Each run is timed on
// the wall's clock from its "plugged" event (the EVSE saw state B) to its
// "contactor_closed" event: SDP, the offer, the invoice, the car's checks,
// a real payment and its settlement, the EVSE's enable and the vehicle's
// response. Baseline, in the same run on the same channel: `lncli
// payinvoice` of a wall invoice, process start included.
//
// The same site gives the other whole-product figures: peak resident
// memory of wallctl and vehiclegw (VmHWM) after a session with payments,
// and each command's start-up, exec to ready, over three restarts.
// One op is the whole benchmark; run it with -benchtime 1x.
func BenchmarkSystemTimeToEnergy(b *testing.B) {
	pollInterval = 5 * time.Millisecond
	b.Cleanup(func() { pollInterval = 100 * time.Millisecond })
	// 10 Wh increments: at 7.4 kW a payment every few seconds.
	s := startSite(b, Config{IncrementWh: 10, SOCPct: 20, TargetPct: 90})
	ctx := b.Context()
	db, err := sql.Open("sqlite3", "file:"+s.WallDB+"?mode=ro")
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	for range b.N {
		var toEnable, toEnergy []time.Duration
		for run := range energyRuns {
			if err := s.Plug(ctx); err != nil {
				b.Fatal(err)
			}
			var id string
			if err := poll(ctx, 60*time.Second, func() error {
				st, err := s.ReadWall(ctx)
				if err != nil {
					return err
				}
				if st.Session == nil || !st.EVSE.ContactorClosed {
					return fmt.Errorf("connector %s: %s", st.Connector, st.Why)
				}
				id = st.Session.ID
				return nil
			}); err != nil {
				b.Fatalf("run %d: no energy: %v", run, err)
			}
			en, d, err := plugToContactor(ctx, db, id)
			if err != nil {
				b.Fatalf("run %d: %v", run, err)
			}
			toEnable, toEnergy = append(toEnable, en), append(toEnergy, d)
			if run == energyRuns-1 {
				// A session with a few payments before the memory is read.
				if err := poll(ctx, 90*time.Second, func() error {
					st, err := s.ReadWall(ctx)
					if err != nil || st.Session == nil || st.Session.Payments < 4 {
						return fmt.Errorf("waiting for four payments: %+v %v", st.Session, err)
					}
					return nil
				}); err != nil {
					b.Fatal(err)
				}
			}
			if err := s.Unplug(ctx); err != nil {
				b.Fatal(err)
			}
			if err := s.WaitCar(ctx, func(c CarStatus) bool { return c.State == "IDLE" }, 30*time.Second); err != nil {
				b.Fatalf("the gateway after unplug: %v", err)
			}
			if err := poll(ctx, 30*time.Second, func() error {
				st, err := s.ReadWall(ctx)
				if err != nil || st.Connector != "idle" {
					return fmt.Errorf("wall %s %v", st.Connector, err)
				}
				return nil
			}); err != nil {
				b.Fatal(err)
			}
		}
		wallMB, err := peakMB(s.WallProcess().Pid())
		if err != nil {
			b.Fatal(err)
		}
		carMB, err := peakMB(s.CarProcess().Pid())
		if err != nil {
			b.Fatal(err)
		}

		base, err := lncliBaseline(ctx, s.Net, energyRuns)
		if err != nil {
			b.Fatal(err)
		}

		var wallStart, carStart []time.Duration
		for range 3 {
			if err := s.WallProcess().Stop(ctx); err != nil {
				b.Fatal(err)
			}
			t0 := time.Now()
			if err := s.StartWall(ctx); err != nil {
				b.Fatal(err)
			}
			wallStart = append(wallStart, time.Since(t0))
			if err := s.CarProcess().Stop(ctx); err != nil {
				b.Fatal(err)
			}
			t0 = time.Now()
			if err := s.StartCar(ctx); err != nil {
				b.Fatal(err)
			}
			carStart = append(carStart, time.Since(t0))
		}

		b.ReportMetric(msOf(median(toEnergy)), "ms")
		b.ReportMetric(msOf(median(toEnable)), "enable-ms")
		b.ReportMetric(msOf(base), "lncli-ms")
		b.ReportMetric(float64(median(toEnergy))/float64(base), "x-lncli")
		b.ReportMetric(wallMB, "wallctl-peak-MB")
		b.ReportMetric(carMB, "vehiclegw-peak-MB")
		b.ReportMetric(msOf(median(wallStart)), "wallctl-start-ms")
		b.ReportMetric(msOf(median(carStart)), "vehiclegw-start-ms")
		b.ReportMetric(0, "ns/op")
		b.Logf("plug-in to EVSE enabled: %v; to contactor closed: %v (median %v); lncli payinvoice median %v; start-up wallctl %v, vehiclegw %v",
			toEnable, toEnergy, median(toEnergy), base, wallStart, carStart)
	}
}

// plugToContactor reads the wall's events: plugged to the EVSE enabled
// (the session energising: the product's own part) and to
// contactor_closed (the EVSE and the vehicle answering too).
func plugToContactor(ctx context.Context, db *sql.DB, session string) (enabled, closed time.Duration, err error) {
	at := map[string]int64{}
	rows, err := db.QueryContext(ctx, `SELECT CASE kind WHEN 'state' THEN detail ELSE kind END, min(at) FROM events
		WHERE session_id = ? AND (kind IN ('plugged', 'contactor_closed') OR (kind = 'state' AND detail = 'energising'))
		GROUP BY 1`, session)
	if err != nil {
		return 0, 0, err
	}
	defer rows.Close()
	for rows.Next() {
		var k string
		var ms int64
		if err := rows.Scan(&k, &ms); err != nil {
			return 0, 0, err
		}
		at[k] = ms
	}
	if err := rows.Err(); err != nil {
		return 0, 0, err
	}
	p, okP := at["plugged"]
	e, okE := at["energising"]
	c, okC := at["contactor_closed"]
	if !okP || !okE || !okC {
		return 0, 0, fmt.Errorf("session %s: events %v lack plugged, energising or contactor_closed", session, at)
	}
	return time.Duration(e-p) * time.Millisecond, time.Duration(c-p) * time.Millisecond, nil
}

// peakMB is a process's peak resident set (VmHWM) in MB.
func peakMB(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("pid %d: VmHWM %q: %w", pid, v, err)
			}
			return float64(kb) / 1024, nil
		}
	}
	return 0, fmt.Errorf("pid %d: no VmHWM in /proc/%d/status", pid, pid)
}

// lncliBaseline is the median of runs `lncli payinvoice` of a fresh wall
// invoice from the car's node, process start included.
func lncliBaseline(ctx context.Context, net *regtest.Network, runs int) (time.Duration, error) {
	wall, car := net.Nodes["wall"], net.Nodes["car"]
	var d []time.Duration
	for i := range runs {
		out, err := wall.Lncli(ctx, "addinvoice", "--amt", "10", "--memo", "baseline "+strconv.Itoa(i))
		if err != nil {
			return 0, fmt.Errorf("lncli addinvoice: %v: %s", err, out)
		}
		_, pr, ok := strings.Cut(string(out), `"payment_request": "`)
		pr, _, _ = strings.Cut(pr, `"`)
		if !ok || pr == "" {
			return 0, fmt.Errorf("lncli addinvoice printed no payment_request: %s", out)
		}
		t0 := time.Now()
		if out, err := car.Lncli(ctx, "payinvoice", "--force", "--json", pr); err != nil {
			return 0, fmt.Errorf("lncli payinvoice: %v: %s", err, out)
		}
		d = append(d, time.Since(t0))
	}
	return median(d), nil
}

// BenchmarkBinarySize builds both commands as they would ship (stripped,
// -trimpath) and reports their sizes.
// strippedDir holds the stripped binaries; TestMain removes it.
var strippedDir string

func TestMain(m *testing.M) {
	code := m.Run()
	if strippedDir != "" {
		os.RemoveAll(strippedDir)
	}
	os.Exit(code)
}

func BenchmarkBinarySize(b *testing.B) {
	root, err := regtest.FindRepoRoot()
	if err != nil {
		b.Fatal(err)
	}
	// Built once per test binary, whatever -count says; without -trimpath,
	// which would compile every package again just for this (minutes on a
	// clean clone) for the same stripped size give or take a few bytes.
	if strippedDir == "" {
		dir, err := os.MkdirTemp("", "satwatt-binsize-")
		if err != nil {
			b.Fatal(err)
		}
		cmd := exec.CommandContext(b.Context(), "go", "build", "-ldflags", "-s -w", "-o", dir+"/", "./vehiclegw", "./wallctl")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			os.RemoveAll(dir)
			b.Fatalf("go build: %v\n%s", err, out)
		}
		strippedDir = dir
	}
	dir := strippedDir
	for range b.N {
		for _, name := range []string{"vehiclegw", "wallctl"} {
			fi, err := os.Stat(filepath.Join(dir, name))
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(fi.Size())/(1<<20), name+"-MB")
		}
	}
	b.ReportMetric(0, "ns/op")
}
