package postgres

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/tendril-db/tendril/driver"
)

// openConn opens one connection with the driver's connector, without the
// user API.
func openConn(t *testing.T, dsnParams map[string]string, addr, user, password string) *pgConn {
	t.Helper()
	cn, err := Driver{}.OpenConnector(driver.Config{Hosts: []string{addr}, User: user, Password: password,
		Namespace: "postgres", Timeout: 5 * time.Second, Params: dsnParams})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := cn.Connect(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn.(*pgConn)
}

// TestProbe: the declared capabilities are the implemented ones, and a
// primary reports its role, system identifier and timeline.
func TestProbe(t *testing.T) {
	srv := primary(t)
	pc := openConn(t, nil, srv.Addr, srv.User, srv.Password)
	if got := driver.Implemented(pc) | driver.CapClusterName | driver.CapRequestTimeout; got != pc.c.Backend().Caps {
		t.Fatalf("implemented %v, declared %v", got, pc.c.Backend().Caps)
	}
	st, err := pc.Probe(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	sysid, err := srv.SystemIdentifier()
	if err != nil {
		t.Fatal(err)
	}
	if st.ID != srv.Addr || st.ClusterName != strconv.FormatUint(sysid, 10) || st.Role != driver.RolePrimary || !st.Healthy || st.Epoch != 1 {
		t.Fatalf("Probe = %+v, want id %s, cluster %d, primary, epoch 1", st, srv.Addr, sysid)
	}
	peers, err := pc.Peers(context.Background())
	if err != nil || len(peers) != 1 || peers[0].Addr != srv.Addr || peers[0].Role != driver.RolePrimary {
		t.Fatalf("Peers = %+v, %v", peers, err)
	}
	if m, err := pc.PartitionMap(context.Background()); err != nil || m.Partitions != 0 || len(m.Shards) != 0 {
		t.Fatalf("PartitionMap = %+v, %v", m, err)
	}
	if !pc.IsValid() {
		t.Fatal("a fresh connection is not valid")
	}
	for _, tc := range []struct {
		s       string
		standby bool
		want    uint64
	}{{"00000001", false, 1}, {"0000000A", false, 10}, {"00000010", false, 16}, {"12", true, 12}} {
		if got, err := timeline(tc.s, tc.standby); err != nil || got != tc.want {
			t.Errorf("timeline(%q, %v) = %d, %v; want %d", tc.s, tc.standby, got, err, tc.want)
		}
	}
	// A role that may not call pg_control_system(): probed without it.
	role := fmt.Sprintf("probeuser%d", unique.Add(1))
	if err := srv.Exec(context.Background(), "CREATE ROLE "+role+" LOGIN PASSWORD 'pw'; "+
		"REVOKE EXECUTE ON FUNCTION pg_control_system() FROM PUBLIC"); err != nil {
		t.Fatal(err)
	}
	defer srv.Exec(context.Background(), "GRANT EXECUTE ON FUNCTION pg_control_system() TO PUBLIC")
	rc := openConn(t, nil, srv.Addr, role, "pw")
	for range 2 {
		if st, err := rc.Probe(context.Background()); err != nil || st.Role != driver.RolePrimary || st.ClusterName != "" || st.Epoch != 1 {
			t.Fatalf("Probe without pg_control_system() = %+v, %v", st, err)
		}
	}
	info, err := pc.Info(context.Background(), "SELECT 1, NULL UNION ALL SELECT 2, 'b'")
	if err != nil || info != "1\tNULL\n2\tb\n" {
		t.Fatalf("Info = %q, %v", info, err)
	}
}

// TestDemotedPrimary: a connection made to a primary is invalid once its
// server reports in_hot_standby=on (a fake server says so in the middle
// of a statement, as a server does with every change of the setting); one
// made to a standby stays valid. A 25006 from a standby is classified as
// a demotion.
func TestDemotedPrimary(t *testing.T) {
	for _, tc := range []struct {
		at, then string
		valid    bool
	}{
		{"off", "on", false},
		{"off", "off", true},
		{"on", "on", true},
		{"on", "off", true}, // a promoted standby: no harm in using it
	} {
		addr, stop := fakeServer(t, tc.at, tc.then)
		pc := openConn(t, nil, addr, "u", "")
		if !pc.IsValid() {
			t.Fatalf("in_hot_standby %s: invalid before any change", tc.at)
		}
		_, err := pc.Exec(context.Background(), "INSERT INTO t VALUES (1)", nil)
		if tc.then == "on" {
			var se *StatementError
			if !errors.As(err, &se) || !se.Standby {
				t.Fatalf("in_hot_standby %s→%s: %v, want a 25006 from a standby", tc.at, tc.then, err)
			}
			if r := pc.c.Classify(err); r != driver.RetryDemoted {
				t.Errorf("Classify(25006 from a standby) = %v, want demoted", r)
			}
		} else if err != nil {
			t.Fatal(err)
		}
		if got := pc.IsValid(); got != tc.valid {
			t.Errorf("in_hot_standby %s→%s: IsValid = %v, want %v", tc.at, tc.then, got, tc.valid)
		}
		pc.Close()
		stop()
	}
}

// fakeServer is a PostgreSQL server of one connection that trusts any
// user, reports in_hot_standby=at when the connection starts and =then
// with its answer to the first query: an error 25006 when then is "on",
// INSERT 0 1 otherwise.
func fakeServer(t *testing.T, at, then string) (addr string, stop func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		b := pgproto3.NewBackend(nc, nc)
		if _, err := b.ReceiveStartupMessage(); err != nil {
			return
		}
		b.Send(&pgproto3.AuthenticationOk{})
		b.Send(&pgproto3.ParameterStatus{Name: "in_hot_standby", Value: at})
		b.Send(&pgproto3.ParameterStatus{Name: "server_version", Value: "15.0"})
		b.Send(&pgproto3.BackendKeyData{ProcessID: 1, SecretKey: []byte{0, 0, 0, 1}})
		b.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
		if b.Flush() != nil {
			return
		}
		for {
			msg, err := b.Receive()
			if err != nil {
				return
			}
			switch msg.(type) {
			case *pgproto3.Query:
				b.Send(&pgproto3.ParameterStatus{Name: "in_hot_standby", Value: then})
				if then == "on" {
					b.Send(&pgproto3.ErrorResponse{Severity: "ERROR", SeverityUnlocalized: "ERROR", Code: "25006",
						Message: "cannot execute INSERT in a read-only transaction"})
				} else {
					b.Send(&pgproto3.CommandComplete{CommandTag: []byte("INSERT 0 1")})
				}
				b.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
				if b.Flush() != nil {
					return
				}
			case *pgproto3.Terminate:
				return
			}
		}
	}()
	return ln.Addr().String(), func() {
		ln.Close()
		wg.Wait()
	}
}
