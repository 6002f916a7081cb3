package redis_test

import (
	"bytes"
	"context"
	"runtime"
	"testing"

	"github.com/tendril-db/tendril/internal/redistest"
)

// A 100 MB value goes to the socket from the caller's memory: the SET
// allocates a small fraction of it (it was copied three times: parsed,
// framed, buffered for the write), and the GET reads it into one buffer
// of its size, handed to Scan without another copy.
func TestLargeValueNotCopied(t *testing.T) {
	srv := redistest.StartServer(t)
	ctx := context.Background()
	db := connect(t, "redis", "redis://"+srv.Addr+"?max_conns_per_node=1&socket_timeout=30s")
	const size = 100 << 20
	val := bytes.Repeat([]byte("0123456789abcdef"), size/16)
	allocated := func(f func()) uint64 {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		f()
		runtime.ReadMemStats(&after)
		return after.TotalAlloc - before.TotalAlloc
	}
	var err error
	set := allocated(func() { _, err = db.Exec(ctx, "SET ? ?", "big", val) })
	if err != nil {
		t.Fatal(err)
	}
	if set > size/2 {
		t.Errorf("SET of %d MB allocated %d MB, want under half the value", size>>20, set>>20)
	}
	var got []byte
	get := allocated(func() { err = db.QueryRow(ctx, "GET ?", "big").Scan(&got) })
	if err != nil || !bytes.Equal(got, val) {
		t.Fatalf("GET: %d bytes (%v), want the %d set", len(got), err, size)
	}
	if get > size+size/4 {
		t.Errorf("GET of %d MB allocated %d MB, want one buffer of its size", size>>20, get>>20)
	}
	// A string argument is not copied either.
	str := string(val)
	set = allocated(func() { _, err = db.Exec(ctx, "SET ? ?", "big", str) })
	if err != nil || set > size/2 {
		t.Errorf("SET of a %d MB string allocated %d MB (%v), want under half", size>>20, set>>20, err)
	}
	t.Logf("SET allocated %d KB, GET %d MB", set>>10, get>>20)
}
