package oracle

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/qedtorture/qedtorture/model"
	"github.com/qedtorture/qedtorture/props/check"
	"github.com/stretchr/testify/require"
)

// Tests written for mutants that survived the rest of the suite (see
// docs/mutation.md): the oracle's speed-ups must keep its verdicts, so
// each is held here to the plain computation it replaces.

// diffSpansRef is diffSpans computed the plain way: the maximal runs of 4
// KiB blocks of p (read at off) whose bytes differ from the durable
// contents; all of p out of range or without durable contents.
func diffSpansRef(m *model.Disk, d *Durable, off int64, p []byte) [][2]int {
	if d == nil || off < 0 || off+int64(len(p)) > m.Size() {
		return [][2]int{{0, len(p)}}
	}
	want := make([]byte, len(p))
	if err := m.ReadDurableAt(want, off); err != nil {
		panic(err)
	}
	var out [][2]int
	for i := 0; i < len(p); i += durableBlock {
		j := min(i+durableBlock, len(p))
		if bytes.Equal(want[i:j], p[i:j]) {
			continue
		}
		if n := len(out); n > 0 && out[n-1][1] == i {
			out[n-1][1] = j
		} else {
			out = append(out, [2]int{i, j})
		}
	}
	return out
}

// TestDiffSpansExact: diffSpans, dense and sparse, returns exactly the
// differing runs of blocks (adjacent ones merged, equal ones left out) at
// aligned and unaligned offsets, including reads that start at 0, end at
// the size, and the whole of p for a read past the size, a negative
// offset or no durable contents.
func TestDiffSpansExact(t *testing.T) {
	const size = 1 << 20
	rng := rand.New(rand.NewPCG(3, 4))
	m, _ := model.New(size, nil)
	for range 12 {
		_, _ = m.Write(rng.Int64N(size-0x6000)/512*512, 512*(1+rng.Int64N(24)))
	}
	_, _ = m.Write(0, 0x3000)           // data at 0
	_, _ = m.Write(size-0x2000, 0x2000) // and up to the size
	m.Flush()
	dense, err := NewDurable(m)
	require.NoError(t, err)
	sparse, err := sharedDurable(m)
	require.NoError(t, err)
	cur := make([]byte, size)
	require.NoError(t, m.ReadAt(cur, 0))
	check := func(off int64, p []byte, what string) {
		t.Helper()
		want := diffSpansRef(m, dense, off, p)
		require.Equal(t, want, dense.diffSpans(off, p, nil), "dense, %s: read [%#x,+%#x)", what, off, len(p))
		require.Equal(t, want, sparse.diffSpans(off, p, nil), "sparse, %s: read [%#x,+%#x)", what, off, len(p))
	}
	read := func(off, n int64) []byte {
		p := make([]byte, n)
		copy(p, cur[max(off, 0):])
		return p
	}
	check(0, read(0, 0x8000), "unchanged from 0")
	check(size-0x8000, read(size-0x8000, 0x8000), "unchanged up to the size")
	p := read(0, 0x8000)
	p[0x1000] ^= 1 // block 1 and block 2: one run
	p[0x2fff] ^= 1
	p[0x5000] ^= 1 // block 5 alone
	check(0, p, "blocks 1-2 and 5 differ")
	require.Equal(t, [][2]int{{0x1000, 0x3000}, {0x5000, 0x6000}}, dense.diffSpans(0, p, nil))
	check(size-0x1000, read(size-0x1000, 0x1200), "past the size")
	check(-512, read(0, 0x1000), "a negative offset")
	require.Equal(t, [][2]int{{0, 0x1000}}, (*Durable)(nil).diffSpans(0, read(0, 0x1000), nil), "no durable contents")
	for range 400 {
		off := rng.Int64N(size) / 512 * 512
		if rng.IntN(2) == 0 {
			off = off / durableBlock * durableBlock
		}
		n := 1 + rng.Int64N(min(size-off, 4*durableBlock))
		p := read(off, n)
		for range rng.IntN(4) {
			p[rng.Int64N(n)] ^= 0x10
		}
		check(off, p, "random")
	}
}

