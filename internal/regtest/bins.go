package regtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"satwatt/internal/daemon"
)

// ErrNoBinaries means lnd, lncli, btcd or btcctl is missing and could not be
// built. Tests skip on it outside CI.
var ErrNoBinaries = errors.New("regtest: lnd/btcd binaries missing")

// Binaries are the paths of the daemons and their command-line clients.
type Binaries struct {
	Lnd, Lncli, Btcd, Btcctl string
	// BuildTime is how long EnsureBinaries spent building; zero when the
	// binaries were already there.
	BuildTime time.Duration
}

// buildScript builds the binaries; EnsureBinaries runs it so that make and
// go test share one recipe.
const buildScript = "scripts/lnd-bins.sh"

// buildMu keeps parallel tests in one binary from building at once; the
// script's lock file does the same across test binaries.
var buildMu sync.Mutex

// EnsureBinaries returns the binaries in cacheDir/bin, building them first
// with scripts/lnd-bins.sh when any is missing or older than go.sum. A cold
// build of lnd takes minutes. With an empty repoRoot it only looks.
func EnsureBinaries(ctx context.Context, repoRoot, cacheDir string) (Binaries, error) {
	if cacheDir == "" {
		return Binaries{}, fmt.Errorf("%w: no cache directory given", ErrNoBinaries)
	}
	bin := filepath.Join(cacheDir, "bin")
	b := Binaries{
		Lnd:    filepath.Join(bin, "lnd"),
		Lncli:  filepath.Join(bin, "lncli"),
		Btcd:   filepath.Join(bin, "btcd"),
		Btcctl: filepath.Join(bin, "btcctl"),
	}
	buildMu.Lock()
	defer buildMu.Unlock()
	if missing := b.stale(repoRoot); len(missing) == 0 {
		return b, nil
	} else if repoRoot == "" {
		return b, fmt.Errorf("%w: %s not in %s; build them with `bash %s %s` from the repository root",
			ErrNoBinaries, strings.Join(missing, ", "), bin, buildScript, cacheDir)
	}
	script := filepath.Join(repoRoot, buildScript)
	cmdline := fmt.Sprintf("bash %s %s", script, cacheDir)
	start := time.Now()
	cmd := exec.CommandContext(ctx, "bash", script, cacheDir)
	cmd.Dir = repoRoot
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		return b, fmt.Errorf("%w: `%s` failed: %w\n%s", ErrNoBinaries, cmdline, err, daemon.LastLines(out.String(), daemon.LogTailLines))
	}
	if missing := b.stale(""); len(missing) > 0 {
		return b, fmt.Errorf("%w: `%s` did not produce %s", ErrNoBinaries, cmdline, strings.Join(missing, ", "))
	}
	b.BuildTime = time.Since(start)
	return b, nil
}

// stale lists the binaries that are missing, or older than go.sum when a
// repository root is given.
func (b Binaries) stale(repoRoot string) []string {
	var sum time.Time
	if repoRoot != "" {
		if fi, err := os.Stat(filepath.Join(repoRoot, "go.sum")); err == nil {
			sum = fi.ModTime()
		}
	}
	var out []string
	for _, p := range []string{b.Lnd, b.Lncli, b.Btcd, b.Btcctl} {
		fi, err := os.Stat(p)
		if err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 || !fi.ModTime().After(sum) {
			out = append(out, filepath.Base(p))
		}
	}
	return out
}

// FindRepoRoot returns the nearest directory at or above the working
// directory that holds go.mod, which is where go test runs a package's tests
// from.
func FindRepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find repository root: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("find repository root: no go.mod above the working directory")
		}
		dir = parent
	}
}

// DefaultCacheDir is $SATWATT_CACHE (the Makefile exports it), or .cache in
// the repository root.
func DefaultCacheDir(repoRoot string) string {
	if d := os.Getenv("SATWATT_CACHE"); d != "" {
		return d
	}
	return filepath.Join(repoRoot, ".cache")
}
