//go:build !unix

package stack

import (
	"os"
	"syscall"
)

const (
	sigTerm = syscall.SIGTERM
	sigKill = syscall.SIGKILL
)

// sysProcAttr: no process groups here; children are killed one by one.
func sysProcAttr() *syscall.SysProcAttr { return nil }

// signalGroup kills the process: without process groups there is no gentler way.
func signalGroup(pid int, _ syscall.Signal) {
	if p, err := os.FindProcess(pid); err == nil {
		_ = p.Kill()
	}
}
