package redistest

import "syscall"

// sysProcAttr makes a child process receive SIGKILL when the test binary
// dies, so that no redis-server outlives a crashed or killed test.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