// TestDurableKeepsWhatItCosts: NewDurable keeps the 4 KiB blocks that
// meet the model's data ranges, clipped to the size, and nothing of the
// rest, as DurableCost says (the campaign budgets its cache with
// DurableCost), at sizes that are not a multiple of its blocks too.
func TestDurableKeepsWhatItCosts(t *testing.T) {
	for _, c := range []struct {
		size  int64
		whole bool // the whole image written, not 0x2200 bytes at 0x3000 and the last 0x1000
		kept  int64
	}{{0x6200, false, 0x3200}, {1 << 20, false, 0x4000}, {1 << 20, true, 1 << 20}, {64 << 20, false, 0x4000},
		{64<<20 + 512, true, 64<<20 + 512}, {1 << 30, false, 0x4000}} {
		m, _ := model.New(c.size, nil)
		if c.whole {
			_, _ = m.Write(0, c.size)
		} else {
			_, _ = m.Write(0x3000, 0x2200)
			_, _ = m.Write(c.size-0x1000, 0x1000)
		}
		m.Flush()
		d, err := NewDurable(m)
		require.NoError(t, err)
		held := int64(0)
		for b := int64(0); b*durableBlock < c.size; b++ {
			if blk := d.block(b); blk != nil {
				held += min(durableBlock, c.size-b*durableBlock)
			}
		}
		require.Equal(t, c.kept, held, "size %#x: the blocks held", c.size)
		require.Equal(t, c.kept, d.kept, "size %#x: kept", c.size)
		require.Equal(t, c.kept, DurableCost(m), "size %#x: DurableCost", c.size)
	}
}

// TestSavedReadsLayout: newSavedReads keeps the uncertain ranges clipped
// to the size (a range past it dropped), laid out one after the other in
// one buffer, up to maxSavedReads bytes (inclusive); above it nothing.
func TestSavedReadsLayout(t *testing.T) {
	s := newSavedReads([]model.Range{{Off: 0x1000, Len: 0x200}, {Off: 0x3000, Len: 0x1000}, {Off: 0x8000, Len: 0x1000}, {Off: 0x9000, Len: 0x10}}, 0x3800, nil)
	require.Equal(t, []model.Range{{Off: 0x1000, Len: 0x200}, {Off: 0x3000, Len: 0x800}}, s.rs)
	require.Equal(t, []int{0, 0x200}, s.pos)
	require.Len(t, s.buf, 0xa00)
	big := newSavedReads([]model.Range{{Off: 0, Len: maxSavedReads}}, maxSavedReads, nil)
	require.Len(t, big.buf, maxSavedReads, "exactly maxSavedReads is kept")
	over := newSavedReads([]model.Range{{Off: 0, Len: maxSavedReads}, {Off: maxSavedReads + 512, Len: 512}}, 1<<30, nil)
	require.Empty(t, over.rs)
	require.Empty(t, over.buf)
}

