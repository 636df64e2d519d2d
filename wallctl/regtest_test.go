package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
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
	"satwatt/internal/rapi"
	"satwatt/internal/rapi/rapisim"
	"satwatt/internal/regtest"
	"satwatt/internal/wallclient"
	"satwatt/wallctl/internal/chargepoint"
)

const testToken = "regtest-owner-token-0123"

// buildWallctl compiles this command once per test binary run.
func buildWallctl(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "wallctl")
	out, err := exec.CommandContext(t.Context(), "go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build wallctl: %v\n%s", err, out)
	}
	return bin
}

func freePort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// wall is one wallctl serve process.
type wall struct {
	t    testing.TB
	cmd  *exec.Cmd
	base string
	log  *os.File
}

func startWall(t testing.TB, bin string, args ...string) *wall {
	t.Helper()
	return startWallEnv(t, bin, nil, args...)
}

// startWallEnv starts wallctl serve with env added to the environment.
func startWallEnv(t testing.TB, bin string, env []string, args ...string) *wall {
	t.Helper()
	addr := freePort(t)
	logf, err := os.CreateTemp(t.TempDir(), "wallctl-*.log")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, append([]string{"serve", "--listen", addr}, args...)...)
	cmd.Env = append(append(os.Environ(), "WALLCTL_TOKEN="+testToken), env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w := &wall{t: t, cmd: cmd, base: "http://" + addr, log: logf}
	t.Cleanup(func() {
		if w.cmd.ProcessState == nil {
			w.cmd.Process.Signal(syscall.SIGTERM)
			w.cmd.Wait()
		}
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("wallctl output:\n%s", b)
		}
	})
	w.waitFor("healthy", 60*time.Second, func(chargepoint.Status) bool {
		resp, err := http.Get(w.base + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	return w
}

func (w *wall) status() chargepoint.Status {
	w.t.Helper()
	var st chargepoint.Status
	resp, err := http.Get(w.base + "/api/status")
	if err != nil {
		return st
	}
	defer resp.Body.Close()
	json.NewDecoder(resp.Body).Decode(&st)
	return st
}

// waitFor polls the wall's status until cond holds.
func (w *wall) waitFor(what string, limit time.Duration, cond func(chargepoint.Status) bool) chargepoint.Status {
	w.t.Helper()
	deadline := time.Now().Add(limit)
	for {
		st := w.status()
		if cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("wall: %s not reached within %s; last status %+v session %+v", what, limit, st, st.Session)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (w *wall) post(path string) {
	w.t.Helper()
	req, _ := http.NewRequest("POST", w.base+path, nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		w.t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		w.t.Fatalf("POST %s: %d %s", path, resp.StatusCode, b)
	}
}

func (w *wall) kill9() {
	w.t.Helper()
	w.cmd.Process.Signal(syscall.SIGKILL)
	w.cmd.Wait()
}

// car pays the wall the way vehiclegw does: fetch the offer, ask for an
// invoice, check it, pay.
type car struct {
	t     testing.TB
	payer carpay.Payer
	paid  map[string]int64 // payment hash -> msat
}

func (c *car) pay(ctx context.Context, base string, amt int64) lndclient.PaymentResult {
	c.t.Helper()
	return c.paySharing(ctx, base, amt, -1)
}

// paySharing pays and shares the state of charge socPermille with the
// wall's page (-1: nothing).
func (c *car) paySharing(ctx context.Context, base string, amt, socPermille int64) lndclient.PaymentResult {
	c.t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		c.t.Fatal(err)
	}
	wc := &wallclient.Client{Base: u}
	o, err := wc.Offer(ctx)
	if err != nil {
		c.t.Fatalf("car: fetch offer: %v", err)
	}
	pr, err := wc.Invoice(ctx, o, amt, socPermille)
	if err != nil {
		c.t.Fatalf("car: request invoice of %d msat: %v", amt, err)
	}
	res, err := c.payer.Pay(ctx, pr, invoicecheck.Expect{AmountMsat: amt, Metadata: o.Metadata, Offer: o.Terms,
		MaxPaymentMsat: 100_000, MaxPriceMsatPerWh: 2_000})
	if err != nil || res.Status != lndclient.Succeeded {
		c.t.Fatalf("car: pay %d msat: %+v %v", amt, res, err)
	}
	c.paid[hex.EncodeToString(res.PaymentHash[:])] = res.AmountMsat
	return res
}

func (c *car) total() int64 {
	var s int64
	for _, v := range c.paid {
		s += v
	}
	return s
}

func runCLI(t testing.TB, bin string, args ...string) []byte {
	t.Helper()
	out, err := exec.CommandContext(t.Context(), bin, args...).Output()
	if err != nil {
		t.Fatalf("wallctl %s: %v", strings.Join(args, " "), err)
	}
	return out
}

// TestRegtestSessions drives wallctl serve as a real car would, with real
// lnd on both sides: a session on the simulated EVSE, then one on a
// RAPI-speaking simulated OpenEVSE during which wallctl is killed -9 and
// restarted. No payment may be lost or credited twice, and the EVSE must
// never be left delivering.
func TestRegtestSessions(t *testing.T) {
	bin := buildWallctl(t)
	net := regtest.StartForTest(t, regtest.Config{
		Nodes:    []string{"wall", "car"},
		Channels: []regtest.ChannelSpec{{From: "car", To: "wall", CapacitySat: 1_000_000}},
	})
	ctx := t.Context()
	wn, cn := net.Nodes["wall"], net.Nodes["car"]
	carLn, err := lndclient.Dial(ctx, lndclient.Config{RPCAddr: cn.RPCAddr, TLSCertPath: cn.TLSCertPath, MacaroonPath: cn.AdminMacaroonPath})
	if err != nil {
		t.Fatal(err)
	}
	defer carLn.Close()
	wallLn, err := lndclient.Dial(ctx, lndclient.Config{RPCAddr: wn.RPCAddr, TLSCertPath: wn.TLSCertPath, MacaroonPath: wn.ReadonlyMacaroonPath})
	if err != nil {
		t.Fatal(err)
	}
	defer wallLn.Close()
	c := &car{t: t, payer: carpay.Payer{Node: carLn, Network: "regtest", Timeout: 30 * time.Second, Clock: clock.Real{}}, paid: map[string]int64{}}
	// The wall's own least-privilege macaroon, as the README bakes it.
	wallMac := filepath.Join(t.TempDir(), "wall.macaroon")
	if out, err := wn.Lncli(ctx, "bakemacaroon", "--save_to", wallMac, "info:read", "invoices:read", "invoices:write"); err != nil {
		t.Fatalf("bake the wall's macaroon: %v %s", err, out)
	}
	// 1,000 msat/Wh; 5 Wh increments; the first payment is 10 Wh; 2 Wh grace.
	lnd := []string{"--lnd-rpc", wn.RPCAddr, "--lnd-tlscert", wn.TLSCertPath, "--lnd-macaroon", wallMac,
		"--price", "1000", "--increment-wh", "5", "--first-multiple", "2", "--grace-wh", "2", "--log-level", "debug"}

	t.Run("refuses a macaroon that cannot read its node key", func(t *testing.T) {
		cmd := exec.CommandContext(ctx, bin, "serve", "--listen", freePort(t), "--db", filepath.Join(t.TempDir(), "wall.db"),
			"--lnd-rpc", wn.RPCAddr, "--lnd-tlscert", wn.TLSCertPath, "--lnd-macaroon", wn.InvoiceMacaroonPath)
		cmd.Env = append(os.Environ(), "WALLCTL_TOKEN="+testToken)
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), "lncli bakemacaroon") {
			t.Errorf("wallctl serve with invoice.macaroon: %v\n%s", err, out)
		}
	})

	t.Run("simulated EVSE", func(t *testing.T) {
		db := filepath.Join(t.TempDir(), "wall.db")
		w := startWall(t, bin, append([]string{"--db", db, "--evse", "sim"}, lnd...)...)
		w.post("/api/sim/plug")
		st := w.waitFor("session open", 20*time.Second, func(s chargepoint.Status) bool { return s.Connector == "awaiting_payment" })
		id := st.Session.ID
		c.pay(ctx, w.base, 10_000)
		w.waitFor("energising", 20*time.Second, func(s chargepoint.Status) bool { return s.Connector == "energising" && s.EVSE.ContactorClosed })
		// At 7.36 kW, 10 Wh + 2 Wh grace last about 6 s.
		w.waitFor("suspended for non-payment", 30*time.Second, func(s chargepoint.Status) bool {
			return s.Connector == "suspended" && !s.EVSE.Enabled
		})
		c.pay(ctx, w.base, 5_000)
		w.waitFor("resumed", 20*time.Second, func(s chargepoint.Status) bool { return s.Connector == "energising" })
		w.post("/api/sim/unplug")
		st = w.waitFor("ended", 20*time.Second, func(s chargepoint.Status) bool { return s.Connector == "idle" && s.Last != nil })
		if st.Last.ID != id || st.Last.EndReason != "unplugged" || st.Last.PaidMsat != 15_000 {
			t.Errorf("last session %+v", st.Last)
		}
		// Delivered never exceeds paid plus the grace by more than one
		// meter second at full power (7,360 W: 2,045 mWh).
		if st.Last.DeliveredMWh > 15_000+2_000+2_045 {
			t.Errorf("delivered %d mWh on 15 Wh paid + 2 Wh grace", st.Last.DeliveredMWh)
		}
		w.cmd.Process.Signal(syscall.SIGTERM)
		w.cmd.Wait()
		var hist struct {
			Totals struct {
				Sessions int64 `json:"sessions"`
				PaidMsat int64 `json:"paid_msat"`
			} `json:"totals"`
		}
		if err := json.Unmarshal(runCLI(t, bin, "history", "--db", db, "--json"), &hist); err != nil {
			t.Fatal(err)
		}
		if hist.Totals.Sessions != 1 || hist.Totals.PaidMsat != 15_000 {
			t.Errorf("history totals %+v", hist.Totals)
		}
	})

	t.Run("web page in headless Chromium", func(t *testing.T) {
		cc := *c
		cc.t = t
		testWebPage(t, bin, &cc, lnd)
	})

	t.Run("OpenEVSE over RAPI, kill -9 mid-session", func(t *testing.T) {
		sim, err := rapisim.Start(ctx, rapisim.Options{VehicleMaxA: 16})
		if err != nil {
			t.Fatal(err)
		}
		defer sim.Close()
		db := filepath.Join(t.TempDir(), "wall.db")
		args := append([]string{"--db", db, "--evse", "openevse", "--serial", sim.Path(), "--heartbeat", "1s", "--max-current", "16"}, lnd...)
		w := startWall(t, bin, args...)
		before := c.total()
		sim.Plug()
		sim.RequestPower(true)
		st := w.waitFor("session open", 20*time.Second, func(s chargepoint.Status) bool { return s.Connector == "awaiting_payment" })
		id := st.Session.ID
		c.pay(ctx, w.base, 10_000)
		w.waitFor("energising", 20*time.Second, func(s chargepoint.Status) bool { return s.Connector == "energising" })
		if !sim.State().ContactorClosed {
			t.Fatal("energising but the OpenEVSE's contactor is open")
		}
		// Pay the next increment, then kill the wall before it can have
		// done anything orderly. A real OpenEVSE cannot tell that its
		// controller died except by the missing heartbeat: within the
		// supervision interval (3 heartbeats) it must fall back to 6 A,
		// the least J1772 allows; the restarted wall then sleeps it at once.
		c.pay(ctx, w.base, 5_000)
		w.kill9()
		killedWs := sim.State().SessionWs
		deadline := time.Now().Add(10 * time.Second)
		for sim.State().HeartbeatTrigger == 0 && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
		}
		if s := sim.State(); s.HeartbeatTrigger == 0 || s.CurrentCapacityA > rapi.FallbackCurrentA {
			t.Fatalf("wallctl dead for 10 s with a 1 s heartbeat and the OpenEVSE still offers %d A: %+v", s.CurrentCapacityA, s)
		}

		w = startWall(t, bin, args...)
		st = w.waitFor("session resumed", 20*time.Second, func(s chargepoint.Status) bool { return s.Session != nil })
		// Energy the car drew while no controller watched is the session's
		// too: the EVSE's own meter kept it, and the record must hold it.
		restartWs := sim.State().SessionWs
		outageMWh := rapi.WsToMWh(restartWs - killedWs)
		w.waitFor("energising again", 30*time.Second, func(s chargepoint.Status) bool {
			return s.Connector == "energising" || s.Connector == "suspended"
		})
		c.pay(ctx, w.base, 5_000)
		w.waitFor("energising after payment", 30*time.Second, func(s chargepoint.Status) bool { return s.Connector == "energising" })
		sim.Unplug()
		st = w.waitFor("ended", 20*time.Second, func(s chargepoint.Status) bool { return s.Connector == "idle" && s.Last != nil })
		w.cmd.Process.Signal(syscall.SIGTERM)
		w.cmd.Wait()
		final := sim.State()
		if final.ContactorClosed || final.PowerW > 0 {
			t.Errorf("after the session: OpenEVSE %+v", final)
		}

		// The money invariant: what the car paid = what the wall's lnd
		// settled = what the wall's database holds, payment by payment.
		var rc struct {
			PaidMsat     int64 `json:"paid_msat"`
			DeliveredMWh int64 `json:"delivered_mwh"`
			EndReason    string
			Payments     []struct {
				PaymentHash    string `json:"payment_hash"`
				Preimage       string `json:"preimage"`
				AmountPaidMsat int64  `json:"amount_paid_msat"`
			} `json:"payments"`
		}
		if err := json.Unmarshal(runCLI(t, bin, "session", "show", id, "--db", db, "--json"), &rc); err != nil {
			t.Fatal(err)
		}
		carPaid := c.total() - before
		if rc.PaidMsat != carPaid || len(rc.Payments) != 3 {
			t.Errorf("wall database: %d msat in %d payments; the car paid %d msat in 3", rc.PaidMsat, len(rc.Payments), carPaid)
		}
		var settled int64
		for _, p := range rc.Payments {
			var h [32]byte
			b, _ := hex.DecodeString(p.PaymentHash)
			copy(h[:], b)
			inv, err := wallLn.LookupInvoice(ctx, h)
			if err != nil || inv.Status != lndclient.InvoiceSettled || hex.EncodeToString(inv.Preimage[:]) != p.Preimage {
				t.Errorf("payment %s: wall lnd %+v %v", p.PaymentHash, inv, err)
			}
			settled += inv.AmountPaidMsat
			if c.paid[p.PaymentHash] != p.AmountPaidMsat {
				t.Errorf("payment %s: car paid %d, wall recorded %d", p.PaymentHash, c.paid[p.PaymentHash], p.AmountPaidMsat)
			}
		}
		if settled != rc.PaidMsat {
			t.Errorf("wall lnd settled %d msat, database %d", settled, rc.PaidMsat)
		}
		// The record holds what the EVSE metered: all of it up to the
		// restart (outage included), and at most one meter second (16 A x
		// 240 V: 1,067 mWh) less than the EVSE's final reading.
		meteredMWh := rapi.WsToMWh(final.SessionWs)
		if rc.DeliveredMWh < rapi.WsToMWh(restartWs)-1 || rc.DeliveredMWh > meteredMWh+1 || meteredMWh-rc.DeliveredMWh > 1_067 {
			t.Errorf("record says %d mWh delivered; the EVSE metered %d mWh by the restart (%d while the wall was dead) and %d in all",
				rc.DeliveredMWh, rapi.WsToMWh(restartWs), outageMWh, meteredMWh)
		}
		// 20 Wh paid + 2 Wh grace, plus one meter second at 16 A x 240 V,
		// plus what was drawn while the wall was dead: the bound a real
		// OpenEVSE allows (see the README on restarting wallctl).
		if rc.DeliveredMWh > 22_000+1_067+outageMWh {
			t.Errorf("delivered %d mWh on 20 Wh paid (%d mWh while the wall was dead)", rc.DeliveredMWh, outageMWh)
		}
		t.Logf("session %s: car paid %d msat, wall lnd settled %d, database %d; delivered %d mWh", id, carPaid, settled, rc.PaidMsat, rc.DeliveredMWh)
	})

	t.Run("two OpenEVSE connectors, kill -9, each keeps its own session", func(t *testing.T) {
		var sims [2]*rapisim.Sim
		for i := range sims {
			s, err := rapisim.Start(ctx, rapisim.Options{VehicleMaxA: 16})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			sims[i] = s
		}
		db := filepath.Join(t.TempDir(), "wall.db")
		args := append([]string{"--db", db, "--evse", "openevse", "--serial", sims[0].Path() + "," + sims[1].Path(),
			"--heartbeat", "1s", "--max-current", "16"}, lnd...)
		w := startWall(t, bin, args...)
		// connector k's routes, as a car on that cable reaches them.
		on := func(w *wall, k int) *wall { cw := *w; cw.base = fmt.Sprintf("%s/c/%d", w.base, k); return &cw }
		before := c.total()
		var ids [2]string
		for i, s := range sims {
			s.Plug()
			s.RequestPower(true)
			st := on(w, i+1).waitFor("session open", 20*time.Second, func(s chargepoint.Status) bool { return s.Connector == "awaiting_payment" })
			if st.ConnectorNumber != i+1 {
				t.Errorf("/c/%d/api/status says connector %d", i+1, st.ConnectorNumber)
			}
			ids[i] = st.Session.ID
			c.pay(ctx, on(w, i+1).base, 10_000)
		}
		for i := range sims {
			on(w, i+1).waitFor("energising", 20*time.Second, func(s chargepoint.Status) bool { return s.Connector == "energising" })
		}
		// The car on connector 2 pays again; the wall dies; the car on
		// connector 1 leaves while it is down.
		c.pay(ctx, on(w, 2).base, 5_000)
		w.kill9()
		sims[0].Unplug()

		w = startWall(t, bin, args...)
		st := on(w, 2).waitFor("connector 2 resumed", 20*time.Second, func(s chargepoint.Status) bool { return s.Session != nil })
		if st.Session.ID != ids[1] || st.Session.PaidMsat != 15_000 || st.Session.Payments != 2 {
			t.Errorf("connector 2 after the restart: session %s paid %d in %d payments; want %s, 15000 in 2",
				st.Session.ID, st.Session.PaidMsat, st.Session.Payments, ids[1])
		}
		if st := on(w, 1).status(); st.Session != nil || st.Connector != "idle" {
			t.Errorf("connector 1 after the restart, its car gone: %s %+v", st.Connector, st.Session)
		}
		var all []chargepoint.Status
		if resp, err := http.Get(w.base + "/api/connectors"); err != nil {
			t.Error(err)
		} else {
			json.NewDecoder(resp.Body).Decode(&all)
			resp.Body.Close()
		}
		if len(all) != 2 || all[1].Session == nil || all[1].Session.ID != ids[1] {
			t.Errorf("/api/connectors: %+v", all)
		}
		// The price is the wall's: set through connector 2, both take it.
		req, _ := http.NewRequest("POST", on(w, 2).base+"/api/price", strings.NewReader(`{"msat_per_wh":1500}`))
		req.Header.Set("Authorization", "Bearer "+testToken)
		if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
			t.Fatalf("POST /c/2/api/price: %v %v", resp, err)
		} else {
			resp.Body.Close()
		}
		for k := 1; k <= 2; k++ {
			if st := on(w, k).status(); st.NextPriceMsatPerWh != 1500 {
				t.Errorf("connector %d's next price %d after setting 1500 through connector 2", k, st.NextPriceMsatPerWh)
			}
		}
		c.pay(ctx, on(w, 2).base, 5_000)
		on(w, 2).waitFor("energising after payment", 30*time.Second, func(s chargepoint.Status) bool {
			return s.Connector == "energising" && s.Session.PaidMsat == 20_000
		})
		sims[1].Unplug()
		on(w, 2).waitFor("ended", 20*time.Second, func(s chargepoint.Status) bool { return s.Connector == "idle" && s.Last != nil })
		w.cmd.Process.Signal(syscall.SIGTERM)
		w.cmd.Wait()
		for i, s := range sims {
			if st := s.State(); st.ContactorClosed || st.PowerW > 0 {
				t.Errorf("OpenEVSE %d after the sessions: %+v", i+1, st)
			}
		}
		var paid int64
		for i, want := range []struct {
			paid   int64
			reason string
		}{{10_000, "unplugged"}, {20_000, "unplugged"}} {
			var rc struct {
				PaidMsat  int64  `json:"paid_msat"`
				EndReason string `json:"end_reason"`
			}
			if err := json.Unmarshal(runCLI(t, bin, "session", "show", ids[i], "--db", db, "--json"), &rc); err != nil {
				t.Fatal(err)
			}
			if rc.PaidMsat != want.paid || rc.EndReason != want.reason {
				t.Errorf("connector %d's session %s: paid %d, ended %q; want %d, %q", i+1, ids[i], rc.PaidMsat, rc.EndReason, want.paid, want.reason)
			}
			paid += rc.PaidMsat
		}
		if carPaid := c.total() - before; paid != carPaid {
			t.Errorf("the wall recorded %d msat over both connectors; the car paid %d", paid, carPaid)
		}
	})
}
