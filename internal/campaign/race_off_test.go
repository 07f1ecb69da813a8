//go:build !race

package campaign

// raceEnabled: the tests run under the race detector.
const raceEnabled = false
