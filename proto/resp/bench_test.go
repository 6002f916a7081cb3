package resp

import (
	"strings"
	"testing"
)

func BenchmarkAppendCommand(b *testing.B) {
	get, set, key, val := []byte("GET"), []byte("SET"), []byte("key:000001"), []byte("value:000001")
	buf := make([]byte, 0, 128)
	b.Run("GET", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			buf = AppendCommand(buf[:0], get, key)
		}
		b.SetBytes(int64(len(buf)))
	})
	b.Run("SET", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			buf = AppendCommand(buf[:0], set, key, val)
		}
		b.SetBytes(int64(len(buf)))
	})
	b.Run("SET/string", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			buf = AppendCommandString(buf[:0], "SET", "key:000001", "value:000001")
		}
		b.SetBytes(int64(len(buf)))
	})
	b.Run("SETEX/builder", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			buf = AppendArrayHeader(buf[:0], 4)
			buf = AppendBulkString(buf, "SETEX")
			buf = AppendBulk(buf, key)
			buf = AppendBulkInt(buf, 3600)
			buf = AppendBulk(buf, val)
		}
		b.SetBytes(int64(len(buf)))
	})
}

var benchReplies = []struct{ name, in string }{
	{"simple", "+OK\r\n"},
	{"integer", ":1234567\r\n"},
	{"null", "_\r\n"},
	{"double", ",3.14159\r\n"},
	{"bulk64", string(AppendBulkString(nil, strings.Repeat("x", 64)))},
	{"bulk4k", string(AppendBulkString(nil, strings.Repeat("x", 4096)))},
	{"array100", func() string {
		b := AppendArrayHeader(nil, 100)
		for range 100 {
			b = AppendBulkString(b, "member:0000001")
		}
		return string(b)
	}()},
	{"hello3map", "%7\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$6\r\n7.0.15\r\n$5\r\nproto\r\n:3\r\n$2\r\nid\r\n:7\r\n$4\r\nmode\r\n$7\r\ncluster\r\n$4\r\nrole\r\n$6\r\nmaster\r\n$7\r\nmodules\r\n*0\r\n"},
}

// BenchmarkReadValue decodes into one reused Value: the steady state of a
// connection's read loop.
func BenchmarkReadValue(b *testing.B) {
	for _, bc := range benchReplies {
		b.Run(bc.name, func(b *testing.B) {
			r := NewReader(&repeatReader{data: []byte(bc.in)})
			var v Value
			b.ReportAllocs()
			b.SetBytes(int64(len(bc.in)))
			for b.Loop() {
				if err := r.ReadValue(&v); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkReadReply decodes into fresh, caller-owned Values.
func BenchmarkReadReply(b *testing.B) {
	for _, bc := range benchReplies {
		b.Run(bc.name, func(b *testing.B) {
			r := NewReader(&repeatReader{data: []byte(bc.in)})
			b.ReportAllocs()
			b.SetBytes(int64(len(bc.in)))
			for b.Loop() {
				if _, err := r.ReadReply(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkSkip(b *testing.B) {
	for _, bc := range benchReplies {
		b.Run(bc.name, func(b *testing.B) {
			r := NewReader(&repeatReader{data: []byte(bc.in)})
			b.ReportAllocs()
			b.SetBytes(int64(len(bc.in)))
			for b.Loop() {
				if err := r.Skip(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
