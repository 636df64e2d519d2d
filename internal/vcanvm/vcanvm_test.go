package vcanvm

import (
	"bufio"
	"bytes"
	"fmt"
	"go/build/constraint"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSocketCANInVM compiles every package's vcan-tagged tests and runs
// them against a real SocketCAN stack: in a qemu VM, or on the host when
// its kernel has vcan.
func TestSocketCANInVM(t *testing.T) {
	root := repoRoot(t)
	cache := os.Getenv("SATWATT_CACHE")
	if cache == "" {
		cache = filepath.Join(root, ".cache")
	}
	onHost := HostHasVCAN()
	if !onHost {
		if err := Prerequisites(cache); err != nil {
			missing(t, "SocketCAN VM tests cannot run: %v", err)
		}
	}

	pkgs := vcanPackages(t, root)
	if len(pkgs) == 0 {
		t.Fatal("no package has vcan-tagged tests; the harness's own smoke test should be one")
	}
	outDir := t.TempDir()
	var bins []TestBinary
	for _, p := range pkgs {
		bin := filepath.Join(outDir, p.name+".test")
		cmd := exec.CommandContext(t.Context(), "go", "test", "-c", "-tags", "vcan", "-o", bin, p.importPath)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("%s: the vcan tests do not compile (go test -c -tags vcan): %v\n%s", p.importPath, err, out)
			continue
		}
		bins = append(bins, TestBinary{Name: p.name, Path: bin, Dir: p.dir, Args: []string{"-test.run", VCANTestPattern}})
	}
	if len(bins) == 0 {
		t.FailNow()
	}

	cfg := Config{CacheDir: cache}
	if testing.Verbose() {
		cfg.Console = os.Stdout
	}
	run := Run
	if onHost {
		t.Log("this kernel has vcan: running the vcan tests on the host")
		run = RunHost
	}
	res, err := run(t.Context(), cfg, bins)
	t.Logf("vcan run of %d binaries took %s (vcan0 up after %s)", len(bins),
		res.Elapsed.Round(time.Millisecond), res.Boot.Round(time.Millisecond))
	if err != nil {
		if !testing.Verbose() {
			t.Logf("console:\n%s", res.Console)
		}
		t.Errorf("%v", err)
	}
	for _, br := range res.Binaries {
		switch {
		case !br.Ran:
			t.Errorf("%s: never ran", br.Name)
			continue
		case !br.Exited:
			t.Errorf("%s: did not finish", br.Name)
		case br.ExitCode != 0:
			t.Errorf("%s: exit code %d", br.Name, br.ExitCode)
		case !hasLine(br.Output, "PASS"):
			t.Errorf("%s: exit code 0 but no PASS line", br.Name)
		default:
			continue
		}
		if !testing.Verbose() {
			t.Logf("%s output:\n%s", br.Name, br.Output)
		}
	}
}

func hasLine(s, line string) bool {
	sc := bufio.NewScanner(strings.NewReader(s))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) == line {
			return true
		}
	}
	return false
}

func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's folder")
		}
		dir = parent
	}
}

type vcanPackage struct {
	importPath, dir, name string
}

// vcanPackages lists the module's packages with at least one test file
// whose build constraint names the vcan tag, so new vcan tests are picked
// up without touching the harness.
func vcanPackages(t *testing.T, root string) []vcanPackage {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), "go", "list", "-e", "-tags", "vcan",
		"-f", "{{.ImportPath}}\t{{.Dir}}\t{{join .TestGoFiles \" \"}} {{join .XTestGoFiles \" \"}}", "./...")
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	var pkgs []vcanPackage
	used := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.SplitN(line, "\t", 3)
		if len(f) != 3 {
			continue
		}
		tagged := false
		for _, name := range strings.Fields(f[2]) {
			ok, err := mentionsVCAN(filepath.Join(f[1], name))
			if err != nil {
				t.Fatal(err)
			}
			tagged = tagged || ok
		}
		if tagged {
			p := vcanPackage{importPath: f[0], dir: f[1], name: path.Base(f[0])}
			used[p.name]++
			pkgs = append(pkgs, p)
		}
	}
	// Two packages with the same last element get their module-relative
	// path as the name instead.
	for i, p := range pkgs {
		if used[p.name] > 1 {
			rel, err := filepath.Rel(root, p.dir)
			if err != nil {
				t.Fatal(err)
			}
			pkgs[i].name = strings.ReplaceAll(filepath.ToSlash(rel), "/", "_")
		}
	}
	return pkgs
}

// mentionsVCAN reports whether the file's //go:build line names the vcan tag.
func mentionsVCAN(file string) (bool, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return false, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "package ") {
			break
		}
		if !constraint.IsGoBuild(line) {
			continue
		}
		expr, err := constraint.Parse(line)
		if err != nil {
			return false, fmt.Errorf("%s: %v", file, err)
		}
		found := false
		expr.Eval(func(tag string) bool {
			found = found || tag == "vcan"
			return true
		})
		return found, nil
	}
	return false, nil
}
