package main

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"satwatt/internal/lndclient"
	"satwatt/internal/prereq"
	"satwatt/internal/regtest"
	"satwatt/internal/vcanvm"
)

// The low-balance scenario's settings, shared with the guest half in
// lowbalance_vcan_test.go. The car's channel is lnd's smallest (20,000
// sat) while its plan needs far more: a 60 kWh pack from 20 % to 80 % at
// 1,000 sat/kWh is about 40,000 sat with charger losses.
const (
	lowBalanceChannelSat = 20_000
	lowBalancePrice      = 1_000 // sat/kWh
	lowBalanceWallToken  = "lowbalance-wall-token-0123456789"
	lowBalanceCarToken   = "lowbalance-car-token-0123456789"
	// Environment the host half gives the guest half.
	lowBalanceWallEnv   = "SATWATT_LOWBALANCE_WALL_URL"
	lowBalanceLndEnv    = "SATWATT_LOWBALANCE_LNDCONNECT"
	lowBalanceSimcarEnv = "SATWATT_LOWBALANCE_SIMCAR_PORT"
)

// TestLowBalanceOnVehicleBus is the host half of the low-balance test on a
// real kernel's vcan. The host runs the regtest network (the car's
// channel too small for its plan) and wallctl with the simulated EVSE;
// the guest (a qemu VM with vcan0, or this host when its kernel has vcan)
// runs the simulated car and vehiclegw run on vcan0 and captures the
// gateway's status with candump (TestGuestLowBalance). Afterwards the
// car's node must show only succeeded payments: the gateway warned of
// the low balance instead of trying a payment it could not make.
func TestLowBalanceOnVehicleBus(t *testing.T) {
	root := filepath.Dir(mustGetwd(t))
	cache := os.Getenv("SATWATT_CACHE")
	if cache == "" {
		cache = filepath.Join(root, ".cache")
	}
	inVM := !vcanvm.HostHasVCAN()
	if inVM {
		if err := vcanvm.Prerequisites(cache); err != nil {
			prereq.Missing(t, "the low-balance vcan test cannot run: %v", err)
		}
	}
	hostIP := vcanvm.HostLoopback(inVM)

	guest := filepath.Join(t.TempDir(), "vehiclegw.test")
	if out, err := exec.CommandContext(t.Context(), "go", "test", "-c", "-tags", "vcan", "-o", guest, ".").CombinedOutput(); err != nil {
		t.Fatalf("go test -c -tags vcan: %v\n%s", err, out)
	}
	wctl := goBuild(t, "../wallctl", "wallctl")
	rn := regtest.StartForTest(t, regtest.Config{
		Nodes:       []string{"wall", "car"},
		Channels:    []regtest.ChannelSpec{{From: "car", To: "wall", CapacitySat: lowBalanceChannelSat}},
		TLSExtraIPs: []string{vcanvm.HostFromGuest},
	})
	car := rn.Nodes["car"]
	wallURI := bake(t, rn.Nodes["wall"], "info:read", "invoices:read", "invoices:write")
	carMac := filepath.Join(t.TempDir(), "car.macaroon")
	if out, err := car.Lncli(t.Context(), "bakemacaroon", "--save_to", carMac, "info:read", "offchain:read", "offchain:write"); err != nil {
		t.Fatalf("bakemacaroon: %v %s", err, out)
	}
	_, rpcPort, err := net.SplitHostPort(car.RPCAddr)
	if err != nil {
		t.Fatal(err)
	}
	carURI, err := lndclient.LndConnectURI(hostIP+":"+rpcPort, car.TLSCertPath, carMac)
	if err != nil {
		t.Fatal(err)
	}

	// The wall listens on the host's loopback; the simulated EVSE follows
	// the simulated car's control API in the guest, through a forwarded
	// port.
	wallAddr := loopbackAddr(t)
	_, wallPort, _ := net.SplitHostPort(wallAddr)
	_, simPortS, _ := net.SplitHostPort(loopbackAddr(t))
	simPort, _ := strconv.Atoi(simPortS)
	wallDB := filepath.Join(t.TempDir(), "wall.db")
	startProc(t, []string{"WALLCTL_TOKEN=" + lowBalanceWallToken, "WALLCTL_LNDCONNECT=" + wallURI,
		"SATWATT_SIMCAR_TOKEN=" + lowBalanceCarToken}, wctl, "serve",
		"--listen", wallAddr, "--db", wallDB, "--evse", "sim", "--sim-car", fmt.Sprintf("http://127.0.0.1:%d", simPort),
		"--max-current", "16", "--price", strconv.Itoa(lowBalancePrice), "--increment-wh", "20", "--first-multiple", "2", "--grace-wh", "5")
	waitHTTPOK(t, "wall healthy", "http://"+wallAddr+"/healthz", 60*time.Second)

	cfg := vcanvm.Config{
		CacheDir: cache,
		Timeout:  6 * time.Minute,
		Network:  &vcanvm.Network{Forward: []int{simPort}},
		Env: map[string]string{
			lowBalanceWallEnv:      fmt.Sprintf("http://%s:%s/", hostIP, wallPort),
			lowBalanceLndEnv:       carURI,
			lowBalanceSimcarEnv:    strconv.Itoa(simPort),
			"SATWATT_SIMCAR_TOKEN": lowBalanceCarToken,
		},
	}
	if testing.Verbose() {
		cfg.Console = os.Stdout
	}
	run := vcanvm.Run
	if !inVM {
		run = vcanvm.RunHost
	}
	bins := []vcanvm.TestBinary{{Name: "vehiclegw", Path: guest, Dir: ".", Args: []string{"-test.run", "^TestGuestLowBalance$"}}}
	res, err := run(t.Context(), cfg, bins)
	t.Logf("guest run took %s (vcan0 up after %s)", res.Elapsed.Round(time.Millisecond), res.Boot.Round(time.Millisecond))
	br, _ := res.Binary("vehiclegw")
	if err != nil || !br.Exited || br.ExitCode != 0 {
		t.Errorf("guest: %v (exit %d)\n%s", err, br.ExitCode, br.Output)
		if err != nil && !testing.Verbose() {
			t.Logf("console:\n%s", res.Console)
		}
	} else {
		t.Logf("guest:\n%s", br.Output)
	}

	// What the car's node did, seen from the host: payments made, none
	// failed or left in flight.
	out, err := car.Lncli(t.Context(), "listpayments", "--include_incomplete")
	if err != nil {
		t.Fatalf("listpayments: %v %s", err, out)
	}
	var lp struct {
		Payments []struct {
			Status    string `json:"status"`
			ValueMsat string `json:"value_msat"`
		} `json:"payments"`
	}
	if err := json.Unmarshal(out, &lp); err != nil {
		t.Fatalf("listpayments: %v\n%s", err, out)
	}
	var paid int64
	for _, p := range lp.Payments {
		if p.Status != "SUCCEEDED" {
			t.Errorf("the car's node has a %s payment: the gateway tried to pay beyond its balance", p.Status)
		}
		v, _ := strconv.ParseInt(p.ValueMsat, 10, 64)
		paid += v
	}
	if len(lp.Payments) == 0 {
		t.Error("the car's node made no payment: the session never got going")
	}
	t.Logf("the car's node made %d payments, %d msat in all", len(lp.Payments), paid)

	// And the wall credited exactly that.
	waitUntil(t, "the wall records what the car paid", 30*time.Second, func() bool {
		out, err := exec.Command(wctl, "history", "--db", wallDB, "--json").Output()
		var h struct {
			Totals struct {
				PaidMsat int64 `json:"paid_msat"`
			} `json:"totals"`
		}
		return err == nil && json.Unmarshal(out, &h) == nil && h.Totals.PaidMsat == paid
	})
}

func mustGetwd(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return wd
}
