package campaign

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/qedtorture/qedtorture/faultfs"
	"github.com/qedtorture/qedtorture/internal/racetest"
	"github.com/qedtorture/qedtorture/props/target"
	"github.com/qedtorture/qedtorture/props/workload"
	"github.com/stretchr/testify/require"
)

// TestSweepPositions: a step of up to MaxSweepRuns operations is swept
// whole (no writes' runs); a longer one at MaxSweepRuns operations, its
// first and last quarter of them and the rest spread strictly between,
// ascending, less the writes' runs: half the middle at most, spread over
// the step's writes (all of them when fewer), ascending.
func TestSweepPositions(t *testing.T) {
	for _, nw := range []uint64{0, 1, 3, 8, 9, 100} {
		all, writes := sweepPositions(0, nw)
		require.Empty(t, all)
		require.Empty(t, writes)
		all, writes = sweepPositions(3, nw)
		require.Equal(t, []uint64{1, 2, 3}, all)
		require.Empty(t, writes)
		all, writes = sweepPositions(MaxSweepRuns, nw)
		require.Len(t, all, MaxSweepRuns)
		require.Empty(t, writes)
		require.Equal(t, uint64(MaxSweepRuns), all[MaxSweepRuns-1])
		for _, n := range []uint64{MaxSweepRuns + 1, 40, 100, 1000, 1 << 40} {
			if nw > n {
				continue
			}
			ps, ws := sweepPositions(n, nw)
			q := MaxSweepRuns / 4
			require.Len(t, ws, int(min(nw, MaxSweepRuns/4)), "n=%d nw=%d", n, nw)
			require.Len(t, ps, MaxSweepRuns-len(ws), "n=%d nw=%d", n, nw)
			for i := range q {
				require.Equal(t, uint64(i+1), ps[i], "n=%d: the first quarter", n)
				require.Equal(t, n-uint64(q-1-i), ps[len(ps)-q+i], "n=%d: the last quarter", n)
			}
			for i := 1; i < len(ps); i++ {
				require.Less(t, ps[i-1], ps[i], "n=%d: ascending, no repeat: %v", n, ps)
			}
			for i, w := range ws {
				require.True(t, w >= 1 && w <= nw, "n=%d nw=%d: a write of the step: %v", n, nw, ws)
				if i > 0 {
					require.Less(t, ws[i-1], w, "n=%d nw=%d: ascending, no repeat: %v", n, nw, ws)
				}
			}
			if nw <= MaxSweepRuns/4 {
				require.Equal(t, nw, uint64(len(ws)), "every write of the step when that few")
			}
		}
	}
}

// TestSweepPlan: the steps are drawn by op kind first, by the kind's
// weight (a kind with one step as likely as one with many), without
// replacement (distinct kinds, at most n, all of them when n is more),
// never a step without operations, in step order; nothing to sweep, no
// plan.
func TestSweepPlan(t *testing.T) {
	// Steps: the setup 9 operations, the reopen 2, four writes of 3 each,
	// a write of none, a commit of 5.
	counts := []uint64{9, 2, 3, 3, 3, 3, 0, 5}
	kinds := []string{SetupStep, ReopenStep, "write", "write", "write", "write", "write", "commit"}
	require.Greater(t, sweepKindWeight("commit"), sweepKindWeight("write"), "a commit weighs more than a write")
	require.Greater(t, sweepKindWeight(SetupStep), sweepKindWeight(ReopenStep))
	require.Equal(t, 1, sweepKindWeight(ReopenStep))
	byKind := map[string]int{}
	const n = 4000
	for w := range n {
		seed := WorkloadSeed(4, w)
		plan := SweepPlan(seed, counts, kinds, 1)
		require.Len(t, plan, 1)
		require.Equal(t, plan, SweepPlan(seed, counts, kinds, 1), "deterministic")
		require.NotEqual(t, 6, plan[0], "a step without operations")
		byKind[kinds[plan[0]]]++
		three := SweepPlan(seed, counts, kinds, 3)
		require.Len(t, three, 3)
		require.True(t, slices.IsSorted(three), "in step order: %v", three)
		require.Contains(t, three, plan[0], "the first kind drawn is the one drawn alone")
		seen := map[string]bool{}
		for _, step := range three {
			require.NotEqual(t, 6, step, "a step without operations")
			require.False(t, seen[kinds[step]], "distinct kinds: %v", three)
			seen[kinds[step]] = true
		}
		all := SweepPlan(seed, counts, kinds, 10)
		require.Len(t, all, 4, "every kind once: %v", all)
	}
	total := 0
	for _, k := range []string{SetupStep, ReopenStep, "write", "commit"} {
		total += sweepKindWeight(k)
	}
	for _, k := range []string{SetupStep, ReopenStep, "write", "commit"} {
		want := float64(n*sweepKindWeight(k)) / float64(total)
		require.InDelta(t, want, byKind[k], 150, "kind %s drawn by its weight: %v", k, byKind)
	}
	require.Empty(t, SweepPlan(1, []uint64{0, 0}, []string{"write", "write"}, 3))
	require.Empty(t, SweepPlan(1, nil, nil, 3))

	// With each step's writes, a kind's step is drawn by 1 + its writes:
	// of the four writes, the one of 9 writes 10 times in 13, each of the
	// others once in 13; the kinds are drawn as before.
	writes := []uint64{0, 0, 0, 9, 0, 0, 0, 2}
	byStep := map[int]int{}
	kindsW := map[string]int{}
	for w := range n {
		seed := WorkloadSeed(4, w)
		plan := SweepPlan(seed, counts, kinds, 1, writes)
		require.Equal(t, plan, SweepPlan(seed, counts, kinds, 1, writes), "deterministic")
		require.Equal(t, kinds[plan[0]], kinds[SweepPlan(seed, counts, kinds, 1)[0]], "the kind drawn as without the writes")
		kindsW[kinds[plan[0]]]++
		if kinds[plan[0]] == "write" {
			byStep[plan[0]]++
		}
		require.Len(t, SweepPlan(seed, counts, kinds, 10, writes), 4)
	}
	require.Equal(t, byKind, kindsW)
	require.InDelta(t, float64(kindsW["write"])*10/13, byStep[3], 60, "%v", byStep)
	for _, i := range []int{2, 4, 5} {
		require.InDelta(t, float64(kindsW["write"])/13, byStep[i], 40, "%v", byStep)
	}
	require.Zero(t, byStep[6], "a step without operations")
}

