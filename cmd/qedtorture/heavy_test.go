package main

import "testing"

// heavyUnderRace skips t under the race detector. Such a test runs the
// command's long jobs (campaigns and repair runs against QEMU, the
// README's command blocks) through a binary built with -race, which makes
// them several times slower, and exercises no concurrency the package's
// other tests do not run under -race. scripts/test finds the tests that
// call it and runs them again without -race, so CI still runs every one;
// keep the call the first statement of the test.
func heavyUnderRace(t *testing.T) {
	t.Helper()
	if raceEnabled {
		t.Skip("heavy under -race: scripts/test runs it without -race")
	}
}
