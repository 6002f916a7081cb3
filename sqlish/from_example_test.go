package sqlish_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/tendril-db/tendril/driver"
	_ "github.com/tendril-db/tendril/driver/postgres"
	"github.com/tendril-db/tendril/sqlish"
)

// Coming from go-redis: the commands are the statement text, arguments
// take the ? placeholders or are appended; a pipeline is a Batch. With
// "redis://h1:7000,h2:7001" the same code runs on a Redis Cluster (where
// a WATCH/MULTI/EXEC transaction runs on a pinned Conn: see DB.Conn).
func Example_fromGoRedis() {
	ctx := context.Background()
	// rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{"h1:7000", "h2:7001"}})
	db, err := sqlish.Open("memory", "memory://from-go-redis")
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()

	// rdb.Set(ctx, "user:1:name", "Ada", time.Minute).Err()
	if _, err := db.Exec(ctx, "SET ? ? EX 60", "user:1:name", "Ada"); err != nil {
		log.Fatal(err)
	}
	// name, err := rdb.Get(ctx, "user:1:name").Result(); err == redis.Nil for a missing key
	var name string
	err = db.QueryRow(ctx, "GET ?", "user:1:name").Scan(&name)
	fmt.Println(name, err)
	err = db.QueryRow(ctx, "GET ?", "user:2:name").Scan(&name)
	fmt.Println(errors.Is(err, sqlish.ErrNoRows))

	// pipe := rdb.Pipeline(); pipe.Incr(ctx, "hits"); pipe.Get(ctx, "user:1:name"); pipe.Exec(ctx)
	var b sqlish.Batch
	b.Queue("INCR ?", "hits")
	b.Queue("GET ?", "user:1:name")
	br := db.SendBatch(ctx, &b)
	var hits int
	br.QueryRow().Scan(&hits)
	br.QueryRow().Scan(&name)
	if err := br.Close(); err != nil {
		log.Fatal(err)
	}
	fmt.Println(hits, name)

	// Output:
	// Ada <nil>
	// true
	// 1 Ada
}

// Coming from pgx (pgxpool): the same SQL and $1 placeholders; a read that
// a standby may serve is declared with WithRead; a pgx.Batch is a Batch.
// LISTEN notifications and COPY are not offered. (This example needs a
// PostgreSQL server: it is compiled, not run.)
func Example_fromPgx() {
	ctx := context.Background()
	// pool, err := pgxpool.New(ctx, "postgres://app:secret@db1:5432/shop")
	db, err := sqlish.Open("postgres", "postgres://app:secret@db1:5432,db2:5432/shop?read_preference=prefer_replica")
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()

	// pool.QueryRow(ctx, "SELECT name FROM users WHERE id = $1", 7).Scan(&name)
	var name string
	if err := db.QueryRow(sqlish.WithRead(ctx), "SELECT name FROM users WHERE id = $1", 7).Scan(&name); err != nil {
		log.Fatal(err)
	}

	// rows, _ := pool.Query(ctx, ...); pgx.CollectRows(rows, pgx.RowToStructByName[User])
	type user struct {
		ID   int64
		Name string
	}
	rows, err := db.Query(ctx, "SELECT id, name FROM users ORDER BY id LIMIT $1", 10)
	if err != nil {
		log.Fatal(err)
	}
	var users []user
	for rows.Next() {
		var u user
		if err := rows.Scan(&u.ID, &u.Name); err != nil {
			log.Fatal(err)
		}
		users = append(users, u)
	}
	if err := rows.Close(); err != nil {
		log.Fatal(err)
	}

	// tx, _ := pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.Serializable})
	tx, err := db.BeginTx(ctx, driver.TxOptions{Isolation: driver.LevelSerializable})
	if err != nil {
		log.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, "UPDATE accounts SET balance = balance - $1 WHERE id = $2", 30, 1); err != nil {
		log.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		log.Fatal(err)
	}

	// b := &pgx.Batch{}; b.Queue(...); pool.SendBatch(ctx, b)
	var b sqlish.Batch
	for i, u := range users {
		b.Queue("UPDATE users SET rank = $1 WHERE id = $2", i, u.ID)
	}
	if err := db.SendBatch(ctx, &b).Close(); err != nil {
		log.Fatal(err)
	}
}
