package workload

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestExhaustiveEnumeratesEverySequence: Len counts every sequence of 1
// to Depth shapes on every layout, each index gives a valid workload of
// the prefix plus its shapes, and no two indices give the same workload.
func TestExhaustiveEnumeratesEverySequence(t *testing.T) {
	x := NewExhaustive(2)
	nl, ns := len(x.Layouts), len(x.Shapes)
	require.Equal(t, nl*(ns+ns*ns), x.Len())
	seen := map[string]int{}
	kinds := map[Kind]bool{}
	for i := range x.Len() {
		w := x.Workload(i)
		require.NoError(t, w.Validate(), "workload %d (%s)", i, x.Describe(i))
		l, seq := x.Sequence(i)
		require.Len(t, w.Ops, Prefix+len(seq))
		require.Equal(t, x.Layouts[l].Geometry.Size, w.Geometry.Size)
		for _, op := range w.Ops[Prefix:] {
			kinds[op.Kind] = true
		}
		s := w.String()
		j, dup := seen[s]
		require.False(t, dup, "workloads %d and %d are the same", i, j)
		seen[s] = i
		require.Equal(t, w.String(), x.Workload(i).String(), "deterministic")
	}
	for _, k := range []Kind{Write, WriteZeroes, Flush, Resize, Reopen, Concurrent} {
		require.True(t, kinds[k], "the vocabulary has %s", k)
	}
	require.Equal(t, "4k-aligned: write-aligned-allocated", x.Describe(0))
	require.Equal(t, "4k-unaligned-backing: concurrent-pair, concurrent-pair", x.Describe(x.Len()-1))
	require.Panics(t, func() { x.Workload(x.Len()) })
}

// TestExhaustiveDepth3Valid: every workload of depth 3 is valid (the
// shapes stay inside the image whatever came before).
func TestExhaustiveDepth3Valid(t *testing.T) {
	x := NewExhaustive(3)
	for i := range x.Len() {
		require.NoError(t, x.Workload(i).Validate(), "workload %d (%s)", i, x.Describe(i))
	}
}
