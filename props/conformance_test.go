package props

import (
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/qedtorture/qedtorture/props/oracle"
	"github.com/qedtorture/qedtorture/props/statemachine"
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
// it report a failure on a correct target is caught here; and what it
// says it ran must be what was asked: the seed given, the sequences and
// steps given, every one of them run, the crash sweep under the oracle's
// default models with at least one state per model and workload, a fault
// sweep per workload and rule.
func TestTargetBounded(t *testing.T) {
	t.Setenv("PROPS_SEED", "")
	t.Setenv("PROPS_SCALE", "")
	c := TestTarget(t, QEDTarget{}, ConformanceOptions{
		Seed: 1, Sequences: 2, Steps: 4, Explore: 1, SweepStates: 1, FaultRuns: 1,
		Regressions: []string{qedRegressions["partial-cluster-reuse"]},
	})
	if c.Target != (QEDTarget{}).Name() || c.Seed != 1 || c.Scale != 1 || c.Regressions != 1 {
		t.Errorf("target %q, seed %d, scale %g, regressions %d; want %q, 1, 1, 1", c.Target, c.Seed, c.Scale, c.Regressions, (QEDTarget{}).Name())
	}
	sm := c.StateMachine
	if sm.Seed != 1 || sm.Sequences != 2 || sm.Steps != 4 || sm.Run.Explore != 1 || sm.Budget != 0 || sm.Models != nil {
		t.Errorf("state machine: seed %d, %d sequences, %d steps, explore %d, budget %v, models %v; want 1, 2, 4, 1, 0, nil",
			sm.Seed, sm.Sequences, sm.Steps, sm.Run.Explore, sm.Budget, sm.Models)
	}
	if c.Ran == nil || c.Ran.Sequences != 2 || c.Ran.Commands < 2 {
		t.Errorf("state machine ran %+v; want 2 sequences and a command each at least", c.Ran)
	}
	workloads := len(statemachine.FaultSweepWorkloads())
	if !reflect.DeepEqual(c.SweepModels, oracle.DefaultModels()) || c.SweepStates != 1 || c.SweepJudged < workloads*len(c.SweepModels) {
		t.Errorf("crash sweep: models %v, %d states each, %d judged; want the default models, 1, at least %d",
			c.SweepModels, c.SweepStates, c.SweepJudged, workloads*len(oracle.DefaultModels()))
	}
	if c.FaultRuns != 1 || c.FaultSweeps != workloads*len(statemachine.FaultRules) {
		t.Errorf("fault sweeps: %d runs each, %d sweeps; want 1, %d", c.FaultRuns, c.FaultSweeps, workloads*len(statemachine.FaultRules))
	}
}

// TestTargetScaled: PROPS_SCALE multiplies the sequences and steps asked
// (2.5: 2 and 4 become 5 and 10, all 5 run), PROPS_SEED replaces the seed
// given, a negative Explore judges no extra state, Models given are the
// state machine's, and negative sweep sizes skip the sweeps (their
// account stays zero).
func TestTargetScaled(t *testing.T) {
	t.Setenv("PROPS_SEED", "7")
	t.Setenv("PROPS_SCALE", "2.5")
	models := oracle.DefaultModels()[:1]
	c := TestTarget(t, QEDTarget{}, ConformanceOptions{
		Seed: 1, Sequences: 2, Steps: 4, Explore: -1, SweepStates: -1, FaultRuns: -1, Models: models,
	})
	if c.Seed != 7 || c.Scale != 2.5 {
		t.Errorf("seed %d, scale %g; want 7, 2.5", c.Seed, c.Scale)
	}
	sm := c.StateMachine
	if sm.Seed != 7 || sm.Sequences != 5 || sm.Steps != 10 || sm.Run.Explore != 0 || !reflect.DeepEqual(sm.Models, models) {
		t.Errorf("state machine: seed %d, %d sequences, %d steps, explore %d, models %v; want 7, 5, 10, 0, %v",
			sm.Seed, sm.Sequences, sm.Steps, sm.Run.Explore, sm.Models, models)
	}
	if c.Ran == nil || c.Ran.Sequences != 5 {
		t.Errorf("state machine ran %+v; want 5 sequences", c.Ran)
	}
	if c.SweepModels != nil || c.SweepStates != 0 || c.SweepJudged != 0 || c.FaultRuns != 0 || c.FaultSweeps != 0 {
		t.Errorf("skipped sweeps accounted: %+v", c)
	}
}

// TestTargetDefaultsAndBudget: without a seed one is drawn; zero
// Sequences, Steps and Explore take the defaults (40 sequences of up to 30
// commands, 8 extra states per crash); a budget that has run out stops the state machine after
// its first batch of 10, and that is not a failure (the budget ran out).
func TestTargetDefaultsAndBudget(t *testing.T) {
	t.Setenv("PROPS_SEED", "")
	t.Setenv("PROPS_SCALE", "")
	c := TestTarget(t, QEDTarget{}, ConformanceOptions{Budget: time.Nanosecond, SweepStates: -1, FaultRuns: -1})
	def := statemachine.DefaultConfig()
	sm := c.StateMachine
	if c.Seed == 0 || sm.Seed != c.Seed {
		t.Errorf("seed %d, state machine's %d: want one drawn (not 0)", c.Seed, sm.Seed)
	}
	if sm.Sequences != def.Sequences || sm.Steps != def.Steps || sm.Run.Explore != def.Run.Explore || sm.Budget != time.Nanosecond {
		t.Errorf("state machine: %d sequences, %d steps, explore %d, budget %v; want %d, %d, %d, 1ns",
			sm.Sequences, sm.Steps, sm.Run.Explore, sm.Budget, def.Sequences, def.Steps, def.Run.Explore)
	}
	if c.Ran == nil || c.Ran.Sequences != def.Batch {
		t.Errorf("state machine ran %+v; want its first batch, %d sequences", c.Ran, def.Batch)
	}
}

// TestRanShort: the state machine's self-check fires when a run stops
// short of the sequences asked without a budget, or before its budget
// ran out; not when it ran them all, nor when the budget ran out (at
// exactly the budget too).
func TestRanShort(t *testing.T) {
	for _, c := range []struct {
		ran, asked   int
		budget, took time.Duration
		want         bool
	}{
		{2, 2, 0, time.Second, false},
		{1, 2, 0, time.Second, true},
		{3, 2, 0, time.Second, false},
		{2, 2, time.Second, time.Millisecond, false},
		{1, 2, time.Second, time.Millisecond, true},
		{1, 2, time.Second, time.Second, false},
		{1, 2, time.Second, 2 * time.Second, false},
	} {
		err := ranShort(&statemachine.Result{Sequences: c.ran, Duration: c.took}, statemachine.Config{Sequences: c.asked, Budget: c.budget})
		if (err != nil) != c.want {
			t.Errorf("ran %d of %d in %v, budget %v: %v, want an error %v", c.ran, c.asked, c.took, c.budget, err, c.want)
		}
		if err != nil && !strings.Contains(err.Error(), fmt.Sprintf("ran %d of %d sequences", c.ran, c.asked)) {
			t.Errorf("message %q", err)
		}
	}
}

// TestRates: the speed line TestTarget logs, and none for a run that took
// no time.
func TestRates(t *testing.T) {
	if r := rates(&statemachine.Result{Sequences: 3, Commands: 10, CrashStates: 4}); r != "" {
		t.Errorf("no time: %q", r)
	}
	r := rates(&statemachine.Result{Sequences: 3, Commands: 10, CrashStates: 4, Duration: 2 * time.Second})
	if want := "1.5 sequences/s, 5 commands/s, 2 crash states/s"; r != want {
		t.Errorf("%q, want %q", r, want)
	}
}
