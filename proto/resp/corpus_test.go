package resp

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestWriteSeedCorpus regenerates the committed seed corpus under
// testdata/fuzz from the captured Redis replies and the test tables, so the
// corpus that `go test` replays stays in step with them. It only writes when
// asked to:
//
//	RESP_WRITE_FUZZ_CORPUS=1 go test -run TestWriteSeedCorpus ./proto/resp/
func TestWriteSeedCorpus(t *testing.T) {
	if os.Getenv("RESP_WRITE_FUZZ_CORPUS") == "" {
		t.Skip("set RESP_WRITE_FUZZ_CORPUS=1 to regenerate testdata/fuzz")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzReader")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(dir, name string, lines ...string) {
		body := "go test fuzz v1\n" + strings.Join(lines, "\n") + "\n"
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	bytesLit := func(s string) string { return "[]byte(" + strconv.Quote(s) + ")" }
	slug := func(s string) string {
		return strings.Map(func(r rune) rune {
			if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
				return r
			}
			return '_'
		}, strings.ToLower(s))
	}

	files, _ := filepath.Glob("testdata/redis/*.resp")
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		write(dir, "redis_"+strings.TrimSuffix(filepath.Base(f), ".resp"), bytesLit(string(data)))
	}
	for _, tc := range validCases {
		write(dir, "valid_"+slug(tc.name), bytesLit(tc.in))
	}
	for _, tc := range malformedCases {
		write(dir, "malformed_"+slug(tc.name), bytesLit(tc.in))
	}
	for _, tc := range limitSeeds {
		write(dir, "limit_"+slug(tc.name), bytesLit(tc.in))
	}
	// A pipelined mix, as a connection sees it.
	var mix strings.Builder
	for _, f := range []string{"hello3", "cluster_slots3", "moved", "info_verbatim", "tracking_push_set", "debug_attrib"} {
		data, _ := os.ReadFile(filepath.Join("testdata", "redis", f+".resp"))
		mix.Write(data)
	}
	write(dir, "redis_pipeline_mix", bytesLit(mix.String()))

	dir = filepath.Join("testdata", "fuzz", "FuzzCommandRoundTrip")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i, tc := range []struct {
		blob string
		sep  byte
		n    int64
		u    uint64
		f    float64
	}{
		{"SET key value EX 10", ' ', 10, 10, 10},
		{"HSET\x00h\x00f\r\n\x00", 0, -1, 0, -0.5},
		{"CLUSTER SLOTS", ' ', 1 << 62, 1 << 63, 1e300},
		{"", ' ', 0, 0, 0},
	} {
		write(dir, fmt.Sprintf("seed_%d", i), bytesLit(tc.blob), fmt.Sprintf("byte(%q)", tc.sep),
			fmt.Sprintf("int64(%d)", tc.n), fmt.Sprintf("uint64(%d)", tc.u), fmt.Sprintf("float64(%v)", tc.f))
	}
}
