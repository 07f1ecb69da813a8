package model

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/qedtorture/qedtorture/internal/racetest"
)

// Tests written for mutants that survived the rest of the suite (see
// docs/mutation.md): each states a documented behaviour no other test
// pinned down.

// checkMap holds an extent map to its invariants: sorted, non-empty,
// non-overlapping extents, and no two touching extents of one record (set
// merges them: collapsed maps stay small).
func checkMap(t *testing.T, what string, m extentMap) {
	t.Helper()
	for i, e := range m {
		if e.off >= e.end {
			t.Fatalf("%s: extent %d [%#x,%#x) is empty", what, i, e.off, e.end)
		}
		if i > 0 {
			p := m[i-1]
			if p.end > e.off {
				t.Fatalf("%s: extents %d and %d overlap or are unsorted", what, i-1, i)
			}
			if p.end == e.off && p.rec == e.rec {
				t.Fatalf("%s: extents %d and %d touch and share their record: not merged", what, i-1, i)
			}
		}
	}
}

// TestExtentMapInvariants: random writes (empty ones too, and ranges that
// coincide), zeroes, flushes and recoveries keep both maps to their invariants.
func TestExtentMapInvariants(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 1))
	for range 50 {
		d, err := New(int64(1+r.IntN(8))*recoverChunk, nil)
		must(t, err)
		for range 40 {
			off := r.Int64N(d.Size())
			n := r.Int64N(d.Size() - off + 1)
			if r.IntN(2) == 0 { // on a coarse grid: extents that coincide
				off = off &^ (16<<10 - 1)
				n = min(int64(1+r.IntN(4))*16<<10, d.Size()-off)
			}
			switch r.IntN(6) {
			case 0, 1:
				_, err = d.Write(off, n)
			case 2:
				_, err = d.Write(off, 0)
			case 3:
				err = d.WriteZeroes(off, n)
			case 4:
				d.Flush()
			default:
				// Everything pending survived: recover from the current
				// contents (whole runs attributed chunk by chunk, merged).
				cur := make([]byte, d.Size())
				must(t, d.ReadAt(cur, 0))
				err = d.Recover(d.Size(), func(p []byte, off int64) error { copy(p, cur[off:]); return nil })
			}
			must(t, err)
			checkMap(t, "current", d.current)
			checkMap(t, "durable", d.durable)
		}
	}
}

// TestRecoverKeepsTornHole: a pending write of which the middle was lost
// at the crash (zeros where the durable contents are a gap) is collapsed
// into two extents of the write around a gap: the hole reads zeros, not
// the write's pattern; the recovery is one more operation.
func TestRecoverKeepsTornHole(t *testing.T) {
	d, err := New(3*4096, nil)
	must(t, err)
	id := mustWrite(t, d, 0, 3*4096)
	ops := d.Ops()
	medium := cat(pat(id, 0, 4096), zeros(4096), pat(id, 8192, 4096))
	must(t, d.Recover(3*4096, func(p []byte, off int64) error { copy(p, medium[off:]); return nil }))
	if got := read(t, d, 0, 3*4096); firstDiff(got, medium) != len(medium) {
		t.Fatalf("after recovery the model reads differently from the medium at %d\n%s", firstDiff(got, medium), d.Describe(0))
	}
	must(t, d.Verify(0, medium))
	if d.Ops() != ops+1 {
		t.Errorf("Ops after Recover = %d, want %d", d.Ops(), ops+1)
	}
	checkMap(t, "current", d.current)
}

func TestBoundaries(t *testing.T) {
	racetest.Heavy(t)
	if got := Kind(len(kindNames)).String(); got != fmt.Sprintf("Kind(%d)", len(kindNames)) {
		t.Errorf("Kind(%d).String() = %q", len(kindNames), got)
	}
	if _, err := New(MaxSize, nil); err != nil {
		t.Errorf("New(MaxSize): %v", err)
	}
	if _, err := New(MaxSize+SectorSize, nil); !errors.Is(err, ErrSize) {
		t.Errorf("New(MaxSize+512): %v", err)
	}
	d, _ := New(4096, nil)
	if err := d.WriteID(0, 1, 1); err != nil {
		t.Errorf("WriteID of the next id: %v", err)
	}
	if err := d.WriteID(0, 1, MaxPatternID); err != nil {
		t.Errorf("WriteID(MaxPatternID): %v", err)
	}
	if err := d.WriteID(0, 1, MaxPatternID+1); !errors.Is(err, ErrIDSpace) {
		t.Errorf("WriteID(MaxPatternID+1): %v", err)
	}
	e, _ := New(4096, nil)
	if s := e.Describe(0); !strings.Contains(s, "(none)") {
		t.Errorf("Describe of an unwritten disk does not say (none):\n%s", s)
	}
}