// TestSweepChosen: the share of the workloads drawn for a fault, 0 none.
func TestSweepChosen(t *testing.T) {
	const n = 20000
	chosen := 0
	for w := range n {
		seed := WorkloadSeed(9, w)
		if SweepChosen(seed, 0.3) {
			chosen++
		}
		require.False(t, SweepChosen(seed, 0))
		require.True(t, SweepChosen(seed, 1))
	}
	require.InDelta(t, 0.3, float64(chosen)/n, 0.015)
}

// sweptWorkloads returns up to n workload indices of campaign seed (with
// gen) whose fault sweep (every workload drawn, every one swept) aims at
// an op of kind, with their sweeps.
func sweptWorkloads(t *testing.T, tgt target.Target, seed uint64, gen workload.GenConfig, kind workload.Kind, n int) ([]int, []*sweep) {
	t.Helper()
	var ws []int
	var sws []*sweep
	for w := 0; len(ws) < n && w < 400; w++ {
		s := WorkloadSeed(seed, w)
		wl := generate(s, gen)
		parts, err := drawSweep(context.Background(), InProcess(tgt), wl, s, 1, 0, 1, nil)
		require.NoError(t, err)
		for _, sw := range parts {
			if !sw.setup && sw.op >= 0 && wl.Ops[sw.op].Kind == kind {
				ws, sws = append(ws, w), append(sws, sw)
				break
			}
		}
	}
	require.Len(t, ws, n, "workloads sweeping a %s", kind)
	return ws, sws
}

// TestSweepRunsSharePrefix: the runs of a sweep make the same file
// operations up to the swept op (so the runs after the first, judged from
// the swept op on, skip only states the first judged), and each run's
// fault fires inside the swept op.
func TestSweepRunsSharePrefix(t *testing.T) {
	racetest.Heavy(t)
	tgt := TargetOrDie(t, "impl/qed")
	gen := DefaultGenConfig()
	const seed = 3
	ws, sws := sweptWorkloads(t, tgt, seed, gen, workload.Commit, 2)
	for i, w := range ws {
		s := WorkloadSeed(seed, w)
		wl := generate(s, gen)
		sw := sws[i]
		require.NotEmpty(t, sw.rules)
		require.False(t, sw.setup)
		var first *Recording
		for _, rule := range sw.rules {
			rs, err := faultfs.Parse(rule)
			require.NoError(t, err, rule)
			require.Len(t, rs, 1)
			require.Equal(t, faultfs.Nth, rs[0].Trigger, rule)
			require.True(t, strings.HasPrefix(rule, SweepFault+"@") || strings.HasPrefix(rule, SweepWriteFault+"@"), rule)
			rec, err := Record(tgt, wl, s, rule)
			require.NoError(t, err, rule)
			require.Len(t, rec.Injected, 1, "%s fires once", rule)
			// The injection happened during the swept op.
			at := -2
			for _, m := range rec.Marks {
				if m.Injected == 0 {
					at = m.Op
				}
			}
			require.Equal(t, sw.op, at, "workload %d, %s: fired in op %d", w, rule, at)
			k := stepK(t, rec, sw.op)
			if first == nil {
				first = rec
				continue
			}
			require.Equal(t, stepK(t, first, sw.op), k, "%s: the swept op starts at the same operation", rule)
			require.Equal(t, first.Trace.Ops[:k], rec.Trace.Ops[:k], "workload %d, %s: the same operations before the swept op", w, rule)
		}
	}
}

// stepK returns the trace index at which op starts in rec.
func stepK(t *testing.T, rec *Recording, op int) int64 {
	for _, m := range rec.Marks {
		if m.Op == op {
			return m.K
		}
	}
	t.Fatalf("no mark of op %d", op)
	return 0
}