// TestSavedReadsSlots: slot places a read inside a saved range at its
// place in the buffer, clipped to the range's end, and clips a read
// outside to the next range's start; equal and read serve exactly the
// reads wholly inside one range, from its bytes.
func TestSavedReadsSlots(t *testing.T) {
	s := newSavedReads([]model.Range{{Off: 0x1000, Len: 0x200}, {Off: 0x3000, Len: 0x800}}, 0x10000, nil)
	for i := range s.buf {
		s.buf[i] = byte(i*7 + i>>8)
	}
	for _, c := range []struct {
		off, n, m int64
		in        bool
		at        int // the slot's place in buf
	}{
		{0, 0x2000, 0x1000, false, 0},
		{0xfff, 1, 1, false, 0},
		{0x1000, 0x1000, 0x200, true, 0},
		{0x1100, 0x40, 0x40, true, 0x100},
		{0x11ff, 0x40, 1, true, 0x1ff},
		{0x1200, 0x4000, 0x1e00, false, 0},
		{0x3000, 0x10, 0x10, true, 0x200},
		{0x3400, 0x1000, 0x400, true, 0x600},
		{0x3800, 0x100, 0x100, false, 0},
	} {
		p, m, in := s.slot(c.off, c.n)
		require.Equal(t, c.m, m, "slot(%#x, %#x): length", c.off, c.n)
		require.Equal(t, c.in, in, "slot(%#x, %#x): inside", c.off, c.n)
		if !c.in {
			require.Nil(t, p)
			continue
		}
		require.Len(t, p, int(m))
		require.Same(t, &s.buf[c.at], &p[0], "slot(%#x, %#x): its place in buf", c.off, c.n)
	}
	at := func(off int64, n int) []byte { // the saved bytes at off
		p, m, in := s.slot(off, int64(n))
		require.True(t, in && m == int64(n))
		return append([]byte(nil), p...)
	}
	for _, c := range []struct {
		off int64
		n   int
	}{{0x1000, 0x200}, {0x1000, 1}, {0x11ff, 1}, {0x3000, 0x800}, {0x3010, 0x20}, {0x37ff, 1}} {
		want := at(c.off, c.n)
		require.True(t, s.equal(c.off, want), "equal(%#x, %#x bytes)", c.off, c.n)
		got := s.view(c.off, int64(c.n))
		require.Equal(t, want, got, "view(%#x bytes at %#x)", c.n, c.off)
		slot, _, _ := s.slot(c.off, int64(c.n))
		require.Same(t, &slot[0], &got[0], "view(%#x bytes at %#x): lent, not copied", c.n, c.off)
		want[c.n-1] ^= 1
		require.False(t, s.equal(c.off, want), "equal(%#x, %#x bytes) with its last byte changed", c.off, c.n)
	}
	for _, c := range []struct {
		off int64
		n   int
	}{{0xfff, 2}, {0x11ff, 2}, {0x1000, 0x201}, {0x2fff, 0x10}, {0x37ff, 2}, {0x3800, 1}, {0x2000, 0x10}} {
		p := make([]byte, c.n)
		require.False(t, s.equal(c.off, p), "equal(%#x, %#x bytes): not inside one range", c.off, c.n)
		require.Nil(t, s.view(c.off, int64(c.n)), "view(%#x bytes at %#x): not inside one range", c.n, c.off)
	}
}

// reopenSegmentsRef is reopenSegments computed byte by byte: the maximal
// runs of the chunk's bytes inside changed (changed) and of those outside
// it inside a span (not changed).
func reopenSegmentsRef(off int64, p []byte, spans [][2]int, changed []model.Range) []segment {
	class := make([]int, len(p)) // 0 none, 1 span, 2 changed
	for _, sp := range spans {
		for i := sp[0]; i < sp[1]; i++ {
			class[i] = 1
		}
	}
	for _, c := range changed {
		for pos := max(c.Off, off); pos < min(c.Off+c.Len, off+int64(len(p))); pos++ {
			class[pos-off] = 2
		}
	}
	var out []segment
	for i := 0; i < len(p); {
		j := i
		for j < len(p) && class[j] == class[i] {
			j++
		}
		if class[i] != 0 {
			out = append(out, segment{lo: off + int64(i), hi: off + int64(j), changed: class[i] == 2})
		}
		i = j
	}
	return out
}

