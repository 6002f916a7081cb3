package main

import (
	"os"
	"testing"
	"time"
)

// TestProcsCPU checks the servers' CPU reading on this process: it grows
// by about the CPU burnt between two readings, and a process that is gone
// counts nothing.
func TestProcsCPU(t *testing.T) {
	self := procsCPU(func() []int { return []int{os.Getpid()} })
	c0 := self()
	start := time.Now()
	x := 0
	for time.Since(start) < 200*time.Millisecond {
		x++
	}
	if d := self() - c0; d < 100*time.Millisecond || d > 2*time.Second {
		t.Errorf("200ms of spinning read as %s of CPU (x=%d)", d, x)
	}
	if d := procsCPU(func() []int { return []int{1 << 30} })(); d != 0 {
		t.Errorf("a missing process counts %s", d)
	}
}
