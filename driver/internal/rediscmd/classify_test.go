package rediscmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"

	"github.com/tendril-db/tendril/driver"
)

func serverErr(msg string) *driver.ServerError {
	code, _, _ := strings.Cut(msg, " ")
	return &driver.ServerError{Code: code, Msg: msg}
}

func TestClassify(t *testing.T) {
	moved := &driver.RedirectError{Partition: 1, Addr: "h:1", Err: serverErr("MOVED 1 h:1")}
	ask := &driver.RedirectError{Partition: 1, Addr: "h:1", Ask: true, Err: serverErr("ASK 1 h:1")}
	tests := []struct {
		err  error
		want driver.Retry
	}{
		{nil, driver.RetryDefault},
		{serverErr("TRYAGAIN Multiple keys request during rehashing of slot"), driver.RetryLater},
		{serverErr("LOADING Redis is loading the dataset in memory"), driver.RetryLater},
		{serverErr("BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE."), driver.RetryLater},
		{serverErr("CLUSTERDOWN The cluster is down"), driver.RetryRefresh},
		{serverErr("CLUSTERDOWN Hash slot not served"), driver.RetryRefresh},
		{serverErr("READONLY You can't write against a read only replica."), driver.RetryDemoted},
		{serverErr("MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'."), driver.RetryRefresh},
		{serverErr("NOREPLICAS Not enough good replicas to write."), driver.RetryRefresh},
		{serverErr("ERR syntax error"), driver.RetryNever},
		{serverErr("WRONGTYPE Operation against a key holding the wrong kind of value"), driver.RetryNever},
		{serverErr("BUSYKEY Target key name already exists."), driver.RetryNever},
		{serverErr("BUSYGROUP Consumer Group name already exists"), driver.RetryNever},
		{serverErr("NOSCRIPT No matching script."), driver.RetryNever},
		{serverErr("OOM command not allowed when used memory > 'maxmemory'."), driver.RetryNever},
		{serverErr("NOAUTH Authentication required."), driver.RetryNever},
		{serverErr("EXECABORT Transaction discarded because of previous errors."), driver.RetryNever},
		{fmt.Errorf("node 10.0.0.1:6379: %w", serverErr("LOADING Redis is loading")), driver.RetryLater},
		{fmt.Errorf("node: %w", serverErr("ERR unknown command")), driver.RetryNever},
		{moved, driver.RetryRefresh},
		{fmt.Errorf("wrapped: %w", moved), driver.RetryRefresh},
		{ask, driver.RetryDefault},
		{io.EOF, driver.RetryDefault},
		{&net.OpError{Op: "read", Err: errors.New("connection reset")}, driver.RetryDefault},
		{driver.ErrBadConn, driver.RetryDefault},
		{context.DeadlineExceeded, driver.RetryDefault},
		{context.Canceled, driver.RetryDefault},
	}
	for _, tt := range tests {
		if got := Classify(tt.err); got != tt.want {
			t.Errorf("Classify(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}
