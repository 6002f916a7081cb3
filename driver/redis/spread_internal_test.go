package redis

import "testing"

// A connection becomes crowded after six large statements in a row (a
// large reply, or a large request) and stops being so after five small
// ones, from all large; a statement just under both sizes counts as small.
func TestCrowdedHysteresis(t *testing.T) {
	var rc redisConn
	for i := range 6 {
		if rc.Crowded() {
			t.Fatalf("crowded after %d large statements, want 6", i)
		}
		rc.weigh(0, largeReply)
	}
	if !rc.Crowded() {
		t.Fatal("not crowded after 6 large statements")
	}
	for range 30 {
		rc.weigh(largeRequest, 0)
	}
	for i := range 5 {
		if !rc.Crowded() {
			t.Fatalf("not crowded after %d small statements following large ones, want 5", i)
		}
		rc.weigh(largeRequest-1, largeReply-1)
	}
	if rc.Crowded() {
		t.Fatal("still crowded after 5 small statements")
	}
}

// Small statements bring the load back to 0, where weigh no longer writes.
func TestLoadDecaysToZero(t *testing.T) {
	var rc redisConn
	for range 10 {
		rc.weigh(0, largeReply)
	}
	for range 60 {
		rc.weigh(10, 10)
	}
	if l := rc.load.Load(); l != 0 {
		t.Fatalf("load %d after 60 small statements, want 0", l)
	}
}
