package main

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"satwatt/internal/lndclient"
	"satwatt/internal/regtest"
)

const (
	regtestWallToken   = "wall-token-0123456789abcdef"
	regtestSimcarToken = "simcar-token-0123456789abcdef"
)

// proc is one of the product's processes, its output kept in a file.
type proc struct {
	cmd *exec.Cmd
	out string
}

func startProc(t *testing.T, env []string, bin string, args ...string) *proc {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), filepath.Base(bin)+"-*.out")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, out: f.Name()}
	t.Cleanup(func() {
		p.stop()
		f.Close()
		if t.Failed() {
			b, _ := os.ReadFile(f.Name())
			t.Logf("%s %s:\n%s", filepath.Base(bin), strings.Join(args, " "), b)
		}
	})
	return p
}

func (p *proc) stop() {
	if p.cmd.ProcessState == nil {
		p.cmd.Process.Signal(syscall.SIGTERM)
		p.cmd.Wait()
	}
}

func goBuild(t *testing.T, pkg, name string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), name)
	if out, err := exec.CommandContext(t.Context(), "go", "build", "-o", bin, pkg).CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, out)
	}
	return bin
}

func loopbackAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// bake gives a node a least-privilege macaroon and returns its lndconnect URI.
func bake(t *testing.T, n *regtest.Node, perms ...string) string {
	t.Helper()
	mac := filepath.Join(t.TempDir(), "least.macaroon")
	if out, err := n.Lncli(t.Context(), append([]string{"bakemacaroon", "--save_to", mac}, perms...)...); err != nil {
		t.Fatalf("bakemacaroon: %v %s", err, out)
	}
	uri, err := lndclient.LndConnectURI(n.RPCAddr, n.TLSCertPath, mac)
	if err != nil {
		t.Fatal(err)
	}
	return uri
}

func httpDo(t *testing.T, method, url, token string) []byte {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("%s %s: %d %s", method, url, resp.StatusCode, b)
	}
	return b
}

// statusLines are the JSON status lines vehiclegw run --json printed so far.
func statusLines(t *testing.T, p *proc) []map[string]any {
	t.Helper()
	f, err := os.Open(p.out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []map[string]any
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) == nil && m["state"] != nil {
			lines = append(lines, m)
		}
	}
	return lines
}

// lastStatus is the newest JSON status line vehiclegw run printed.
func lastStatus(t *testing.T, p *proc) map[string]any {
	t.Helper()
	lines := statusLines(t, p)
	if len(lines) == 0 {
		return nil
	}
	return lines[len(lines)-1]
}

// waitHTTPOK waits until GET url answers 200.
func waitHTTPOK(t *testing.T, what, url string, limit time.Duration) {
	t.Helper()
	waitUntil(t, what, limit, func() bool {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == 200
	})
}

// startSimcar runs the simulated car (a 2 kWh pack at 70 %, an 18 kW
// charger) on its own socketcand bus, with its control API, and returns
// both addresses once the control API answers.
func startSimcar(t *testing.T, vgw string) (busAddr, ctlAddr string) {
	t.Helper()
	busAddr, ctlAddr = loopbackAddr(t), loopbackAddr(t)
	startProc(t, []string{"SATWATT_SIMCAR_TOKEN=" + regtestSimcarToken}, vgw, "simcar",
		"--serve", busAddr, "--bus", "sim0", "--control", ctlAddr,
		"--capacity-kwh", "2", "--soc", "70", "--target", "100", "--charger-kw", "18")
	waitHTTPOK(t, "simulated car up", "http://"+ctlAddr+"/state", 30*time.Second)
	return busAddr, ctlAddr
}

// sessionShow prints one session's receipt from a ledger (vehiclegw or
// wallctl session show), as JSON or as text.
func sessionShow(t *testing.T, bin, db, id string, asJSON bool) []byte {
	t.Helper()
	args := []string{"session", "show", id, "--db", db}
	if asJSON {
		args = append(args, "--json")
	}
	out, err := exec.Command(bin, args...).Output()
	if err != nil {
		t.Fatalf("%s session show: %v", filepath.Base(bin), err)
	}
	return out
}

func waitUntil(t *testing.T, what string, limit time.Duration, cond func() bool) {
	t.Helper()
	if !pollUntil(limit, cond) {
		t.Fatalf("%s: not within %s", what, limit)
	}
}

// pollUntil polls cond until it holds (true) or limit passes (false).
func pollUntil(limit time.Duration, cond func() bool) bool {
	for deadline := time.Now().Add(limit); !cond(); time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			return false
		}
	}
	return true
}

