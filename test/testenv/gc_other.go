//go:build !linux

package testenv

import "syscall"

// dieWithParent has no portable equivalent off Linux: Stop ends the process.
func dieWithParent() *syscall.SysProcAttr { return nil }
