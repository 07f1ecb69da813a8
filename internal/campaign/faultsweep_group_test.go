package campaign

import (
	"context"
	"slices"
	"testing"

	"github.com/qedtorture/qedtorture/internal/racetest"
	"github.com/qedtorture/qedtorture/props/workload"
	"github.com/stretchr/testify/require"
)

// TestSweepBeforeConcurrentGroup: a workload with concurrent groups is
// swept too, but only at a step before its first group (the setup, the
// reopen, an op before it); every run's fault fires once, inside the
// swept op; and a campaign of such sweeps passes on impl/qed.
func TestSweepBeforeConcurrentGroup(t *testing.T) {
	racetest.Heavy(t)
	tgt := TargetOrDie(t, "impl/qed")
	gen := DefaultGenConfig()
	gen.Weights[workload.Concurrent] = 4
	const seed = 17
	var ws []int
	ops := 0
	for w := 0; w < 300 && (ops < 4 || len(ws) < 6); w++ {
		s := WorkloadSeed(seed, w)
		wl := generate(s, gen)
		group := slices.IndexFunc(wl.Ops, func(op workload.Op) bool { return op.Kind == workload.Concurrent })
		if group < 0 {
			continue
		}
		sws, err := drawSweep(context.Background(), InProcess(tgt), wl, s, 1, 0, 1, nil)
		require.NoError(t, err)
		require.NotEmpty(t, sws, "workload %d: a workload with a concurrent group at op %d sweeps", w, group)
		ws = append(ws, w)
		for _, sw := range sws {
			require.NotEmpty(t, sw.rules)
			require.Less(t, sw.op, group, "workload %d: the swept op is before the first group", w)
			if sw.setup || sw.op < 0 || ops >= 4 {
				continue
			}
			ops++
			for _, rule := range sw.rules {
				rec, err := Record(tgt, wl, s, rule)
				require.NoError(t, err, rule)
				require.Len(t, rec.Injected, 1, "%s fires once", rule)
				at := -2
				for _, m := range rec.Marks {
					if m.Injected == 0 {
						at = m.Op
					}
				}
				require.Equal(t, sw.op, at, "workload %d, %s: fired in op %d", w, rule, at)
			}
		}
	}
	require.Equal(t, 4, ops, "workloads with concurrent groups sweeping a guest op")
	require.GreaterOrEqual(t, len(ws), 6)
	var rep Report
	for _, w := range ws[:6] {
		r, err := Run(context.Background(), Config{Seed: seed, Shard: Shard{Index: w, Count: w + 1}, Iterations: w + 1,
			Gen: gen, FaultShare: 1, FaultSweep: 1, Target: tgt, TargetName: tgt.Name()})
		require.NoError(t, err)
		require.Empty(t, r.Failures, "workload %d", w)
		rep.FaultSweeps += r.FaultSweeps
		rep.FaultSweepRuns += r.FaultSweepRuns
	}
	require.Equal(t, int64(6), rep.FaultSweeps)
	require.Greater(t, rep.FaultSweepRuns, rep.FaultSweeps)
}
