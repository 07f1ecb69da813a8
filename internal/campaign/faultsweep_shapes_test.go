package campaign

import (
	"context"
	"slices"
	"testing"

	"github.com/qedtorture/qedtorture/internal/racetest"
	"github.com/qedtorture/qedtorture/props/workload"
	"github.com/stretchr/testify/require"
)

// TestWithShapeSteps: a rare shape's step replaces the plan's step of
// its kind, is added to a short plan, else replaces the lightest kind's
// step; a step that made no operation is left out; the plan stays sorted
// and of distinct kinds.
func TestWithShapeSteps(t *testing.T) {
	kinds := []string{SetupStep, ReopenStep, "write", "write-zeroes", "commit", "write-zeroes", "resize", "read"}
	counts := []uint64{5, 3, 4, 6, 40, 2, 9, 1}
	// Replaces the drawn write-zeroes (step 3) with the shape's (step 5).
	require.Equal(t, []int{0, 4, 5}, withShapeSteps([]int{0, 3, 4}, []int{5}, counts, kinds, SweepSteps))
	// Added to a short plan.
	require.Equal(t, []int{0, 4, 5}, withShapeSteps([]int{0, 4}, []int{5}, counts, kinds, SweepSteps))
	// A full plan: the lightest kind (the read, weight 1) gives way.
	require.Equal(t, []int{0, 2, 4, 5}, withShapeSteps([]int{0, 2, 4, 7}, []int{5}, counts, kinds, SweepSteps))
	// Two shapes, a full plan: neither replaces the other.
	require.Equal(t, []int{0, 4, 5, 6}, withShapeSteps([]int{0, 2, 4, 7}, []int{5, 6}, counts, kinds, SweepSteps))
	// Already in, or no operation: unchanged.
	require.Equal(t, []int{0, 5}, withShapeSteps([]int{0, 5}, []int{5}, counts, kinds, SweepSteps))
	zero := slices.Clone(counts)
	zero[5] = 0
	require.Equal(t, []int{0, 3}, withShapeSteps([]int{0, 3}, []int{5}, zero, kinds, SweepSteps))
}

// TestSweepsShapeSteps: a workload drawn for a fault with the zero-data
// shape or the tail shape before its first concurrent group sweeps at a
// sweep share that chooses almost none, and its sweep aims at the
// shape's write-zeroes and grow (shapeOps finds them in generated
// workloads: the generator's shapes and the campaign's detection agree).
func TestSweepsShapeSteps(t *testing.T) {
	racetest.Heavy(t)
	tgt := TargetOrDie(t, "impl/qed")
	gen := DefaultGenConfig()
	gen.TailChance, gen.ZeroDataChance = 1, 1
	const seed = 5
	zeroSeen, tailSeen := 0, 0
	for w := 0; w < 400 && (zeroSeen < 2 || tailSeen < 2); w++ {
		s := WorkloadSeed(seed, w)
		if !FaultChosen(s, 1, 0) {
			continue
		}
		wl := generate(s, gen)
		group := firstGroup(wl.Ops)
		shapes := shapeOps(wl.Ops[:group], wl.Geometry.ClusterSize)
		if len(shapes) == 0 {
			continue
		}
		sws, err := drawSweep(context.Background(), InProcess(tgt), wl, s, 1, 0, 1e-9, nil)
		require.NoError(t, err)
		require.NotEmpty(t, sws, "workload %d: shape steps %v swept", w, shapes)
		require.LessOrEqual(t, len(sws), SweepSteps)
		for _, o := range shapes {
			switch wl.Ops[o].Kind {
			case workload.WriteZeroes:
				zeroSeen++
			case workload.Resize:
				tailSeen++
			default:
				t.Fatalf("workload %d: shape op %d is a %s", w, o, wl.Ops[o].Kind)
			}
			require.True(t, slices.ContainsFunc(sws, func(sw *sweep) bool { return !sw.setup && sw.op == o }),
				"workload %d: the shape's op %d (%s) swept", w, o, wl.Ops[o].Kind)
		}
	}
	require.GreaterOrEqual(t, zeroSeen, 2, "zero-data shapes swept")
	require.GreaterOrEqual(t, tailSeen, 2, "tail shapes swept")
}
