package stdlib_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log"

	"github.com/jmoiron/sqlx"

	_ "github.com/tendril-db/tendril/driver/memory"
	"github.com/tendril-db/tendril/sqlish"
	"github.com/tendril-db/tendril/stdlib"
)

// database/sql over tendril's in-process backend; with
// "redis://h1:7000,h2:7001" (and the driver/redis import) the same code
// runs on a Redis Cluster.
func Example() {
	db, err := sql.Open("tendril", "memory://example-stdlib")
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()

	if _, err := db.ExecContext(ctx, "SET ? ?", "greeting", "hello"); err != nil {
		log.Fatal(err)
	}
	var s string
	if err := db.QueryRowContext(ctx, "GET ?", "greeting").Scan(&s); err != nil {
		log.Fatal(err)
	}
	fmt.Println(s)

	// A missing key is database/sql's ErrNoRows.
	err = db.QueryRowContext(ctx, "GET ?", "missing").Scan(&s)
	fmt.Println(errors.Is(err, sql.ErrNoRows))
	// Output:
	// hello
	// true
}

// sqlx on a Redis-like backend: rows of HGETALL are (field, value) pairs,
// MGET gives one row per key, NULL for a missing one. sqlx's named
// queries bind ?, which Redis statements take.
func Example_sqlx() {
	db := sqlx.MustOpen("tendril", "memory://example-sqlx")
	defer db.Close()
	ctx := context.Background()

	user := struct {
		ID   string `db:"id"`
		Name string `db:"name"`
	}{"user:1", "Ada"}
	db.MustExecContext(ctx, "SET greeting hello")
	if _, err := db.NamedExecContext(ctx, "HSET :id name :name", user); err != nil {
		log.Fatal(err)
	}

	var fields []struct {
		Field string `db:"field"`
		Value string `db:"value"`
	}
	if err := db.SelectContext(ctx, &fields, "HGETALL ?", "user:1"); err != nil {
		log.Fatal(err)
	}
	fmt.Println(fields)

	var vals []sql.NullString
	if err := db.SelectContext(ctx, &vals, "MGET", "greeting", "nothing"); err != nil {
		log.Fatal(err)
	}
	fmt.Println(vals)
	// Output:
	// [{name Ada}]
	// [{hello true} { false}]
}

// OpenDB takes a sqlish.Config, for settings a DSN cannot carry.
func ExampleOpenDB() {
	cfg, err := sqlish.ParseDSN("memory://example-opendb?total_timeout=2s")
	if err != nil {
		log.Fatal(err)
	}
	cfg.Logger = nil // e.g. slog.Default()
	db, err := stdlib.OpenDB("memory", cfg)
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(64) // statements, rows and transactions in use at once

	if err := db.Ping(); err != nil {
		log.Fatal(err)
	}
	fmt.Println("ok")
	// Output: ok
}

// OpenDBFromDB shares a sqlish.DB, its pools and its topology, with code
// written for database/sql.
func ExampleOpenDBFromDB() {
	sdb, err := sqlish.Open("memory", "memory://example-fromdb")
	if err != nil {
		log.Fatal(err)
	}
	defer sdb.Close()
	ctx := context.Background()
	sdb.Exec(ctx, "SET ? ?", "k", 42)

	db := stdlib.OpenDBFromDB(sdb)
	var n int
	if err := db.QueryRowContext(ctx, "GET k").Scan(&n); err != nil {
		log.Fatal(err)
	}
	db.Close() // sdb stays open
	fmt.Println(n, sdb.Ping(ctx) == nil)
	// Output: 42 true
}
