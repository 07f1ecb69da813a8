package oracle

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/qedtorture/qedtorture/model"
	"github.com/qedtorture/qedtorture/props/check"
	"github.com/stretchr/testify/require"
)

// TestReadRanges: above the limit, the union of the extra ranges, the
// model's data, the backing range and the mapped clusters, merged and
// clipped to the size, and a bounded sample of each gap between them that
// holds its first and last byte; up to it, everything.
func TestReadRanges(t *testing.T) {
	b, _ := model.New(8192, nil)
	_, _ = b.Write(0, 8192)
	b.Flush()
	m, _ := model.New(1<<20, b)
	_, _ = m.Write(0x40000, 0x1000)
	require.NoError(t, m.WriteZeroes(0x50000, 0x10000)) // zeros: not data
	m.Flush()
	got := readRanges(m, 1<<20, 4096, []model.Range{{Off: 0x1000, Len: 0x2000}, {Off: 0xff000, Len: 0x2000}},
		[]check.Range{{Off: 0x40000, Len: 0x10000}})
	must := []model.Range{{Off: 0, Len: 0x3000}, {Off: 0x40000, Len: 0x10000}, {Off: 0xff000, Len: 0x1000}}
	gaps := []model.Range{{Off: 0x3000, Len: 0x3d000}, {Off: 0x50000, Len: 0xaf000}}
	covered := func(off int64) bool {
		for _, r := range got {
			if r.Off <= off && off < r.Off+r.Len {
				return true
			}
		}
		return false
	}
	for _, r := range must {
		for off := r.Off; off < r.Off+r.Len; off += 512 {
			require.True(t, covered(off), "%#x of %v not read: %v", off, r, got)
		}
	}
	for _, g := range gaps {
		require.True(t, covered(g.Off) && covered(g.Off+g.Len-1), "gap %v: edges not sampled: %v", g, got)
	}
	total := int64(0)
	for i, r := range got {
		total += r.Len
		if i > 0 {
			require.Greater(t, r.Off, got[i-1].Off+got[i-1].Len, "sorted and merged: %v", got)
		}
	}
	require.LessOrEqual(t, total, int64(0x3000+0x10000+0x1000+2*3*sampleLen), "%v", got)
	require.Equal(t, got, readRanges(m, 1<<20, 4096, []model.Range{{Off: 0x1000, Len: 0x2000}, {Off: 0xff000, Len: 0x2000}},
		[]check.Range{{Off: 0x40000, Len: 0x10000}}), "deterministic")
	require.Equal(t, []model.Range{{Off: 0, Len: 1 << 20}}, readRanges(m, 1<<20, 1<<20, nil, nil))
}

// TestSampleGapsBounded: many gaps are sampled at most maxSampledGaps of
// them, spread over the image, and different seeds pick different pieces.
func TestSampleGapsBounded(t *testing.T) {
	var rs []model.Range
	for i := range int64(100) {
		rs = append(rs, model.Range{Off: i << 20, Len: 4096})
	}
	size := int64(100 << 20)
	pieces := map[int64]bool{}
	for seed := range uint64(8) {
		got := mergeRanges(sampleGaps(slices.Clone(rs), size, seed), size)
		extra := int64(0)
		for _, r := range got {
			extra += r.Len
			pieces[r.Off] = true
		}
		extra -= 100 * 4096
		require.LessOrEqual(t, extra, int64(maxSampledGaps*3*sampleLen), "seed %d", seed)
		require.Positive(t, extra)
		require.Greater(t, got[len(got)-1].Off, size/2, "spread over the image")
	}
	require.Greater(t, len(pieces), 150, "seeds sample different pieces")
}