// TestReopenSegmentsExact: the parts stage 7 checks are exactly the
// differing runs outside the changed ranges and the changed ranges inside
// the chunk, sorted, whatever their overlaps (ranges that start or end at
// a span's or the chunk's edges included).
func TestReopenSegmentsExact(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	const n = 16 * 512
	for range 2000 {
		off := int64(rng.IntN(8)) * 512
		var spans [][2]int
		for pos := 0; ; {
			lo := pos + rng.IntN(4)*512
			if spans != nil && lo == pos { // maximal runs: never touching
				lo += 512
			}
			hi := lo + (1+rng.IntN(4))*512
			if hi > n {
				break
			}
			spans = append(spans, [2]int{lo, hi})
			pos = hi
		}
		var changed []model.Range
		for pos := int64(rng.IntN(3)) * 512; pos < off+n+1024; {
			l := int64(1+rng.IntN(5)) * 256
			changed = append(changed, model.Range{Off: pos, Len: l})
			pos += l + int64(1+rng.IntN(6))*256
		}
		p := make([]byte, n)
		want := reopenSegmentsRef(off, p, spans, changed)
		got := reopenSegments(nil, off, p, spans, changed)
		require.Equal(t, want, got, "chunk at %#x, spans %v, changed %v", off, spans, changed)
	}
}

// TestRecoveredPieces: recovered accepts a part of changed that equals
// the liveness write over [0, live) and the saved bytes after it, and
// nothing else.
func TestRecoveredPieces(t *testing.T) {
	const live = 0x200
	s := newSavedReads([]model.Range{{Off: 0x200, Len: 0x400}}, 0x10000, nil)
	for i := range s.buf {
		s.buf[i] = byte(i*13 + 1)
	}
	q := append(append([]byte(nil), livenessData[0x100:]...), s.buf[:0x80]...)
	require.True(t, recovered(0x100, q, live, s), "liveness tail and saved bytes")
	require.True(t, recovered(0x100, q[:0x100], live, s), "liveness tail")
	require.True(t, recovered(0x200, s.buf[:0x80], live, s), "saved bytes")
	require.True(t, recovered(0, livenessData[:], live, s), "the liveness sector")
	q[0x17f] ^= 1
	require.False(t, recovered(0x100, q, live, s), "a saved byte changed")
	q[0x17f] ^= 1
	q[0x10] ^= 1
	require.False(t, recovered(0x100, q, live, s), "a liveness byte changed")
}

// TestReopenRangesHeaderChange: a closed image whose header differs from
// the crashed one in its size, feature bits (NEED_CHECK aside), backing
// name, cluster, table or header size is read whole at stage 7; NEED_CHECK
// or the L1 table's place alone do not change the guest map's meaning.
func TestReopenRangesHeaderChange(t *testing.T) {
	m, _ := model.New(0x80000, nil)
	_, _ = m.Write(0x50000, 0x1000)
	m.Flush()
	hdr := check.Header{ClusterSize: 4096, TableSize: 1, HeaderSize: 1, ImageSize: 0x80000, L1TableOffset: 4096}
	full := []model.Range{{Off: 0, Len: 0x80000}}
	for _, c := range []struct {
		name   string
		change func(h *check.Header)
		full   bool
	}{
		{"nothing", func(*check.Header) {}, false},
		{"NEED_CHECK", func(h *check.Header) { h.Features |= check.FeatureNeedCheck }, false},
		{"L1 table offset", func(h *check.Header) { h.L1TableOffset = 8192 }, false},
		{"image size", func(h *check.Header) { h.ImageSize = 0x90000 }, true},
		{"features", func(h *check.Header) { h.Features |= check.FeatureBacking }, true},
		{"backing name offset", func(h *check.Header) { h.BackingNameOffset = 1024 }, true},
		{"backing name size", func(h *check.Header) { h.BackingNameSize = 12 }, true},
		{"cluster size", func(h *check.Header) { h.ClusterSize = 8192 }, true},
		{"table size", func(h *check.Header) { h.TableSize = 2 }, true},
		{"header size", func(h *check.Header) { h.HeaderSize = 2 }, true},
	} {
		after := &check.Report{Header: hdr}
		c.change(&after.Header)
		got := reopenRanges(m, 0x80000, []model.Range{{Off: 0, Len: 0x200}}, &check.Report{Header: hdr}, after)
		if c.full {
			require.Equal(t, full, got, c.name)
		} else {
			require.Equal(t, []model.Range{{Off: 0, Len: 0x200}, {Off: 0x50000, Len: 0x1000}}, got, c.name)
		}
	}
}

