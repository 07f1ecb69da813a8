package oracle

import (
	"math/rand/v2"
	"testing"

	"github.com/qedtorture/qedtorture/model"
	"github.com/stretchr/testify/require"
)

// TestDiffSpansOutsideSegments: stage 7 skips the comparison with the
// durable contents of the blocks that lie wholly inside a changed range
// (diffSpansOutside); the segments it then checks (reopenSegments) are
// exactly those of the full comparison (diffSpans), dense and sparse, at
// aligned and unaligned chunk offsets, with differing bytes inside,
// outside and at the edges of changed ranges. A skipped block must not
// show in the spans (the comparison is really left out), and a differing
// byte outside changed in a block that changed ranges partly cover must.
func TestDiffSpansOutsideSegments(t *testing.T) {
	const size = 1 << 20
	seed := uint64(7)
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 8))
	m, _ := model.New(size, nil)
	for range 16 {
		_, _ = m.Write(rng.Int64N(size-0x10000)/512*512, 512*(1+rng.Int64N(64)))
	}
	m.Flush()
	dense, err := NewDurable(m)
	require.NoError(t, err)
	sparse, err := sharedDurable(m)
	require.NoError(t, err)
	cur := make([]byte, size)
	require.NoError(t, m.ReadAt(cur, 0))
	skipped := 0
	for i := range 3000 {
		off := rng.Int64N(size-0x20000) / 512 * 512
		if rng.IntN(2) == 0 {
			off = off / durableBlock * durableBlock
		}
		n := 1 + rng.Int64N(oracleChunk)
		p := make([]byte, n)
		copy(p, cur[off:])
		for range rng.IntN(6) {
			p[rng.Int64N(n)] ^= 0x20
		}
		var changed []model.Range
		for pos := off - int64(rng.IntN(3))*4096; pos < off+n; {
			l := int64(1+rng.IntN(40)) * 256
			changed = append(changed, model.Range{Off: max(pos, 0), Len: l})
			pos += l + int64(1+rng.IntN(40))*256
		}
		for _, d := range []*Durable{dense, sparse} {
			full := d.diffSpans(off, p, nil)
			part := d.diffSpansOutside(off, p, nil, changed)
			require.Equal(t, reopenSegments(nil, off, p, full, changed), reopenSegments(nil, off, p, part, changed),
				"case %d: chunk [%#x,+%#x), changed %v", i, off, n, changed)
			if len(full) != len(part) || !equalSpans(full, part) {
				skipped++
			}
		}
	}
	require.Positive(t, skipped, "no block was ever skipped")

	// A flipped byte in a block wholly inside changed is not compared; one
	// in the same block just past a changed range's end is.
	p := make([]byte, 0x4000)
	copy(p, cur[0x10000:])
	p[0x1800] ^= 1
	inside := []model.Range{{Off: 0x11000, Len: 0x1000}}
	require.Empty(t, dense.diffSpansOutside(0x10000, p, nil, inside))
	require.Equal(t, [][2]int{{0x1000, 0x2000}}, dense.diffSpans(0x10000, p, nil))
	edge := []model.Range{{Off: 0x11000, Len: 0x800}}
	require.Equal(t, [][2]int{{0x1000, 0x2000}}, dense.diffSpansOutside(0x10000, p, nil, edge))
	require.Equal(t, [][2]int{{0, 0x4000}}, (*Durable)(nil).diffSpansOutside(0x10000, p, nil, inside), "no durable contents: all of p")
}

func equalSpans(a, b [][2]int) bool {
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
