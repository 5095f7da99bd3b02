package stack

import "syscall"

// sysProcAttr puts a child in its own process group, so that stopping it reaches
// everything it started and a terminal's Ctrl-C reaches only us (we stop the children in
// order); and kills it should this process die without cleaning up.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
