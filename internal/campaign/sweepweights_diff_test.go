package campaign

import (
	"testing"

	"github.com/qedtorture/qedtorture/props/workload"
	"github.com/stretchr/testify/require"
)

// TestShapeOpsEdges: shapeOps at the edges of its patterns, on
// hand-made ops: the zero-data shape as the whole workload (exactly three
// ops); the tail shape's write starting exactly where the read does,
// and the shapes' near misses: a write ending on a cluster boundary, a
// resize to the end of the write. (Mutants checked by hand, each failing
// this test: `len(ops) > 3`; in the tail shape's test, `wr.Off > rd.Off`,
// `wr.Off+wr.Len <= gr.Off`, `wr.Off-wr.Len < gr.Off`, `(wr.Off-wr.Len)%cs`
// and `(wr.Off+wr.Len)*cs`.)
func TestShapeOpsEdges(t *testing.T) {
	const cs = 4096
	zero := []workload.Op{
		{Kind: workload.Write, Off: 0x3000, Len: 0x2000},
		{Kind: workload.Reopen},
		{Kind: workload.WriteZeroes, Off: 0x3000, Len: 0x2000},
	}
	require.Equal(t, []int{2}, shapeOps(zero, cs), "the zero-data shape alone")
	require.True(t, sweepsShape(zero, cs))
	require.Empty(t, shapeOps(zero[:2], cs), "two ops")
	other := append([]workload.Op(nil), zero...)
	other[2].Len = 0x1000
	require.Empty(t, shapeOps(other, cs), "the write-zeroes of another range")
	// The tail shape: a write up to an unaligned end below the new size,
	// a grow, a read from a cluster boundary to the new size.
	tail := []workload.Op{
		{Kind: workload.Write, Off: 0x8000, Len: 0x800},
		{Kind: workload.Resize, Off: 0x10000},
		{Kind: workload.Read, Off: 0x8000, Len: 0x8000},
	}
	require.Equal(t, []int{1}, shapeOps(tail, cs), "the write starting where the read does")
	aligned := append([]workload.Op(nil), tail...)
	aligned[0].Len = 0x1000
	require.Empty(t, shapeOps(aligned, cs), "a write ending on a cluster boundary")
	aligned[0].Off, aligned[0].Len = 0x8100, 0xf00
	require.Empty(t, shapeOps(aligned, cs), "a write from off a boundary to one")
	// A resize to the size it has is no grow: a write ending at it is
	// not the tail shape's.
	same := []workload.Op{
		{Kind: workload.Write, Off: 0x8000, Len: 0x800},
		{Kind: workload.Resize, Off: 0x8800},
		{Kind: workload.Read, Off: 0x8000, Len: 0x800},
	}
	require.Empty(t, shapeOps(same, cs), "a resize to the write's end")
	require.Equal(t, []int{2, 4}, shapeOps(append(append([]workload.Op(nil), zero...), tail...), cs), "both")
}

// TestFirstGroupAtZero: a concurrent group as the first op: no step is
// numbered the same in every run (mutant checked by hand: `i > 0`, which
// took a group at index 0 for none, fails this test).
func TestFirstGroupAtZero(t *testing.T) {
	group := workload.Op{Kind: workload.Concurrent, Group: []workload.Op{{Kind: workload.Write, Len: 512}, {Kind: workload.Write, Off: 512, Len: 512}}}
	w := workload.Op{Kind: workload.Write, Len: 512}
	require.Equal(t, 0, firstGroup([]workload.Op{group, w}))
	require.Equal(t, 1, firstGroup([]workload.Op{w, group, w}))
	require.Equal(t, 2, firstGroup([]workload.Op{w, w}))
	require.Equal(t, 0, firstGroup(nil))
}

// TestWithShapeStepsEdges: withShapeSteps where its choices sit at the
// plan's first index: a plan whose first step is of the shape's kind
// (replaced, not added beside it), a full plan whose lightest step is
// its first (that one gives way, not a heavier one after it), and a
// full plan of shapes' steps only (nothing gives way). (Mutants checked
// by hand, each failing this test: `j > 0` for the step of the shape's
// kind; `j := 1`; `j <= 0` in the search for the lightest step; `j > 0`
// before the replacement.)
func TestWithShapeStepsEdges(t *testing.T) {
	kinds := []string{SetupStep, ReopenStep, "write", "write-zeroes", "commit", "write-zeroes", "resize", "read"}
	counts := []uint64{5, 3, 4, 6, 40, 2, 9, 1}
	require.Equal(t, []int{4, 5}, withShapeSteps([]int{3, 4}, []int{5}, counts, kinds, SweepSteps), "the first step of the shape's kind")
	require.Equal(t, []int{2, 5}, withShapeSteps([]int{1, 2}, []int{5}, counts, kinds, 2), "the lightest step first")
	require.Equal(t, []int{5}, withShapeSteps([]int{5}, []int{5, 6}, counts, kinds, 1), "a plan of shapes' steps only")
}
