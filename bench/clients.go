package main

import (
	"context"
	"fmt"
	"log"
	"net/url"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/redis/rueidis"

	_ "github.com/tendril-db/tendril/driver/redis" // registers "redis"
	"github.com/tendril-db/tendril/sqlish"
)

// client is what the harness drives. Every method reads the reply the way
// an application would (GET's value as []byte) and returns an error for a
// failure, including a missing key.
type client interface {
	get(ctx context.Context, key string) error
	set(ctx context.Context, key string, val []byte) error
	// incr increments the integer at key (a write that must not be
	// repeated).
	incr(ctx context.Context, key string) error
	// batch sends one pipeline of GETs of keys and reads every reply.
	batch(ctx context.Context, keys []string) error
	close()
}

// target is where the clients connect: seed addresses and credentials.
type target struct {
	seeds          []string // host:port
	user, password string
}

// parseDSN takes redis://[user[:password]@]h1:p1[,h2:p2...][/...][?...];
// only the hosts and credentials are used (the same for every client).
func parseDSN(dsn string) (target, error) {
	rest, ok := strings.CutPrefix(dsn, "redis://")
	if !ok {
		return target{}, fmt.Errorf("-dsn %q: want redis://host:port[,host:port...]", dsn)
	}
	var tg target
	if at := strings.LastIndexByte(rest, '@'); at >= 0 {
		cred := rest[:at]
		rest = rest[at+1:]
		u, p, _ := strings.Cut(cred, ":")
		var err error
		if tg.user, err = url.PathUnescape(u); err != nil {
			return target{}, err
		}
		if tg.password, err = url.PathUnescape(p); err != nil {
			return target{}, err
		}
	}
	if i := strings.IndexAny(rest, "/?"); i >= 0 {
		rest = rest[:i]
	}
	for _, h := range strings.Split(rest, ",") {
		if h != "" {
			tg.seeds = append(tg.seeds, h)
		}
	}
	if len(tg.seeds) == 0 {
		return target{}, fmt.Errorf("-dsn %q: no host", dsn)
	}
	return tg, nil
}

// Client configurations, chosen to be comparable (see README.md):
//
//   - go-redis ClusterClient: defaults (MaxRedirects 3, i.e. up to 4
//     attempts, retry backoff 10 ms .. 1 s, dial/read/write timeouts 5 s)
//     except PoolSize, which is per node and defaults to 5*GOMAXPROCS (10 on
//     this machine): a goroutine waits for a free connection beyond that, so
//     it is raised to 1024, enough for every goroutine of the largest point
//     to have a connection to the node it needs.
//   - rueidis: defaults (cluster client detected from the seeds,
//     auto-pipelining over a multiplexed connection per node).
//   - tendril: max_retries=3 (1+3 attempts, as go-redis' 1+MaxRedirects),
//     sleep_between_retries=10ms (go-redis' MinRetryBackoff, doubled each
//     retry), socket_timeout=5s (go-redis' read timeout), total_timeout=10s
//     (tendril's default; go-redis has no overall bound), everything else
//     default (max_conns_per_node 100, multiplexed connections).
const (
	goredisPoolSize = 1024
	tendrilOptions  = "max_retries=3&sleep_between_retries=10ms&socket_timeout=5s&total_timeout=10s"
)

type clientSpec struct {
	name string
	open func(ctx context.Context, tg target) (client, error)
}

var clientSpecs = []clientSpec{
	{"tendril", openTendril},
	{"go-redis", openGoRedis},
	{"rueidis", openRueidis},
}

// ---- tendril

type tendrilClient struct{ db *sqlish.DB }

func tendrilDSN(tg target) string {
	var cred string
	if tg.user != "" || tg.password != "" {
		cred = url.PathEscape(tg.user)
		if tg.password != "" {
			cred += ":" + url.PathEscape(tg.password)
		}
		cred += "@"
	}
	return "redis://" + cred + strings.Join(tg.seeds, ",") + "?" + tendrilOptions
}

func openTendril(ctx context.Context, tg target) (client, error) {
	db, err := sqlish.Connect(ctx, "redis", tendrilDSN(tg))
	if err != nil {
		return nil, err
	}
	return &tendrilClient{db}, nil
}

func (c *tendrilClient) get(ctx context.Context, key string) error {
	var v []byte
	return c.db.QueryRow(ctx, "GET ?", key).Scan(&v)
}

func (c *tendrilClient) set(ctx context.Context, key string, val []byte) error {
	_, err := c.db.Exec(ctx, "SET ? ?", key, val)
	return err
}

