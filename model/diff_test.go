package model

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"testing"
)

// naive is the obviously-correct-by-construction model the Disk is
// compared against: whole byte arrays and the list of pending operations.
type naive struct {
	cur, dur []byte // current contents; durable contents (len = current size, zeros past durable size)
	durSize  int
	pending  []naiveOp
}

type naiveOp struct {
	off  int
	data []byte // nil for a grow
	grow int
}

func (n *naive) write(off int, p []byte) {
	copy(n.cur[off:], p)
	n.pending = append(n.pending, naiveOp{off: off, data: slices.Clone(p)})
}

func (n *naive) grow(size int) {
	n.cur = append(n.cur, make([]byte, size-len(n.cur))...)
	n.dur = append(n.dur, make([]byte, size-len(n.dur))...)
	n.pending = append(n.pending, naiveOp{grow: size})
}

func (n *naive) flush() {
	copy(n.dur, n.cur)
	n.durSize = len(n.cur)
	n.pending = nil
}

// allowed reports whether v may be read at byte i after a crash.
func (n *naive) allowed(i int, v byte) bool {
	if n.dur[i] == v {
		return true
	}
	for _, o := range n.pending {
		if o.data != nil && i >= o.off && i < o.off+len(o.data) && o.data[i-o.off] == v {
			return true
		}
	}
	return false
}

// crashState builds a random crash state: a size allowed by the pending
// grows and, per 512-byte sector of every pending write, kept or not, in a
// random order.
func (n *naive) crashState(rng *rand.Rand) []byte {
	sizes := []int{n.durSize}
	for _, o := range n.pending {
		if o.data == nil {
			sizes = append(sizes, o.grow)
		}
	}
	st := slices.Clone(n.dur[:sizes[rng.IntN(len(sizes))]])
	for _, k := range rng.Perm(len(n.pending)) {
		o := n.pending[k]
		for s := 0; s < len(o.data); s += 512 {
			if rng.IntN(2) == 0 {
				continue
			}
			e := min(len(o.data), s+512)
			if o.off+s < len(st) {
				copy(st[o.off+s:min(len(st), o.off+e)], o.data[s:e])
			}
		}
	}
	return st
}

func seedFromEnv(t *testing.T, name string) uint64 {
	if s := os.Getenv(name); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("%s=%q: %v", name, s, err)
		}
		return v
	}
	return rand.Uint64()
}

// TestDifferential runs random workloads against a Disk and the naive
// model. Replay with MODEL_SEED=<seed>; MODEL_LONG=1 runs many more.
func TestDifferential(t *testing.T) {
	seed := seedFromEnv(t, "MODEL_SEED")
	t.Logf("seed %d (replay with MODEL_SEED=%d)", seed, seed)
	runs := 60
	if os.Getenv("MODEL_LONG") != "" {
		runs = 5000
	}
	rng := rand.New(rand.NewPCG(seed, 1))
	for run := 0; run < runs; run++ {
		differentialRun(t, rng, run)
		if t.Failed() {
			return
		}
	}
}

