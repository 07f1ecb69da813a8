package workload

import (
	"math/rand/v2"
	"testing"
)

// TestRebaseNotDrawnOnHugeImages: a rebase is drawn on an image of at
// most maxRebaseImage bytes only (its setup holds the new backing file,
// as long as the image, in memory: a wide image of big tables, 128 GiB
// and more, ran out of memory), and still is on one of that size.
func TestRebaseNotDrawnOnHugeImages(t *testing.T) {
	for _, c := range []struct {
		size int64
		ok   bool
	}{{maxRebaseImage, true}, {maxRebaseImage + 512, false}, {128 << 30, false}} {
		drawn := false
		for seed := range uint64(16) {
			g := &OpGen{Rand: rand.New(rand.NewPCG(seed, 1)), Size: c.size, ClusterSize: 256 << 10, Backing: true}
			if _, ok := g.Draw(Rebase); ok {
				drawn = true
			}
		}
		if drawn != c.ok {
			t.Errorf("image of %d bytes: rebase drawn %v, want %v", c.size, drawn, c.ok)
		}
	}
}
