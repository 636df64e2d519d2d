package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"satwatt/internal/carpay"
	"satwatt/internal/clock"
	"satwatt/internal/invoicecheck"
	"satwatt/internal/lndclient"
	"satwatt/internal/rapi/rapisim"
	"satwatt/internal/regtest"
	"satwatt/internal/wallclient"
	"satwatt/wallctl/internal/chargepoint"
)

// TestRegtestFaults is the fault table: each row injects one fault into a
// running session and asserts the outcome. Everything is real: lnd on both
// sides, wallctl as a built binary, its SQLite file, and an OpenEVSE
// simulated over RAPI on a pty (the EVSE outlives a killed wallctl, as a
// real one does). Every row ends with the books: what the car paid, what
// the wall's lnd settled and what the wall's database holds must agree
// payment by payment, and the EVSE must be off.
func TestRegtestFaults(t *testing.T) {
	r := newFaultRig(t)
	rows := []struct {
		name string
		run  func(t *testing.T, r *faultRig)
	}{
		{"SIGKILL after lnd made the invoice, before the wall stored it", func(t *testing.T, r *faultRig) {
			r.killAt(t, crashInvoiceCreated, func(t *testing.T, s *faultSession) {
				if _, _, err := r.invoice(s.w.base, 10_000); err == nil {
					t.Fatal("the car got an invoice from a wall that died making it")
				}
			})
		}},
		{"SIGKILL after the invoice was handed out, paid while the wall is down", func(t *testing.T, r *faultRig) {
			s := r.start(t, nil)
			s.payUntil(t, 10_000, "energising")
			pr, o, err := r.invoice(s.w.base, 5_000)
			if err != nil {
				t.Fatal(err)
			}
			s.w.kill9()
			s.mustPay(t, pr, o, 5_000)
			s.restart(t, nil)
			s.w.waitFor("paid while down, credited", 30*time.Second, func(st chargepoint.Status) bool {
				return st.Session != nil && st.Session.ID == s.id && st.Session.PaidMsat == 15_000
			})
			s.end(t)
		}},
		{"SIGKILL when lnd reports the settlement, before it is stored", func(t *testing.T, r *faultRig) {
			r.killAt(t, crashSettlementSeen, func(t *testing.T, s *faultSession) {
				pr, o, err := r.invoice(s.w.base, 10_000)
				if err != nil {
					t.Fatal(err)
				}
				s.mustPay(t, pr, o, 10_000)
			})
		}},
		{"SIGKILL after the settlement is stored, before it is credited", func(t *testing.T, r *faultRig) {
			r.killAt(t, crashSettlementStored, func(t *testing.T, s *faultSession) {
				pr, o, err := r.invoice(s.w.base, 10_000)
				if err != nil {
					t.Fatal(err)
				}
				s.mustPay(t, pr, o, 10_000)
			})
		}},
		{"the wall's lnd restarts mid-session", func(t *testing.T, r *faultRig) {
			s := r.start(t, nil)
			s.payUntil(t, 10_000, "energising")
			if err := r.net.Nodes["wall"].Restart(t.Context()); err != nil {
				t.Fatal(err)
			}
			s.w.waitFor("lnd seen again", 60*time.Second, func(st chargepoint.Status) bool { return st.Lightning.Connected })
			s.payUntil(t, 5_000, "energising")
			s.end(t)
		}},
		{"the car's lnd restarts mid-session", func(t *testing.T, r *faultRig) {
			s := r.start(t, nil)
			s.payUntil(t, 10_000, "energising")
			if err := r.net.Nodes["car"].Restart(t.Context()); err != nil {
				t.Fatal(err)
			}
			s.payUntil(t, 5_000, "energising")
			s.end(t)
		}},
		{"disk full on the wall, then space again", func(t *testing.T, r *faultRig) {
			dir := tmpfs(t, "8m")
			var filler string
			r.storeOutage(t, filepath.Join(dir, "wall.db"),
				func(t *testing.T) { filler = fillDisk(t, dir) },
				func(t *testing.T) {
					if err := os.Remove(filler); err != nil {
						t.Fatal(err)
					}
				})
		}},
		{"SQLite locked by another process, then released", func(t *testing.T, r *faultRig) {
			db := filepath.Join(t.TempDir(), "wall.db")
			var lock *sql.Tx
			r.storeOutage(t, db,
				func(t *testing.T) { lock = lockDatabase(t, db) },
				func(t *testing.T) {
					if err := lock.Rollback(); err != nil {
						t.Fatal(err)
					}
				})
		}},
		{"a corrupt database file at start: refuse, keep the file", func(t *testing.T, r *faultRig) {
			s := r.start(t, nil)
			s.payUntil(t, 10_000, "energising")
			s.end(t)
			b, err := os.ReadFile(s.db)
			if err != nil {
				t.Fatal(err)
			}
			// Page 2, the first table's root: garble its b-tree header.
			for i := 4096; i < 4096+64 && i < len(b); i++ {
				b[i] = 0xA5
			}
			if err := os.WriteFile(s.db, b, 0o600); err != nil {
				t.Fatal(err)
			}
			before := sha256.Sum256(b)
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, r.bin, append([]string{"serve", "--listen", freePort(t)}, s.args...)...)
			cmd.Env = append(os.Environ(), "WALLCTL_TOKEN="+testToken)
			out, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 1 {
				t.Fatalf("wallctl serve on a corrupt database: %v, want exit status 1\n%s", err, out)
			}
			for _, want := range []string{s.db, "corrupt"} {
				if !strings.Contains(string(out), want) {
					t.Errorf("wallctl's refusal does not say %q:\n%s", want, out)
				}
			}
			after, err := os.ReadFile(s.db)
			if err != nil || sha256.Sum256(after) != before {
				t.Errorf("the corrupt file was changed or removed (%v): the owner needs it to recover", err)
			}
			if st := s.sim.State(); st.ContactorClosed {
				t.Errorf("OpenEVSE delivering while the wall refuses to start: %+v", st)
			}
		}},
		{"the EVSE stops answering, then answers again", func(t *testing.T, r *faultRig) {
			s := r.start(t, nil)
			s.payUntil(t, 10_000, "energising")
			s.sim.SetSilent(true)
			s.w.waitFor("EVSE unreachable", 30*time.Second, func(st chargepoint.Status) bool { return !st.EVSE.Reachable })
			if _, _, err := r.invoice(s.w.base, 5_000); err == nil {
				t.Error("the wall sold energy while its EVSE did not answer")
			} else {
				t.Logf("invoice refused while the EVSE is silent: %v", err)
			}
			s.sim.SetSilent(false)
			s.w.waitFor("EVSE back", 30*time.Second, func(st chargepoint.Status) bool { return st.EVSE.Reachable })
			s.payUntil(t, 5_000, "energising")
			s.end(t)
		}},
		{"the contactor does not open when told: fault, selling stops", func(t *testing.T, r *faultRig) {
			s := r.start(t, nil)
			s.payUntil(t, 10_000, "energising")
			s.sim.SetStuckRelay(true)
			// No more payments: the credit runs out, the wall withdraws
			// power, the relay stays welded.
			st := s.w.waitFor("fault raised", 60*time.Second, func(st chargepoint.Status) bool { return st.Connector == "fault" })
			if st.Fault == "" || st.EVSE.Enabled {
				t.Errorf("fault %q, EVSE enabled %v", st.Fault, st.EVSE.Enabled)
			}
			_, _, err := r.invoice(s.w.base, 5_000)
			if err == nil || !strings.Contains(err.Error(), "not selling") {
				t.Errorf("invoice request on a faulted wall: %v, want a refusal saying it is not selling", err)
			}
			s.sim.SetStuckRelay(false)
			s.sim.Unplug()
			s.books(t, 10_000)
		}},
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) { row.run(t, r) })
	}
}

