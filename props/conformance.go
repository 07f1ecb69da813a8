package props

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/qedtorture/qedtorture/props/oracle"
	"github.com/qedtorture/qedtorture/props/statemachine"
)

// ConformanceOptions tune TestTarget. The zero value runs the default
// suite; PROPS_SEED replays a logged seed and PROPS_SCALE multiplies the
// amount of work (see Scale).
type ConformanceOptions struct {
	// Seed of the run; 0 = random (logged). PROPS_SEED overrides it.
	Seed int64
	// Sequences and Steps of the state machine (0 = 40 and 30), before
	// scaling.
	Sequences, Steps int
	// Budget bounds the state machine's wall time (0 = none).
	Budget time.Duration
	// Models the crash commands draw from (nil = oracle.DefaultModels()); a
	// statemachine.Model is a crashsim.Model.
	Models []statemachine.Model
	// Explore: extra crash states judged per crash (0 = 8; <0 = none).
	Explore int
	// FaultRuns bounds each fault sweep's runs (0 = 24; <0 = skip the sweeps).
	FaultRuns int
	// SweepStates bounds the crash states judged per model at each sync
	// of the crash sweeps (0 = 32; <0 = skip the sweeps).
	SweepStates int
	// NoFaults, NoConcurrency leave fault commands or concurrent groups
	// out of the state machine (for implementations that do not support
	// them yet: say so in your test).
	NoFaults, NoConcurrency bool
	// Oracle options for every crash state (package props/oracle).
	Oracle oracle.Options
	// Regressions are sequences (text form) replayed first; each must pass.
	Regressions []string
}