// TestIdentifyStartsInFirst16: a match must start in the first 16 bytes;
// its Len counts from its Index.
func TestIdentifyStartsInFirst16(t *testing.T) {
	known := func(id uint64) bool { return id == 7 }
	p := cat(zeros(16), pat(7, 0x1000, 48))
	if m, ok := Identify(p, known); ok {
		t.Errorf("identified a pattern that starts at byte 16: %+v", m)
	}
	q := cat([]byte{0, 0, 0}, pat(7, 0x1003, 45))
	m, ok := Identify(q, known)
	if want := (Match{ID: 7, Index: 3, Len: 45, SrcOff: 0x1003}); !ok || m != want {
		t.Errorf("Identify after 3 garbage bytes: %+v %v, want %+v", m, ok, want)
	}
}

// TestOverlayMapInvariants: an overlay smaller than its backing disk takes
// the backing extents below its size, clipped, and none past it (not even
// an empty one at the limit).
func TestOverlayMapInvariants(t *testing.T) {
	b, err := New(4*4096, nil)
	must(t, err)
	mustWrite(t, b, 0, 4096)
	mustWrite(t, b, 4096, 8192)
	mustWrite(t, b, 3*4096, 4096)
	b.Flush()
	for _, size := range []int64{4096, 2 * 4096, 6144} {
		d, err := New(size, b)
		must(t, err)
		checkMap(t, "overlay durable", d.durable)
		if last := d.durable[len(d.durable)-1]; last.end != size {
			t.Errorf("overlay of size %#x: last extent ends at %#x", size, last.end)
		}
	}
}

// TestZeroLengthAtEnd: an operation of 0 bytes at the very end is in range.
func TestZeroLengthAtEnd(t *testing.T) {
	d, _ := New(4096, nil)
	if _, err := d.Write(4096, 0); err != nil {
		t.Errorf("Write(size, 0): %v", err)
	}
	if err := d.WriteZeroes(4096, 0); err != nil {
		t.Errorf("WriteZeroes(size, 0): %v", err)
	}
	if _, err := d.Write(4097, 0); err == nil {
		t.Error("Write(size+1, 0) accepted")
	}
}

// TestFailWriteKeepsOthers: marking one pending write as failed changes
// no other extent, and works for write-zeroes too.
func TestFailWriteKeepsOthers(t *testing.T) {
	d, _ := New(3*4096, nil)
	a := mustWrite(t, d, 0, 4096)
	b := mustWrite(t, d, 4096, 4096)
	must(t, d.WriteZeroes(8192, 4096))
	if !d.FailWrite(1) { // b
		t.Fatal("FailWrite(1) = false")
	}
	if !d.FailWrite(0) { // the zeroes
		t.Fatal("FailWrite(0) of write-zeroes = false")
	}
	for _, e := range d.current {
		if e.off == 0 && e.rec.failed {
			t.Error("FailWrite marked another write's extent as failed")
		}
		if e.off == 4096 && !e.rec.failed {
			t.Error("the failed write's extent is not marked")
		}
	}
	if r := d.byID[b-1]; !r.failed {
		t.Error("the failed write's id still names the unfailed record")
	}
	if r := d.byID[a-1]; r.failed {
		t.Error("another write's id names a failed record")
	}
	want := cat(pat(a, 0, 4096), pat(b, 4096, 4096), zeros(4096))
	must(t, d.Verify(0, want))
}