// faultRig is what every row shares: the network, the car's node and the
// built wallctl.
type faultRig struct {
	bin    string
	net    *regtest.Network
	c      *car
	wallLn *lndclient.Client
	flags  []string // lnd and terms
}

func newFaultRig(t *testing.T) *faultRig {
	r := &faultRig{bin: buildWallctl(t)}
	r.net = regtest.StartForTest(t, regtest.Config{
		Nodes:    []string{"wall", "car"},
		Channels: []regtest.ChannelSpec{{From: "car", To: "wall", CapacitySat: 1_000_000}},
	})
	ctx := t.Context()
	wn, cn := r.net.Nodes["wall"], r.net.Nodes["car"]
	carLn, err := lndclient.Dial(ctx, lndclient.Config{RPCAddr: cn.RPCAddr, TLSCertPath: cn.TLSCertPath, MacaroonPath: cn.AdminMacaroonPath})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { carLn.Close() })
	if r.wallLn, err = lndclient.Dial(ctx, lndclient.Config{RPCAddr: wn.RPCAddr, TLSCertPath: wn.TLSCertPath, MacaroonPath: wn.ReadonlyMacaroonPath}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.wallLn.Close() })
	r.c = &car{t: t, payer: carpay.Payer{Node: carLn, Network: "regtest", Timeout: 30 * time.Second, Clock: clock.Real{}}, paid: map[string]int64{}}
	wallMac := filepath.Join(t.TempDir(), "wall.macaroon")
	if out, err := wn.Lncli(ctx, "bakemacaroon", "--save_to", wallMac, "info:read", "invoices:read", "invoices:write"); err != nil {
		t.Fatalf("bake the wall's macaroon: %v %s", err, out)
	}
	// 1,000 msat/Wh, 5 Wh increments, first payment 10 Wh, 2 Wh grace; at
	// 16 A x 240 V (3.84 kW) 10 Wh last about 9 s.
	r.flags = []string{"--lnd-rpc", wn.RPCAddr, "--lnd-tlscert", wn.TLSCertPath, "--lnd-macaroon", wallMac,
		"--price", "1000", "--increment-wh", "5", "--first-multiple", "2", "--grace-wh", "2",
		"--heartbeat", "1s", "--max-current", "16", "--log-level", "debug"}
	return r
}

