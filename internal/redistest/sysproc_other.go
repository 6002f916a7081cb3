//go:build !linux

package redistest

import "syscall"

// sysProcAttr: without Pdeathsig, processes are only killed by t.Cleanup.
func sysProcAttr() *syscall.SysProcAttr { return nil }
