package stdlib

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"sync/atomic"

	"github.com/tendril-db/tendril/sqlish"
)

// DriverName is the name the driver is registered under.
const DriverName = "tendril"

func init() {
	sql.Register(DriverName, drv{})
}

// drv is the database/sql driver. It keeps no state: each sql.Open makes
// a connector, and the connector owns its sqlish.DB.
type drv struct{}

// Open implements driver.Driver for callers that open one connection
// without a connector: the connection owns a sqlish.DB of its own, closed
// with it. database/sql itself uses OpenConnector.
func (d drv) Open(dsn string) (driver.Conn, error) {
	c, err := d.connector(dsn)
	if err != nil {
		return nil, err
	}
	cn, _ := c.Connect(context.Background())
	cn.(*conn).owns = true
	return cn, nil
}

// OpenConnector implements driver.DriverContext: it parses the DSN, picks
// the tendril driver by its scheme and opens a sqlish.DB, which does not
// touch the network.
func (d drv) OpenConnector(dsn string) (driver.Connector, error) { return d.connector(dsn) }

func (drv) connector(dsn string) (*connector, error) {
	cfg, err := sqlish.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("stdlib: %w", err)
	}
	db, err := sqlish.OpenConfig(cfg.Scheme, cfg)
	if err != nil {
		return nil, fmt.Errorf("stdlib: %w", err)
	}
	return &connector{db: db, owned: true}, nil
}

// OpenDB opens a *sql.DB on a new sqlish.DB made by
// sqlish.OpenConfig(driverName, cfg): cfg comes from sqlish.DefaultConfig
// or sqlish.ParseDSN, and may carry what a DSN cannot (Logger,
// TracerProvider, MeterProvider). The error is OpenConfig's: an unknown
// driver or a bad configuration. Closing the *sql.DB closes the sqlish.DB.
func OpenDB(driverName string, cfg sqlish.Config) (*sql.DB, error) {
	db, err := sqlish.OpenConfig(driverName, cfg)
	if err != nil {
		return nil, fmt.Errorf("stdlib: %w", err)
	}
	return sql.OpenDB(&connector{db: db, owned: true}), nil
}

// OpenDBFromDB returns a *sql.DB whose statements run on db, sharing its
// pools, topology and policy with the code that uses db directly. Closing
// the *sql.DB does not close db; closing db ends both.
func OpenDBFromDB(db *sqlish.DB) *sql.DB {
	return sql.OpenDB(&connector{db: db})
}

// connector is the driver.Connector behind one *sql.DB.
type connector struct {
	db     *sqlish.DB
	owned  bool // db was opened for this connector: Close closes it
	closed atomic.Bool
}

// Connect implements driver.Connector: a handle costs an allocation and
// no I/O (see the package documentation).
func (c *connector) Connect(ctx context.Context) (driver.Conn, error) {
	if c.closed.Load() {
		return nil, fmt.Errorf("stdlib: %w", sqlish.ErrClosed)
	}
	return &conn{c: c}, nil
}

// Driver implements driver.Connector.
func (c *connector) Driver() driver.Driver { return drv{} }

// Close closes the sqlish.DB when the connector opened it; database/sql
// calls it from DB.Close. Work in flight is not cut (see sqlish.DB.Close).
func (c *connector) Close() error {
	if c.closed.Swap(true) || !c.owned {
		return nil
	}
	return c.db.Close()
}
