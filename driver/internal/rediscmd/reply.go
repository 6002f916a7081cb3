// Package rediscmd holds what the Redis-speaking backends (memory and redis)
// share: turning a statement and its arguments into a command line, the
// command table that says which arguments are keys and whether a command
// reads or writes, the mapping of replies to rows, and the retry class of
// errors (Classify).
//
// The command table has two layers. table_gen.go is generated from a real
// redis-server (go run ./gen, by hand, never in tests or CI): every command
// and subcommand with its arity, flags and key specifications. policy.go
// holds tendril's decisions on top: which commands are reads, which writes
// are idempotent with which options, which change the session (and how:
// SessionKind), which block, and where RESP2 and RESP3 replies differ
// (Shape). Lookup, Route and RouteOf read both.
package rediscmd

// A reply is one of the following Go values, the RESP types as a backend
// hands them to this package:
//
//	nil                  a nil bulk string or nil array (RESP3 null)
//	[]byte               a bulk string
//	Status               a simple string such as "OK" or "PONG"
//	int64                an integer
//	float64              a RESP3 double
//	bool                 a RESP3 boolean
//	*driver.ServerError  an error reply (*driver.RedirectError for MOVED/ASK)
//	[]any                an array (or set) of replies
//	Map                  a map: alternating field and value replies
type Reply = any

// Status is a simple-string reply.
type Status string

// Map is a map reply, as alternating field, value, field, value...
type Map []any
