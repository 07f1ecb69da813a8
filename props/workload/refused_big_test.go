package workload

import (
	"math"
	"math/big"
	"testing"
)

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

// TestLimitBelow: limitBelow(g, n) is (entries per table)² × cluster size
// < n, computed exactly (math/big) for legal geometries and small odd
// ones, at n just below, at and above the product and at 2^62, 2^63 and
// 2^64 − 1.
func TestLimitBelow(t *testing.T) {
	for _, cs := range []uint32{1, 2, 3, 4096, 65536, 8 << 20, 64 << 20} {
		for _, ts := range []uint32{1, 2, 16, 64} {
			per := uint64(ts) * uint64(cs) / 8
			prod := new(big.Int).SetUint64(per)
			prod.Mul(prod, prod)
			sq := new(big.Int).Set(prod)
			prod.Mul(prod, new(big.Int).SetUint64(uint64(cs)))
			var ns []uint64
			for _, b := range []*big.Int{prod, sq} {
				for _, d := range []int64{-1, 0, 1, int64(per) - 1} {
					if v := new(big.Int).Add(b, big.NewInt(d)); v.Sign() >= 0 && v.IsUint64() {
						ns = append(ns, v.Uint64())
					}
				}
			}
			ns = append(ns, 1<<62, 1<<63, math.MaxUint64)
			for _, n := range ns {
				want := per == 0 || prod.Cmp(new(big.Int).SetUint64(n)) < 0
				if got := limitBelow(Geometry{ClusterSize: cs, TableSize: ts}, n); got != want {
					t.Errorf("cluster %d, table %d, n %d: %v, want %v", cs, ts, n, got, want)
				}
			}
		}
	}
}
