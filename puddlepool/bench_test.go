package puddlepool

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"testing"

	"github.com/jackc/puddle/v2"
)

// The three pools below hand out the same trivial connection; only the
// pooling cost is measured.

// benchConnector is a minimal database/sql driver whose connections do
// nothing.
type benchConnector struct{}

type benchDriverConn struct{}

func (benchConnector) Connect(context.Context) (driver.Conn, error) { return benchDriverConn{}, nil }
func (benchConnector) Driver() driver.Driver                        { return benchDriver{} }

type benchDriver struct{}

func (benchDriver) Open(string) (driver.Conn, error) { return benchDriverConn{}, nil }

func (benchDriverConn) Prepare(string) (driver.Stmt, error) { return nil, errors.New("unsupported") }
func (benchDriverConn) Close() error                        { return nil }
func (benchDriverConn) Begin() (driver.Tx, error)           { return nil, errors.New("unsupported") }

type benchConn struct{}

type acquirer interface {
	cycle(ctx context.Context) error
	close()
}

type ppBench struct{ p *Pool[*benchConn] }

func (b ppBench) cycle(ctx context.Context) error {
	r, err := b.p.Acquire(ctx)
	if err != nil {
		return err
	}
	r.Release()
	return nil
}
func (b ppBench) close() { b.p.Close() }

type puddleBench struct{ p *puddle.Pool[*benchConn] }

func (b puddleBench) cycle(ctx context.Context) error {
	r, err := b.p.Acquire(ctx)
	if err != nil {
		return err
	}
	r.Release()
	return nil
}
func (b puddleBench) close() { b.p.Close() }

type sqlBench struct{ db *sql.DB }

func (b sqlBench) cycle(ctx context.Context) error {
	c, err := b.db.Conn(ctx)
	if err != nil {
		return err
	}
	return c.Close()
}
func (b sqlBench) close() { b.db.Close() }

func newBenchPools(tb testing.TB, maxSize int32) map[string]acquirer {
	dial := func(context.Context) (*benchConn, error) { return &benchConn{}, nil }
	p, err := New(Config[*benchConn]{Name: "bench", Dial: dial, MaxSize: maxSize})
	if err != nil {
		tb.Fatal(err)
	}
	pp, err := puddle.NewPool(&puddle.Config[*benchConn]{
		Constructor: dial,
		Destructor:  func(*benchConn) {},
		MaxSize:     maxSize,
	})
	if err != nil {
		tb.Fatal(err)
	}
	db := sql.OpenDB(benchConnector{})
	db.SetMaxOpenConns(int(maxSize))
	db.SetMaxIdleConns(int(maxSize))
	return map[string]acquirer{"puddlepool": ppBench{p}, "puddle": puddleBench{pp}, "database-sql": sqlBench{db}}
}

var benchOrder = []string{"puddlepool", "puddle", "database-sql"}

func BenchmarkAcquireRelease(b *testing.B) {
	ctx := context.Background()
	b.Run("uncontended", func(b *testing.B) {
		for _, name := range benchOrder {
			b.Run(name, func(b *testing.B) {
				pools := newBenchPools(b, 4)
				defer func() {
					for _, p := range pools {
						p.close()
					}
				}()
				a := pools[name]
				if err := a.cycle(ctx); err != nil { // warm: one connection open
					b.Fatal(err)
				}
				b.ReportAllocs()
				b.ResetTimer()
				for b.Loop() {
					if err := a.cycle(ctx); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	})
	for _, par := range []int{8, 64} {
		b.Run(fmt.Sprintf("contended-max4-par%d", par), func(b *testing.B) {
			for _, name := range benchOrder {
				b.Run(name, func(b *testing.B) {
					pools := newBenchPools(b, 4)
					defer func() {
						for _, p := range pools {
							p.close()
						}
					}()
					a := pools[name]
					b.ReportAllocs()
					b.SetParallelism(par)
					b.ResetTimer()
					b.RunParallel(func(pb *testing.PB) {
						for pb.Next() {
							if err := a.cycle(ctx); err != nil {
								b.Error(err)
								return
							}
						}
					})
				})
			}
		})
	}
}
