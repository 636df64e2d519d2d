// Package daemon starts and stops the long-running programs that the
// regtest harness and the demo run (btcd, lnd, wallctl, vehiclegw): each in
// its own process group, killed by the kernel if its parent dies, stopped
// with SIGTERM and then SIGKILL, its console output kept in a log file.
package daemon

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"
)

const (
	// StopTimeout is how long a daemon gets between SIGTERM and SIGKILL.
	// lnd usually exits within a few seconds.
	StopTimeout = 30 * time.Second
	// LogTailLines is how much of a daemon's log an error carries.
	LogTailLines = 20
)

// Process is one daemon.
type Process struct {
	Name    string
	LogPath string

	cmd     *exec.Cmd
	logFile *os.File
	done    chan struct{} // closed once the process has exited and been reaped
	err     error         // Wait's result, valid after done
}

// startedPids records every daemon pid this process started, so a test can
// check that a failed start left nothing behind.
var startedPids struct {
	sync.Mutex
	pids []int
}

// Started lists the pids of every daemon this process started.
func Started() []int {
	startedPids.Lock()
	defer startedPids.Unlock()
	return append([]int(nil), startedPids.pids...)
}

// Spawn starts a daemon whose console output goes to logPath. The daemon is
// bound to lifetime: when it ends, the daemon gets SIGTERM and, after
// StopTimeout, SIGKILL. If beforeTerm is set, it runs before that SIGTERM,
// so one daemon can outlive others that need it to shut down quickly. env,
// when not nil, is added to this process's environment.
func Spawn(lifetime context.Context, beforeTerm func(), env []string, name, logPath, bin string, args ...string) (*Process, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open log of %s: %w", name, err)
	}
	cmd := exec.CommandContext(lifetime, bin, args...)
	cmd.Stdout = f
	cmd.Stderr = f
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	cmd.SysProcAttr = daemonSysProcAttr()
	cmd.Cancel = func() error {
		if beforeTerm != nil {
			beforeTerm()
		}
		return signalGroup(cmd.Process.Pid, syscall.SIGTERM)
	}
	cmd.WaitDelay = StopTimeout
	var startErr error
	onSpawnThread(func() { startErr = cmd.Start() })
	if startErr != nil {
		f.Close()
		return nil, fmt.Errorf("start %s (%s): %w", name, bin, startErr)
	}
	startedPids.Lock()
	startedPids.pids = append(startedPids.pids, cmd.Process.Pid)
	startedPids.Unlock()
	p := &Process{Name: name, LogPath: logPath, cmd: cmd, logFile: f, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p, nil
}

// Pid is the daemon's process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Done is closed once the daemon has exited and been reaped.
func (p *Process) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has already ended.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Stop sends SIGTERM, waits up to StopTimeout, then SIGKILLs and waits for
// the exit. It is safe to call on a process that already exited.
func (p *Process) Stop(ctx context.Context) error {
	if p.Exited() {
		return nil
	}
	// The whole group, in case a daemon ever forks helpers.
	_ = signalGroup(p.cmd.Process.Pid, syscall.SIGTERM)
	timer := time.NewTimer(StopTimeout)
	defer timer.Stop()
	select {
	case <-p.done:
		return nil
	case <-timer.C:
	case <-ctx.Done():
	}
	_ = signalGroup(p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
	return fmt.Errorf("%s (pid %d) ignored SIGTERM for %v and was killed", p.Name, p.cmd.Process.Pid, StopTimeout)
}

// Kill sends SIGKILL to the daemon's group at once, as a crash would, and
// waits for it to be reaped.
func (p *Process) Kill() {
	_ = signalGroup(p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

// ExitError describes an early exit of the process, with its log tail.
func (p *Process) ExitError() error {
	return WithLogTail(fmt.Errorf("%s exited early: %v", p.Name, p.err), p.LogPath)
}

func signalGroup(pid int, sig syscall.Signal) error {
	if err := syscall.Kill(-pid, sig); err != nil {
		// Not a group leader (e.g. Setpgid unsupported): signal the process.
		return syscall.Kill(pid, sig)
	}
	return nil
}

// Pdeathsig fires when the thread that forked the child exits, not the
// process. Go ends threads whose goroutine exits while locked to it (network
// namespace code does that on purpose), so all daemons are forked from one
// locked goroutine that never returns: its thread lives as long as the
// process.
var spawnThread struct {
	once sync.Once
	reqs chan func()
}

func onSpawnThread(f func()) {
	spawnThread.once.Do(func() {
		spawnThread.reqs = make(chan func())
		go func() {
			runtime.LockOSThread()
			for f := range spawnThread.reqs {
				f()
			}
		}()
	})
	done := make(chan struct{})
	spawnThread.reqs <- func() { defer close(done); f() }
	<-done
}

// WithLogTail appends the last lines of a daemon's log to err.
func WithLogTail(err error, logPath string) error {
	tail := logTail(logPath, LogTailLines)
	if tail == "" {
		return err
	}
	return fmt.Errorf("%w\n--- last %d lines of %s ---\n%s", err, LogTailLines, logPath, tail)
}

func logTail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return LastLines(string(data), n)
}

// LastLines is the last n lines of s.
func LastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// LogContains reports whether the daemon's log mentions s; used to tell a
// port clash from other start failures.
func LogContains(path, s string) bool {
	data, err := os.ReadFile(path)
	return err == nil && bytes.Contains(data, []byte(s))
}
