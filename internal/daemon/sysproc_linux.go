package daemon

import "syscall"

// daemonSysProcAttr puts each daemon in its own process group, so a Ctrl-C
// at the terminal reaches only the harness, which then stops the daemons in
// order; and asks the kernel to SIGKILL the daemon if the harness dies
// without cleaning up (SIGKILL, a crash, an unhandled signal), so no daemon
// outlives it. Its temporary directory is then left behind.
func daemonSysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
