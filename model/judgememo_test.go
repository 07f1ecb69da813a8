package model

import (
	"errors"
	"math/rand/v2"
	"slices"
	"testing"
)

// crashImage builds the bytes a crash could leave of d (size bytes): its
// durable contents with each pending write kept whole, dropped, or kept
// on a random subset of its sectors (a torn write: not always allowed),
// and sometimes a byte flipped (never allowed unless it lands where a
// candidate agrees).
func crashImage(t *testing.T, d *Disk, rng *rand.Rand) []byte {
	t.Helper()
	img := make([]byte, d.durableSize)
	if err := d.ReadDurableAt(img, 0); err != nil {
		t.Fatal(err)
	}
	for _, r := range d.pending {
		if r.Kind == KindGrow || r.Len == 0 {
			continue
		}
		end := min(r.Off+r.Len, int64(len(img)))
		if r.Off >= end {
			continue
		}
		want := make([]byte, end-r.Off)
		r.expect(want, r.Off)
		switch rng.IntN(4) {
		case 0: // dropped
		case 1, 2: // kept
			copy(img[r.Off:end], want)
		default: // torn: some sectors
			for s := r.Off - r.Off%SectorSize; s < end; s += SectorSize {
				if rng.IntN(2) == 0 {
					lo, hi := max(s, r.Off), min(s+SectorSize, end)
					copy(img[lo:hi], want[lo-r.Off:hi-r.Off])
				}
			}
		}
	}
	if rng.IntN(8) == 0 {
		img[rng.IntN(len(img))] ^= 0x40
	}
	return img
}

// recoverWith recovers a clone of d from img, with memo (nil: none), and
// returns the clone and the error.
func recoverWith(d *Disk, img []byte, memo *JudgeMemo) (*Disk, error) {
	c := d.Clone()
	err := c.RecoverViewMemo(int64(len(img)), func(off, n int64) ([]byte, error) { return img[off : off+n], nil }, memo)
	return c, err
}

// sameRecovery fails t unless the recoveries with and without a memo
// agree: the same error (a *Mismatch with the same report), or on
// success the same durable and current contents, attribution included.
func sameRecovery(t *testing.T, what string, plain, memo *Disk, perr, merr error) {
	t.Helper()
	if (perr == nil) != (merr == nil) {
		t.Fatalf("%s: without the memo %v, with it %v", what, perr, merr)
	}
	if perr != nil {
		var pm, mm *Mismatch
		if !errors.As(perr, &pm) || !errors.As(merr, &mm) || pm.Error() != mm.Error() {
			t.Fatalf("%s: without the memo\n%v\nwith it\n%v", what, perr, merr)
		}
		return
	}
	if !slices.Equal(plain.durable, memo.durable) || !slices.Equal(plain.current, memo.current) {
		t.Fatalf("%s: recovered contents differ:\nwithout the memo %v\nwith it %v", what, plain.durable, memo.durable)
	}
}

// TestRecoverMemoMatchesJudge: Recover with a JudgeMemo shared by many
// crash states of several disks (overlapping pending writes, a concurrent
// group, write-zeroes, caller bytes, a failed write, a backing disk, an
// excused range) passes and fails exactly the states Recover without it
// does, with the same report, and recovers the same contents with the
// same attribution. The memo must answer some chunks (else it proves
// nothing) and judge others.
func TestRecoverMemoMatchesJudge(t *testing.T) {
	seed := uint64(19)
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 5))
	memo := new(JudgeMemo)
	fails := 0
	for disk := range 12 {
		const size = 256 << 10
		var b *Disk
		if disk%3 == 1 {
			b, _ = New(size, nil)
			mustWrite(t, b, 0, size/2)
			b.Flush()
		}
		d, err := New(size, b)
		if err != nil {
			t.Fatal(err)
		}
		for range 4 {
			mustWrite(t, d, rng.Int64N(size-0x8000)/512*512, 512*(1+rng.Int64N(64)))
		}
		d.Flush()
		if disk%4 == 3 {
			d.Excuse(rng.Int64N(size-0x1000), 0x800)
		}
		for i := range 6 {
			off, n := rng.Int64N(size-0x30000), 1+rng.Int64N(0x30000)
			switch {
			case i == 2 && disk%2 == 0:
				d.BeginGroup()
				mustWrite(t, d, off, n)
				mustWrite(t, d, off+n/2, n)
				d.EndGroup()
			case i == 3:
				must(t, d.WriteZeroes(off/512*512, 4096))
			case i == 4:
				must(t, d.WriteBytes(off, []byte("memo")))
			case i == 5 && disk%2 == 1:
				mustWrite(t, d, off, n)
				d.FailWrite(len(d.pending) - 1)
			default:
				mustWrite(t, d, off, n)
			}
		}
		for st := range 60 {
			img := crashImage(t, d, rng)
			plain, perr := recoverWith(d, img, nil)
			withMemo, merr := recoverWith(d, img, memo)
			sameRecovery(t, "disk "+string(rune('a'+disk))+" state "+string(rune('0'+st%10)), plain, withMemo, perr, merr)
			if perr != nil {
				fails++
			}
		}
	}
	hits, misses := memo.Counts()
	t.Logf("memo: %d chunks answered, %d judged; %d failing states", hits, misses, fails)
	if hits == 0 || misses == 0 || fails == 0 {
		t.Fatalf("vacuous: %d chunks answered, %d judged, %d failing states", hits, misses, fails)
	}
}

