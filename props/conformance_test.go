package props

import (
	"math"
	"strings"
	"testing"
)

// TestScale: PROPS_SCALE unset is 1; a positive number is taken; zero, a
// negative number, infinity, NaN and words are errors naming the value.
func TestScale(t *testing.T) {
	t.Setenv("PROPS_SCALE", "")
	if v, err := Scale(); err != nil || v != 1 {
		t.Errorf("unset: %v, %v", v, err)
	}
	t.Setenv("PROPS_SCALE", "2.5")
	if v, err := Scale(); err != nil || v != 2.5 {
		t.Errorf("2.5: %v, %v", v, err)
	}
	for _, s := range []string{"0", "-1", "+Inf", "NaN", "x", "1e400"} {
		t.Setenv("PROPS_SCALE", s)
		if v, err := Scale(); err == nil || !strings.Contains(err.Error(), "PROPS_SCALE=\""+s+"\"") {
			t.Errorf("%s: %v, %v", s, v, err)
		} else if v != 0 || math.IsNaN(v) {
			t.Errorf("%s: value %v with the error", s, v)
		}
	}
}

// TestSweepSize: a negative size skips its subtest, 0 takes the default,
// and the size is scaled.
func TestSweepSize(t *testing.T) {
	var got []int
	for _, c := range []struct {
		n     int
		scale float64
	}{{0, 1}, {5, 1}, {5, 2.5}, {1, 1}} {
		t.Run("", func(t *testing.T) { got = append(got, sweepSize(t, c.n, 32, c.scale, "")) })
	}
	skipped := t.Run("negative", func(t *testing.T) { sweepSize(t, -1, 32, 1, "skipped"); t.Error("not skipped") })
	if want := []int{32, 5, 12, 1}; len(got) != len(want) || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] || got[3] != want[3] {
		t.Errorf("sizes %v, want %v", got, want)
	}
	if !skipped {
		t.Error("a negative size did not skip")
	}
}

// TestTargetBounded runs the conformance suite on impl/qed at its
// smallest (a regression, two short sequences, sweeps of one state and
// one run): it must pass, so that every mutant of TestTarget that makes
// it report a failure on a correct target is caught here.
func TestTargetBounded(t *testing.T) {
	TestTarget(t, QEDTarget{}, ConformanceOptions{
		Seed: 1, Sequences: 2, Steps: 4, Explore: 1, SweepStates: 1, FaultRuns: 1,
		Regressions: []string{qedRegressions["partial-cluster-reuse"]},
	})
}
