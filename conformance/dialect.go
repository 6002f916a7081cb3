package conformance

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// RedisDialect is the dialect of the Redis-speaking backends (redis,
// valkey, memory): SET, GET, MGET, DEL, INCR, BLPOP of an empty key as
// the slow statement, an unknown command as the server error and the
// client name as the session state. Keys
// of one GetMany share a hash tag, so a cluster serves them from one slot.
func RedisDialect() Dialect {
	return Dialect{
		Set: func(key string, value any) (string, []any) { return "SET ? ?", []any{key, value} },
		Get: func(key string) (string, []any) { return "GET ?", []any{key} },
		GetMany: func(keys ...string) (string, []any) {
			args := make([]any, len(keys))
			for i, k := range keys {
				args[i] = k
			}
			return "MGET" + strings.Repeat(" ?", len(keys)), args
		},
		Del: func(key string) (string, []any) { return "DEL ?", []any{key} },
		Slow: func(d time.Duration) (string, []any) {
			// A blocking pop of a key nobody pushes to: it waits d on every
			// server (DEBUG SLEEP needs enable-debug-command, off by
			// default) without stopping the server for other callers.
			return "BLPOP tendril-conformance-slow ?", []any{strconv.FormatFloat(d.Seconds(), 'f', -1, 64)}
		},
		ServerError: func() (string, []any) { return "TENDRIL-CONFORMANCE-NO-SUCH-COMMAND", nil },
		SetSession:  func(v string) (string, []any) { return "CLIENT SETNAME ?", []any{v} },
		Session:     func() (string, []any) { return "CLIENT GETNAME", nil },
		Incr:        func(key string) (string, []any) { return "INCR ?", []any{key} },
		Colocated: func(group string, i int) string {
			return "{" + group + "}:" + strconv.Itoa(i)
		},
	}
}

// PostgresTable is the table PostgresDialect keeps its keys in.
const PostgresTable = "tendril_conformance_kv"

// PostgresDialect is the dialect of the postgres driver: keys and values
// (bytea, so that any value round-trips) in PostgresTable, created by
// Setup; an upsert as Set; pg_sleep as the slow statement; a missing table
// as the server error; application_name as the session state; an upsert
// that adds one as Incr. Values are passed as bytes, as a Redis server
// stores them, so every Scan target reads them alike on every backend.
func PostgresDialect() Dialect {
	t := PostgresTable
	return Dialect{
		Setup: []string{"CREATE TABLE IF NOT EXISTS " + t + " (k text PRIMARY KEY, v bytea)"},
		Set: func(key string, value any) (string, []any) {
			return "INSERT INTO " + t + " (k, v) VALUES ($1, $2) ON CONFLICT (k) DO UPDATE SET v = excluded.v",
				[]any{key, asBytes(value)}
		},
		Get: func(key string) (string, []any) { return "SELECT v FROM " + t + " WHERE k = $1", []any{key} },
		GetMany: func(keys ...string) (string, []any) {
			return "SELECT kv.v FROM unnest($1::text[]) WITH ORDINALITY AS q(k, i) LEFT JOIN " + t +
				" kv ON kv.k = q.k ORDER BY q.i", []any{keys}
		},
		Del: func(key string) (string, []any) { return "DELETE FROM " + t + " WHERE k = $1", []any{key} },
		Slow: func(d time.Duration) (string, []any) {
			return "SELECT pg_sleep($1)", []any{d.Seconds()}
		},
		ServerError: func() (string, []any) { return "SELECT * FROM tendril_conformance_no_such_table", nil },
		SetSession: func(v string) (string, []any) {
			return "SET application_name = '" + strings.ReplaceAll(v, "'", "''") + "'", nil
		},
		Session:   func() (string, []any) { return "SHOW application_name", nil },
		InReplica: func() (string, []any) { return "SELECT pg_is_in_recovery()", nil },
		Incr: func(key string) (string, []any) {
			return "INSERT INTO " + t + " (k, v) VALUES ($1, '1') ON CONFLICT (k) DO UPDATE SET v = " +
				"convert_to((convert_from(" + t + ".v, 'UTF8')::bigint + 1)::text, 'UTF8')", []any{key}
		},
	}
}

// asBytes renders a value as Redis would store it: bytes as they are,
// everything else in its text form (a nil stays nil: SQL's NULL).
func asBytes(v any) any {
	switch v := v.(type) {
	case nil:
		return nil
	case []byte:
		return v
	case string:
		return []byte(v)
	case time.Time:
		return []byte(v.Format(time.RFC3339Nano))
	case bool:
		if v {
			return []byte("1")
		}
		return []byte("0")
	case float64:
		return []byte(strconv.FormatFloat(v, 'g', -1, 64))
	case float32:
		return []byte(strconv.FormatFloat(float64(v), 'g', -1, 32))
	}
	return []byte(fmt.Sprint(v))
}
