package workload

import (
	"strings"
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

// TestCanonicalShapesAim: every shape lands where its name says, on
// every layout and after a grow: the allocated, zero and unallocated
// (backing-covered) clusters are c0, c1 and c2 (the prefix makes them
// so); aligned means to the cluster, sector to 512 bytes and not to the
// cluster, unaligned to neither; a span crosses the boundary of the two
// clusters it names; the last-cluster shapes lie in the cluster holding
// the image's last byte and reach the end.
func TestCanonicalShapesAim(t *testing.T) {
	cluster := map[string]int64{"allocated": 0, "zero": 1, "unallocated": 2}
	for _, l := range CanonicalLayouts() {
		cs := int64(l.Geometry.ClusterSize)
		for _, size := range []int64{l.Geometry.Size, l.Geometry.Size + cs + 512} {
			last := (size - 1) / cs * cs
			for _, s := range CanonicalShapes() {
				op := s.Op(cs, size)
				what := l.Name + " " + s.Name
				inside := func(op Op, c0, c1 int64) { // op lies in clusters c0..c1
					t.Helper()
					require.Positive(t, op.Len, what)
					require.GreaterOrEqual(t, op.Off, c0*cs, what)
					require.LessOrEqual(t, op.Off+op.Len, (c1+1)*cs, what)
				}
				aligned := func(op Op, class string) {
					t.Helper()
					switch class {
					case "aligned":
						require.Zero(t, op.Off%cs, what)
						require.Zero(t, op.Len%cs, what)
					case "sector":
						require.Zero(t, op.Off%512, what)
						require.Zero(t, op.Len%512, what)
						require.NotZero(t, op.Off%cs+op.Len%cs, what)
					case "unaligned":
						require.NotZero(t, op.Off%512, what)
					}
				}
				parts := strings.Split(s.Name, "-")
				switch {
				case parts[0] == "write" && parts[1] == "span":
					c0, c1 := cluster[parts[2]], cluster[parts[3]]
					inside(op, c0, c1)
					require.Less(t, op.Off, c1*cs, what)
					require.Greater(t, op.Off+op.Len, c1*cs, what)
				case s.Name == "write-last-cluster":
					require.Equal(t, Write, op.Kind, what)
					inside(op, last/cs, last/cs)
					require.Equal(t, size, op.Off+op.Len, what)
					aligned(op, "unaligned")
				case parts[0] == "write":
					require.Equal(t, Write, op.Kind, what)
					inside(op, cluster[parts[2]], cluster[parts[2]])
					aligned(op, parts[1])
				case s.Name == "zero-aligned":
					require.Equal(t, WriteZeroes, op.Kind, what)
					inside(op, 0, 0)
					aligned(op, "aligned")
				case s.Name == "zero-unaligned":
					require.Equal(t, WriteZeroes, op.Kind, what)
					inside(op, 1, 2)
					require.Less(t, op.Off, 2*cs, what)
					require.Greater(t, op.Off+op.Len, 2*cs, what)
					aligned(op, "unaligned")
				case s.Name == "grow":
					require.Equal(t, Op{Kind: Resize, Off: size + cs + 512}, op, what)
				case s.Name == "concurrent-pair":
					require.Equal(t, Concurrent, op.Kind, what)
					require.Len(t, op.Group, 2, what)
					inside(op.Group[0], 2, 2)
					aligned(op.Group[0], "aligned")
					require.Equal(t, Op{Kind: Write, Off: last, Len: 512}, op.Group[1], what)
				default:
					require.Contains(t, []Kind{Flush, Reopen}, op.Kind, what)
				}
			}
		}
	}
}

// TestCanonicalLayouts: the layouts are what Exhaustive's doc draws:
// 4 KiB clusters, one-cluster tables, four clusters (the last partial,
// on a 512-byte boundary, in the unaligned ones), and in the backing ones
// a raw backing file ending inside c2.
func TestCanonicalLayouts(t *testing.T) {
	ls := CanonicalLayouts()
	require.Len(t, ls, 4)
	for _, l := range ls {
		g := l.Geometry
		require.NoError(t, (&Workload{Geometry: g}).Validate(), l.Name)
		cs := int64(g.ClusterSize)
		require.Equal(t, int64(4096), cs, l.Name)
		require.Equal(t, uint32(1), g.TableSize, l.Name)
		if strings.Contains(l.Name, "unaligned") {
			require.Greater(t, g.Size, 3*cs, l.Name)
			require.Less(t, g.Size, 4*cs, l.Name)
			require.Zero(t, g.Size%512, l.Name)
		} else {
			require.Equal(t, 4*cs, g.Size, l.Name)
		}
		if !strings.HasSuffix(l.Name, "-backing") {
			require.Empty(t, g.Backing, l.Name)
			continue
		}
		require.Len(t, g.Backing, 1, l.Name)
		b := g.Backing[0]
		require.Equal(t, "raw", b.Format, l.Name)
		require.Greater(t, b.Size, 2*cs, l.Name)
		require.Less(t, b.Size, 3*cs, l.Name)
	}
}
