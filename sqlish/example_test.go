package sqlish_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	_ "github.com/tendril-db/tendril/driver/memory"
	"github.com/tendril-db/tendril/sqlish"
)

func ExampleOpen() {
	// Swap the backend by changing the driver name and DSN only, e.g.
	// sqlish.Open("redis", "redis://127.0.0.1:7000,127.0.0.1:7001").
	db, err := sqlish.Open("memory", "memory://example-open?max_conns_per_node=8")
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()

	ctx := context.Background()
	if err := db.Ping(ctx); err != nil {
		log.Fatal(err)
	}
	fmt.Println(db.Config())
	// Output: memory://example-open?max_conns_per_node=8
}

func ExampleDB_QueryRow() {
	db, err := sqlish.Open("memory", "memory://example-queryrow")
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()

	db.Exec(ctx, "SET ? ?", "user:1:name", "Ada")
	var name string
	if err := db.QueryRow(ctx, "GET ?", "user:1:name").Scan(&name); err != nil {
		log.Fatal(err)
	}
	fmt.Println(name)

	// A missing key is ErrNoRows, as a missing row is in database/sql.
	err = db.QueryRow(ctx, "GET ?", "user:2:name").Scan(&name)
	fmt.Println(errors.Is(err, sqlish.ErrNoRows))
	// Output:
	// Ada
	// true
}

func ExampleDB_Exec() {
	db, err := sqlish.Open("memory", "memory://example-exec")
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()

	// Placeholders take the arguments in order; extra arguments are
	// appended to the command line. Values are binary safe.
	if _, err := db.Exec(ctx, "HSET ?", "user:1", "name", "Ada", "born", 1815); err != nil {
		log.Fatal(err)
	}
	if _, err := db.Exec(ctx, "EXPIRE ? 3600", "user:1"); err != nil {
		log.Fatal(err)
	}
	res, err := db.Exec(ctx, "HDEL user:1 born missing")
	if err != nil {
		log.Fatal(err)
	}
	n, _ := res.RowsAffected()
	fmt.Println("fields deleted:", n)

	// Server errors are typed.
	_, err = db.Exec(ctx, "INCR user:1")
	var se *sqlish.ServerError
	if errors.As(err, &se) {
		fmt.Println(se.Code)
	}
	// Output:
	// fields deleted: 1
	// WRONGTYPE
}

func ExampleDB_SendBatch() {
	db, err := sqlish.Open("memory", "memory://example-batch")
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()

	var b sqlish.Batch
	b.Queue("SET ? ?", "a", 1)
	b.Queue("INCRBY ? ?", "a", 41)
	b.Queue("GET ?", "a")
	br := db.SendBatch(ctx, &b)
	defer br.Close()

	if _, err := br.Exec(); err != nil {
		log.Fatal(err)
	}
	var n int64
	if err := br.QueryRow().Scan(&n); err != nil {
		log.Fatal(err)
	}
	var s string
	if err := br.QueryRow().Scan(&s); err != nil {
		log.Fatal(err)
	}
	fmt.Println(n, s)
	// Output: 42 42
}

func ExampleRows() {
	db, err := sqlish.Open("memory", "memory://example-rows")
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()

	db.Exec(ctx, "HSET lang go 2009 rust 2015")
	rows, err := db.Query(ctx, "HGETALL lang")
	if err != nil {
		log.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var field string
		var year int
		if err := rows.Scan(&field, &year); err != nil {
			log.Fatal(err)
		}
		fmt.Println(field, year)
	}
	if err := rows.Err(); err != nil {
		log.Fatal(err)
	}
	// Output:
	// go 2009
	// rust 2015
}

func ExampleDB_Conn() {
	db, err := sqlish.Open("memory", "memory://example-conn?nodes=3")
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()

	// A statement that changes the session would change it for every
	// caller of the DB's shared connections: it is refused there...
	_, err = db.Exec(ctx, "CLIENT SETNAME ?", "reporting")
	fmt.Println(errors.Is(err, sqlish.ErrSessionState))

	// ...and runs on a pinned Conn, whose session is reset when it is
	// closed. On a cluster the Conn binds to the partition (hash slot) of
	// its first keyed statement.
	c, err := db.Conn(ctx)
	if err != nil {
		log.Fatal(err)
	}
	c.Exec(ctx, "SET ? ?", "{user:1}:name", "Ada")
	c.Exec(ctx, "CLIENT SETNAME ?", "reporting")
	var name string
	c.QueryRow(ctx, "CLIENT GETNAME").Scan(&name)
	fmt.Println(name)
	// Another slot: the Conn cannot follow it.
	_, err = c.Exec(ctx, "GET ?", "{user:2}:name")
	fmt.Println(errors.Is(err, sqlish.ErrWrongPartition))
	c.Close()
	// Output:
	// true
	// reporting
	// true
}

func ExampleWithIdempotent() {
	db, err := sqlish.Open("memory", "memory://example-idempotent")
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()

	// INCR must not run twice: after an attempt that may have reached the
	// server (a timeout, a lost connection) it is not retried, and its
	// error wraps ErrOutcomeUnknown. A caller that tolerates a double
	// increment (a rough counter) may say so for its calls:
	if _, err := db.Exec(sqlish.WithIdempotent(ctx, true), "INCR ?", "page:views"); err != nil {
		if errors.Is(err, sqlish.ErrOutcomeUnknown) {
			log.Print("the increment may or may not have happened")
		}
		log.Fatal(err)
	}
	var n int
	db.QueryRow(ctx, "GET ?", "page:views").Scan(&n)
	fmt.Println(n)
	// Output: 1
}

func ExampleWithCache() {
	// With Redis, the DSN's cache_size turns the client-side cache on:
	// sqlish.Open("redis", "redis://h1:7000,h2:7001?cache_size=67108864").
	// A driver without a cache (memory, postgres) reads from the server.
	db, err := sqlish.Open("memory", "memory://example-cache")
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()

	db.Exec(ctx, "SET ? ?", "config:motd", "hello")
	// Served from memory for up to a minute, or until the server says
	// the key changed.
	cached := sqlish.WithCache(ctx, time.Minute)
	var motd string
	if err := db.QueryRow(cached, "GET ?", "config:motd").Scan(&motd); err != nil {
		log.Fatal(err)
	}
	// A write through the same DB is read back at once.
	db.Exec(ctx, "SET ? ?", "config:motd", "bye")
	db.QueryRow(cached, "GET ?", "config:motd").Scan(&motd)
	fmt.Println(motd, db.Stats().Cache.Hits)
	// Output: bye 0
}