// Scale returns the work multiplier from PROPS_SCALE (default 1): the
// state machine runs Scale times as many sequences, sequences grow up to
// min(Scale, 4) times longer, and fault sweeps try Scale times as many
// points. Nightly runs set e.g. PROPS_SCALE=50. A value that is not a
// positive number is an error naming it.
func Scale() (float64, error) {
	s := os.Getenv("PROPS_SCALE")
	if s == "" {
		return 1, nil
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || !(v > 0) || math.IsInf(v, 0) {
		return 0, fmt.Errorf("props: PROPS_SCALE=%q is not a positive number", s)
	}
	return v, nil
}

// Conformance is TestTarget's account of what it ran, after the defaults,
// PROPS_SEED and PROPS_SCALE were applied: a caller (and props' own tests)
// can hold the run to what it asked for. A subtest that was skipped, or
// did not get as far as running, leaves its fields zero.
type Conformance struct {
	// Target is target.Name().
	Target string
	// Seed of the whole run: PROPS_SEED, else ConformanceOptions.Seed,
	// else a random one (logged).
	Seed int64
	// Scale is PROPS_SCALE (1 when unset).
	Scale float64
	// Regressions replayed (passed or not).
	Regressions int
	// StateMachine is the configuration handed to statemachine.Check:
	// Sequences and Steps defaulted and scaled, Budget, Models (nil = the
	// oracle's defaults), Run.Explore, Run.Oracle.
	StateMachine statemachine.Config
	// Ran is what the state machine ran (sequences, commands, crash
	// states, what it explored); nil when its subtest did not run it.
	Ran *statemachine.Result
	// SweepModels are the crash sweep's models (never empty when it ran),
	// SweepStates its bound on the crash states judged per model at each
	// sync, and SweepJudged the crash states it judged.
	SweepModels              []statemachine.Model
	SweepStates, SweepJudged int
	// FaultRuns bounds each fault sweep's runs; FaultSweeps is the number
	// of sweeps run (a workload under a fault rule each).
	FaultRuns, FaultSweeps int
}

// TestTarget runs the whole property suite against an implementation, the
// way testing/fstest.TestFS checks a file system. Call it from a test of
// your own with your adapter:
//
//	func TestConformance(t *testing.T) {
//		props.TestTarget(t, myTarget{}, props.ConformanceOptions{})
//	}
//
// Problems are reported through t; the Conformance it returns says what
// ran (a caller may ignore it).
//
// Subtests (each reports every problem it finds, then the next one runs):
//   - Regressions: opts.Regressions replayed;
//   - StateMachine: random command sequences with reads checked against
//     the model, crashes under every crash model judged by the oracle
//     (oracle.Judge), faults that must surface, concurrent groups;
//     a failure is shrunk and printed as a replayable Sequence with its seed;
//   - CrashSweep: every sync of two fixed workloads is a crash point,
//     judged under every model (statemachine.CheckCrashSweep);
//   - FaultSweep: an I/O-error loop (statemachine.CheckFaultSweep) per fault rule over
//     two fixed workloads, one with a backing file and one without.
func TestTarget(t *testing.T, target Target, opts ConformanceOptions) Conformance {
	t.Helper()
	seed := opts.Seed
	if seed == 0 {
		seed = int64(rand.Uint64() >> 1)
	}
	seed = int64(envSeed(t, uint64(seed)))
	scale, err := Scale()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range opts.Models {
		if err := m.Validate(); err != nil {
			t.Fatalf("props: ConformanceOptions.Models: %v", err)
		}
	}
	t.Logf("conformance of %s: seed %d (replay: PROPS_SEED=%d), scale %g", target.Name(), seed, seed, scale)
	ran := Conformance{Target: target.Name(), Seed: seed, Scale: scale}

	t.Run("Regressions", func(t *testing.T) {
		for i, text := range opts.Regressions {
			ran.Regressions++
			s, err := statemachine.ParseSequence(text)
			if err != nil {
				t.Errorf("regression %d: %v", i, err)
				continue
			}
			if _, f := statemachine.RunSequence(target, s, statemachine.RunOptions{Explore: 64, Oracle: opts.Oracle}); f != nil {
				t.Errorf("regression %d failed:\n%s\n%v", i, f.Seq, f)
			}
		}
	})

	t.Run("StateMachine", func(t *testing.T) {
		cfg := statemachine.DefaultConfig()
		cfg.Seed = seed
		if opts.Sequences > 0 {
			cfg.Sequences = opts.Sequences
		}
		if opts.Steps > 0 {
			cfg.Steps = opts.Steps
		}
		cfg.Sequences = int(float64(cfg.Sequences) * scale)
		cfg.Steps = int(float64(cfg.Steps) * min(scale, 4))
		cfg.Budget = opts.Budget
		cfg.Models = opts.Models
		cfg.NoFaults, cfg.NoConcurrency = opts.NoFaults, opts.NoConcurrency
		cfg.Run.Oracle = opts.Oracle
		switch {
		case opts.Explore > 0:
			cfg.Run.Explore = opts.Explore
		case opts.Explore < 0:
			cfg.Run.Explore = 0
		}
		ran.StateMachine = cfg
		res := statemachine.Check(target, cfg)
		ran.Ran = res
		if !res.Passed() {
			t.Error(res.Report())
			return
		}
		t.Log(res.Report())
		if err := ranShort(res, cfg); err != nil {
			t.Error(err)
		}
		t.Logf("explored: op kinds %v; crashes by model %v; crash states by model %v; faults by rule %v; size classes %v; backing layouts %v",
			res.Explored.OpKinds, res.Explored.Crashes, res.Explored.StatesByModel, res.Explored.FaultRules, res.Explored.SizeClasses, res.Explored.Backings)
		if r := rates(res); r != "" {
			t.Log(r)
		}
	})

	t.Run("CrashSweep", func(t *testing.T) {
		n := sweepSize(t, opts.SweepStates, 32, scale, "crash sweeps disabled by ConformanceOptions.SweepStates")
		models := opts.Models
		if len(models) == 0 {
			models = oracle.DefaultModels()
		}
		ran.SweepModels, ran.SweepStates = models, n
		total, problems := statemachine.CrashSweeps(target, models, n, uint64(seed), opts.Oracle)
		ran.SweepJudged = total
		for _, p := range problems {
			t.Error(p)
		}
		t.Logf("%d crash states judged at every sync of %d workloads", total, len(statemachine.FaultSweepWorkloads()))
	})

	t.Run("FaultSweep", func(t *testing.T) {
		runs := sweepSize(t, opts.FaultRuns, 24, scale, "fault sweeps disabled by ConformanceOptions.FaultRuns")
		ran.FaultRuns = runs
		for name, w := range statemachine.FaultSweepWorkloads() {
			for _, rule := range statemachine.FaultRules {
				ran.FaultSweeps++
				for _, f := range statemachine.CheckFaultSweep(target, w, rule, runs, opts.Oracle) {
					t.Errorf("workload %s: %v\nworkload:\n%s", name, f, w)
				}
			}
		}
	})
	return ran
}

// ranShort is the state machine's check of itself: a run that passed must
// have run every sequence it was asked (cfg.Sequences), unless its budget
// ran out first (statemachine.Check stops between batches once
// cfg.Budget has passed).
func ranShort(res *statemachine.Result, cfg statemachine.Config) error {
	if res.Sequences < cfg.Sequences && (cfg.Budget == 0 || res.Duration < cfg.Budget) {
		return fmt.Errorf("the state machine ran %d of %d sequences, within its budget", res.Sequences, cfg.Sequences)
	}
	return nil
}

// rates is the state machine's speed, the line TestTarget logs ("" for a
// run that took no measurable time).
func rates(res *statemachine.Result) string {
	secs := res.Duration.Seconds()
	if secs <= 0 {
		return ""
	}
	return fmt.Sprintf("%.1f sequences/s, %.0f commands/s, %.0f crash states/s", float64(res.Sequences)/secs, float64(res.Commands)/secs, float64(res.CrashStates)/secs)
}

// sweepSize is a sweep's size from its option n: negative skips the
// subtest (with why), 0 takes def; the result is scaled by PROPS_SCALE.
func sweepSize(t *testing.T, n, def int, scale float64, why string) int {
	t.Helper()
	if n < 0 {
		t.Skip(why)
	}
	if n == 0 {
		n = def
	}
	return int(float64(n) * scale)
}

// Replay runs a Sequence given in text form (as a failure report prints
// it) on target and fails t, with the failure explained, if it does not
// pass. Paste a shrunk counterexample into a regression test with it:
//
//	props.Replay(t, qedtarget.Target{}, `qedtorture-workload v1
//	image cluster_size=4096 table_size=1 size=65536
//	write 0x0 0x1000 id=1
//	#! crash sync=1 model=subset choice=3
//	flush
//	`)
func Replay(t testing.TB, target Target, text string) {
	t.Helper()
	s, err := statemachine.ParseSequence(text)
	if err != nil {
		t.Fatalf("props.Replay: %v", err)
	}
	r, f := statemachine.RunSequence(target, s, statemachine.RunOptions{})
	if f != nil {
		t.Fatalf("props.Replay on %s failed:\n%s\n%v", target.Name(), f.Seq, f)
	}
	t.Logf("replayed %d ops on %s: %d crash states judged, %d faults fired", s.Len(), target.Name(), r.CrashStates, r.Faults)
}
