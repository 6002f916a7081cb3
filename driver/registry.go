package driver

import (
	"fmt"
	"slices"
	"sync"
)

// The registry lives here rather than in sqlish so that backend packages can
// register themselves from init without importing the user API (drivers know
// nothing of sqlish); sqlish.Register and sqlish.Drivers are the user-facing
// names for the same registry.
var (
	mu      sync.RWMutex
	drivers = map[string]Driver{}
)

// Register makes a driver available by name. It panics if d is nil or the
// name is already taken, as database/sql.Register does: both are
// programming errors best found at start-up.
func Register(name string, d Driver) {
	if d == nil {
		panic("tendril: Register driver is nil")
	}
	if name == "" {
		panic("tendril: Register driver name is empty")
	}
	mu.Lock()
	defer mu.Unlock()
	if _, dup := drivers[name]; dup {
		panic(fmt.Sprintf("tendril: Register called twice for driver %q", name))
	}
	drivers[name] = d
}

// Lookup returns the driver registered under name.
func Lookup(name string) (Driver, bool) {
	mu.RLock()
	defer mu.RUnlock()
	d, ok := drivers[name]
	return d, ok
}

// KnownParam reports whether the driver registered under name lists key
// among its driver-specific keys (see ParamLister).
func KnownParam(name, key string) bool {
	d, ok := Lookup(name)
	if !ok {
		return false
	}
	pl, ok := d.(ParamLister)
	return ok && slices.Contains(pl.Params(), key)
}

// Drivers returns the sorted names of the registered drivers.
func Drivers() []string {
	mu.RLock()
	defer mu.RUnlock()
	names := make([]string, 0, len(drivers))
	for n := range drivers {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}
