package daemon

import (
	"context"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

const hangGuard = 30 * time.Second

func TestSpawnStopAndExit(t *testing.T) {
	tests := []struct {
		name     string
		script   string
		stop     bool
		wantTail string
	}{
		// A daemon that runs until told to stop.
		{"stopped", "echo up; exec sleep 60", true, ""},
		// One that dies on its own: the error carries its last words and
		// the environment it was given.
		{"exits", `echo "token is $DAEMON_TEST_VAR"; exit 3`, false, "token is from-env"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			log := filepath.Join(t.TempDir(), "d.log")
			p, err := Spawn(context.Background(), nil, []string{"DAEMON_TEST_VAR=from-env"}, tt.name, log, "/bin/sh", "-c", tt.script)
			if err != nil {
				t.Fatal(err)
			}
			if tt.stop {
				if err := p.Stop(context.Background()); err != nil {
					t.Fatal(err)
				}
				if !p.Exited() {
					t.Fatal("not exited after Stop")
				}
				if err := syscall.Kill(p.Pid(), 0); err == nil {
					t.Error("the process still exists after Stop")
				}
				return
			}
			select {
			case <-p.Done():
			case <-time.After(hangGuard):
				t.Fatal("the daemon never exited")
			}
			err = p.ExitError()
			if !strings.Contains(err.Error(), "exit status 3") || !strings.Contains(err.Error(), tt.wantTail) {
				t.Errorf("ExitError %q: want the exit status and %q", err, tt.wantTail)
			}
		})
	}
}

// The lifetime's end stops the daemon (SIGTERM to its group).
func TestLifetimeEndStops(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	p, err := Spawn(ctx, nil, nil, "sleeper", filepath.Join(t.TempDir(), "s.log"), "/bin/sleep", "60")
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case <-p.Done():
	case <-time.After(hangGuard):
		t.Fatal("the daemon outlived its lifetime")
	}
	found := false
	for _, pid := range Started() {
		found = found || pid == p.Pid()
	}
	if !found {
		t.Errorf("Started() = %v lacks pid %d", Started(), p.Pid())
	}
}

func TestLastLines(t *testing.T) {
	tests := []struct {
		in   string
		n    int
		want string
	}{
		{"a\nb\nc\n", 2, "b\nc"},
		{"a\nb", 5, "a\nb"},
		{"", 3, ""},
	}
	for _, tt := range tests {
		if got := LastLines(tt.in, tt.n); got != tt.want {
			t.Errorf("LastLines(%q, %d) = %q, want %q", tt.in, tt.n, got, tt.want)
		}
	}
}
