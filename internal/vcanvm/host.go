package vcanvm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strings"
	"time"
)

// HostHasVCAN reports whether this kernel can create a vcan link, by
// creating a throw-away one. It needs root and iproute2's ip.
func HostHasVCAN() bool {
	const probe = "satwattprobe0"
	if err := exec.Command("ip", "link", "add", "dev", probe, "type", "vcan").Run(); err != nil {
		return false
	}
	_ = exec.Command("ip", "link", "del", "dev", probe).Run()
	return true
}

// RunHost runs the binaries on the host, one after another, against a
// vcan0 it creates when absent (and removes again). It is the stand-in for
// Run on machines whose kernel has vcan; results have the same form.
func RunHost(ctx context.Context, cfg Config, bins []TestBinary) (Result, error) {
	res := Result{}
	for _, b := range bins {
		res.Binaries = append(res.Binaries, BinaryResult{Name: b.Name, ExitCode: -1})
	}
	if err := checkBinaries(bins); err != nil {
		return res, err
	}
	var missing []string
	for _, t := range RequiredTools {
		if _, err := exec.LookPath(t); err != nil {
			missing = append(missing, t)
		}
	}
	if len(missing) > 0 {
		return res, fmt.Errorf("missing %s; install with: %s", strings.Join(missing, ", "), InstallCommand)
	}
	if exec.Command("ip", "link", "show", "dev", "vcan0").Run() != nil {
		if out, err := exec.Command("ip", "link", "add", "dev", "vcan0", "type", "vcan").CombinedOutput(); err != nil {
			return res, fmt.Errorf("vcanvm: ip link add vcan0: %v: %s", err, out)
		}
		defer func() { _ = exec.Command("ip", "link", "del", "dev", "vcan0").Run() }()
	}
	if out, err := exec.Command("ip", "link", "set", "up", "vcan0").CombinedOutput(); err != nil {
		return res, fmt.Errorf("vcanvm: ip link set up vcan0: %v: %s", err, out)
	}

	ctx, cancel := context.WithTimeout(ctx, cfg.timeout())
	defer cancel()
	env := os.Environ()
	extra := cfg.env(false)
	keys := make([]string, 0, len(extra))
	for k := range extra {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		env = append(env, k+"="+extra[k])
	}
	var console bytes.Buffer
	out := &consoleWriter{buf: &console, to: cfg.Console}
	start := time.Now()
	for i, b := range bins {
		args := []string{"-test.v"}
		if t := cfg.timeout() - 30*time.Second; t > 0 && !hasTimeoutArg(b.Args) {
			args = append(args, "-test.timeout="+t.String())
		}
		args = append(args, b.Args...)
		cmd := exec.CommandContext(ctx, b.Path, args...)
		cmd.Dir = b.Dir
		cmd.Env = env
		var own bytes.Buffer
		w := &consoleWriter{buf: &own, to: out}
		cmd.Stdout = w
		cmd.Stderr = w
		cmd.WaitDelay = 5 * time.Second
		fmt.Fprintf(out, "%s name=%s\n", markerStart, b.Name)
		err := cmd.Run()
		br := &res.Binaries[i]
		br.Ran = true
		br.Output = own.String()
		var ee *exec.ExitError
		switch {
		case err == nil:
			br.Exited = true
			br.ExitCode = 0
		case errors.As(err, &ee) && ee.Exited():
			br.Exited = true
			br.ExitCode = ee.ExitCode()
		}
		fmt.Fprintf(out, "%s name=%s code=%d\n", markerExit, b.Name, br.ExitCode)
		if ctx.Err() != nil {
			break
		}
	}
	res.Elapsed = time.Since(start)
	res.Console = out.String()
	if ctx.Err() != nil {
		return res, fmt.Errorf("vcanvm: host run stopped after %s: %w", res.Elapsed.Round(time.Millisecond), ctx.Err())
	}
	return res, nil
}
