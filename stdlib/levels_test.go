package stdlib_test

import (
	"database/sql"
	"strings"
	"testing"

	"github.com/tendril-db/tendril/driver"
)

// TestIsolationLevelsMatch: the bridge hands database/sql's isolation level
// over as it is, so tendril's levels must be database/sql's, in order.
func TestIsolationLevelsMatch(t *testing.T) {
	for l := sql.LevelDefault; l <= sql.LevelLinearizable; l++ {
		if got := driver.IsolationLevel(l).String(); !strings.EqualFold(got, l.String()) {
			t.Errorf("database/sql level %d is %q, tendril's %q", l, l, got)
		}
	}
}
