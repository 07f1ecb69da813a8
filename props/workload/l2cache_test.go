package workload

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestL2CacheKey: the image line's l2_cache=N round-trips, is refused
// out of 1..MaxL2Cache, and reaches every open of the image.
func TestL2CacheKey(t *testing.T) {
	src := "qedtorture-workload v1\nimage cluster_size=4096 table_size=1 size=8388608 l2_cache=2\nwrite 0x0 0x200 id=1\n"
	w, err := Parse(strings.NewReader(src))
	require.NoError(t, err)
	require.Equal(t, 2, w.Geometry.L2Cache)
	require.Equal(t, src, w.String())
	e := &Exec{W: w}
	require.Equal(t, 2, e.OpenOptions(false).L2CacheTables)
	require.True(t, e.OpenOptions(true).ReadOnly)
	for _, bad := range []string{"l2_cache=65", "l2_cache=x"} {
		_, err := Parse(strings.NewReader(strings.Replace(src, "l2_cache=2", bad, 1)))
		require.Error(t, err, bad)
	}
	w.Geometry.L2Cache = -1
	require.ErrorIs(t, w.Validate(), ErrInvalid)
}

// TestGenerateL2Cache: only images spanning more than one L2 table get a
// small cache (one or two tables), about L2CacheChance of them; none
// with NoExtras.
func TestGenerateL2Cache(t *testing.T) {
	cfg := DefaultGenConfig()
	spanning, small := 0, 0
	for i := range 3000 {
		w := Generate(rand.New(rand.NewPCG(uint64(i), 9)), cfg)
		g := w.Geometry
		span := int64(g.TableSize) * int64(g.ClusterSize) / 8 * int64(g.ClusterSize)
		if w.SizeAt(len(w.Ops)) > span {
			spanning++
		}
		if g.L2Cache != 0 {
			small++
			require.Contains(t, []int{1, 2}, g.L2Cache)
			require.Greater(t, w.SizeAt(len(w.Ops)), span, "workload %d: a small cache for one L2 table", i)
		}
	}
	require.InDelta(t, 0.5, float64(small)/float64(spanning), 0.08, "%d of %d spanning images", small, spanning)
	cfg.NoExtras()
	for i := range 200 {
		require.Zero(t, Generate(rand.New(rand.NewPCG(uint64(i), 9)), cfg).Geometry.L2Cache)
	}
}