// TestRegtestChargingSession runs the whole product on loopback: the
// simulated car on a socketcand bus, wallctl with the simulated EVSE
// coupled to that car, vehiclegw run paying from the car's real lnd to the
// wall's real lnd, from plug-in to the owner's target. At the end the
// car's ledger, the wall's database and the wall's lnd agree.
func TestRegtestChargingSession(t *testing.T) {
	vgw := goBuild(t, ".", "vehiclegw")
	wctl := goBuild(t, "../wallctl", "wallctl")
	net := regtest.StartForTest(t, regtest.Config{
		Nodes:    []string{"wall", "car"},
		Channels: []regtest.ChannelSpec{{From: "car", To: "wall", CapacitySat: 1_000_000}},
	})
	wallURI := bake(t, net.Nodes["wall"], "info:read", "invoices:read", "invoices:write")
	carURI := bake(t, net.Nodes["car"], "info:read", "offchain:read", "offchain:write")
	dir := t.TempDir()
	carDB, wallDB := filepath.Join(dir, "car.db"), filepath.Join(dir, "wall.db")

	// The simulated car: a 2 kWh pack at 70 %, an 18 kW charger.
	busAddr, ctlAddr := startSimcar(t, vgw)
	wallAddr := loopbackAddr(t)
	wall := startProc(t, []string{"WALLCTL_TOKEN=" + regtestWallToken, "WALLCTL_LNDCONNECT=" + wallURI,
		"SATWATT_SIMCAR_TOKEN=" + regtestSimcarToken}, wctl, "serve",
		"--listen", wallAddr, "--db", wallDB, "--evse", "sim", "--sim-car", "http://"+ctlAddr,
		"--max-current", "80", "--price", "100", "--increment-wh", "20", "--first-multiple", "2", "--grace-wh", "5")
	waitHTTPOK(t, "wall healthy", "http://"+wallAddr+"/healthz", 60*time.Second)
	car := startProc(t, []string{"VEHICLEGW_LNDCONNECT=" + carURI}, vgw, "run",
		"--can", "socketcand://"+busAddr+"/sim0", "--wall", "http://"+wallAddr+"/", "--db", carDB,
		"--target", "80", "--max-price", "200", "--max-payment", "100", "--json", "--log-level", "debug")

	httpDo(t, "POST", "http://"+ctlAddr+"/plug", regtestSimcarToken)
	waitUntil(t, "the car reaches its target and stops buying", 3*time.Minute, func() bool {
		st := lastStatus(t, car)
		return st != nil && st["state"] == "COMPLETE"
	})
	if st := lastStatus(t, car); st["error"] != "NONE" {
		t.Errorf("complete with error %v", st["error"])
	}
	var carState struct {
		SOCPermil int64 `json:"soc_permil"`
	}
	json.Unmarshal(httpDo(t, "GET", "http://"+ctlAddr+"/state", ""), &carState)
	httpDo(t, "POST", "http://"+ctlAddr+"/unplug", regtestSimcarToken)
	waitUntil(t, "the wall ends the session", 30*time.Second, func() bool {
		var st struct {
			Connector string `json:"connector"`
			Last      *struct {
				ID string `json:"id"`
			} `json:"last"`
		}
		json.Unmarshal(httpDo(t, "GET", "http://"+wallAddr+"/api/status", ""), &st)
		return st.Connector == "idle" && st.Last != nil
	})
	waitUntil(t, "the car sees the unplug and ends its session", 30*time.Second, func() bool {
		return lastStatus(t, car)["state"] == "IDLE"
	})
	car.stop()
	wall.stop()

	type totals struct {
		Totals struct {
			Sessions int64 `json:"sessions"`
			PaidMsat int64 `json:"paid_msat"`
		} `json:"totals"`
	}
	history := func(bin, db string) totals {
		out, err := exec.Command(bin, "history", "--db", db, "--json").Output()
		if err != nil {
			t.Fatalf("%s history: %v", filepath.Base(bin), err)
		}
		var tt totals
		if err := json.Unmarshal(out, &tt); err != nil {
			t.Fatalf("%s history: %v\n%s", filepath.Base(bin), err, out)
		}
		return tt
	}
	carT, wallT := history(vgw, carDB), history(wctl, wallDB)
	if carT.Totals.Sessions != 1 || wallT.Totals.Sessions != 1 || carT.Totals.PaidMsat != wallT.Totals.PaidMsat || carT.Totals.PaidMsat < 4_000 {
		t.Errorf("car ledger %+v, wall history %+v: want one session each and equal sums", carT.Totals, wallT.Totals)
	}
	t.Logf("car paid %d msat, wall recorded %d msat; the car's state of charge is %d‰",
		carT.Totals.PaidMsat, wallT.Totals.PaidMsat, carState.SOCPermil)

	// Payment by payment: the same hashes and preimages on both sides.
	var ids struct {
		Sessions []struct {
			ID string `json:"id"`
		} `json:"sessions"`
	}
	out, _ := exec.Command(wctl, "history", "--db", wallDB, "--json").Output()
	if json.Unmarshal(out, &ids); len(ids.Sessions) != 1 {
		t.Fatalf("wall history: %s", out)
	}
	id := ids.Sessions[0].ID
	type receipt struct {
		Payments []struct {
			PaymentHash string `json:"payment_hash"`
			Preimage    string `json:"preimage"`
			Status      string `json:"status"`
		} `json:"payments"`
	}
	show := func(bin, db string, asJSON bool) ([]byte, receipt) {
		out := sessionShow(t, bin, db, id, asJSON)
		var r receipt
		if asJSON {
			json.Unmarshal(out, &r)
		}
		return out, r
	}
	_, carR := show(vgw, carDB, true)
	_, wallR := show(wctl, wallDB, true)
	wallPre := map[string]string{}
	for _, p := range wallR.Payments {
		wallPre[p.PaymentHash] = p.Preimage
	}
	succeeded := 0
	for _, p := range carR.Payments {
		if p.Status != "succeeded" {
			continue
		}
		succeeded++
		if wallPre[p.PaymentHash] != p.Preimage || p.Preimage == "" {
			t.Errorf("payment %s: car's preimage %q, wall's %q", p.PaymentHash, p.Preimage, wallPre[p.PaymentHash])
		}
	}
	if succeeded != len(wallR.Payments) {
		t.Errorf("car: %d succeeded payments, wall: %d", succeeded, len(wallR.Payments))
	}
	carText, _ := show(vgw, carDB, false)
	wallText, _ := show(wctl, wallDB, false)
	t.Logf("the car's ledger:\n%s\nthe wall's record:\n%s", carText, wallText)
	if carState.SOCPermil < 790 {
		t.Errorf("the car stopped at %d‰, target 800‰", carState.SOCPermil)
	}
}
