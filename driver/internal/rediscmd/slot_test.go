package rediscmd

import (
	"math/rand/v2"
	"testing"
)

// crc16Bitwise is CRC-16/XMODEM (poly 0x1021, init 0, no reflection)
// computed bit by bit, as in the Redis Cluster specification's reference
// implementation, to check the table-driven crc16.
func crc16Bitwise(b []byte) uint16 {
	var c uint16
	for _, x := range b {
		c ^= uint16(x) << 8
		for range 8 {
			if c&0x8000 != 0 {
				c = c<<1 ^ 0x1021
			} else {
				c <<= 1
			}
		}
	}
	return c
}

func TestCRC16(t *testing.T) {
	// The Redis Cluster specification: CRC16 of "123456789" is 0x31C3.
	if got := crc16([]byte("123456789")); got != 0x31C3 {
		t.Errorf("crc16(123456789) = %#04x, want 0x31c3", got)
	}
	if got := crc16(nil); got != 0 {
		t.Errorf("crc16(nil) = %#04x, want 0", got)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 1000 {
		b := make([]byte, r.IntN(64))
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		if got, want := crc16(b), crc16Bitwise(b); got != want {
			t.Fatalf("crc16(%x) = %#04x, want %#04x", b, got, want)
		}
	}
}

func TestSlot(t *testing.T) {
	tests := []struct {
		key  string
		want uint16
	}{
		// CLUSTER KEYSLOT values from a real Redis.
		{"foo", 12182},
		{"bar", 5061},
		{"hello", 866},
		{"somekey", 11058},
		{"123456789", 12739},
		{"user1000", 3443},
		{"", 0},
		// Hash tags.
		{"{user1000}.following", 3443},
		{"{user1000}.followers", 3443},
		{"x{user1000}y", 3443},
		{"foo{bar}{zap}", 5061},
		{"{bar}", 5061},
		{"{bar}}", 5061},
		{"foo{{bar}}zap", crc16Bitwise([]byte("{bar")) % Slots},
		// Empty or unclosed tags hash the whole key.
		{"foo{}{bar}", crc16Bitwise([]byte("foo{}{bar}")) % Slots},
		{"{}", crc16Bitwise([]byte("{}")) % Slots},
		{"{", crc16Bitwise([]byte("{")) % Slots},
		{"foo{bar", crc16Bitwise([]byte("foo{bar")) % Slots},
		{"foo}bar{", crc16Bitwise([]byte("foo}bar{")) % Slots},
		{"}{bar}", 5061},
	}
	for _, tt := range tests {
		if got := Slot([]byte(tt.key)); got != tt.want {
			t.Errorf("Slot(%q) = %d, want %d", tt.key, got, tt.want)
		}
	}
}

func TestSlotSpecExamples(t *testing.T) {
	same := func(a, b string) {
		t.Helper()
		if sa, sb := Slot([]byte(a)), Slot([]byte(b)); sa != sb {
			t.Errorf("Slot(%q) = %d, Slot(%q) = %d, want equal", a, sa, b, sb)
		}
	}
	// Examples from the Redis Cluster specification, "Hash tags".
	same("{user1000}.following", "user1000")
	same("{user1000}.followers", "user1000")
	same("foo{{bar}}zap", "{bar")
	same("foo{bar}{zap}", "bar")
	if Slot([]byte("foo{}{bar}")) == Slot([]byte("bar")) {
		t.Error(`"foo{}{bar}" must hash the whole key, not "bar"`)
	}
	if Slot(nil) != 0 {
		t.Errorf("Slot(nil) = %d, want 0", Slot(nil))
	}
}

func TestSlotRange(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 10000 {
		b := make([]byte, r.IntN(32))
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		if s := Slot(b); s >= Slots {
			t.Fatalf("Slot(%x) = %d, out of range", b, s)
		}
	}
}
