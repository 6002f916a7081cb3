package memory

import "github.com/tendril-db/tendril/driver/internal/rediscmd"

// KeySlot returns the hash slot of key in a memory cluster, which is its
// Redis Cluster slot (hash tags included), for tests that need to know
// which node owns a key.
func KeySlot(key string) int { return int(rediscmd.Slot([]byte(key))) }