// faultSession is one row's wall, OpenEVSE and session.
type faultSession struct {
	r    *faultRig
	w    *wall
	sim  *rapisim.Sim
	db   string
	args []string
	id   string
	paid map[string]int64 // this session's payments: hash -> msat
}

// start plugs a car into a fresh OpenEVSE on a wall with a new database
// (at db if given) and waits for the session.
func (r *faultRig) start(t *testing.T, env []string) *faultSession {
	return r.startDB(t, filepath.Join(t.TempDir(), "wall.db"), env)
}

func (r *faultRig) startDB(t *testing.T, db string, env []string) *faultSession {
	t.Helper()
	sim, err := rapisim.Start(t.Context(), rapisim.Options{VehicleMaxA: 16})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	s := &faultSession{r: r, sim: sim, db: db, paid: map[string]int64{},
		args: append([]string{"--db", db, "--evse", "openevse", "--serial", sim.Path()}, r.flags...)}
	s.w = startWallEnv(t, r.bin, env, s.args...)
	sim.Plug()
	sim.RequestPower(true)
	st := s.w.waitFor("session open", 20*time.Second, func(st chargepoint.Status) bool { return st.Connector == "awaiting_payment" })
	s.id = st.Session.ID
	return s
}

// restart starts wallctl again over the same database and OpenEVSE and
// waits for it to resume the session.
func (s *faultSession) restart(t *testing.T, env []string) {
	t.Helper()
	s.w = startWallEnv(t, s.r.bin, env, s.args...)
	st := s.w.waitFor("session resumed", 30*time.Second, func(st chargepoint.Status) bool { return st.Session != nil })
	if st.Session.ID != s.id {
		t.Fatalf("after the restart session %s, want %s resumed", st.Session.ID, s.id)
	}
}

// killAt runs a session on a wall that SIGKILLs itself at step, does what
// reaches the step, and checks that a restarted wall credits everything
// the car paid exactly once and sells again.
func (r *faultRig) killAt(t *testing.T, step string, reach func(t *testing.T, s *faultSession)) {
	s := r.start(t, []string{crashEnv + "=" + step})
	reach(t, s)
	s.w.waitKilled(t, 30*time.Second)
	paid := s.total()
	s.restart(t, nil)
	s.w.waitFor("paid before the kill, credited", 30*time.Second, func(st chargepoint.Status) bool {
		return st.Session != nil && st.Session.PaidMsat == paid
	})
	if paid == 0 {
		s.payUntil(t, 10_000, "energising")
	} else {
		s.w.waitFor("energising", 30*time.Second, func(st chargepoint.Status) bool { return st.Connector == "energising" })
		s.payUntil(t, 5_000, "energising")
	}
	s.end(t)
}

