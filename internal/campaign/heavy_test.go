package campaign

import "testing"

// heavyUnderRace skips t under the race detector. Such a test judges many
// crash states (fault sweeps, campaigns of the default geometries, faulted
// setups), which the race detector makes 15 to 20 times slower, and
// exercises no concurrency the package's other tests do not run under
// -race (the same workers, gate and collector). scripts/test finds the
// tests that call it and runs them again without -race, so CI still runs
// every one; keep the call the first statement of the test.
func heavyUnderRace(t *testing.T) {
	t.Helper()
	if raceEnabled {
		t.Skip("heavy under -race: scripts/test runs it without -race")
	}
}
