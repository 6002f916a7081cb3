package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/tendril-db/tendril/driver"
)

// probeQuery asks, in one round trip, for the cluster's system identifier
// (shared by a primary and its physical standbys), whether the node is in
// recovery (a standby), and its timeline: on a primary the one it writes
// (the first 8 hex digits of its current WAL file's name), on a standby
// the one it receives (visible to privileged roles) or else the one of
// its last restartpoint.
const probeQuery = `SELECT (pg_control_system()).system_identifier::text, pg_is_in_recovery(),
  CASE WHEN pg_is_in_recovery()
    THEN COALESCE((SELECT received_tli FROM pg_stat_wal_receiver), (pg_control_checkpoint()).timeline_id)::text
    ELSE substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8) END`

// reducedProbe is probeQuery for a role that may not call the
// pg_control_* functions (an administrator revoked them from PUBLIC): no
// cluster name, and a standby's timeline only when it is visible.
const reducedProbe = `SELECT NULL, pg_is_in_recovery(),
  CASE WHEN pg_is_in_recovery()
    THEN (SELECT received_tli FROM pg_stat_wal_receiver)::text
    ELSE substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8) END`

// Probe implements driver.Prober. The node's id is its address; its
// cluster name the system identifier; its role primary or replica by
// pg_is_in_recovery(); its epoch the timeline, so that of two nodes that
// both say they are primary the one promoted last wins.
func (c *pgConn) Probe(ctx context.Context) (driver.NodeStatus, error) {
	q := probeQuery
	if c.c.reduced.Load() {
		q = reducedProbe
	}
	st, err := c.probe(ctx, q)
	var se *driver.ServerError
	if errors.As(err, &se) && se.Code == "42501" && q == probeQuery { // insufficient_privilege
		c.c.reduced.Store(true)
		st, err = c.probe(ctx, reducedProbe)
	}
	return st, err
}

func (c *pgConn) probe(ctx context.Context, q string) (driver.NodeStatus, error) {
	mrr := c.pg.Exec(ctx, q)
	var vals []string
	for mrr.NextResult() {
		rr := mrr.ResultReader()
		for rr.NextRow() {
			vals = vals[:0]
			for _, v := range rr.Values() {
				vals = append(vals, string(v))
			}
		}
		rr.Close()
	}
	if err := mrr.Close(); err != nil {
		return driver.NodeStatus{}, c.fail(ctx, err)
	}
	if len(vals) != 3 {
		return driver.NodeStatus{}, fmt.Errorf("postgres: %s: probe: %d columns, want 3", c.addr, len(vals))
	}
	st := driver.NodeStatus{ID: c.addr, ClusterName: vals[0], Role: driver.RolePrimary, Healthy: true}
	if vals[1] == "t" {
		st.Role = driver.RoleReplica
	}
	tli, err := timeline(vals[2], st.Role == driver.RoleReplica)
	if vals[2] == "" { // not visible to this role
		tli, err = 0, nil
	}
	if err != nil {
		return driver.NodeStatus{}, fmt.Errorf("postgres: %s: probe: bad timeline %q", c.addr, vals[2])
	}
	st.Epoch = tli
	c.role = st.Role
	return st, nil
}

// timeline reads the probe's timeline: a standby's is a number, a
// primary's the first 8 hexadecimal digits of a WAL file name.
func timeline(s string, standby bool) (uint64, error) {
	base := 16
	if standby {
		base = 10
	}
	return strconv.ParseUint(s, base, 32)
}

// Peers implements driver.Prober: a node does not list its peers (a
// standby's address as the primary sees it is not one clients can use),
// so every node is given in the DSN and each reports only itself.
func (c *pgConn) Peers(ctx context.Context) ([]driver.Peer, error) {
	return []driver.Peer{{ID: c.addr, Addr: c.addr, Role: c.role}}, ctx.Err()
}

// PartitionMap implements driver.Prober: PostgreSQL has no partitions;
// any node may serve any statement its role allows.
func (c *pgConn) PartitionMap(ctx context.Context) (driver.PartitionMap, error) {
	return driver.PartitionMap{}, ctx.Err()
}
