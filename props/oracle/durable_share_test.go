package oracle

import (
	"testing"

	"github.com/qedtorture/qedtorture/model"
	"github.com/stretchr/testify/require"
)

// sharedExactly holds d, built by NewDurableAfter from prev, to the
// sharing its doc states: every chunk below both sizes (every chunk, at
// the same size) that meets no range where the two models' durable
// extents differ is prev's own (the same chunk, or none in both), and
// every other chunk that holds data is built anew. It returns the chunks
// shared that hold data.
func sharedExactly(t *testing.T, what string, prev, d *Durable) int {
	t.Helper()
	shared := int64(len(d.chunks))
	if prev.size != d.size {
		shared = min(prev.size, d.size) / chunkLen
	}
	changes := d.src.DurableChanges(prev.src)
	n := 0
	for c := range int64(len(d.chunks)) {
		lo, hi := c*chunkLen, (c+1)*chunkLen
		meets := false
		for _, r := range changes {
			meets = meets || r.Off < hi && lo < r.Off+r.Len
		}
		switch {
		case c < shared && !meets:
			if d.chunks[c] != prev.chunks[c] {
				t.Fatalf("%s: chunk %d (%#x) is unchanged but not shared (changes %v)", what, c, lo, changes)
			}
			if d.chunks[c] != nil {
				n++
			}
		case d.chunks[c] != nil && c < int64(len(prev.chunks)) && d.chunks[c] == prev.chunks[c]:
			t.Fatalf("%s: chunk %d (%#x) is shared but changed or cut by a size (changes %v)", what, c, lo, changes)
		}
	}
	return n
}

// TestNewDurableAfterSharesExactly: NewDurableAfter shares every chunk
// its doc says it shares, no fewer (perf: a chunk built again for nothing
// is the cost it exists to save) and no more, for changes that end
// exactly at a chunk's end, start exactly at a chunk's start, cross a
// chunk boundary or lie inside one chunk, and for grows (the chunk the
// old size cut is built again). The contents are checked too. (Mutants
// checked by hand: a change's last chunk rounded one chunk too far, its
// chunk count computed as lo + hi, or its end divided the wrong way, all
// rebuilding unchanged chunks, fail this test.)
func TestNewDurableAfterSharesExactly(t *testing.T) {
	m, err := model.New(0x100000, nil)
	require.NoError(t, err)
	_, err = m.Write(0, 0x100000)
	require.NoError(t, err)
	m.Flush()
	prev, err := NewDurable(m)
	require.NoError(t, err)
	steps := []struct {
		what string
		do   func() error
	}{
		{"a write ending at a chunk's end", func() error { _, err := m.Write(0x1f000, 0x1000); return err }},
		{"a write starting at a chunk's start", func() error { _, err := m.Write(0x30000, 0x200); return err }},
		{"a write across a chunk boundary", func() error { _, err := m.Write(0x4fe00, 0x400); return err }},
		{"a write inside a chunk", func() error { _, err := m.Write(0x81000, 0x2000); return err }},
		{"caller bytes ending at the last chunk's end", func() error { return m.WriteBytes(0xff000, make([]byte, 0x1000)) }},
		{"write-zeroes of a whole chunk", func() error { return m.WriteZeroes(0xa0000, chunkLen) }},
		{"a grow off the chunk grid", func() error { return m.Grow(0x101200) }},
		{"a write past the old size", func() error { _, err := m.Write(0x100e00, 0x400); return err }},
		{"a grow to the chunk grid", func() error { return m.Grow(0x120000) }},
		{"a write at the new end", func() error { _, err := m.Write(0x11fe00, 0x200); return err }},
	}
	total := 0
	for _, s := range steps {
		require.NoError(t, s.do(), s.what)
		m.Flush()
		d, err := NewDurableAfter(prev, m)
		require.NoError(t, err, s.what)
		want := make([]byte, m.Size())
		require.NoError(t, m.ReadDurableAt(want, 0))
		require.True(t, d.equal(0, want), "%s: the durable bytes", s.what)
		n := sharedExactly(t, s.what, prev, d)
		require.Positive(t, n, "%s: nothing shared", s.what)
		total += n
		prev = d
	}
	t.Logf("%d chunks shared over %d steps", total, len(steps))
}