// TestGroupAfterPendingWrite: a concurrent group that follows a pending
// write over the same sector may land in any order over it; a byte that
// none of them wrote fails the check (an error, never a panic).
func TestGroupAfterPendingWrite(t *testing.T) {
	d, _ := New(4096, nil)
	w0 := mustWrite(t, d, 0, 512)
	d.BeginGroup()
	g1 := mustWrite(t, d, 0, 512)
	g2 := mustWrite(t, d, 0, 512)
	d.EndGroup()
	for name, sec := range map[string][]byte{
		"w0 only": pat(w0, 0, 512), "g1 last": pat(g1, 0, 512), "g2 last": pat(g2, 0, 512), "none": zeros(512),
	} {
		if err := d.VerifyCrash(0, cat(sec, zeros(4096-512))); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	bad := cat(pat(g1, 0, 256), pat(w0, 256, 256), zeros(4096-512))
	bad[100] ^= 0xff
	if err := d.VerifyCrash(0, bad); err == nil {
		t.Error("a byte no write wrote was allowed")
	}
}

func crashReason(t *testing.T, d *Disk, got []byte) string {
	t.Helper()
	err := d.VerifyCrash(0, got)
	var m *Mismatch
	if !errors.As(err, &m) {
		t.Fatalf("VerifyCrash = %v, want a *Mismatch", err)
	}
	return m.Reason
}

// TestSectorReasons: the reason a crash state's sector is rejected — a
// write torn inside a sector where no guest write starts or ends; an
// earlier write showing over a later one; a failed write's bytes judged
// one by one, the rest of the sector still judged.
func TestSectorReasons(t *testing.T) {
	d, _ := New(4096, nil)
	a := mustWrite(t, d, 0, 512)
	b := mustWrite(t, d, 0, 256)
	// b applied, a applied only up to 300: a torn inside the sector.
	torn := cat(pat(b, 0, 256), pat(a, 256, 44), zeros(4096-300))
	if r := crashReason(t, d, torn); r != ReasonTorn {
		t.Errorf("a torn inside the sector: reason %q, want %q", r, ReasonTorn)
	}

	e, _ := New(4096, nil)
	a = mustWrite(t, e, 0, 512)
	b = mustWrite(t, e, 0, 512)
	// b's first half, then a over b's second half: a issued first.
	order := cat(pat(b, 0, 256), pat(a, 256, 256), zeros(4096-512))
	if r := crashReason(t, e, order); r != ReasonOrder {
		t.Errorf("an earlier write over a later one: reason %q, want %q", r, ReasonOrder)
	}

	f, _ := New(4096, nil)
	a = mustWrite(t, f, 0, 256)
	if !f.FailWrite(0) {
		t.Fatal("FailWrite")
	}
	half := cat(pat(a, 0, 100), zeros(4096-100))
	must(t, f.VerifyCrash(0, half)) // a failed write may stop anywhere
	bad := slices.Clone(half)
	bad[300] = 0xff // past the failed write: no write allows it
	if err := f.VerifyCrash(0, bad); err == nil {
		t.Error("a byte past a failed write that nothing wrote was allowed")
	}
}

// reasonOf is crashReason that reports a panic of the check as an error
// (an index past a candidate's bytes must not crash the oracle).
func reasonOf(t *testing.T, d *Disk, got []byte) (r string) {
	t.Helper()
	defer func() {
		if p := recover(); p != nil {
			t.Errorf("VerifyCrash panicked: %v", p)
			r = ""
		}
	}()
	return crashReason(t, d, got)
}

// TestSectorReasonsLayouts: the reason explainSector gives where the
// simple cases of TestSectorReasons do not reach: a byte explained by a
// later write that starts exactly there; an earlier write that starts
// exactly at the byte; an earlier write that ends exactly at the byte
// (its bytes must not be read one past their end); an earlier write of
// the same concurrent group (no order between them: torn) or of another
// group (order). Every state is one sector of 512 bytes, then zeroes.
func TestSectorReasonsLayouts(t *testing.T) {
	rest := zeros(4096 - 512)
	tests := []struct {
		name   string
		layout func(d *Disk) []byte
		want   string
	}{{
		// A, W over the sector, then L over [256,384). W shows on
		// [0,256), L on [256,384) (a later write starting at 256
		// explains it), A on [384,512): an earlier write over W.
		"later write starts at the byte", func(d *Disk) []byte {
			a := mustWrite(t, d, 0, 512)
			w := mustWrite(t, d, 0, 512)
			l := mustWrite(t, d, 256, 128)
			return cat(pat(w, 0, 256), pat(l, 256, 128), pat(a, 384, 128), rest)
		}, ReasonOrder,
	}, {
		// A over [256,512), then W over the sector: W on [0,256), A on
		// [256,512), where A starts: A shows over W, issued later.
		"earlier write starts at the byte", func(d *Disk) []byte {
			a := mustWrite(t, d, 256, 256)
			w := mustWrite(t, d, 0, 512)
			return cat(pat(w, 0, 256), pat(a, 256, 256), rest)
		}, ReasonOrder,
	}, {
		// E over [0,256), then W over the sector: W on [0,256), the
		// durable zeroes on [256,512), where E ends: W torn at 256.
		"earlier write ends at the byte", func(d *Disk) []byte {
			mustWrite(t, d, 0, 256)
			w := mustWrite(t, d, 0, 512)
			return cat(pat(w, 0, 256), zeros(256), rest)
		}, ReasonTorn,
	}, {
		// A and W in one concurrent group: either may land last, but
		// each whole; W on [0,256), A on [256,512) is torn, not order.
		"earlier write of the same group", func(d *Disk) []byte {
			d.BeginGroup()
			a := mustWrite(t, d, 0, 512)
			w := mustWrite(t, d, 0, 512)
			d.EndGroup()
			return cat(pat(w, 0, 256), pat(a, 256, 256), rest)
		}, ReasonTorn,
	}, {
		// A and B in a group, then W alone: A over W is order.
		"earlier write of another group", func(d *Disk) []byte {
			d.BeginGroup()
			a := mustWrite(t, d, 0, 512)
			mustWrite(t, d, 1024, 512)
			d.EndGroup()
			w := mustWrite(t, d, 0, 512)
			return cat(pat(w, 0, 256), pat(a, 256, 256), rest)
		}, ReasonOrder,
	}}
	for _, tc := range tests {
		d, err := New(4096, nil)
		must(t, err)
		got := tc.layout(d)
		if r := reasonOf(t, d, got); r != tc.want {
			t.Errorf("%s: reason %q, want %q", tc.name, r, tc.want)
		}
	}
}