// TestRecoverMemoOtherExpectation: a chunk the memo kept for one model is
// not taken for another whose expectation differs, even with the same
// bytes read at the same offset: a disk whose pending write at that
// place has another id (the bytes read are not its: the state fails), a
// disk where that write is durable (the bytes pass, attributed to the
// durable write), and a disk built the same way (other records: the
// attribution must name its own).
func TestRecoverMemoOtherExpectation(t *testing.T) {
	const size = 128 << 10
	base, _ := New(size, nil)
	mustWrite(t, base, 0, 0x4000)
	base.Flush()
	// Clones of base share its durable records: the disks below differ
	// in their pending writes only (or in the write made durable).
	build := func(id uint64, flush bool) *Disk {
		d := base.Clone()
		must(t, d.WriteID(0x8000, 0x10000, id))
		if flush {
			d.Flush()
			must(t, d.WriteZeroes(0x1000, 512)) // something pending
		}
		return d
	}
	a := build(7, false)
	img := make([]byte, size)
	if err := a.ReadAt(img, 0); err != nil { // the pending write kept
		t.Fatal(err)
	}
	memo := new(JudgeMemo)
	for range 2 { // the second time from the memo
		plain, perr := recoverWith(a, img, nil)
		got, err := recoverWith(a, img, memo)
		sameRecovery(t, "the same disk", plain, got, perr, err)
		if err != nil {
			t.Fatal(err)
		}
	}
	if hits, _ := memo.Counts(); hits == 0 {
		t.Fatal("the memo answered nothing for the same disk")
	}
	for _, c := range []struct {
		name string
		d    *Disk
		fail bool
	}{
		{"another id pending at the same place", build(8, false), true},
		{"the write durable", func() *Disk { d := build(7, true); return d }(), false},
		{"the same writes, other records", build(7, false), false},
	} {
		plain, perr := recoverWith(c.d, img, nil)
		got, err := recoverWith(c.d, img, memo)
		sameRecovery(t, c.name, plain, got, perr, err)
		if (err != nil) != c.fail {
			t.Fatalf("%s: error %v, want failure %v", c.name, err, c.fail)
		}
		if err == nil {
			// The attribution names c.d's own records.
			for _, e := range got.durable {
				if e.rec != nil && e.rec.Kind == KindPattern && c.d.lookup(e.rec.ID) != e.rec && !slices.Contains(c.d.pending, e.rec) {
					t.Fatalf("%s: the recovered contents name a record of another disk: %v", c.name, e.rec.Source)
				}
			}
		}
	}
}

// TestMismatch: mismatch finds the first differing byte at every
// position of buffers of several lengths (the block sizes' edges
// included), and the length when they are equal.
func TestMismatch(t *testing.T) {
	for _, n := range []int{0, 1, 7, 8, 9, 511, 512, 513, 8191, 8192, 8193, 20000} {
		a := make([]byte, n)
		for i := range a {
			a[i] = byte(i*7 + 1)
		}
		if got := mismatch(a, slices.Clone(a)); got != n {
			t.Fatalf("length %d, equal: %d", n, got)
		}
		for x := 0; x < n; x++ {
			b := slices.Clone(a)
			b[x] ^= 1
			if n > 600 && x%97 == 0 {
				b[min(x+3, n-1)] ^= 2 // a second difference after the first
			}
			if got := mismatch(a, b); got != x {
				t.Fatalf("length %d, first difference at %d: %d", n, x, got)
			}
		}
	}
}

// TestJudgeMemoBounded: the memo keeps chunks until MaxJudgeMemo bytes
// of slabs are in use and nothing more; what it kept it still answers,
// at most maxMemoVariants chunks per offset and length; a rebinding
// forgets everything and reuses the slabs.
func TestJudgeMemoBounded(t *testing.T) {
	d, _ := New(1<<30, nil)
	mustWrite(t, d, 0, 1<<30)
	var jm JudgeMemo
	gen := jm.Bind(d)
	chunk := make([]byte, recoverChunk)
	for v := range maxMemoVariants + 2 {
		chunk[0] = byte(100 + v)
		jm.store(gen, 0, chunk, nil, nil)
	}
	if got := len(jm.chunks[memoSpan{0, recoverChunk}]); got != maxMemoVariants {
		t.Fatalf("%d chunks kept at one offset, bound %d", got, maxMemoVariants)
	}
	gen = jm.Bind(d.Clone())
	if gen2 := jm.Bind(d); gen2 != gen {
		t.Fatal("a clone of the same disk rebinds the memo")
	}
	n := 2 * MaxJudgeMemo / recoverChunk
	for i := range n {
		chunk[0] = byte(i)
		jm.store(gen, int64(i)*recoverChunk, chunk, nil, nil)
	}
	if got := len(jm.slabs) * memoSlab; got > MaxJudgeMemo {
		t.Fatalf("%d bytes of slabs, bound %d", got, MaxJudgeMemo)
	}
	kept := 0
	for i := range n {
		chunk[0] = byte(i)
		if _, ok := jm.lookup(gen, int64(i)*recoverChunk, chunk, nil); ok {
			kept++
		}
	}
	// The slabs also hold the variants at offset 0 (the clone kept the
	// binding), which the first of these chunks is not.
	if want := MaxJudgeMemo/recoverChunk - maxMemoVariants; kept != want {
		t.Fatalf("%d chunks answered, want %d", kept, want)
	}
	other, _ := New(1<<20, nil)
	if g := jm.Bind(other); g == gen {
		t.Fatal("rebinding kept the generation")
	}
	if _, ok := jm.lookup(gen, 0, chunk, nil); ok {
		t.Fatal("a lookup of the old generation answered")
	}
	if len(jm.chunks) != 0 || jm.cur != 0 || len(jm.slabs[0]) != 0 {
		t.Fatal("rebinding kept chunks")
	}
}
