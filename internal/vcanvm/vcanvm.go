// Package vcanvm runs Go test binaries against a real SocketCAN stack with a
// vcan0 interface. Where the host kernel has no CAN support (as on the
// project's CI machines) it boots a Debian kernel under qemu with a small
// busybox initramfs; where the host can create vcan links it runs the
// binaries on the host instead.
package vcanvm

import (
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// VCANTestPattern selects the tests a vcan binary runs: a vcan-tagged test
// binary also holds its package's ordinary tests, which need what the VM
// lacks (the shared recordings, other services) and already ran on the host.
// SocketCAN tests are therefore named TestVCAN....
const VCANTestPattern = "^TestVCAN"

// InstallCommand installs the host programs the VM harness needs.
const InstallCommand = "apt-get install -y qemu-system-x86 busybox-static cpio can-utils"

// AssetsCommand fetches the kernel and modules into the cache.
const AssetsCommand = "make vm-assets (or: scripts/vm-assets.sh .cache)"

// DefaultTools are the can-utils programs copied into the VM so tests can
// drive and watch the bus the way a person would.
var DefaultTools = []string{"cansend", "candump", "canplayer", "cangen"}

// RequiredTools must exist on the host; the other DefaultTools are copied
// when present.
var RequiredTools = []string{"cansend", "candump"}

// Config describes one VM run. Only CacheDir is required.
type Config struct {
	// CacheDir holds vm/ as written by scripts/vm-assets.sh.
	CacheDir string
	// Timeout bounds the whole run, boot included; 5 minutes if zero.
	Timeout time.Duration
	// Console receives the serial console as it arrives (nil: discard);
	// Result.Console keeps it either way.
	Console io.Writer
	// Env is exported to the test binaries. CI is passed on from the host
	// when set; SATWATT_IN_VM=1 and SATWATT_VCAN=1 are always set.
	Env map[string]string
	// Tools are host programs copied in with their shared libraries;
	// DefaultTools if nil.
	Tools []string
	// MemoryMB is the guest memory; at least 512, raised when the
	// binaries would not fit in the unpacked initramfs.
	MemoryMB int
	// QEMU and Busybox override the host programs used.
	QEMU    string
	Busybox string
	// Network gives the guest a network card, for tests that talk to
	// services on the host; nil leaves the guest without one.
	Network *Network
}

// Network is the guest's link to the host: qemu's user-mode network, on
// which the guest is GuestIP and reaches the host's loopback at
// HostFromGuest. Nothing outside the host is reachable.
type Network struct {
	// Forward lists TCP ports the host's loopback forwards to the same
	// port in the guest, for host services that call into the guest.
	Forward []int
}

// Addresses on qemu's user-mode network.
const (
	GuestIP = "10.0.2.15"
	// HostFromGuest is where the guest reaches the host's 127.0.0.1.
	HostFromGuest = "10.0.2.2"
)

// HostLoopback is the address at which a test binary reaches services
// listening on the host's loopback: HostFromGuest in the VM, 127.0.0.1
// when the binaries run on the host (RunHost).
func HostLoopback(inVM bool) string {
	if inVM {
		return HostFromGuest
	}
	return "127.0.0.1"
}

// TestBinary is a test binary (go test -c); the shared libraries it needs
// are copied into the guest with it.
type TestBinary struct {
	// Name labels the binary in markers and results: letters, digits,
	// '.', '_' and '-'.
	Name string
	// Path is the binary on the host.
	Path string
	// Args are passed after -test.v.
	Args []string
	// Dir is the package's source folder. On the host the binary runs
	// there, as under go test; in the VM only its testdata/ is copied,
	// next to the binary, which is the working folder.
	Dir string
}

// BinaryResult is what one test binary did.
type BinaryResult struct {
	Name string
	// Ran is false when the run ended before the binary started.
	Ran bool
	// Exited is false when the binary never finished (the VM died or
	// timed out); ExitCode is then -1.
	Exited   bool
	ExitCode int
	// Output is the console between the binary's start and exit markers.
	Output string
}

// Result is the outcome of a run.
type Result struct {
	Binaries []BinaryResult
	// Console is the whole console output, carriage returns removed.
	Console string
	// Elapsed is from starting qemu (or the first binary on the host) to
	// its exit.
	Elapsed time.Duration
	// Boot is from starting qemu to vcan0 being up in the guest; zero on
	// the host or when the guest never got there.
	Boot time.Duration
}

// Binary returns the result for the named binary.
func (r Result) Binary(name string) (BinaryResult, bool) {
	for _, b := range r.Binaries {
		if b.Name == name {
			return b, true
		}
	}
	return BinaryResult{}, false
}

const defaultTimeout = 5 * time.Minute

var validName = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)

