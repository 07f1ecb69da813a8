// Package racetest tells tests whether they run under Go's race detector,
// and skips the ones too heavy for it.
//
// A test that judges many crash states single-threaded (fault sweeps,
// campaigns of the default geometries, long crash-op sequences) runs 15 to
// 20 times slower under -race and gives the detector nothing to find that
// the package's other tests do not already run under it. Such a test calls
// Heavy as its first statement; scripts/test runs every test that does so
// again without -race (it finds them by the call, `^\tracetest.Heavy(t)`),
// and fails unless every one of them runs and passes. So CI runs each test
// once, under the detector only when that is worth its time.
package racetest

// T is the part of testing.TB Heavy uses (declared here so that the
// package does not link testing).
type T interface {
	Helper()
	Skip(args ...any)
}

// Heavy skips t under the race detector (scripts/test runs it without).
// Call it only from a test whose concurrency, if any, other tests of the
// package run under -race.
func Heavy(t T) {
	t.Helper()
	if Enabled {
		t.Skip("heavy under -race: scripts/test runs it without -race")
	}
}
