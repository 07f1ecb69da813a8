package oracle

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/qedtorture/qedtorture/model"
	"github.com/stretchr/testify/require"
)

// TestNewDurableAfterMatchesFresh: durable contents built op after op
// from the previous op's (NewDurableAfter) hold, block for block, the
// model's durable bytes, keep what DurableCost says, and find the same
// differing runs as the plain comparison when read-backs are wrong,
// also in a block shared with the previous contents; building them
// leaves the previous contents as they were (a chunk that changes is
// built anew), and exactly the unchanged chunks are shared
// (sharedExactly), not generated again. The ops: writes, caller bytes,
// write-zeroes, excused ranges, grows (sizes off the 4 KiB grid) and
// flushes over a backing disk; a model made apart (a new image) shares
// nothing. (Mutants checked by
// hand: DurableChanges returning nil, and a changed chunk kept, fail
// this test.)
func TestNewDurableAfterMatchesFresh(t *testing.T) {
	seed := uint64(1905)
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 6))
	back, err := model.New(0x100000, nil)
	require.NoError(t, err)
	for range 30 {
		_, err := back.Write(rng.Int64N(0xf0000)/512*512, 512*(1+rng.Int64N(64)))
		require.NoError(t, err)
	}
	back.Flush()
	m, err := model.New(0xc0200, back) // a size off the 4 KiB grid
	require.NoError(t, err)
	// matches checks d against m's durable bytes, and diffSpans against
	// the plain comparison with wrong bytes in random places.
	matches := func(d *Durable, m *model.Disk, what string) {
		t.Helper()
		want := make([]byte, m.Size())
		require.NoError(t, m.ReadDurableAt(want, 0))
		require.True(t, d.equal(0, want), "%s: the durable bytes", what)
		for b := int64(0); b*durableBlock < m.Size(); b++ {
			off := b * durableBlock
			q := want[off:min(off+durableBlock, m.Size())]
			if blk := d.block(b); blk != nil {
				if !bytes.Equal(q, blk) {
					t.Fatalf("%s: block %d holds other bytes than the model's", what, b)
				}
			} else if !bytes.Equal(zeroBlock[:len(q)], q) {
				t.Fatalf("%s: block %d left out but not zeros", what, b)
			}
		}
		require.Equal(t, DurableCost(m), d.kept, "%s: kept", what)
		for range 12 {
			off := rng.Int64N(m.Size()) / 512 * 512
			p := bytes.Clone(want[off:min(off+oracleChunk, m.Size())])
			for range rng.IntN(3) {
				p[rng.IntN(len(p))] ^= 0x08
			}
			require.Equal(t, diffSpansRef(m, d, off, p), d.diffSpans(off, p, nil), "%s: read at %#x", what, off)
		}
	}
	prev, err := NewDurable(m)
	require.NoError(t, err)
	prevModel := m.Clone()
	sharedBlocks, flipped := 0, 0
	for step := range 24 {
		switch {
		case step == 12:
			// A new image over the same backing disk: other records.
			m, err = model.New(0xc0200, back)
			require.NoError(t, err)
		case step%5 == 4:
			require.NoError(t, m.Grow(m.Size()+0x1200+int64(rng.IntN(2))*0x40000))
		}
		for range 1 + rng.IntN(4) {
			off := rng.Int64N(m.Size()-0x1000) / 512 * 512
			l := min(512*(1+rng.Int64N(100)), m.Size()-off)
			switch rng.IntN(5) {
			case 0, 1:
				_, err = m.Write(off, l)
			case 2:
				err = m.WriteBytes(off, bytes.Repeat([]byte{byte(1 + rng.IntN(255))}, int(l)))
			case 3:
				err = m.WriteZeroes(off, l)
			default:
				m.Excuse(off, l)
			}
			require.NoError(t, err)
		}
		if rng.IntN(4) != 0 {
			m.Flush()
		}
		d, err := NewDurableAfter(prev, m)
		require.NoError(t, err)
		matches(d, m, "after")
		matches(prev, prevModel, "the previous contents, once the next are built")
		sharedExactly(t, "after", prev, d)
		// Shared chunks: the same chunk, and a wrong byte in a block of
		// one is found.
		for b := int64(0); b*durableBlock < min(m.Size(), prevModel.Size()); b++ {
			c := b / chunkBlocks
			blk := d.block(b)
			if blk == nil || c >= int64(len(prev.chunks)) || d.chunks[c] != prev.chunks[c] {
				continue
			}
			sharedBlocks++
			if b%8 == 0 && b*durableBlock+durableBlock <= m.Size() {
				p := bytes.Clone(blk)
				p[rng.IntN(durableBlock)] ^= 0x80
				if got := d.diffSpans(b*durableBlock, p, nil); len(got) != 1 || got[0] != [2]int{0, durableBlock} {
					t.Fatalf("a wrong byte in shared block %d: spans %v", b, got)
				}
				flipped++
			}
		}
		prev, prevModel = d, m.Clone()
	}
	require.Positive(t, sharedBlocks, "no block was ever shared")
	require.Positive(t, flipped)
	t.Logf("%d blocks shared, %d wrong bytes in them found", sharedBlocks, flipped)
}
