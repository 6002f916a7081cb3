package pgtest

import (
	"errors"
	"testing"
	"time"
)

// A Load records every call, and its result answers the failover tests'
// questions: when writes resumed, how many were acknowledged in a window.
func TestLoad(t *testing.T) {
	errMaybe := errors.New("maybe ran")
	var calls [2]int
	l := StartLoad(2, func(w int) error {
		calls[w]++
		time.Sleep(time.Millisecond)
		switch calls[w] {
		case 2:
			return errMaybe
		case 3:
			return errors.New("refused")
		}
		return nil
	}, func(err error) bool { return errors.Is(err, errMaybe) })
	time.Sleep(50 * time.Millisecond)
	mid := time.Now()
	time.Sleep(50 * time.Millisecond)
	res := l.Stop()
	if res.Failed != 4 || res.Unknown != 2 || res.FirstErr == nil || res.OK != calls[0]+calls[1]-4 {
		t.Fatalf("%+v after %v calls", res, calls)
	}
	if res.MaxCall < time.Millisecond {
		t.Errorf("longest call %v, want at least the 1ms sleep", res.MaxCall)
	}
	if d := res.FirstAckAfter(mid); d < 0 || d > 20*time.Millisecond {
		t.Errorf("first ack %v after the middle, want within a few ms", d)
	}
	if d := res.FirstAckAfter(time.Now()); d != -1 {
		t.Errorf("first ack %v after the end, want -1", d)
	}
	before, after := res.Acks(time.Time{}, mid), res.Acks(mid, time.Now())
	if before == 0 || after == 0 || before+after != res.OK {
		t.Errorf("acks %d before and %d after the middle, of %d", before, after, res.OK)
	}
}