func differentialRun(t *testing.T, rng *rand.Rand, run int) {
	size := 512 * (1 + rng.IntN(8))
	n := &naive{}
	var backing *Disk
	if rng.IntN(2) == 0 { // a backing disk, shorter or longer
		bsize := 512 * rng.IntN(16)
		b, err := New(int64(bsize), nil)
		must(t, err)
		bdata := make([]byte, bsize)
		for i := 0; i < 3 && bsize > 0; i++ {
			off := rng.IntN(bsize)
			l := rng.IntN(bsize - off + 1)
			id := mustWrite(t, b, int64(off), int64(l))
			Fill(bdata[off:off+l], id, int64(off))
		}
		b.Flush()
		backing = b
		n.cur = make([]byte, size)
		copy(n.cur, bdata)
	} else {
		n.cur = make([]byte, size)
	}
	n.dur = slices.Clone(n.cur)
	n.durSize = size
	d, err := New(int64(size), backing)
	must(t, err)

	fail := func(step int, format string, args ...any) {
		t.Helper()
		t.Fatalf("run %d step %d: "+format+"\n%s", append([]any{run, step}, append(args, d.Describe(40))...)...)
	}
	for step := 0; step < 60; step++ {
		sz := len(n.cur)
		off := rng.IntN(sz + 1)
		l := rng.IntN(min(sz-off, 1500) + 1)
		switch op := rng.IntN(20); {
		case op < 6:
			id, err := d.Write(int64(off), int64(l))
			must(t, err)
			p := make([]byte, l)
			Fill(p, id, int64(off))
			n.write(off, p)
		case op < 8:
			p := make([]byte, l)
			for i := range p {
				p[i] = byte(rng.IntN(4)) // small values: many coincidences
			}
			must(t, d.WriteBytes(int64(off), p))
			n.write(off, p)
		case op < 10:
			must(t, d.WriteZeroes(int64(off), int64(l)))
			n.write(off, make([]byte, l))
		case op < 11:
			ns := sz + 512*rng.IntN(3)
			must(t, d.Grow(int64(ns)))
			n.grow(ns)
		case op < 13:
			d.Flush()
			n.flush()
		case op < 16:
			got := make([]byte, l)
			must(t, d.ReadAt(got, int64(off)))
			if i := firstDiff(got, n.cur[off:off+l]); i < l {
				fail(step, "ReadAt(%#x,+%#x) differs at %#x", off, l, off+i)
			}
			if err := d.Verify(int64(off), n.cur[off:off+l]); err != nil {
				fail(step, "Verify(current): %v", err)
			}
		default:
			crashCheck(t, rng, d, n, fail, step)
		}
	}
}

func crashCheck(t *testing.T, rng *rand.Rand, d *Disk, n *naive, fail func(int, string, ...any), step int) {
	t.Helper()
	// Uncertain = exactly the bytes some pending write covers.
	covered := make([]bool, len(n.cur))
	for _, o := range n.pending {
		for i := range o.data {
			covered[o.off+i] = true
		}
	}
	var want []Range
	for i := 0; i < len(covered); i++ {
		if covered[i] {
			j := i
			for j < len(covered) && covered[j] {
				j++
			}
			want = append(want, Range{int64(i), int64(j - i)})
			i = j
		}
	}
	if got := d.Uncertain(); !slices.Equal(got, want) {
		fail(step, "Uncertain = %v, want %v", got, want)
	}
	st := n.crashState(rng)
	if !slices.Contains(d.CrashSizes(), int64(len(st))) {
		fail(step, "size %d not in CrashSizes %v", len(st), d.CrashSizes())
	}
	if err := d.VerifyCrash(0, st); err != nil {
		fail(step, "VerifyCrash(valid crash state): %v", err)
	}
	if len(st) > 0 {
		// One byte set to a value the naive model does not allow.
		i := rng.IntN(len(st))
		bad := slices.Clone(st)
		for v := rng.IntN(256); ; v = (v + 1) % 256 {
			if !n.allowed(i, byte(v)) {
				bad[i] = byte(v)
				break
			}
		}
		var m *Mismatch
		err := d.VerifyCrash(0, bad)
		if !errors.As(err, &m) || m.Off != int64(i) || m.Len != 1 || m.Bad != 1 {
			fail(step, "VerifyCrash(byte %#x corrupted) = %v", i, err)
		}
		ncand := 1
		for _, o := range n.pending {
			if o.data != nil && i >= o.off && i < o.off+len(o.data) {
				ncand++
			}
		}
		if len(m.Candidates) != ncand {
			fail(step, "%d candidates at %#x, want %d: %v", len(m.Candidates), i, ncand, err)
		}
		for _, c := range m.Candidates {
			if len(c.Want) == 0 || !n.allowed(i, c.Want[0]) {
				fail(step, "candidate %v not allowed at %#x", c, i)
			}
		}
	}
	if rng.IntN(2) == 0 {
		return
	}
	// Recover from this state and continue.
	must(t, d.Recover(int64(len(st)), func(p []byte, off int64) error {
		copy(p, st[off:])
		return nil
	}))
	n.cur = st
	n.dur = slices.Clone(st)
	n.durSize = len(st)
	n.pending = nil
	if !bytes.Equal(readAll(t, d), st) {
		fail(step, "contents after Recover differ at %#x", firstDiff(readAll(t, d), st))
	}
}

func readAll(t *testing.T, d *Disk) []byte {
	return read(t, d, 0, int(d.Size()))
}
