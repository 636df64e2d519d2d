package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"satwatt/internal/carpay"
	"satwatt/internal/clock"
	"satwatt/internal/lndclient"
	"satwatt/internal/regtest"
	"satwatt/wallctl/internal/chargepoint"
)

// TestRegtestHostileCar: a hostile car on connector 1 (dialling from
// 127.0.0.2 to .4, so that each kind of abuse meets the per-address
// connection bound on its own) throws everything a script can at wallctl for a while: a
// thousand idle connections, slow headers, hundreds of status streams,
// invoice requests by the thousand with amounts in and out of range and
// garbage queries, and garbage bodies on every route that changes state.
// Meanwhile an honest car on connector 2 (from 127.0.0.1) must buy its
// increments as usual and have each credited; the hostile session must
// never hold more unpaid invoices than allowed; wallctl must answer no
// client input with a server error and keep its memory bounded.
func TestRegtestHostileCar(t *testing.T) {
	bin := buildWallctl(t)
	net0 := regtest.StartForTest(t, regtest.Config{
		Nodes:    []string{"wall", "car"},
		Channels: []regtest.ChannelSpec{{From: "car", To: "wall", CapacitySat: 1_000_000}},
	})
	ctx := t.Context()
	wn, cn := net0.Nodes["wall"], net0.Nodes["car"]
	carLn, err := lndclient.Dial(ctx, lndclient.Config{RPCAddr: cn.RPCAddr, TLSCertPath: cn.TLSCertPath, MacaroonPath: cn.AdminMacaroonPath})
	if err != nil {
		t.Fatal(err)
	}
	defer carLn.Close()
	honest := &car{t: t, payer: carpay.Payer{Node: carLn, Network: "regtest", Timeout: 30 * time.Second, Clock: clock.Real{}}, paid: map[string]int64{}}
	wallMac := filepath.Join(t.TempDir(), "wall.macaroon")
	if out, err := wn.Lncli(ctx, "bakemacaroon", "--save_to", wallMac, "info:read", "invoices:read", "invoices:write"); err != nil {
		t.Fatalf("bake the wall's macaroon: %v %s", err, out)
	}
	const maxOpen = 3
	w := startWall(t, bin, "--db", filepath.Join(t.TempDir(), "wall.db"), "--evse", "sim", "--connectors", "2",
		"--lnd-rpc", wn.RPCAddr, "--lnd-tlscert", wn.TLSCertPath, "--lnd-macaroon", wallMac,
		"--price", "1000", "--increment-wh", "5", "--first-multiple", "2", "--grace-wh", "2",
		"--max-open-invoices", strconv.Itoa(maxOpen), "--log-level", "warn")
	hostileBase, honestBase := w.base+"/c/1", w.base+"/c/2"
	for _, b := range []string{hostileBase, honestBase} {
		cw := *w
		cw.base = b
		cw.post("/api/sim/plug")
		cw.waitFor("session open", 20*time.Second, func(s chargepoint.Status) bool { return s.Connector == "awaiting_payment" })
	}
	hostileID := (&wall{t: t, base: hostileBase}).status().Session.ID
	rssBefore := rssKB(t, w.cmd.Process.Pid)

	attack, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	var serverErrors, answered, closed atomic.Int64
	var worst atomic.Value // the first server error's description
	from := func(ip string) *http.Client {
		return &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{
			DialContext:         (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}).DialContext,
			MaxIdleConnsPerHost: 100,
		}}
	}
	flooder, streamer := from("127.0.0.3"), from("127.0.0.4")
	dialHostile := func() (net.Conn, error) {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}, Timeout: 5 * time.Second}
		return d.DialContext(attack, "tcp", strings.TrimPrefix(w.base, "http://"))
	}
	var held []net.Conn
	var heldMu sync.Mutex
	hold := func(c net.Conn) { heldMu.Lock(); held = append(held, c); heldMu.Unlock() }
	defer func() {
		heldMu.Lock()
		for _, c := range held {
			c.Close()
		}
		heldMu.Unlock()
	}()
	// 1,000 idle connections.
	for range 1000 {
		if c, err := dialHostile(); err == nil {
			hold(c)
		}
	}
	// 30 slow clients, one header byte a second.
	for range 30 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := dialHostile()
			if err != nil {
				return
			}
			defer c.Close()
			for _, b := range []byte("GET /api/status HTTP/1.1\r\nHost: wall\r\nX-Slow: ") {
				if _, err := c.Write([]byte{b}); err != nil {
					closed.Add(1)
					return
				}
				select {
				case <-attack.Done():
					return
				case <-time.After(time.Second):
				}
			}
		}()
	}
	// 200 status streams, read and kept open.
	for range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequestWithContext(attack, "GET", hostileBase+"/api/status/stream", nil)
			resp, err := streamer.Do(req)
			if err != nil {
				return
			}
			defer resp.Body.Close()
			io.Copy(io.Discard, resp.Body)
		}()
	}
	// Invoice requests and garbage, from 50 clients at once.
	amounts := []string{"10000", "5000", "0", "-1", "1", "9223372036854775807", "1e4", "abc", "10000&amount=5000", "%zz", strings.Repeat("9", 5000)}
	posts := []struct{ path, body string }{
		{"/api/price", `{"msat_per_wh":1}`},
		{"/api/settings", `{"price_msat_per_wh":1}`},
		{"/api/sessions/" + hostileID + "/stop", ``},
		{"/api/sessions/" + hostileID + "/buyer-stop", `{"preimage":"` + strings.Repeat("00", 32) + `"}`},
		{"/api/sessions/" + hostileID + "/buyer-stop", strings.Repeat("{", 10_000)},
		{"/api/sim/unplug", ``},
		{"/settings", "price_sat_per_kwh=1&token=wrong"},
	}
	var requests atomic.Int64
	for g := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; attack.Err() == nil; i++ {
				var req *http.Request
				if (g+i)%4 == 3 {
					p := posts[(g+i)%len(posts)]
					req, _ = http.NewRequestWithContext(attack, "POST", hostileBase+p.path, strings.NewReader(p.body))
					req.Header.Set("Authorization", "Bearer wrong-token-0123456789")
				} else {
					req, _ = http.NewRequestWithContext(attack, "GET",
						fmt.Sprintf("%s/lnurlp/%s/callback?amount=%s", hostileBase, hostileID, amounts[(g+i)%len(amounts)]), nil)
				}
				resp, err := flooder.Do(req)
				requests.Add(1)
				if err != nil {
					closed.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				answered.Add(1)
				if resp.StatusCode >= 500 && resp.StatusCode != http.StatusServiceUnavailable {
					if serverErrors.Add(1) == 1 {
						worst.Store(fmt.Sprintf("%s %s: %d", req.Method, req.URL, resp.StatusCode))
					}
				}
			}
		}()
	}

	// The hostile session's unpaid invoices, sampled through the attack.
	var maxSeen atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		for attack.Err() == nil {
			if n := int64(openInvoices(t, w.base, "/c/1")); n > maxSeen.Load() {
				maxSeen.Store(n)
			}
			select {
			case <-attack.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	// The attack runs for 10 s; the honest car buys three increments
	// through it, from its second second on.
	attackEnds := time.Now().Add(10 * time.Second)
	time.Sleep(2 * time.Second) // let the attack take hold first
	for i, amt := range []int64{10_000, 5_000, 5_000} {
		start := time.Now()
		honest.pay(ctx, honestBase, amt)
		want := honest.total()
		cw := &wall{t: t, base: honestBase}
		cw.waitFor(fmt.Sprintf("honest payment %d credited", i+1), 30*time.Second, func(s chargepoint.Status) bool {
			return s.Session != nil && s.Session.PaidMsat == want
		})
		t.Logf("honest increment %d: paid and credited in %s during the attack", i+1, time.Since(start).Round(time.Millisecond))
	}
	time.Sleep(time.Until(attackEnds)) // the attack's fixed length
	stop()
	wg.Wait()
	rssAfter := rssKB(t, w.cmd.Process.Pid)

	if n := serverErrors.Load(); n > 0 {
		t.Errorf("%d server errors answered to client input; first: %v", n, worst.Load())
	}
	// The flood reached the quota, and never passed it.
	if n := maxSeen.Load(); n != maxOpen {
		t.Errorf("the hostile session held at most %d unpaid invoices during the flood, want exactly the quota %d", n, maxOpen)
	}
	if answered.Load() == 0 {
		t.Error("no hostile request was answered: the flood never reached the wall")
	}
	hs := (&wall{t: t, base: hostileBase}).status()
	if hs.Session == nil || hs.Session.ID != hostileID || hs.Session.PaidMsat != 0 {
		t.Errorf("the hostile session after the attack: %+v", hs.Session)
	}
	if st := (&wall{t: t, base: honestBase}).status(); st.Session == nil || st.Session.PaidMsat != honest.total() || st.Session.Payments != 3 {
		t.Errorf("the honest session after the attack: %+v, want %d msat in 3 payments", st.Session, honest.total())
	}
	if st := (&wall{t: t, base: hostileBase}).status(); st.NextPriceMsatPerWh != 1000 {
		t.Errorf("the price changed to %d without the token", st.NextPriceMsatPerWh)
	}
	// Memory: a wall of two connectors runs in about 50 MB; the attack may
	// add buffers for the connections it is allowed, not grow without bound.
	if rssAfter > 150_000 {
		t.Errorf("wallctl resident memory %d kB after the attack (%d kB before)", rssAfter, rssBefore)
	}
	t.Logf("attack: %d requests (%d answered, %d cut off), 1000 idle connections, 30 slow, 200 streams tried; %d server errors; unpaid invoices at most %d; wallctl RSS %d kB before, %d kB after",
		requests.Load(), answered.Load(), closed.Load(), serverErrors.Load(), maxSeen.Load(), rssBefore, rssAfter)
}

// openInvoices reads the satwatt_open_invoices gauges of the connectors
// at the given paths.
func openInvoices(t *testing.T, base string, connectors ...string) int {
	n := 0
	for _, c := range connectors {
		resp, err := http.Get(base + c + "/metrics")
		if err != nil {
			t.Error(err)
			return n
		}
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "satwatt_open_invoices "); ok {
				k, _ := strconv.Atoi(v)
				n += k
			}
		}
		resp.Body.Close()
	}
	return n
}

// rssKB reads a process's resident memory from /proc.
func rssKB(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return n
		}
	}
	t.Fatalf("no VmRSS in /proc/%d/status", pid)
	return 0
}