// storeOutage makes the wall's database refuse writes mid-session (block)
// and then take them again (unblock). While blocked, the wall must not
// hand out invoices it cannot record, must not credit a payment it cannot
// record, and must withdraw power when the recorded credit is spent; once
// unblocked it credits the payment made meanwhile, exactly once.
func (r *faultRig) storeOutage(t *testing.T, db string, block, unblock func(t *testing.T)) {
	s := r.startDB(t, db, nil)
	s.payUntil(t, 10_000, "energising")
	pr, o, err := r.invoice(s.w.base, 5_000)
	if err != nil {
		t.Fatal(err)
	}
	block(t)
	if _, _, err := r.invoice(s.w.base, 5_000); err == nil {
		t.Error("the wall handed out an invoice it could not record")
	} else {
		t.Logf("invoice refused while the database refuses writes: %v", err)
	}
	s.mustPay(t, pr, o, 5_000)
	// Power goes off when the recorded credit is spent, or sooner if
	// writes stall the control loop (a lock's busy timeout).
	st := s.w.waitFor("power withdrawn", 60*time.Second, func(st chargepoint.Status) bool {
		return st.Session != nil && !st.EVSE.Enabled && !st.EVSE.ContactorClosed
	})
	t.Logf("power withdrawn: %s: %s, %d mWh delivered", st.Connector, st.Why, st.Session.DeliveredMWh)
	time.Sleep(5 * time.Second) // the outage goes on; nothing may change
	st = s.w.status()
	if st.Session.PaidMsat != 10_000 {
		t.Errorf("credited %d msat while the database refused the second payment, want 10000", st.Session.PaidMsat)
	}
	// 10 Wh paid + 2 Wh grace, plus one meter second at 16 A x 240 V.
	if st.Session.DeliveredMWh > 12_000+1_067 {
		t.Errorf("delivered %d mWh on 10 Wh recorded + 2 Wh grace while the database refused writes", st.Session.DeliveredMWh)
	}
	unblock(t)
	s.w.waitFor("the payment made meanwhile, credited", 30*time.Second, func(st chargepoint.Status) bool {
		return st.Session.PaidMsat == 15_000 && st.Connector == "energising"
	})
	s.end(t)
}

func (r *faultRig) invoice(base string, amt int64) (string, wallclient.Offer, error) {
	u, err := url.Parse(base)
	if err != nil {
		return "", wallclient.Offer{}, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	wc := &wallclient.Client{Base: u}
	o, err := wc.Offer(ctx)
	if err != nil {
		return "", o, err
	}
	pr, err := wc.Invoice(ctx, o, amt, -1)
	return pr, o, err
}

// mustPay pays an invoice the way vehiclegw does and records it.
func (s *faultSession) mustPay(t *testing.T, pr string, o wallclient.Offer, amt int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	res, err := s.r.c.payer.Pay(ctx, pr, invoicecheck.Expect{AmountMsat: amt, Metadata: o.Metadata, Offer: o.Terms,
		MaxPaymentMsat: 100_000, MaxPriceMsatPerWh: 2_000})
	if err != nil || res.Status != lndclient.Succeeded {
		t.Fatalf("car: pay %d msat: %+v %v", amt, res, err)
	}
	s.paid[hex.EncodeToString(res.PaymentHash[:])] = res.AmountMsat
}

// payUntil buys amt and waits until the session is in state with it
// credited.
func (s *faultSession) payUntil(t *testing.T, amt int64, state string) {
	t.Helper()
	var pr string
	var o wallclient.Offer
	var err error
	// Right after an lnd restart the wall may refuse for a moment.
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(time.Second) {
		if pr, o, err = s.r.invoice(s.w.base, amt); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no invoice of %d msat within 60 s: %v", amt, err)
		}
	}
	s.mustPay(t, pr, o, amt)
	want := s.total()
	s.w.waitFor(fmt.Sprintf("%s with %d msat credited", state, want), 30*time.Second, func(st chargepoint.Status) bool {
		return st.Session != nil && st.Session.PaidMsat == want && st.Connector == state
	})
}

func (s *faultSession) total() int64 {
	var n int64
	for _, v := range s.paid {
		n += v
	}
	return n
}

// end unplugs the car, stops the wall and checks the books.
func (s *faultSession) end(t *testing.T) {
	t.Helper()
	s.sim.Unplug()
	s.books(t, s.total())
}

