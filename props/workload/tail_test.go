package workload_test

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/qedtorture/qedtorture/impl/qed/qedtarget"
	"github.com/qedtorture/qedtorture/props/workload"
	"github.com/stretchr/testify/require"
)

// TestTailShape: GenConfig.TailChance's shape (a backing file longer than
// the image, a write into the partial last cluster, a grow, a read of the
// grown tail) is drawn when it fits, and impl/qed passes every one drawn:
// the grow zeros the bytes past the old size that the write's
// copy-on-write filled from the backing file. (With impl/qed's
// hideBackingTailLocked skipping the zeroing of a dirty tail, tried by
// hand, the read of the grown tail fails.)
func TestTailShape(t *testing.T) {
	cfg := workload.DefaultGenConfig()
	cfg.TailChance = 1
	shapes := 0
	for i := uint64(0); shapes < 12 && i < 2000; i++ {
		w := workload.Generate(rand.New(rand.NewPCG(7, i)), cfg)
		n := len(w.Ops)
		if n < 3 || w.Ops[n-1].Kind != workload.Read || w.Ops[n-2].Kind != workload.Resize || w.Ops[n-3].Kind != workload.Write {
			continue
		}
		wr, rs, rd := w.Ops[n-3], w.Ops[n-2], w.Ops[n-1]
		cs := int64(w.Geometry.ClusterSize)
		old := wr.Off + wr.Len
		if old%cs == 0 || rs.Off <= old || rd.Off != old&^(cs-1) || rd.Off+rd.Len != rs.Off || w.Geometry.Backing[0].Size <= old {
			continue // a workload ending so by chance
		}
		shapes++
		var b bytes.Buffer
		require.NoError(t, w.Format(&b))
		require.NoError(t, runScript(t, qedtarget.Target{}, b.String()), "draw %d:\n%s", i, b.String())
	}
	require.GreaterOrEqual(t, shapes, 12, "TailChance 1 draws the shape")
}

// TestZeroDataShape: GenConfig.ZeroDataChance's shape (a write of whole
// clusters, a reopen, a write-zeroes of the same clusters) opens the
// workload, the write ids still ascend (Validate), and impl/qed passes
// the workloads with a read of the zeroed clusters after it. (With
// impl/qed's WriteZeroes leaving allocated clusters as they are, tried by
// hand, the read fails.)
func TestZeroDataShape(t *testing.T) {
	cfg := workload.DefaultGenConfig()
	cfg.ZeroDataChance = 1
	shapes := 0
	for i := uint64(0); i < 40; i++ {
		w := workload.Generate(rand.New(rand.NewPCG(7, i)), cfg)
		require.NoError(t, w.Validate(), "draw %d", i)
		if w.Geometry.Size == 0 {
			continue
		}
		require.GreaterOrEqual(t, len(w.Ops), 3)
		wr, ro, z := w.Ops[0], w.Ops[1], w.Ops[2]
		require.Equal(t, workload.Write, wr.Kind, "draw %d", i)
		require.Equal(t, workload.Reopen, ro.Kind, "draw %d", i)
		require.Equal(t, workload.WriteZeroes, z.Kind, "draw %d", i)
		cs := int64(w.Geometry.ClusterSize)
		require.Zero(t, wr.Off%cs, "draw %d: whole clusters", i)
		require.Equal(t, [2]int64{wr.Off, wr.Len}, [2]int64{z.Off, z.Len}, "draw %d", i)
		shapes++
		w.Ops = append(w.Ops[:3], append([]workload.Op{{Kind: workload.Read, Off: z.Off, Len: z.Len}}, w.Ops[3:]...)...)
		var b bytes.Buffer
		require.NoError(t, w.Format(&b))
		require.NoError(t, runScript(t, qedtarget.Target{}, b.String()), "draw %d:\n%s", i, b.String())
	}
	require.Greater(t, shapes, 20)
}
