//go:build race

package resp

// raceEnabled relaxes exact allocation counts that the race detector's
// instrumentation perturbs.
const raceEnabled = true
