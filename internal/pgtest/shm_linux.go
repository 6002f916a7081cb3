//go:build linux && !386

package pgtest

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// removeShm removes the System V shared memory segment a killed postmaster
// left behind (PostgreSQL keeps a small one as an interlock even with mmap'ed
// shared memory; only a postmaster that exits normally removes it). It
// removes segment id only while it still carries key and nobody is attached,
// so a recycled id of someone else's segment is left alone.
func removeShm(key, id int) error {
	switch nattch, ok, err := shmAttached(key, id); {
	case err != nil:
		return err
	case !ok:
		return nil // already gone
	case nattch > 0:
		return fmt.Errorf("shared memory segment %d (key %d) still has %d processes attached", id, key, nattch)
	}
	const ipcRMID = 0
	if _, _, e := syscall.Syscall(syscall.SYS_SHMCTL, uintptr(id), ipcRMID, 0); e != 0 && e != syscall.EINVAL && e != syscall.EIDRM {
		return fmt.Errorf("removing shared memory segment %d (key %d): %w", id, key, e)
	}
	return nil
}

// shmAttached looks segment id up in /proc/sysvipc/shm: ok is false when no
// segment with that id and key exists.
func shmAttached(key, id int) (nattch int, ok bool, err error) {
	f, err := os.Open("/proc/sysvipc/shm")
	if err != nil {
		return 0, false, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Scan() // header: key shmid perms size cpid lpid nattch ...
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) < 7 {
			continue
		}
		k, err1 := strconv.Atoi(fs[0])
		i, err2 := strconv.Atoi(fs[1])
		n, err3 := strconv.Atoi(fs[6])
		if err1 != nil || err2 != nil || err3 != nil || i != id {
			continue
		}
		return n, k == key, nil
	}
	return 0, false, sc.Err()
}
