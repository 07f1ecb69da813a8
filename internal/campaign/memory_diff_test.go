package campaign

import (
	"testing"

	"github.com/qedtorture/qedtorture/props/workload"
	"github.com/stretchr/testify/require"
)

// TestWorkloadMemoryFillAfterGrow: the copy-on-write fill is capped at
// the largest size the image takes (a grow raises the cap), not at the
// size it was created with: 512 one-byte writes over a backing file, two
// in each of the first 256 clusters, fill 512 × 4095 bytes, more than
// the 1 MiB image and less than the 2 MiB it grows to first. (Mutant
// checked by hand: the grow not taken for the cap, `op.Kind !=
// workload.Resize`, fails this test.)
func TestWorkloadMemoryFillAfterGrow(t *testing.T) {
	g := workload.Geometry{ClusterSize: 4096, TableSize: 4, Size: 1 << 20,
		Backing: []workload.Backing{{Format: "raw", Size: 1 << 20}}}
	var writes []workload.Op
	for i := range int64(512) {
		writes = append(writes, workload.Op{Kind: workload.Write, Off: i%256*4096 + 1, Len: 1})
	}
	fill := int64(512 * 4095)
	flat := WorkloadMemory(&workload.Workload{Geometry: g, Ops: writes})
	grown := WorkloadMemory(&workload.Workload{Geometry: g,
		Ops: append([]workload.Op{{Kind: workload.Resize, Off: 2 << 20}}, writes...)})
	require.Equal(t, fill-(1<<20), grown-flat, "the fill capped at 1 MiB without the grow, %d bytes with it", fill)
}

// TestMaxGenMemoryFewRequests: a generator whose ops draw fewer than two
// requests on average (none, one) is estimated, not refused by a panic:
// the typical workload holds that many writes. (Mutant checked by hand:
// the ops' capacity computed as n-2, negative for such a generator,
// panics here.)
func TestMaxGenMemoryFewRequests(t *testing.T) {
	gen := workload.GenConfig{ClusterSizes: []uint32{65536}, TableSizes: []uint32{4}, MaxClusters: 10, Ops: 5,
		Weights: map[workload.Kind]int{workload.Read: 1, workload.Concurrent: 0}}
	table := int64(256<<10/512 + 4096*(10+1))
	base := int64(16<<20) + 8*table + 3*(640<<10) + 65536
	require.Zero(t, expectedRequests(gen))
	n, _ := maxGenMemory(gen)
	require.Equal(t, base, n, "no request")
	gen.Ops = 1
	gen.Weights = map[workload.Kind]int{workload.Write: 1, workload.Read: 3}
	require.Equal(t, 1, expectedRequests(gen))
	n, _ = maxGenMemory(gen)
	require.Equal(t, base+65536+65536+4*65536, n, "one write: held, its buffer, the memo")
}

// TestExpectedRequestsWeights: a concurrent group counts three requests
// whatever its weight (TestMaxGenMemory's weight of 1 could not tell
// three times the weight from three divided by it; mutant checked by
// hand: `3 / wt` fails this test).
func TestExpectedRequestsWeights(t *testing.T) {
	gen := workload.GenConfig{Ops: 4, Weights: map[workload.Kind]int{workload.Write: 1, workload.Concurrent: 2, workload.Read: 1}}
	require.Equal(t, 7, expectedRequests(gen), "4 ops: a quarter writes, half groups of three")
	gen.Weights[workload.Concurrent] = 6
	gen.Weights[workload.WriteZeroes] = 2
	require.Equal(t, 9, expectedRequests(gen), "4 ops of weights 1+6+1+2: (1+18+2)*4/10, rounded up")
}