func (c *tendrilClient) incr(ctx context.Context, key string) error {
	_, err := c.db.Exec(ctx, "INCR ?", key)
	return err
}

func (c *tendrilClient) batch(ctx context.Context, keys []string) error {
	var b sqlish.Batch
	b.Grow(len(keys), len(keys))
	for _, k := range keys {
		b.Queue("GET ?", k)
	}
	br := c.db.SendBatch(ctx, &b)
	var first error
	var v []byte
	for range keys {
		if err := br.QueryRow().Scan(&v); err != nil && first == nil {
			first = err
		}
	}
	if err := br.Close(); err != nil && first == nil {
		first = err
	}
	return first
}

func (c *tendrilClient) close() { c.db.Close() }

// ---- go-redis

type goredisClient struct{ c *goredis.ClusterClient }

func openGoRedis(ctx context.Context, tg target) (client, error) {
	c := goredis.NewClusterClient(&goredis.ClusterOptions{
		Addrs:    tg.seeds,
		Username: tg.user,
		Password: tg.password,
		PoolSize: goredisPoolSize,
	})
	if err := c.Ping(ctx).Err(); err != nil {
		c.Close()
		return nil, err
	}
	return &goredisClient{c}, nil
}

func (c *goredisClient) get(ctx context.Context, key string) error {
	_, err := c.c.Get(ctx, key).Bytes()
	return err
}

func (c *goredisClient) set(ctx context.Context, key string, val []byte) error {
	return c.c.Set(ctx, key, val, 0).Err()
}

func (c *goredisClient) incr(ctx context.Context, key string) error {
	return c.c.Incr(ctx, key).Err()
}

func (c *goredisClient) batch(ctx context.Context, keys []string) error {
	pipe := c.c.Pipeline()
	cmds := make([]*goredis.StringCmd, len(keys))
	for i, k := range keys {
		cmds[i] = pipe.Get(ctx, k)
	}
	_, err := pipe.Exec(ctx)
	for _, cmd := range cmds {
		if _, e := cmd.Bytes(); e != nil && err == nil {
			err = e
		}
	}
	return err
}

func (c *goredisClient) close() { c.c.Close() }

// ---- rueidis

type rueidisClient struct{ c rueidis.Client }

func openRueidis(ctx context.Context, tg target) (client, error) {
	c, err := rueidis.NewClient(rueidis.ClientOption{
		InitAddress: tg.seeds,
		Username:    tg.user,
		Password:    tg.password,
	})
	if err != nil {
		return nil, err
	}
	return &rueidisClient{c}, nil
}

func (c *rueidisClient) get(ctx context.Context, key string) error {
	_, err := c.c.Do(ctx, c.c.B().Get().Key(key).Build()).AsBytes()
	return err
}

func (c *rueidisClient) set(ctx context.Context, key string, val []byte) error {
	return c.c.Do(ctx, c.c.B().Set().Key(key).Value(rueidis.BinaryString(val)).Build()).Error()
}

func (c *rueidisClient) incr(ctx context.Context, key string) error {
	return c.c.Do(ctx, c.c.B().Incr().Key(key).Build()).Error()
}

func (c *rueidisClient) batch(ctx context.Context, keys []string) error {
	cmds := make(rueidis.Commands, len(keys))
	for i, k := range keys {
		cmds[i] = c.c.B().Get().Key(k).Build()
	}
	var err error
	for _, r := range c.c.DoMulti(ctx, cmds...) {
		if _, e := r.AsBytes(); e != nil && err == nil {
			err = e
		}
	}
	return err
}

func (c *rueidisClient) close() { c.c.Close() }

// quietLogger receives go-redis' internal log lines (failed dials during
// a failover: hundreds per second), printed only with -v.
type quietLogger struct{}

func (quietLogger) Printf(_ context.Context, format string, v ...any) {
	if *verbose {
		log.Printf("go-redis: "+format, v...)
	}
}

func init() { goredis.SetLogger(quietLogger{}) }

// loadKeys writes every key with its value, 100 per pipeline, with
// go-redis (any client would do; this one is not measured).
func loadKeys(ctx context.Context, tg target, keys []string, val []byte) error {
	c := goredis.NewClusterClient(&goredis.ClusterOptions{Addrs: tg.seeds, Username: tg.user, Password: tg.password})
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for i := 0; i < len(keys); i += 100 {
		pipe := c.Pipeline()
		for _, k := range keys[i:min(i+100, len(keys))] {
			pipe.Set(ctx, k, val, 0)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return fmt.Errorf("loading keys: %w", err)
		}
	}
	return nil
}
