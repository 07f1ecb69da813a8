package crashsim

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// TestWholePageWritesOverPooledPages: a write or discard that covers a
// whole page takes a page from the pool without filling it first
// (pageForOverwrite); one that covers part of a page must still start
// from the page's old bytes (or zeros for a hole). The pool is filled
// with garbage pages, so a page taken unfilled where it should not be
// shows. Writes and discards at random, page-aligned or not, over
// snapshots (pages of an older generation, shared), every snapshot
// compared with a plain byte slice.
func TestWholePageWritesOverPooledPages(t *testing.T) {
	seed := testSeed(t)
	r := rand.New(rand.NewPCG(seed, 19))
	garbage := func() {
		for range 64 {
			p := new([PageSize]byte)
			for i := range p {
				p[i] = 0xa5
			}
			pagePool.Put(p)
		}
	}
	const size = 64 * PageSize
	type snap struct {
		c    content
		want []byte
	}
	var snaps []snap
	var c content
	model := make([]byte, 0, size)
	gen := newGen()
	whole, part := 0, 0
	for step := range 2000 {
		garbage()
		off := r.Int64N(size - 8*PageSize)
		if r.IntN(2) == 0 {
			off &^= PageSize - 1
		}
		n := r.Int64N(4 * PageSize)
		if r.IntN(3) == 0 {
			n = (1 + r.Int64N(3)) * PageSize
		}
		if n >= PageSize || (off%PageSize == 0 && n == PageSize) {
			whole++
		} else {
			part++
		}
		if end := off + n; end > int64(len(model)) {
			model = append(model, make([]byte, end-int64(len(model)))...)
		}
		if r.IntN(4) == 0 {
			applyDiscard(&c, off, n, gen)
			clear(model[off : off+n])
			if c.size < off+n { // a discard does not extend: pad as a write would
				c.writeAt(make([]byte, off+n-c.size), c.size, gen)
			}
		} else {
			data := make([]byte, n)
			for i := range data {
				data[i] = byte(r.Uint32())
			}
			c.writeAt(data, off, gen)
			copy(model[off:], data)
		}
		if c.size != int64(len(model)) {
			t.Fatalf("step %d: size %d, model %d", step, c.size, len(model))
		}
		if r.IntN(8) == 0 {
			snaps = append(snaps, snap{c, bytes.Clone(model)})
			gen = newGen()
		}
	}
	snaps = append(snaps, snap{c, model})
	for i, s := range snaps {
		got := make([]byte, s.c.size)
		s.c.readAt(got, 0)
		if j := firstDiff(got, s.want); j >= 0 {
			t.Fatalf("snapshot %d of %d differs from the model at %#x: %#x, want %#x", i, len(snaps), j, got[j], s.want[j])
		}
	}
	if whole == 0 || part == 0 {
		t.Fatalf("whole-page and partial operations not both drawn: %d, %d", whole, part)
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	if len(a) != len(b) {
		return min(len(a), len(b))
	}
	return -1
}
