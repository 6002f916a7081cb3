package main

import (
	"context"
	"fmt"
	"time"

	_ "github.com/tendril-db/tendril/driver/postgres"
	"github.com/tendril-db/tendril/sqlish"
)

func main() {
	ctx := context.Background()
	db, err := sqlish.Connect(ctx, "postgres", "postgres://postgres:secretpw@127.0.0.1:55432,127.0.0.1:55433/postgres?max_conns_per_node=1")
	if err != nil {
		panic(err)
	}
	defer db.Close()
	fmt.Println(db.Nodes())
	var s string
	var n int64
	err = db.QueryRow(ctx, "SELECT version(), $1::int8 + 1", 41).Scan(&s, &n)
	fmt.Println(s[:20], n, err)
	_, err = db.Exec(ctx, "DROP TABLE IF EXISTS t; CREATE TABLE t(id int primary key, v text, b bytea, ts timestamptz, num numeric(10,3), arr int[])")
	fmt.Println("create", err)
	r, err := db.Exec(ctx, "INSERT INTO t VALUES ($1,$2,$3,$4,$5,$6)", 1, "it's", []byte{0, 1, 2}, time.Now(), "12.345", []int64{1, 2, 3})
	fmt.Println("insert", r, err)
	_, err = db.Exec(ctx, "INSERT INTO t VALUES ($1,$2,$3,$4,$5,$6)", 1, "it's", []byte{0, 1, 2}, time.Now(), "12.345", []int64{1, 2, 3})
	fmt.Printf("dup %v\n", err)
	rows, err := db.Query(ctx, "SELECT * FROM t")
	if err != nil {
		panic(err)
	}
	for rows.Next() {
		var id int
		var v string
		var b []byte
		var ts time.Time
		var num string
		var arr []int64
		fmt.Println(rows.Scan(&id, &v, &b, &ts, &num, &arr), id, v, b, ts, num, arr)
	}
	fmt.Println(rows.Err(), rows.ColumnTypes())
	c2, _ := context.WithTimeout(ctx, 50*time.Millisecond)
	t0 := time.Now()
	_, err = db.Exec(c2, "SELECT pg_sleep(10)")
	fmt.Println("cancel", time.Since(t0), err)
	var pid int
	fmt.Println(db.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid), pid)
	var b sqlish.Batch
	for i := 0; i < 5; i++ {
		b.Queue("INSERT INTO t(id) VALUES ($1)", i+1)
	}
	br := db.SendBatch(ctx, &b)
	for i := 0; i < 5; i++ {
		r, err := br.Exec()
		fmt.Println("batch", i, r, err)
	}
	fmt.Println(db.InfoAll(ctx, ""))
}