// TestReopenRangesBackingPastItsLen: an image created smaller than its
// backing file (BackingLen below BackingSize; 0 for an image created
// empty) has stage 7 read the backing file's range past BackingLen: a
// grown image must keep hiding it.
func TestReopenRangesBackingPastItsLen(t *testing.T) {
	for _, created := range []int64{0, 0x1000} {
		b, _ := model.New(0x4000, nil)
		_, _ = b.Write(0, 0x4000)
		b.Flush()
		m, _ := model.New(created, b)
		require.NoError(t, m.Grow(0x10000))
		m.Flush()
		require.Equal(t, created, m.BackingLen())
		hdr := check.Header{ClusterSize: 4096, TableSize: 1, HeaderSize: 1, ImageSize: 0x10000}
		got := reopenRanges(m, 0x10000, nil, &check.Report{Header: hdr}, &check.Report{Header: hdr})
		require.Equal(t, []model.Range{{Off: created, Len: 0x4000 - created}}, got, "created at %#x", created)
	}
}

// TestIntersectAndMerge: intersect of two sorted, disjoint lists is every
// byte in both (checked byte by byte over random lists with gaps); mergeRanges
// clips to the size, dropping what lies at or past it, and merges
// touching and overlapping ranges.
func TestIntersectAndMerge(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	list := func() []model.Range {
		var rs []model.Range
		for pos := int64(rng.IntN(4)); pos < 200; {
			l := int64(1 + rng.IntN(12))
			rs = append(rs, model.Range{Off: pos, Len: l})
			pos += l + int64(1+rng.IntN(10))
		}
		return rs
	}
	in := func(rs []model.Range, x int64) bool {
		for _, r := range rs {
			if r.Off <= x && x < r.Off+r.Len {
				return true
			}
		}
		return false
	}
	for range 300 {
		a, b := list(), list()
		got := intersect(a, b)
		var want []model.Range
		for x := int64(0); x < 260; x++ {
			if in(a, x) && in(b, x) {
				if n := len(want); n > 0 && want[n-1].Off+want[n-1].Len == x { // the lists' gaps keep pieces apart
					want[n-1].Len++
				} else {
					want = append(want, model.Range{Off: x, Len: 1})
				}
			}
		}
		require.Equal(t, want, got, "intersect(%v, %v)", a, b)
	}
	require.Equal(t, []model.Range{{Off: 0, Len: 0x300}, {Off: 0x400, Len: 0x100}},
		mergeRanges([]model.Range{{Off: 0x400, Len: 0x200}, {Off: 0x100, Len: 0x200}, {Off: 0, Len: 0x100}, {Off: 0x500, Len: 0x10}, {Off: 0x50, Len: 0x10}}, 0x500))
	require.Empty(t, mergeRanges([]model.Range{{Off: 0x500, Len: 0x100}, {Off: 0x600, Len: 0x100}}, 0x500))
}

// TestReadRangesBackingRange: above the limit the backing file's range is
// read whole even where the model holds no data in it (a backing file of
// zeros): only where no backing file lies does the format prove zeros.
func TestReadRangesBackingRange(t *testing.T) {
	b, _ := model.New(0x6000, nil)
	m, _ := model.New(0x2000, b) // created smaller than its backing file
	require.NoError(t, m.Grow(1<<20))
	m.Flush()
	got := readRanges(m, 1<<20, 4096, nil, nil)
	require.True(t, got[0].Off == 0 && got[0].Len >= 0x6000, "[0, 0x6000) read: %v", got)
}

