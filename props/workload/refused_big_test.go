package workload

import "testing"

// TestRefusedBeyondLimitBigClusters: "refused 8" (a resize to 2^62 must be
// refused) applies only where the geometry addresses less than 2^62 bytes;
// big clusters (issue 14.3's draws: 8 MiB and more with one-cluster
// tables) address more, where the resize is legal (a campaign reported it
// as not refused, seed 14, workload 85).
func TestRefusedBeyondLimitBigClusters(t *testing.T) {
	for _, c := range []struct {
		cs, ts uint32
		below  bool
	}{
		{4096, 1, true}, {65536, 16, true}, {4 << 20, 1, true}, {8 << 20, 1, false}, {16 << 20, 1, false}, {64 << 20, 16, false},
	} {
		if got := limitBelow(Geometry{ClusterSize: c.cs, TableSize: c.ts}, 1<<62); got != c.below {
			t.Errorf("cluster %d, table %d: limit below 2^62 %v, want %v", c.cs, c.ts, got, c.below)
		}
	}
}
