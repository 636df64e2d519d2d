package regtest

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"satwatt/internal/daemon"
)

// binaries makes sure the daemons exist, building them when needed, and logs
// the build time.
func binaries(t *testing.T) (root, cache string) {
	t.Helper()
	root, err := FindRepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	cache = DefaultCacheDir(root)
	b, err := EnsureBinaries(t.Context(), root, cache)
	if err != nil {
		FailOrSkip(t, err)
	}
	if b.BuildTime > 0 {
		t.Logf("built lnd, lncli, btcd, btcctl in %v", b.BuildTime.Round(time.Second))
	}
	return root, cache
}

func TestNetwork(t *testing.T) {
	root, cache := binaries(t)
	ctx := t.Context()
	pidsBefore := len(allPids())

	began := time.Now()
	n, err := Start(ctx, Config{
		CacheDir: cache,
		RepoRoot: root,
		Nodes:    []string{"wall", "car"},
		Channels: []ChannelSpec{{From: "car", To: "wall", CapacitySat: 1_000_000}},
		Logger:   slog.New(slog.NewTextHandler(t.Output(), nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("Start to usable channel: %v", time.Since(began).Round(time.Millisecond))
	closed := false
	t.Cleanup(func() {
		if !closed {
			n.Close()
		}
	})
	wall, car := n.Nodes["wall"], n.Nodes["car"]

	pay := func(memo string) {
		t.Helper()
		var inv struct {
			PaymentRequest string `json:"payment_request"`
		}
		out, err := wall.Lncli(ctx, "addinvoice", "--amt", "1000", "--memo", memo)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(out, &inv); err != nil || inv.PaymentRequest == "" {
			t.Fatalf("addinvoice printed %s: %v", out, err)
		}
		start := time.Now()
		out, err = car.Lncli(ctx, "payinvoice", "--force", "--json", inv.PaymentRequest)
		took := time.Since(start)
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		if p, ok := lastPayment(out); !ok || p.Status != "SUCCEEDED" {
			t.Fatalf("payinvoice printed %s", out)
		}
		t.Logf("lncli payinvoice (%s): %v", memo, took.Round(time.Millisecond))
	}
	pay("first")
	// A payment right after the channel turned usable must not need retries:
	// the harness's probe is what makes this hold.
	checkBalance(t, car, wall, 1_000)

	restarted := time.Now()
	if err := wall.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("wall.Restart until its channel carries payments again: %v", time.Since(restarted).Round(time.Millisecond))
	pay("after restart")
	checkBalance(t, car, wall, 2_000)

	pids := allPids()[pidsBefore:]
	addrs := n.addrs()
	dir := n.Dir
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	closed = true
	for _, pid := range pids {
		if alive(pid) {
			t.Errorf("pid %d still alive after Close", pid)
		}
	}
	for _, a := range addrs {
		if listening(a) {
			t.Errorf("%s still accepts connections after Close", a)
		}
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s still there after Close: %v", dir, err)
	}
}

// checkBalance checks that the payee holds exactly what was paid and the
// payer keeps no failed payments: the probes must move no money and leave no
// trace.
func checkBalance(t *testing.T, payer, payee *Node, payeeWant int64) {
	t.Helper()
	// payinvoice returns when the payer has the preimage; the payee's
	// balance follows once the settle is locked in.
	err := poll(t.Context(), 5*time.Second, 20*time.Millisecond, func() (bool, error) {
		chans, err := payee.channels(t.Context())
		if err != nil {
			return false, err
		}
		if len(chans) != 1 || int64(chans[0].LocalBalance) != payeeWant {
			return false, fmt.Errorf("channels %+v, want one with local balance %d", chans, payeeWant)
		}
		return true, nil
	})
	if err != nil {
		t.Errorf("%s: %v", payee.Name, err)
	}
	var resp struct {
		Payments []payment `json:"payments"`
	}
	if err := payer.lncliJSON(t.Context(), &resp, "listpayments", "--include_incomplete"); err != nil {
		t.Fatal(err)
	}
	for _, p := range resp.Payments {
		if p.Status != "SUCCEEDED" {
			t.Errorf("%s keeps a %s payment %s: the probes should be gone", payer.Name, p.Status, p.PaymentHash)
		}
	}
}

// TestStartFailureCleansUp makes the last step of Start fail (a channel below
// lnd's minimum size) and checks that nothing it started is left.
func TestStartFailureCleansUp(t *testing.T) {
	root, cache := binaries(t)
	before := len(allPids())
	n, err := Start(t.Context(), Config{
		CacheDir: cache,
		RepoRoot: root,
		Nodes:    []string{"a", "b"},
		Channels: []ChannelSpec{{From: "a", To: "b", CapacitySat: 1_000}},
		Logger:   slog.New(slog.NewTextHandler(t.Output(), nil)),
	})
	if err == nil {
		n.Close()
		t.Fatal("Start opened a 1000-sat channel; want an error")
	}
	t.Logf("Start failed as it should: %v", err)
	pids := allPids()[before:]
	if len(pids) < 3 {
		t.Fatalf("Start started %d processes before failing; want btcd and two lnd", len(pids))
	}
	for _, pid := range pids {
		if alive(pid) {
			t.Errorf("pid %d still alive after a failed Start", pid)
		}
	}
}

// TestContextEndStopsDaemons checks that ending Start's context stops the
// daemons without Close (what Ctrl-C does in the manual command).
func TestContextEndStopsDaemons(t *testing.T) {
	root, cache := binaries(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	before := len(allPids())
	n, err := Start(ctx, Config{CacheDir: cache, RepoRoot: root, Nodes: []string{"solo"},
		Logger: slog.New(slog.NewTextHandler(t.Output(), nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	pids := allPids()[before:]
	cancel()
	began := time.Now()
	deadline := began.Add(daemon.StopTimeout + 5*time.Second)
	for _, pid := range pids {
		for !(reaped(pid) && !alive(pid)) && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if alive(pid) {
			t.Errorf("pid %d still alive %v after its context ended", pid, daemon.StopTimeout)
		}
		t.Logf("pid %d gone %v after the context ended", pid, time.Since(began).Round(time.Millisecond))
	}
}

func TestConfigErrors(t *testing.T) {
	for _, cfg := range []Config{
		{CacheDir: "x", Nodes: []string{"a", "a"}},
		{CacheDir: "x", Nodes: []string{"a"}, Channels: []ChannelSpec{{From: "a", To: "b", CapacitySat: 1}}},
		{CacheDir: "x", Nodes: []string{"a", "b"}, Channels: []ChannelSpec{{From: "a", To: "b", CapacitySat: 10, PushSat: 10}}},
		{CacheDir: "x", Nodes: []string{"a"}, TLSExtraIPs: []string{"10.0.2"}},
	} {
		if _, err := Start(t.Context(), cfg); err == nil {
			t.Errorf("Start(%+v) succeeded", cfg)
		}
	}
}

func TestJint(t *testing.T) {
	var v struct{ A, B, C jint }
	if err := json.Unmarshal([]byte(`{"A":"12","B":34,"C":null}`), &v); err != nil || v.A != 12 || v.B != 34 || v.C != 0 {
		t.Fatalf("got %+v, %v", v, err)
	}
}

func TestLastPayment(t *testing.T) {
	out := []byte(`{"payment_hash":"aa","status":"IN_FLIGHT"}` + "\n" + `{"payment_hash":"aa","status":"FAILED","failure_reason":"FAILURE_REASON_INCORRECT_PAYMENT_DETAILS"}` + "\n")
	p, ok := lastPayment(out)
	if !ok || p.Status != "FAILED" || p.FailureReason != "FAILURE_REASON_INCORRECT_PAYMENT_DETAILS" {
		t.Fatalf("got %+v %v", p, ok)
	}
	if _, ok := lastPayment([]byte("[lncli] rpc error")); ok {
		t.Fatal("decoded a payment from an error message")
	}
}

func TestFreePortsDistinct(t *testing.T) {
	seen := map[int]bool{}
	for range 5 {
		ps, err := freePorts(4)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range ps {
			if seen[p] {
				t.Fatalf("port %d handed out twice", p)
			}
			seen[p] = true
		}
	}
}

func allPids() []int {
	return daemon.Started()
}

// alive reports whether pid names a live process.
func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	if err != nil {
		return !errors.Is(err, syscall.ESRCH)
	}
	// A killed orphan waits as a zombie until init reaps it; it runs no
	// code and holds no port.
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	if i := strings.LastIndexByte(string(stat), ')'); i >= 0 && i+2 < len(stat) {
		return stat[i+2] != 'Z'
	}
	return true
}

// TestParentKillLeavesNoDaemons runs a network in a child test process,
// SIGKILLs the child and checks that the kernel took the daemons with it
// (Pdeathsig).
func TestParentKillLeavesNoDaemons(t *testing.T) {
	if os.Getenv("SATWATT_REGTEST_CHILD") == "1" {
		n, err := Start(context.Background(), Config{Nodes: []string{"orphan"}})
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Println("dir:", n.Dir)
		for _, pid := range allPids() {
			fmt.Println("pid:", pid)
		}
		fmt.Println("ready")
		select {}
	}
	binaries(t)
	becomeSubreaper(t)
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestParentKillLeavesNoDaemons$", "-test.v")
	cmd.Env = append(os.Environ(), "SATWATT_REGTEST_CHILD=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var pids []int
	var dir string
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, "pid: "); ok {
			pid, err := strconv.Atoi(v)
			if err != nil {
				t.Fatal(err)
			}
			pids = append(pids, pid)
		}
		if v, ok := strings.CutPrefix(line, "dir: "); ok {
			dir = v
		}
		if line == "ready" || strings.HasPrefix(line, "error:") {
			t.Log(line)
			break
		}
	}
	if dir != "" {
		// The one thing a killed harness leaves behind.
		defer os.RemoveAll(dir)
	}
	if len(pids) < 2 {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("child started %d daemons, want btcd and one lnd", len(pids))
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for _, pid := range pids {
		for !(reaped(pid) && !alive(pid)) && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if alive(pid) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Errorf("daemon pid %d outlived its SIGKILLed parent", pid)
		}
	}
}

func TestEnsureBinariesNamesTheCommand(t *testing.T) {
	cache := t.TempDir()
	_, err := EnsureBinaries(t.Context(), "", cache)
	if !errors.Is(err, ErrNoBinaries) || !strings.Contains(err.Error(), "scripts/lnd-bins.sh "+cache) {
		t.Errorf("without a repository: %v", err)
	}
	// A repository without the build script: the build fails and says how
	// it was run.
	_, err = EnsureBinaries(t.Context(), t.TempDir(), cache)
	if !errors.Is(err, ErrNoBinaries) || !strings.Contains(err.Error(), "lnd-bins.sh "+cache+"` failed") {
		t.Errorf("with a failing build: %v", err)
	}
}
