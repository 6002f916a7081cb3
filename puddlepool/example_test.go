package puddlepool_test

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/tendril-db/tendril/puddlepool"
)

func Example() {
	// A stand-in node so that the example runs anywhere.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()

	addr := ln.Addr().String()
	var d net.Dialer
	pool, err := puddlepool.New(puddlepool.Config[net.Conn]{
		Name:           addr,
		Dial:           func(ctx context.Context) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) },
		Close:          func(c net.Conn) error { return c.Close() },
		MaxSize:        10,
		AcquireTimeout: time.Second,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer pool.Close()

	res, err := pool.Acquire(context.Background())
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("connected:", res.Value().RemoteAddr().String() == addr)
	res.Release()

	s := pool.Stat()
	fmt.Printf("total=%d idle=%d in-use=%d\n", s.Total, s.Idle, s.InUse)
	// Output:
	// connected: true
	// total=1 idle=1 in-use=0
}
