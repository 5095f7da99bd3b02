package testenv

import "syscall"

// dieWithParent makes the kernel kill the child when the thread that started it ends, so
// that no kube-controller-manager outlives a test process that crashed or was killed.
func dieWithParent() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
