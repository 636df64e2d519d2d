package regtest

import (
	"errors"
	"syscall"
	"testing"
)

// prSetChildSubreaper is PR_SET_CHILD_SUBREAPER from <linux/prctl.h>.
const prSetChildSubreaper = 36

// becomeSubreaper makes orphaned descendants ours rather than PID 1's. In a
// container whose PID 1 never reaps, the daemons a killed child leaves would
// otherwise linger as zombies for the rest of the run.
func becomeSubreaper(t *testing.T) {
	t.Helper()
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0); errno != 0 {
		t.Fatalf("prctl(PR_SET_CHILD_SUBREAPER): %v", errno)
	}
}

// reaped collects pid if it is a dead child of ours and reports whether
// nothing of it is left for us to collect. A Go daemon's main thread shows
// as a zombie while its other threads still exit, and only then can it be
// waited for, so callers poll this rather than the process state.
func reaped(pid int) bool {
	var ws syscall.WaitStatus
	got, err := syscall.Wait4(pid, &ws, syscall.WNOHANG, nil)
	return got == pid || errors.Is(err, syscall.ECHILD)
}
