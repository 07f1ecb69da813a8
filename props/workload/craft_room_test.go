package workload_test

import (
	"math/rand/v2"
	"testing"

	"github.com/qedtorture/qedtorture/impl/qed/qedtarget"
	"github.com/qedtorture/qedtorture/props/workload"
	"github.com/spf13/afero"
	"github.com/stretchr/testify/require"
)

// TestCraftedNameLeavesRoom: a crafted long backing name leaves room in
// the header for the new name of the workload's first rebase-unsafe, which
// a crash-safe rename writes beside the old one (impl/qed refuses a name
// that fits neither beside it nor in sector 0). PROPS_SEED=
// 15084894648886741058's workload 37 drew a 3525-byte crafted name in a
// 4 KiB header and then "rebase-unsafe 897", refused.
func TestCraftedNameLeavesRoom(t *testing.T) {
	cfg := workload.DefaultGenConfig()
	cfg.CraftChance, cfg.BackingChance, cfg.HugeChance = 1, 1, 0
	cfg.Weights[workload.RebaseUnsafe] = 20
	long, ran := 0, 0
	for i := range uint64(3000) {
		w := workload.Generate(rand.New(rand.NewPCG(99, i)), cfg)
		g := w.Geometry
		if g.Craft.BackingName == 0 {
			continue
		}
		var n int64
		for _, op := range w.Ops {
			if op.Kind == workload.Rebase || op.Kind == workload.RebaseUnsafe {
				if op.Kind == workload.RebaseUnsafe {
					n = op.Len
				}
				break
			}
		}
		if n <= 512-64 {
			continue
		}
		long++
		hs := int64(max(g.Craft.HeaderSize, 1))
		require.LessOrEqual(t, 512+int64(g.Craft.BackingName)+n, hs*int64(g.ClusterSize), "workload %d:\n%s", i, w)
		if ran < 20 { // and impl/qed runs them
			ran++
			e, err := workload.NewExec(qedtarget.Target{}, afero.NewMemMapFs(), "/w", w)
			require.NoError(t, err, "workload %d:\n%s", i, w)
			require.NoError(t, e.RunAll(), "workload %d:\n%s", i, w)
			require.NoError(t, e.Disk.Close())
		}
	}
	require.Positive(t, long, "crafted long names before a long rebase-unsafe name drawn")
	t.Logf("%d workloads with a crafted name and a long first rebase-unsafe name, %d run", long, ran)
}
