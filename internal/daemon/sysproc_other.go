//go:build unix && !linux

package daemon

import "syscall"

// daemonSysProcAttr puts each daemon in its own process group, so a Ctrl-C
// at the terminal reaches only the harness. Without Linux's Pdeathsig a
// daemon outlives a harness killed with SIGKILL.
func daemonSysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
