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
// grows and, per 512-byte guest sector, a random subset of the pending
// writes covering it applied in issue order (the crash rule).
func (n *naive) crashState(rng *rand.Rand) []byte {
	sizes := []int{n.durSize}
	for _, o := range n.pending {
		if o.data == nil {
			sizes = append(sizes, o.grow)
		}
	}
	st := slices.Clone(n.dur[:sizes[rng.IntN(len(sizes))]])
	for s := 0; s < len(st); s += 512 {
		e := min(len(st), s+512)
		for _, o := range n.pending {
			lo, hi := max(s, o.off), min(e, o.off+len(o.data))
			if o.data == nil || lo >= hi || rng.IntN(2) == 0 {
				continue
			}
			copy(st[lo:hi], o.data[lo-o.off:hi-o.off])
		}
	}
	return st
}

// mixture builds a state the old byte-wise rule allowed: every byte from a
// random candidate (durable or a pending write covering it), in runs of
// random length so that many sectors are legal and many are not.
func (n *naive) mixture(rng *rand.Rand) []byte {
	st := slices.Clone(n.dur[:n.durSize])
	src := -1
	for i := range st {
		if rng.IntN(64) == 0 {
			src = rng.IntN(len(n.pending)+1) - 1
		}
		if src >= 0 {
			if o := n.pending[src]; o.data != nil && i >= o.off && i < o.off+len(o.data) {
				st[i] = o.data[i-o.off]
			}
		}
	}
	return st
}

// legalSector decides the crash rule for sector s of st by brute force:
// some subset of the pending writes covering it, applied in issue order to
// the durable contents, gives the bytes read. ok is false when more than
// 12 writes cover the sector (not decided).
func (n *naive) legalSector(st []byte, s int) (legal, ok bool) {
	e := min(len(st), s+512)
	var cover []naiveOp
	for _, o := range n.pending {
		if o.data != nil && max(s, o.off) < min(e, o.off+len(o.data)) {
			cover = append(cover, o)
		}
	}
	if len(cover) > 12 {
		return false, false
	}
	buf := make([]byte, e-s)
	for mask := 0; mask < 1<<len(cover); mask++ {
		copy(buf, n.dur[s:e])
		for k, o := range cover {
			if mask&(1<<k) == 0 {
				continue
			}
			lo, hi := max(s, o.off), min(e, o.off+len(o.data))
			copy(buf[lo-s:hi-s], o.data[lo-o.off:hi-o.off])
		}
		if bytes.Equal(buf, st[s:e]) {
			return true, true
		}
	}
	return false, true
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
	// A byte-wise mixture: VerifyCrash must agree with the brute force,
	// sector by sector.
	if mix := n.mixture(rng); len(mix) > 0 {
		for sec := 0; sec < len(mix); sec += 512 {
			legal, decided := n.legalSector(mix, sec)
			if !decided {
				continue
			}
			err := d.VerifyCrash(int64(sec), mix[sec:min(len(mix), sec+512)])
			if legal != (err == nil) {
				fail(step, "mixture sector %#x: brute force says legal=%v, VerifyCrash says %v", sec, legal, err)
			}
			var m *Mismatch
			if err != nil && (!errors.As(err, &m) || m.Reason != ReasonTorn && m.Reason != ReasonOrder) {
				fail(step, "mixture sector %#x of allowed bytes rejected with reason %q, want torn or order: %v", sec, m.Reason, err)
			}
		}
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
