package pgtest

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// sysProcAttr runs a PostgreSQL program as cred (nil: the current user), in a
// process group of its own (no terminal signal meant for the test reaches
// it), with SIGKILL when the test binary dies, so that no postmaster
// outlives a crashed or killed test; its children notice their postmaster's
// death and exit. Go sets Pdeathsig after changing the credentials, which
// would otherwise clear it.
func sysProcAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL, Credential: cred}
}

// serverProcs returns the live processes of the server whose postmaster is
// pid and whose data directory is dir: the processes whose working
// directory is dir. A process group would not do: every child of a
// postmaster calls setsid(). The working directory also finds children whose
// postmaster has died (they are then children of init). Zombies have no
// working directory left and hold nothing but their PID.
func serverProcs(pid int, dir string) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range ents {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cwd, err := os.Readlink(filepath.Join("/proc", e.Name(), "cwd"))
		if err != nil {
			continue
		}
		// A removed directory reads as "dir (deleted)".
		if cwd == dir || strings.HasPrefix(cwd, dir+" ") || strings.HasPrefix(cwd, dir+"/") {
			pids = append(pids, n)
		}
	}
	return pids
}

// procState returns the state letter of pid from /proc ('R', 'S', 'T'...,
// 0 when it is gone).
func procState(pid int) byte {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// "pid (comm) state ...": comm may contain spaces and ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return 0
	}
	return b[i+2]
}

// stopped reports whether pid is stopped (or gone).
func stopped(pid int) bool {
	st := procState(pid)
	return st == 0 || st == 'T' || st == 't' || st == 'Z' || st == 'X'
}
