package campaign

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/qedtorture/qedtorture/faultfs"
	"github.com/qedtorture/qedtorture/internal/racetest"
	"github.com/qedtorture/qedtorture/props/workload"
	"github.com/stretchr/testify/require"
)

// TestSweepStepsOfRareKinds: a workload drawn for a fault with a commit
// before its first concurrent group sweeps even at a sweep share that
// chooses almost none, its steps of distinct kinds in order, at most
// SweepSteps; its commit among them far more often than not, swept from
// the commit's first operation (its close: an image command's two marks
// are one step) over more operations than the close makes, to the
// command's last operation (the base's read-back after it is not swept).
func TestSweepStepsOfRareKinds(t *testing.T) {
	racetest.Heavy(t)
	tgt := TargetOrDie(t, "impl/qed")
	gen := DefaultGenConfig()
	gen.Weights[workload.Commit] = 3
	gen.TailChance, gen.ZeroDataChance = 0, 0 // the sample drawn before them (they add steps of other kinds)
	const seed = 23
	withCommit, commitSwept := 0, 0
	for w := 0; w < 300 && withCommit < 12; w++ {
		s := WorkloadSeed(seed, w)
		if !FaultChosen(s, 1, 0) {
			continue
		}
		wl := generate(s, gen)
		group := firstGroup(wl.Ops)
		commit := slices.IndexFunc(wl.Ops[:group], func(op workload.Op) bool { return op.Kind == workload.Commit })
		sws, err := drawSweep(context.Background(), InProcess(tgt), wl, s, 1, 0, 1e-9, nil)
		require.NoError(t, err)
		if commit < 0 {
			require.Equal(t, SweepChosen(s, 1e-9) || sweepsAnyway(wl.Ops[:group]), sws != nil, "workload %d", w)
			continue
		}
		withCommit++
		require.NotEmpty(t, sws, "workload %d: a commit at op %d, before any group: swept", w, commit)
		require.LessOrEqual(t, len(sws), SweepSteps)
		kinds := map[string]bool{}
		last := -2
		for i, sw := range sws {
			k := ReopenStep
			switch {
			case sw.setup:
				k = SetupStep
				require.Zero(t, i, "the setup first")
			case sw.op >= 0:
				k = wl.Ops[sw.op].Kind.String()
			}
			require.False(t, kinds[k], "workload %d: kinds distinct", w)
			kinds[k] = true
			require.GreaterOrEqual(t, sw.op, last, "in op order")
			last = sw.op
			if sw.op != commit || sw.setup {
				continue
			}
			commitSwept++
			rec, err := RecordWith(tgt, wl, RecordOptions{Seed: s, Faults: SweepFault + "@after=" + neverFires})
			require.NoError(t, err)
			var marks []uint64
			for _, m := range rec.Marks {
				if m.Op == commit {
					marks = append(marks, m.Matched)
				}
			}
			require.Len(t, marks, 2, "a commit is marked at its close and at its command")
			rs, err := faultfs.Parse(sw.rules[0])
			require.NoError(t, err)
			require.Equal(t, int64(marks[0])+1, rs[0].N, "workload %d: the sweep starts at the commit's close", w)
			rs, err = faultfs.Parse(sw.rules[len(sw.rules)-1])
			require.NoError(t, err)
			require.Greater(t, rs[0].N, int64(marks[1]), "workload %d: and goes on into the command", w)
			// It ends where the command returned, before the base's
			// read-back and the reopen after it.
			end := slices.IndexFunc(rec.CommandEnds, func(m Mark) bool { return m.Op == commit })
			require.GreaterOrEqual(t, end, 0, "workload %d: the command's end is marked", w)
			require.Equal(t, int64(rec.CommandEnds[end].Matched), rs[0].N, "workload %d: the sweep ends at the command's last operation", w)
			require.Greater(t, rec.CommandEnds[end].Matched, marks[1])
		}
	}
	require.Equal(t, 12, withCommit)
	require.GreaterOrEqual(t, commitSwept, 9, "a commit (weight %d) is among the steps swept", sweepKindWeight("commit"))
}

// TestRareSweepAfterRun: a workload not drawn for a fault with a commit
// or a rebase before its first concurrent group, chosen at the sweep
// share, runs as usual and then sweeps that step's writes, syncs and
// truncates alone (every run judged from the step on); one without such
// a step sweeps nothing. A campaign doing so judges every state the
// usual runs judge, and more.
func TestRareSweepAfterRun(t *testing.T) {
	racetest.Heavy(t)
	tgt := TargetOrDie(t, "impl/qed")
	gen := DefaultGenConfig()
	gen.Weights[workload.Commit] = 3
	const seed, share = 23, 1e-9
	swept := 0
	for w := 0; w < 60; w++ {
		s := WorkloadSeed(seed, w)
		if FaultChosen(s, share, 0) {
			continue
		}
		wl := generate(s, gen)
		group := firstGroup(wl.Ops)
		sws, err := drawSweep(context.Background(), InProcess(tgt), wl, s, share, 0, 1, nil)
		require.NoError(t, err)
		if !sweepsAnyway(wl.Ops[:group]) {
			require.Nil(t, sws, "workload %d: no commit or rebase before a group", w)
			continue
		}
		require.Len(t, sws, 1, "workload %d", w)
		sw := sws[0]
		require.True(t, sw.after)
		require.False(t, sw.setup)
		require.GreaterOrEqual(t, sweepKindWeight(wl.Ops[sw.op].Kind.String()), sweepAlways, "workload %d: a commit or a rebase", w)
		require.NotEmpty(t, sw.rules)
		for _, r := range sw.rules {
			require.True(t, strings.HasPrefix(r, SweepWriteFault+"@nth="), r)
		}
		swept++
	}
	require.GreaterOrEqual(t, swept, 5)

	run := func(sweep float64) *Report {
		rep, err := Run(context.Background(), Config{Seed: seed, Iterations: 8, Workers: 2, Gen: gen, Models: quickModels, Bound: 16, Samples: 4,
			SampledPoints: 2, FaultShare: share, FaultSweep: sweep, Target: tgt, TargetName: tgt.Name()})
		require.NoError(t, err)
		require.Empty(t, rep.Failures)
		return rep
	}
	without, with := run(0), run(1)
	require.Zero(t, without.FaultSweeps)
	require.Positive(t, with.FaultSweeps)
	require.Greater(t, with.CrashStates, without.CrashStates)
}
