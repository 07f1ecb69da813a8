package oracle

import (
	"testing"

	"github.com/qedtorture/qedtorture/model"
	"github.com/qedtorture/qedtorture/props/check"
	"github.com/stretchr/testify/require"
)

// provenBytes returns how many bytes of [off, off+n) lie in rs.
func provenBytes(rs []model.Range, off, n int64) int64 {
	k := int64(0)
	for _, r := range rs {
		if lo, hi := max(r.Off, off), min(r.Off+r.Len, off+n); lo < hi {
			k += hi - lo
		}
	}
	return k
}

// TestProvenRangesBackingTail: of a grown image's lost pending writes,
// provenRanges proves the parts over the backing file's data and past
// the backing file (the format reads the backing file or zeros there,
// the durable contents), less their sample, and never the part between
// BackingLen and the backing file's size: the image must hide the
// backing file there, which the map does not show (impl/qed marks zero
// clusters, another implementation might not). Where the crashed image
// maps a cluster or a zero cluster, nothing is proven. (Mutants checked
// by hand: the hidden range left out of what is not proven, and that
// range taken to run to BackingLen plus the backing file's size, fail
// this test.)
func TestProvenRangesBackingTail(t *testing.T) {
	back, err := model.New(0x100000, nil)
	require.NoError(t, err)
	_, err = back.Write(0, 0x100000)
	require.NoError(t, err)
	back.Flush()
	m, err := model.New(0x80000, back) // BackingLen 0x80000, BackingSize 0x100000
	require.NoError(t, err)
	require.NoError(t, m.Grow(0x200000))
	m.Flush()
	const n = 0x20000
	over, hidden, past := int64(0x10000), int64(0x90000), int64(0x110000)
	for _, off := range []int64{over, hidden, past, 0x40000, 0x140000} {
		_, err := m.Write(off, n)
		require.NoError(t, err)
	}
	before := &check.Report{
		Mapped: []check.Range{{Off: 0x40000, Len: n}},
		Zeroed: []check.Range{{Off: 0x140000, Len: n}},
	}
	proven := provenRanges(m, m.Size(), m.Uncertain(), before)
	for _, c := range []struct {
		what string
		off  int64
		want bool
	}{
		{"over the backing file's data", over, true},
		{"between BackingLen and the backing file's size", hidden, false},
		{"past the backing file", past, true},
		{"over mapped clusters", 0x40000, false},
		{"over zero clusters", 0x140000, false},
	} {
		k := provenBytes(proven, c.off, n)
		if !c.want {
			require.Zero(t, k, "%s: %d bytes proven (%v)", c.what, k, proven)
			continue
		}
		// Proven but its sample: the first and last 4 KiB and a piece.
		require.GreaterOrEqual(t, k, int64(n-3*sampleLen), "%s: %d bytes proven (%v)", c.what, k, proven)
		require.Less(t, k, int64(n), "%s: not sampled (%v)", c.what, proven)
	}
}

// TestProvenRangesSamplesEveryPiece: with 16 proven pieces (at most
// maxSampledGaps), each is sampled, and a pending write that covers no
// whole sector adds no piece that would take a slot of the sample.
// (Mutant checked by hand: an empty piece kept, `lo <= hi`, makes 17
// pieces, so that every other one goes unsampled: this test fails.)
func TestProvenRangesSamplesEveryPiece(t *testing.T) {
	m, err := model.New(0x200000, nil)
	require.NoError(t, err)
	const n = 0x8000
	for i := range int64(maxSampledGaps) {
		_, err := m.Write(0x10000+i*0x10000, n)
		require.NoError(t, err)
	}
	// A pending write across a sector boundary with no whole sector.
	_, err = m.Write(0x1f0100, 0x200)
	require.NoError(t, err)
	proven := provenRanges(m, m.Size(), m.Uncertain(), &check.Report{})
	for i := range int64(maxSampledGaps) {
		off := 0x10000 + i*0x10000
		k := provenBytes(proven, off, n)
		require.Positive(t, k, "piece %d: nothing proven (%v)", i, proven)
		require.Zero(t, provenBytes(proven, off, sampleLen), "piece %d: its first 4 KiB not sampled (%v)", i, proven)
		require.Zero(t, provenBytes(proven, off+n-sampleLen, sampleLen), "piece %d: its last 4 KiB not sampled (%v)", i, proven)
	}
	require.Zero(t, provenBytes(proven, 0x1f0000, 0x1000), "the sub-sector write: %v", proven)
}