// TestDurableSparseMatchesDense: durable contents built after another's
// (NewDurableAfter, sharing every block) find the same differing blocks as
// ones built afresh.
func TestDurableSparseMatchesDense(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	m, _ := model.New(1<<20, nil)
	for range 20 {
		_, _ = m.Write(rng.Int64N(1<<20-0x3000), 1+rng.Int64N(0x3000))
	}
	m.Flush()
	dense, err := NewDurable(m)
	require.NoError(t, err)
	sparse, err := sharedDurable(m)
	require.NoError(t, err)
	buf := make([]byte, 1<<20)
	require.NoError(t, m.ReadAt(buf, 0))
	for range 500 {
		off := rng.Int64N(1<<20-1) / 512 * 512
		n := 1 + rng.Int64N(min(1<<20-off, 3*durableBlock))
		p := append([]byte(nil), buf[off:off+n]...)
		for range rng.IntN(3) {
			p[rng.Int64N(n)] ^= 0x40
		}
		a := dense.diffSpans(off, p, nil)
		b := sparse.diffSpans(off, p, nil)
		require.Equal(t, a, b, "read [%#x,+%#x)", off, n)
	}
}

// TestReopenRanges: stage 7 reads what the closed image's map does not
// prove: changed, the image's own data, mapped clusters, backing data
// under zero clusters, own write-zeroes over the backing range and the
// backing file past the creation size; a changed header reads everything.
func TestReopenRanges(t *testing.T) {
	b, _ := model.New(0x40000, nil)
	_, _ = b.Write(0, 0x40000)
	b.Flush()
	m, _ := model.New(0x20000, b) // backing longer than the image
	require.NoError(t, m.Grow(0x80000))
	_, _ = m.Write(0x50000, 0x1000)
	require.NoError(t, m.WriteZeroes(0x8000, 0x1000))
	m.Flush()
	hdr := check.Header{ClusterSize: 4096, TableSize: 1, HeaderSize: 1, ImageSize: 0x80000}
	before := &check.Report{Header: hdr}
	after := &check.Report{Header: hdr,
		Mapped: []check.Range{{Off: 0x50000, Len: 0x1000}, {Off: 0x60000, Len: 0x1000}},
		Zeroed: []check.Range{{Off: 0x8000, Len: 0x1000}, {Off: 0x10000, Len: 0x2000}}}
	got := reopenRanges(m, 0x80000, []model.Range{{Off: 0, Len: 0x200}}, before, after)
	require.Equal(t, []model.Range{
		{Off: 0, Len: 0x200},         // changed
		{Off: 0x8000, Len: 0x1000},   // own write-zeroes over the backing range
		{Off: 0x10000, Len: 0x2000},  // backing data under zero clusters
		{Off: 0x20000, Len: 0x20000}, // the backing file past the creation size
		{Off: 0x50000, Len: 0x1000},  // own data (and mapped)
		{Off: 0x60000, Len: 0x1000},  // mapped
	}, got)
	after.Header.ImageSize = 0x90000
	require.Equal(t, []model.Range{{Off: 0, Len: 0x80000}}, reopenRanges(m, 0x80000, nil, before, after))
}

// TestNewDurableSparseWhenMostlyUnwritten: NewDurable keeps only the
// blocks of an image's data ranges (DurableCost says so), and finds the
// same runs as the plain comparison with the model's durable bytes over
// the whole image, blocks off the 4 KiB grid included.
func TestNewDurableSparseWhenMostlyUnwritten(t *testing.T) {
	const size = 4 << 20
	for _, written := range []int64{0, size / 8, size / 4, size/4 + 512, size} {
		m, err := model.New(size, nil)
		require.NoError(t, err)
		if written > 0 {
			require.NoError(t, m.WriteID(size-written, written, 1))
		}
		m.Flush()
		d, err := NewDurable(m)
		require.NoError(t, err)
		require.Equal(t, (written+durableBlock-1)/durableBlock*durableBlock, DurableCost(m))
		require.Equal(t, DurableCost(m), d.kept)
		buf := make([]byte, size)
		require.NoError(t, m.ReadAt(buf, 0))
		buf[size-written/2-1] ^= 1 // a byte off in the data or in the zeros before it
		for _, off := range []int64{0, 512, 3 * 512, size - written - 4096 - 512} {
			off = max(off, 0)
			p := buf[off:min(off+oracleChunk, size)]
			require.Equal(t, diffSpansRef(m, d, off, p), d.diffSpans(off, p, nil), "%d bytes written, read at %#x", written, off)
		}
	}
}
