package racetest

import "testing"

type skipRecorder struct{ skipped bool }

func (*skipRecorder) Helper()       {}
func (s *skipRecorder) Skip(...any) { s.skipped = true }

// TestHeavy: Heavy skips exactly when the race detector is on.
func TestHeavy(t *testing.T) {
	var s skipRecorder
	Heavy(&s)
	if s.skipped != Enabled {
		t.Errorf("Heavy skipped: %v, race detector on: %v", s.skipped, Enabled)
	}
}
