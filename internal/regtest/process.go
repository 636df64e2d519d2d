package regtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"syscall"
	"time"
)

const (
	// stopTimeout is how long a daemon gets between SIGTERM and SIGKILL.
	// lnd usually exits within a few seconds.
	stopTimeout = 30 * time.Second
	// logTailLines is how much of a daemon's log an error carries.
	logTailLines = 20
)

// process is one daemon the harness started.
type process struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	logFile *os.File
	done    chan struct{} // closed once the process has exited and been reaped
	err     error         // Wait's result, valid after done
}

// startedPids records every daemon pid this test binary started, so a test
// can check that a failed Start left nothing behind.
var startedPids struct {
	sync.Mutex
	pids []int
}

// spawn starts a daemon whose console output goes to logPath. The daemon is
// bound to lifetime: when it ends, the daemon gets SIGTERM and, after
// stopTimeout, SIGKILL. If beforeTerm is set, it runs before that SIGTERM,
// so one daemon can outlive others that need it to shut down quickly.
func spawn(lifetime context.Context, beforeTerm func(), name, logPath, bin string, args ...string) (*process, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open log of %s: %w", name, err)
	}
	cmd := exec.CommandContext(lifetime, bin, args...)
	cmd.Stdout = f
	cmd.Stderr = f
	cmd.SysProcAttr = daemonSysProcAttr()
	cmd.Cancel = func() error {
		if beforeTerm != nil {
			beforeTerm()
		}
		return signalGroup(cmd.Process.Pid, syscall.SIGTERM)
	}
	cmd.WaitDelay = stopTimeout
	var startErr error
	onSpawnThread(func() { startErr = cmd.Start() })
	if startErr != nil {
		f.Close()
		return nil, fmt.Errorf("start %s (%s): %w", name, bin, startErr)
	}
	startedPids.Lock()
	startedPids.pids = append(startedPids.pids, cmd.Process.Pid)
	startedPids.Unlock()
	p := &process{name: name, cmd: cmd, logPath: logPath, logFile: f, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p, nil
}

// exited reports whether the process has already ended.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM, waits up to stopTimeout, then SIGKILLs and waits for
// the exit. It is safe to call on a process that already exited.
func (p *process) stop(ctx context.Context) error {
	if p.exited() {
		return nil
	}
	// The whole group, in case a daemon ever forks helpers.
	_ = signalGroup(p.cmd.Process.Pid, syscall.SIGTERM)
	timer := time.NewTimer(stopTimeout)
	defer timer.Stop()
	select {
	case <-p.done:
		return nil
	case <-timer.C:
	case <-ctx.Done():
	}
	_ = signalGroup(p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
	return fmt.Errorf("%s (pid %d) ignored SIGTERM for %v and was killed", p.name, p.cmd.Process.Pid, stopTimeout)
}

// exitError describes an early exit of the process, with its log tail.
func (p *process) exitError() error {
	return withLogTail(fmt.Errorf("%s exited early: %v", p.name, p.err), p.logPath)
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

// withLogTail appends the last lines of a daemon's log to err.
func withLogTail(err error, logPath string) error {
	tail := logTail(logPath, logTailLines)
	if tail == "" {
		return err
	}
	return fmt.Errorf("%w\n--- last %d lines of %s ---\n%s", err, logTailLines, logPath, tail)
}

func logTail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return lastLines(string(data), n)
}

// logContains reports whether the daemon's log mentions s; used to tell a
// port clash from other start failures.
func logContains(path, s string) bool {
	data, err := os.ReadFile(path)
	return err == nil && bytes.Contains(data, []byte(s))
}

// reserved holds every port this process handed out, so two networks in one
// test binary never get the same port even after the first one closed its
// probe listener.
var reserved struct {
	sync.Mutex
	ports map[int]bool
}

// freePorts returns n distinct free TCP ports on 127.0.0.1. The kernel picks
// them (bind to port 0); Linux hands out odd ports for bind and even ones for
// outgoing connections, so a daemon's own client connections rarely take a
// port picked here before its owner binds it.
func freePorts(n int) ([]int, error) {
	reserved.Lock()
	defer reserved.Unlock()
	if reserved.ports == nil {
		reserved.ports = map[int]bool{}
	}
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	for len(ports) < n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("pick a free port: %w", err)
		}
		ls = append(ls, l)
		p := l.Addr().(*net.TCPAddr).Port
		if reserved.ports[p] {
			continue
		}
		reserved.ports[p] = true
		ports = append(ports, p)
	}
	return ports, nil
}

// listening reports whether something accepts connections on addr.
func listening(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// waitPortsFree waits until none of addrs accepts connections.
func waitPortsFree(ctx context.Context, addrs ...string) error {
	return poll(ctx, 10*time.Second, 50*time.Millisecond, func() (bool, error) {
		for _, a := range addrs {
			if listening(a) {
				return false, fmt.Errorf("%s still accepts connections", a)
			}
		}
		return true, nil
	})
}

// errPollTimeout marks a poll that ran out of time.
var errPollTimeout = errors.New("timed out")

// finalError makes poll give up at once.
type finalError struct{ error }

func (e finalError) Unwrap() error { return e.error }

// final marks an error that waiting will not fix.
func final(err error) error { return finalError{err} }

// poll calls check every interval until it reports done, ctx ends or timeout
// passes. The last error check returned is part of the timeout error, so a
// failure says what it was waiting for.
func poll(parent context.Context, timeout, interval time.Duration, check func() (bool, error)) error {
	ctx, cancel := context.WithTimeout(parent, timeout)
	defer cancel()
	var last error
	for {
		ok, err := check()
		if ok {
			return nil
		}
		var fe finalError
		if errors.As(err, &fe) {
			return fe.error
		}
		if err != nil {
			last = err
		}
		select {
		case <-ctx.Done():
			if parent.Err() != nil {
				return fmt.Errorf("%w (last check: %v)", parent.Err(), last)
			}
			if last == nil {
				last = ctx.Err()
			}
			return fmt.Errorf("%w after %v: %w", errPollTimeout, timeout, last)
		case <-time.After(interval):
		}
	}
}
