// Package canutils drives the can-utils programs (cansend, candump,
// canplayer) as independent CAN peers for the SocketCAN tests: what they put
// on a bus or capture from it was not produced or read by satwatt's own code.
package canutils

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"
)

// Candump is a running `candump -L` on one interface.
type Candump struct {
	cmd   *exec.Cmd
	Lines <-chan string
}

// StartCandump starts `candump -L iface` and returns once candump's socket
// is bound (it prints nothing when ready, so a frame sent earlier would be
// lost): it watches the kernel's receiver list instead of sleeping.
func StartCandump(ctx context.Context, iface string) (*Candump, error) {
	before, err := rawReceivers(iface)
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, "candump", "-L", iface)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start candump: %w", err)
	}
	lines := make(chan string, 1024)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	c := &Candump{cmd: cmd, Lines: lines}
	for {
		n, err := rawReceivers(iface)
		if err != nil {
			c.Stop()
			return nil, err
		}
		if n > before {
			return c, nil
		}
		select {
		case <-ctx.Done():
			c.Stop()
			return nil, fmt.Errorf("candump never opened a socket on %s: %w", iface, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// Stop ends candump; Lines is closed once its output is drained.
func (c *Candump) Stop() {
	_ = c.cmd.Process.Kill()
	_ = c.cmd.Wait()
}

// Frame splits a `candump -L` line "(sec.usec) iface ID#DATA" into the
// interface and the frame text "ID#DATA".
func Frame(line string) (iface, frame string, ok bool) {
	f := strings.Fields(line)
	if len(f) != 3 || !strings.HasPrefix(f[0], "(") {
		return "", "", false
	}
	return f[1], f[2], true
}

// Send runs `cansend iface frame`.
func Send(ctx context.Context, iface, frame string) error {
	out, err := exec.CommandContext(ctx, "cansend", iface, frame).CombinedOutput()
	if err != nil {
		return fmt.Errorf("cansend %s %s: %w: %s", iface, frame, err, out)
	}
	return nil
}

// Play runs `canplayer -I file iface=logiface`, replaying a candump log
// recorded on logiface onto iface at its recorded pace.
func Play(ctx context.Context, file, iface, logIface string) error {
	out, err := exec.CommandContext(ctx, "canplayer", "-I", file, iface+"="+logIface).CombinedOutput()
	if err != nil {
		return fmt.Errorf("canplayer %s: %w: %s", file, err, out)
	}
	return nil
}

// rawReceivers counts the unfiltered CAN receivers the kernel lists for
// iface; candump without filters registers exactly one.
func rawReceivers(iface string) (int, error) {
	b, err := os.ReadFile("/proc/net/can/rcvlist_all")
	if err != nil {
		return 0, fmt.Errorf("read the CAN receiver list: %w", err)
	}
	n := 0
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 0 && f[0] == iface {
			n++
		}
	}
	return n, nil
}
