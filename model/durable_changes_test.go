package model

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// randomOps applies n random operations to d: writes (pattern and caller
// bytes), write-zeroes, excused ranges, grows and flushes.
func randomOps(t *testing.T, rng *rand.Rand, d *Disk, n int) {
	t.Helper()
	for range n {
		size := d.Size()
		off := rng.Int64N(size) / 512 * 512
		l := min(512*(1+rng.Int64N(64)), size-off)
		switch rng.IntN(8) {
		case 0, 1, 2:
			_, err := d.Write(off, l)
			require.NoError(t, err)
		case 3:
			require.NoError(t, d.WriteBytes(off, bytes.Repeat([]byte{byte(rng.IntN(256))}, int(l))))
		case 4:
			require.NoError(t, d.WriteZeroes(off, l))
		case 5:
			d.Excuse(off, l)
		case 6:
			if size < 1<<20 {
				require.NoError(t, d.Grow(size+512*(1+rng.Int64N(16))))
			}
		default:
			d.Flush()
		}
	}
}

// TestDurableChanges: wherever two snapshots of one disk (Clone) read
// different durable bytes, DurableChanges covers them; it reports
// nothing for a disk against its own clone, and, for disks made apart,
// covers every byte either holds as data. Checked sector by sector over
// random writes, caller bytes, write-zeroes, excused ranges, grows and
// flushes over a backing disk. (Mutant checked by hand: DurableChanges
// returning nil fails this test.)
func TestDurableChanges(t *testing.T) {
	seed := uint64(19)
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 5))
	back, err := New(0x40000, nil)
	require.NoError(t, err)
	randomOps(t, rng, back, 40)
	back.Flush()
	d, err := New(0x60000, back)
	require.NoError(t, err)
	snaps := []*Disk{d.Clone()}
	for range 12 {
		randomOps(t, rng, d, 6)
		snaps = append(snaps, d.Clone())
	}
	require.Empty(t, d.DurableChanges(d.Clone()), "a clone")
	differing := 0
	for i := range snaps {
		for j := range snaps {
			a, b := snaps[i], snaps[j]
			ch := a.DurableChanges(b)
			n := min(a.Size(), b.Size())
			pa, pb := make([]byte, n), make([]byte, n)
			require.NoError(t, a.ReadDurableAt(pa, 0))
			require.NoError(t, b.ReadDurableAt(pb, 0))
			for off := int64(0); off < n; off += SectorSize {
				if bytes.Equal(pa[off:off+SectorSize], pb[off:off+SectorSize]) {
					continue
				}
				differing++
				require.True(t, covers(ch, off, SectorSize), "snapshots %d and %d differ at %#x, outside %v", i, j, off, ch)
			}
			for k := 1; k < len(ch); k++ {
				require.Less(t, ch[k-1].Off+ch[k-1].Len, ch[k].Off, "sorted and merged: %v", ch)
			}
		}
	}
	require.Positive(t, differing, "the snapshots never differ")
	// Exact where it can be: one flushed write is its range alone.
	d.Flush()
	c := d.Clone()
	_, err = c.Write(0x1200, 0x2400)
	require.NoError(t, err)
	require.Empty(t, c.DurableChanges(d), "a pending write changes no durable byte")
	c.Flush()
	require.Equal(t, []Range{{Off: 0x1200, Len: 0x2400}}, c.DurableChanges(d))
	require.Equal(t, []Range{{Off: 0x1200, Len: 0x2400}}, d.DurableChanges(c))
	// Disks made apart share no record: every data byte of either differs.
	other, err := New(0x60000, back)
	require.NoError(t, err)
	ch := d.DurableChanges(other)
	for _, r := range append(d.Written(), other.Written()...) {
		require.True(t, covers(ch, r.Off, r.Len), "data %v outside %v", r, ch)
	}
}

// covers reports whether [off, off+n) lies inside one of rs.
func covers(rs []Range, off, n int64) bool {
	for _, r := range rs {
		if r.Off <= off && off+n <= r.Off+r.Len {
			return true
		}
	}
	return false
}
