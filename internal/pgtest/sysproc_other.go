//go:build !linux

package pgtest

import "syscall"

// sysProcAttr: without Pdeathsig, servers are only stopped by t.Cleanup.
func sysProcAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Credential: cred}
}

// serverProcs knows only the postmaster here: its children exit when they
// notice it died.
func serverProcs(pid int, dir string) []int {
	if syscall.Kill(pid, 0) == nil {
		return []int{pid}
	}
	return nil
}

// stopped cannot be observed here: the signal is assumed delivered.
func stopped(pid int) bool { return true }

// procState is unknown here.
func procState(pid int) byte { return 0 }
