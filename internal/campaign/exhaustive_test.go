package campaign

import (
	"context"
	"testing"

	"github.com/qedtorture/qedtorture/crashsim"
	"github.com/qedtorture/qedtorture/props/workload"
	"github.com/stretchr/testify/require"
)

// smallExhaustive is a cut of the canonical source: one layout with a
// backing file, three shapes, depth 2 (12 workloads).
func smallExhaustive() *workload.Exhaustive {
	x := workload.NewExhaustive(2)
	x.Layouts = x.Layouts[2:3]
	var shapes []workload.Shape
	for _, s := range x.Shapes {
		switch s.Name {
		case "write-unaligned-unallocated", "flush", "grow":
			shapes = append(shapes, s)
		}
	}
	x.Shapes = shapes
	return x
}

// TestExhaustiveCampaign: an exhaustive campaign runs every workload of
// its source once (Iterations = Len), judges every crash state (no
// (point, model) pair over the bound), states it in the report, and two
// shards cover the same workloads as one run.
func TestExhaustiveCampaign(t *testing.T) {
	models := []crashsim.Model{{Base: crashsim.Prefix}, {Base: crashsim.Subset}, {Base: crashsim.Torn, Sector: 4096}}
	cfg := func(sh Shard) Config {
		return Config{Seed: 1, Shard: sh, Workers: 2, Exhaustive: smallExhaustive(), Models: models, Target: TargetOrDie(t, "impl/qed")}
	}
	rep, err := Run(context.Background(), cfg(Shard{}))
	require.NoError(t, err)
	require.Equal(t, int64(12), rep.Workloads)
	require.Zero(t, rep.FailedWorkloads)
	require.Equal(t, 12, rep.Iterations)
	require.NotNil(t, rep.Exhaustive)
	require.Zero(t, rep.Exhaustive.OverBound)
	require.Equal(t, uint64(ExhaustiveBound), rep.Exhaustive.Bound)
	require.Greater(t, rep.CrashStates, rep.CrashPoints)
	require.Equal(t, []string{"write-unaligned-unallocated", "flush", "grow"}, rep.Exhaustive.Vocabulary)
	require.Contains(t, rep.ExhaustiveSummary(), "exhaustive to depth 2: 12 workloads, ")
	require.Contains(t, rep.ExhaustiveSummary(), " crash states, 0 failures")
	t.Log(rep.ExhaustiveSummary())

	var shards []*Report
	for i := range 2 {
		r, err := Run(context.Background(), cfg(Shard{Index: i, Count: 2}))
		require.NoError(t, err)
		require.Equal(t, int64(6), r.Workloads)
		shards = append(shards, r)
	}
	m, err := Merge(shards...)
	require.NoError(t, err)
	require.Equal(t, rep.WorkloadDigest, m.WorkloadDigest, "the shards ran the same workloads")
	require.Equal(t, rep.CrashStates, m.CrashStates)
	require.Equal(t, rep.ExhaustiveSummary(), m.ExhaustiveSummary())
}

// TestExhaustiveFindsBrokenTarget: the exhaustive source finds a target
// that never syncs (a crash loses flushed data).
func TestExhaustiveFindsBrokenTarget(t *testing.T) {
	rep, err := Run(context.Background(), Config{Seed: 1, Workers: 1, Exhaustive: smallExhaustive(),
		Target: TargetOrDie(t, "broken:nosync"), MinimizeCandidates: 20})
	require.NoError(t, err)
	require.Equal(t, int64(1), rep.FailedWorkloads)
	require.Contains(t, rep.ExhaustiveSummary(), "1 failures")
}

// TestExhaustiveConfig: an exhaustive campaign refuses a workload file.
func TestExhaustiveConfig(t *testing.T) {
	_, err := Run(context.Background(), Config{Exhaustive: smallExhaustive(), Workload: workload.NewExhaustive(1).Workload(0),
		Target: TargetOrDie(t, "impl/qed")})
	require.ErrorIs(t, err, ErrConfig)
}