// books stops the wall once the session has ended and checks that the
// database holds what the car paid and the wall's lnd settled, payment by
// payment, and that the OpenEVSE is off.
func (s *faultSession) books(t *testing.T, want int64) {
	t.Helper()
	s.w.waitFor("session ended", 30*time.Second, func(st chargepoint.Status) bool { return st.Session == nil && st.Last != nil })
	s.w.cmd.Process.Signal(syscall.SIGTERM)
	s.w.cmd.Wait()
	if st := s.sim.State(); st.ContactorClosed || st.PowerW > 0 {
		t.Errorf("OpenEVSE after the session: %+v", st)
	}
	var rc struct {
		PaidMsat int64 `json:"paid_msat"`
		Payments []struct {
			PaymentHash    string `json:"payment_hash"`
			AmountPaidMsat int64  `json:"amount_paid_msat"`
		} `json:"payments"`
	}
	if err := json.Unmarshal(runCLI(t, s.r.bin, "session", "show", s.id, "--db", s.db, "--json"), &rc); err != nil {
		t.Fatal(err)
	}
	if rc.PaidMsat != want || rc.PaidMsat != s.total() || len(rc.Payments) != len(s.paid) {
		t.Errorf("database: %d msat in %d payments; the car paid %d msat in %d; want %d",
			rc.PaidMsat, len(rc.Payments), s.total(), len(s.paid), want)
	}
	for _, p := range rc.Payments {
		var h [32]byte
		b, _ := hex.DecodeString(p.PaymentHash)
		copy(h[:], b)
		inv, err := s.r.wallLn.LookupInvoice(t.Context(), h)
		if err != nil || inv.Status != lndclient.InvoiceSettled || inv.AmountPaidMsat != p.AmountPaidMsat {
			t.Errorf("payment %s: database %d msat, wall lnd %+v %v", p.PaymentHash, p.AmountPaidMsat, inv, err)
		}
		if s.paid[p.PaymentHash] != p.AmountPaidMsat {
			t.Errorf("payment %s: car paid %d, database %d", p.PaymentHash, s.paid[p.PaymentHash], p.AmountPaidMsat)
		}
	}
}

// waitKilled waits for wallctl to die of the SIGKILL it sent itself.
func (w *wall) waitKilled(t *testing.T, limit time.Duration) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- w.cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(limit):
		w.kill9()
		t.Fatalf("wallctl still running %s after reaching its crash point", limit)
	}
	ws, ok := w.cmd.ProcessState.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("wallctl ended with %v, want killed by SIGKILL", w.cmd.ProcessState)
	}
	b, _ := os.ReadFile(w.log.Name())
	if !bytes.Contains(b, []byte("fault injection: SIGKILL at")) {
		t.Fatalf("wallctl died without reaching its crash point:\n%s", b)
	}
}

// tmpfs mounts a filesystem of the given size on a new directory, so that
// the wall's disk can really fill up. It needs root (CI runs as root).
func tmpfs(t *testing.T, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("the disk-full fault mounts a tmpfs and needs root; CI runs .ci/run as root")
		}
		t.Skip("the disk-full fault mounts a tmpfs and needs root: run as root (sudo -E go test ./wallctl)")
	}
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size+",mode=0700"); err != nil {
		t.Fatalf("mount a %s tmpfs on %s: %v", size, dir, err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// fillDisk writes a file until the filesystem holding dir is full.
func fillDisk(t *testing.T, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "filler")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 64<<10)
	for {
		if _, err := f.Write(chunk); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				break
			}
			t.Fatalf("fill %s: %v", dir, err)
		}
	}
	// The last partial chunk: byte by byte up to the very end.
	for {
		if _, err := f.Write(chunk[:1]); err != nil {
			break
		}
	}
	return p
}

// lockDatabase takes SQLite's write lock on the wall's database from this
// process, as a backup tool or a careless sqlite3 shell would, and holds
// it until the transaction ends.
func lockDatabase(t *testing.T, path string) *sql.Tx {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path+"?_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	// BEGIN IMMEDIATE takes the write lock at once.
	tx, err := db.BeginTx(t.Context(), nil)
	if err != nil {
		t.Fatalf("lock %s: %v", path, err)
	}
	return tx
}