// TestSampleGapsPinned: the sample of a state's gaps is a function of the
// state alone, pinned here as this package draws it (a replay reads what
// the original run read): ranges at 0 and up to the size leave 48 gaps
// between them, of which every third is sampled.
func TestSampleGapsPinned(t *testing.T) {
	var rs []model.Range
	for i := range int64(49) {
		rs = append(rs, model.Range{Off: i << 16, Len: 0x1000})
	}
	const size = 48<<16 + 0x1000
	got := mergeRanges(sampleGaps(slices.Clone(rs), size, 12345), size)
	sampled := int64(0)
	for _, r := range got {
		sampled += r.Len
	}
	sampled -= 49 * 0x1000
	require.Equal(t, 63, len(got), "%v", got)
	require.Equal(t, int64(190976), sampled, "%v", got)
	sum := sha256.Sum256(fmt.Append(nil, got))
	require.Equal(t, "56b0e30c769b5302", hex.EncodeToString(sum[:8]), "%v", got)
}

// TestVerifyOutside: verifyOutside judges exactly the bytes of p outside
// the ranges given: garbage inside them is ignored, a wrong byte next to
// one (before, after, between two) is reported at its offset.
func TestVerifyOutside(t *testing.T) {
	m, _ := model.New(0x10000, nil)
	_, _ = m.Write(0, 0x10000)
	m.Flush()
	good := make([]byte, 0x4000)
	require.NoError(t, m.ReadAt(good, 0x2000))
	rs := []model.Range{{Off: 0x1000, Len: 0x1200}, {Off: 0x3000, Len: 0x400}, {Off: 0x3600, Len: 0x200}, {Off: 0x5e00, Len: 0x1000}}
	p := slices.Clone(good)
	for _, r := range rs { // garbage inside every range
		for off := max(r.Off, 0x2000); off < min(r.Off+r.Len, 0x6000); off++ {
			p[off-0x2000] ^= 0xa5
		}
	}
	require.NoError(t, verifyOutside(m, rs, 0x2000, p))
	require.NoError(t, verifyOutside(m, rs, 0x2000, good))
	for _, at := range []int64{0x2200, 0x2fff, 0x3400, 0x35ff, 0x3800, 0x5dff} {
		q := slices.Clone(p)
		q[at-0x2000] ^= 0x01
		err := verifyOutside(m, rs, 0x2000, q)
		var mm *model.Mismatch
		require.ErrorAs(t, err, &mm, "wrong byte at %#x", at)
		require.Equal(t, at, mm.Off, "wrong byte at %#x", at)
	}
}

// TestSampleGapsEdges: a gap of up to three pieces (12 KiB) is read
// whole; the first piece of a longer gap ends on the first 4 KiB boundary
// after the gap's first byte, also when the gap starts a byte or two
// before one.
func TestSampleGapsEdges(t *testing.T) {
	rs := []model.Range{{Off: 0, Len: 0x1000}, {Off: 0x4000, Len: 0x1000}}
	for seed := range uint64(4) {
		got := mergeRanges(sampleGaps(slices.Clone(rs), 0x5000, seed), 0x5000)
		require.Equal(t, []model.Range{{Off: 0, Len: 0x5000}}, got, "seed %d: a gap of 12 KiB", seed)
	}
	for _, start := range []int64{0x1ffe, 0x1fff, 0x1e00} {
		got := sampleGaps([]model.Range{{Off: 0, Len: start}}, 0x100000, 0)
		require.Equal(t, model.Range{Off: start, Len: 0x2000 - start}, got[1], "gap from %#x: its first piece", start)
	}
}

// TestAbbrev: names up to 100 bytes are quoted whole, longer ones by
// their first and last 40 bytes.
func TestAbbrev(t *testing.T) {
	s := strings.Repeat("a", 50) + strings.Repeat("b", 50)
	require.Equal(t, s, abbrev(s))
	require.Equal(t, strings.Repeat("a", 40)+"..."+strings.Repeat("b", 40), abbrev(s+"b"))
}

// sharedDurable returns m's durable contents built after its own
// (NewDurableAfter sharing every block), for the tests that compare it
// with NewDurable's.
func sharedDurable(m *model.Disk) (*Durable, error) {
	prev, err := NewDurable(m)
	if err != nil {
		return nil, err
	}
	return NewDurableAfter(prev, m)
}