func (c Config) qemu() string {
	if c.QEMU != "" {
		return c.QEMU
	}
	return "qemu-system-x86_64"
}

func (c Config) busybox() string {
	if c.Busybox != "" {
		return c.Busybox
	}
	return "/bin/busybox"
}

func (c Config) tools() []string {
	if c.Tools != nil {
		return c.Tools
	}
	return DefaultTools
}

func (c Config) timeout() time.Duration {
	if c.Timeout > 0 {
		return c.Timeout
	}
	return defaultTimeout
}

func (c Config) env(inVM bool) map[string]string {
	env := map[string]string{"SATWATT_VCAN": "1"}
	if inVM {
		env["SATWATT_IN_VM"] = "1"
	}
	if ci, ok := os.LookupEnv("CI"); ok {
		env["CI"] = ci
	}
	for k, v := range c.Env {
		env[k] = v
	}
	return env
}

// AssetsDir is where scripts/vm-assets.sh puts the kernel and modules.
func AssetsDir(cacheDir string) string { return filepath.Join(cacheDir, "vm") }

func assetFiles(cacheDir string) []string {
	dir := AssetsDir(cacheDir)
	files := []string{filepath.Join(dir, "vmlinuz"), filepath.Join(dir, "kernel-version")}
	for _, m := range slices.Concat(Modules, NetModules) {
		files = append(files, filepath.Join(dir, m+".ko"))
	}
	return files
}

// Prerequisites reports what the VM harness is missing, naming the command
// that installs each part; nil when Run can work.
func Prerequisites(cacheDir string) error {
	return Config{CacheDir: cacheDir}.prerequisites()
}

func (c Config) prerequisites() error {
	var problems []string
	var missing []string
	if _, err := exec.LookPath(c.qemu()); err != nil {
		missing = append(missing, c.qemu())
	}
	if err := checkStatic(c.busybox()); err != nil {
		missing = append(missing, err.Error())
	}
	for _, t := range RequiredTools {
		if _, err := exec.LookPath(t); err != nil {
			missing = append(missing, t)
		}
	}
	if _, err := exec.LookPath("ldd"); err != nil {
		missing = append(missing, "ldd")
	}
	if len(missing) > 0 {
		problems = append(problems, fmt.Sprintf("missing %s; install with: %s",
			strings.Join(missing, ", "), InstallCommand))
	}
	var absent []string
	for _, f := range assetFiles(c.CacheDir) {
		if st, err := os.Stat(f); err != nil || st.Size() == 0 {
			absent = append(absent, filepath.Base(f))
		}
	}
	if len(absent) > 0 {
		problems = append(problems, fmt.Sprintf("missing kernel assets %s in %s; fetch with: %s",
			strings.Join(absent, ", "), AssetsDir(c.CacheDir), AssetsCommand))
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}

// checkStatic insists on a statically linked busybox: the Debian "busybox"
// package is dynamic and would need its libraries too.
func checkStatic(p string) error {
	f, err := elf.Open(p)
	if err != nil {
		return fmt.Errorf("static busybox at %s", p)
	}
	defer f.Close()
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			return fmt.Errorf("static busybox (%s is dynamically linked)", p)
		}
	}
	return nil
}

