package workload

import (
	"math/rand/v2"
	"testing"

	"github.com/qedtorture/qedtorture/model"
	"github.com/stretchr/testify/require"
)

// TestGenerateFitsModel: every image and backing file a workload draws,
// at any legal geometry, is one the model can hold. With 4 MiB clusters
// and 16-cluster tables one L2 table maps 32 TiB: the wide images (two or
// three tables) were drawn at 32 to 64 TiB and every such workload failed
// its setup, reported as the target's failure.
func TestGenerateFitsModel(t *testing.T) {
	require.Equal(t, model.MaxSize, int64(MaxImageSize))
	for _, g := range []struct{ cs, ts uint32 }{{4 << 20, 16}, {64 << 20, 16}, {2 << 20, 4}, {4096, 1}} {
		cfg := DefaultGenConfig()
		cfg.ClusterSizes, cfg.TableSizes, cfg.MaxClusters = []uint32{g.cs}, []uint32{g.ts}, 8
		cfg.WideChance, cfg.HugeChance, cfg.BackingChance = 0.5, 0.2, 0.8
		wide := 0
		for seed := range uint64(300) {
			w := Generate(rand.New(rand.NewPCG(seed, 7)), cfg)
			require.NoError(t, w.Validate(), "cluster %d table %d seed %d:\n%s", g.cs, g.ts, seed, w)
			require.LessOrEqual(t, w.Geometry.Size, model.MaxSize)
			for _, b := range w.Geometry.Backing {
				require.LessOrEqual(t, b.Size, model.MaxSize)
			}
			for _, op := range w.Ops {
				if op.Kind == Resize {
					require.LessOrEqual(t, op.Off, model.MaxSize)
				}
			}
			if span := int64(g.ts) * int64(g.cs) / 8 * int64(g.cs); w.Geometry.Size > span {
				wide++
			}
		}
		if g.cs <= 2<<20 {
			require.Positive(t, wide, "cluster %d table %d: wide images still drawn where they fit", g.cs, g.ts)
		}
	}
}