// TestFaultSweepCatchesSwallowedError: a target that hides a failed
// sync (faultshare_test.go) passes the campaign without faults; a sweep
// of a flush fails each of its operations in turn, its sync among them,
// so it catches it; the failure's artifact names the run's rule, and
// replay reproduces it.
func TestFaultSweepCatchesSwallowedError(t *testing.T) {
	racetest.Heavy(t)
	tgt := swallowFlushTarget{TargetOrDie(t, "impl/qed")}
	gen := DefaultGenConfig()
	gen.NoImageCommands() // the wrapper has no target.ImageOps
	gen.Weights[workload.Flush] = 8
	const seed = 13
	ws, _ := sweptWorkloads(t, tgt, seed, gen, workload.Flush, 4)
	run := func(share float64) *Report {
		rep := &Report{}
		for _, w := range ws {
			r, err := Run(context.Background(), Config{Seed: seed, Shard: Shard{Index: w, Count: w + 1}, Iterations: w + 1,
				Gen: gen, FaultShare: share, FaultSweep: 1, Target: tgt, TargetName: tgt.Name(), Out: t.TempDir(), MinimizeCandidates: -1})
			require.NoError(t, err)
			rep.Workloads += r.Workloads
			rep.FaultSweeps += r.FaultSweeps
			rep.Failures = append(rep.Failures, r.Failures...)
		}
		return rep
	}
	require.Empty(t, run(0).Failures, "without faults the swallowed error never happens")
	rep := run(1)
	require.NotEmpty(t, rep.Failures, "a sweep of a flush catches the swallowed error")
	require.Equal(t, int64(len(ws)), rep.FaultSweeps)
	f := rep.Failures[0]
	meta, err := os.ReadFile(filepath.Join(f.Artifact, "meta.json"))
	require.NoError(t, err)
	var m ArtifactMeta
	require.NoError(t, json.Unmarshal(meta, &m))
	require.True(t, strings.HasPrefix(m.Faults, SweepFault+"@nth="), "the artifact's faults are the failing run's rule: %q", m.Faults)
	res, err := Replay(f.Artifact, ReplayOptions{Resolve: InProcessResolver(func(string) (target.Target, error) { return tgt, nil })})
	require.NoError(t, err)
	require.True(t, res.Fails(), "replay reproduces the failure with the run's rule")
}

// TestFaultSweepCampaign: with every workload drawn and swept, impl/qed
// passes (it surfaces every error the sweeps inject), the runs after the
// first of each sweep judge fewer states than a run from the setup, and
// the report counts the sweeps and their runs.
func TestFaultSweepCampaign(t *testing.T) {
	racetest.Heavy(t)
	rep, err := Run(context.Background(), Config{Seed: 5, Iterations: 10, Workers: 2, FaultShare: 1, FaultSweep: 1,
		Target: TargetOrDie(t, "impl/qed"), TargetName: "impl/qed"})
	require.NoError(t, err)
	require.Empty(t, rep.Failures)
	require.Equal(t, int64(10), rep.Workloads)
	require.Equal(t, 1.0, rep.FaultSweep)
	require.Positive(t, rep.FaultSweeps)
	require.Greater(t, rep.FaultSweepRuns, rep.FaultSweeps, "a sweep runs once per operation of its step")
	require.LessOrEqual(t, rep.FaultSweepRuns, rep.FaultSweeps*SweepSteps*MaxSweepRuns)
	require.LessOrEqual(t, rep.Faulted, int64(10), "a workload counted once however many runs it swept")
}

// TestFaultSweepCampaignSmall is TestFaultSweepCampaign on small
// workloads, for the race detector: two workers each sweeping and
// judging faulted runs at once (the heavy tests of the fault share and
// the sweeps skip themselves under -race, racetest.Heavy).
func TestFaultSweepCampaignSmall(t *testing.T) {
	seed := testSeed(t)
	rep, err := Run(context.Background(), Config{Seed: seed, Iterations: 4, Workers: 2, FaultShare: 1, FaultSweep: 1,
		Gen: quickGen(), Models: quickModels[:2], Bound: 8, Samples: 2, SampledPoints: 2,
		Target: TargetOrDie(t, "impl/qed"), TargetName: "impl/qed"})
	require.NoError(t, err)
	require.Empty(t, rep.Failures)
	require.Equal(t, int64(4), rep.Workloads)
	require.Positive(t, rep.FaultSweeps)
	require.Greater(t, rep.FaultSweepRuns, rep.FaultSweeps, "a sweep runs once per operation of its step")
	require.Positive(t, rep.CrashStates)
}

// TestFaultSweepConfig: the sweep share is refused out of [0,1].
func TestFaultSweepConfig(t *testing.T) {
	for _, s := range []float64{-0.1, 1.5} {
		_, err := Run(context.Background(), Config{Seed: 1, Iterations: 1, FaultShare: 0.5, FaultSweep: s, Target: TargetOrDie(t, "impl/qed")})
		require.ErrorIs(t, err, ErrConfig, "sweep %g", s)
	}
}
