package postgres

import (
	"testing"

	"github.com/tendril-db/tendril/conformance"
	"github.com/tendril-db/tendril/internal/pgtest"
)

// TestConformance runs the driver conformance suite against a primary and
// its standby (the topology checks, which need fault hooks, are skipped:
// TestRouting covers a failover).
func TestConformance(t *testing.T) {
	p := pgtest.StartPair(t)
	conformance.Run(t, conformance.Config{
		Driver:  "postgres",
		DSN:     p.DSN(),
		Caps:    caps,
		Dialect: conformance.PostgresDialect(),
	})
}
