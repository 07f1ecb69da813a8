package props

import (
	"testing"
)

// TestConformanceQED runs impl/qed through the conformance door, exactly
// as another implementation would.
func TestConformanceQED(t *testing.T) {
	TestTarget(t, QEDTarget{}, ConformanceOptions{})
}
