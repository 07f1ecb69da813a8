package props

import (
	"testing"
)

// TestConformanceQED runs impl/qed through the conformance door, exactly
// as another implementation would.
func TestConformanceQED(t *testing.T) {
	opts := ConformanceOptions{}
	if raceEnabled {
		opts.Sequences, opts.Steps, opts.Explore, opts.FaultRuns = 12, 20, 4, 6
	}
	TestTarget(t, QEDTarget{}, opts)
}