func checkBinaries(bins []TestBinary) error {
	seen := map[string]bool{}
	for _, b := range bins {
		if !validName.MatchString(b.Name) {
			return fmt.Errorf("vcanvm: bad test binary name %q", b.Name)
		}
		if seen[b.Name] {
			return fmt.Errorf("vcanvm: test binary name %q used twice", b.Name)
		}
		seen[b.Name] = true
		if _, err := os.Stat(b.Path); err != nil {
			return fmt.Errorf("vcanvm: %w", err)
		}
	}
	return nil
}

// Run boots the VM once and runs every binary in turn inside it. Per-binary
// failures are in the Result, not the error; the error reports a harness
// problem (missing parts, setup failing in the guest, the VM timing out or
// dying early), and the Result is filled as far as the run got.
func Run(ctx context.Context, cfg Config, bins []TestBinary) (Result, error) {
	res := Result{}
	for _, b := range bins {
		res.Binaries = append(res.Binaries, BinaryResult{Name: b.Name, ExitCode: -1})
	}
	if err := cfg.prerequisites(); err != nil {
		return res, err
	}
	if err := checkBinaries(bins); err != nil {
		return res, err
	}
	work, err := os.MkdirTemp("", "satwatt-vcanvm-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(work)

	im, err := cfg.image(bins)
	if err != nil {
		return res, err
	}
	payload, err := im.size()
	if err != nil {
		return res, err
	}
	initrd := filepath.Join(work, "initrd.gz")
	if err := im.writeGzip(initrd); err != nil {
		return res, fmt.Errorf("vcanvm: building initramfs: %w", err)
	}

	// The unpacked initramfs lives in guest RAM next to the tests'
	// own needs; leave room for both.
	mem := max(cfg.MemoryMB, 512, int(payload>>20)*2+256)

	ctx, cancel := context.WithTimeout(ctx, cfg.timeout())
	defer cancel()
	args := []string{
		"-accel", "tcg", // KVM hangs on the CI machines
		"-m", strconv.Itoa(mem),
		"-nographic", "-no-reboot",
	}
	args = append(args, cfg.Network.qemuArgs()...)
	args = append(args,
		"-kernel", filepath.Join(AssetsDir(cfg.CacheDir), "vmlinuz"),
		"-initrd", initrd,
		"-append", "console=ttyS0 quiet panic=-1")
	cmd := exec.CommandContext(ctx, cfg.qemu(), args...)
	var console bytes.Buffer
	out := &consoleWriter{buf: &console, to: cfg.Console}
	cmd.Stdout = out
	cmd.Stderr = out
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	runErr := cmd.Run()
	res.Elapsed = time.Since(start)
	res.Console = out.String()
	if !out.readyAt.IsZero() {
		res.Boot = out.readyAt.Sub(start)
	}
	parseMarkers(res.Console, &res)

	switch {
	case ctx.Err() != nil:
		return res, fmt.Errorf("vcanvm: VM run stopped after %s: %w", res.Elapsed.Round(time.Millisecond), ctx.Err())
	case strings.Contains(res.Console, markerSetupFail):
		return res, fmt.Errorf("vcanvm: guest setup failed: %s", lineWith(res.Console, markerSetupFail))
	case runErr != nil:
		return res, fmt.Errorf("vcanvm: qemu: %w", runErr)
	case !strings.Contains(res.Console, markerReady):
		return res, errors.New("vcanvm: the guest powered off before vcan0 was up")
	case !strings.Contains(res.Console, markerDone):
		return res, errors.New("vcanvm: the guest stopped before running every test binary")
	}
	return res, nil
}

// qemuArgs are the network card's qemu arguments.
func (n *Network) qemuArgs() []string {
	if n == nil {
		return []string{"-nic", "none"} // no card: no iPXE ROM to wait for
	}
	netdev := "user,id=n0,net=10.0.2.0/24,host=" + HostFromGuest
	for _, p := range n.Forward {
		netdev += fmt.Sprintf(",hostfwd=tcp:127.0.0.1:%d-%s:%d", p, GuestIP, p)
	}
	// romfile= drops the boot ROM: the kernel is loaded directly.
	return []string{"-netdev", netdev, "-device", "e1000,netdev=n0,romfile="}
}

// image gathers the initramfs: busybox, modules, tools, binaries, /init.
func (c Config) image(bins []TestBinary) (*image, error) {
	im := newImage()
	im.addHost("/bin/busybox", c.busybox(), 0o755)
	modules := Modules
	if c.Network != nil {
		modules = slices.Concat(Modules, NetModules)
	}
	for _, m := range modules {
		im.addHost(path.Join(guestModules, m+".ko"), filepath.Join(AssetsDir(c.CacheDir), m+".ko"), 0o644)
	}
	for _, t := range c.tools() {
		p, err := exec.LookPath(t)
		if err != nil {
			continue // prerequisites already insisted on the needed ones
		}
		if p, err = filepath.Abs(p); err != nil {
			return nil, err
		}
		if err := im.addDynamic(p); err != nil {
			return nil, err
		}
	}
	for _, b := range bins {
		dir := path.Join(guestTests, b.Name)
		im.addHost(path.Join(dir, b.Name+".test"), b.Path, 0o755)
		// Packages that use cgo (SQLite) link against the host's libc.
		if err := im.addLibs(b.Path); err != nil {
			return nil, err
		}
		if b.Dir == "" {
			continue
		}
		td := filepath.Join(b.Dir, "testdata")
		if st, err := os.Stat(td); err == nil && st.IsDir() {
			if err := im.addTree(path.Join(dir, "testdata"), td); err != nil {
				return nil, err
			}
		}
	}
	// Leave the binaries 30 s short of the run's end so a hung test
	// panics with its goroutines' stacks before qemu is killed.
	testTimeout := ""
	if t := c.timeout() - 30*time.Second; t > 0 {
		testTimeout = t.String()
	}
	im.addData("/init", initScript(c.env(true), bins, testTimeout, c.Network != nil), 0o755)
	return im, nil
}

var (
	startRe = regexp.MustCompile(`(?m)^` + markerStart + ` name=(\S+)\s*$`)
	exitRe  = regexp.MustCompile(`(?m)^` + markerExit + ` name=(\S+) code=(-?\d+)\s*$`)
)

// parseMarkers fills the per-binary results from the console. A binary's
// output is what lies between its start marker and its exit marker (or the
// end of the console, when it never finished).
func parseMarkers(console string, res *Result) {
	starts := startRe.FindAllStringSubmatchIndex(console, -1)
	exits := exitRe.FindAllStringSubmatchIndex(console, -1)
	for i := range res.Binaries {
		br := &res.Binaries[i]
		from := -1
		for _, s := range starts {
			if console[s[2]:s[3]] == br.Name {
				from = s[1]
				br.Ran = true
				break
			}
		}
		if from < 0 {
			continue
		}
		to := len(console)
		for _, e := range exits {
			if e[0] >= from && console[e[2]:e[3]] == br.Name {
				to = e[0]
				br.Exited = true
				br.ExitCode, _ = strconv.Atoi(console[e[4]:e[5]])
				break
			}
		}
		br.Output = strings.TrimPrefix(console[from:to], "\n")
	}
}

func lineWith(s, marker string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, marker) {
			return strings.TrimSpace(l)
		}
	}
	return ""
}

// consoleWriter keeps and forwards the console. qemu's stdout and stderr
// are copied by separate goroutines, hence the lock; the serial line's
// carriage returns are dropped so output reads as plain lines.
type consoleWriter struct {
	mu      sync.Mutex
	buf     *bytes.Buffer
	to      io.Writer
	readyAt time.Time // when the guest announced vcan0
}

func (w *consoleWriter) Write(p []byte) (int, error) {
	clean := bytes.ReplaceAll(p, []byte("\r"), nil)
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(clean)
	if w.readyAt.IsZero() && bytes.Contains(w.buf.Bytes(), []byte(markerReady)) {
		w.readyAt = time.Now()
	}
	if w.to != nil {
		// A failing viewer must not stop the run.
		_, _ = w.to.Write(clean)
	}
	return len(p), nil
}

func (w *consoleWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}
