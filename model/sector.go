package model

import (
	"bytes"
	"fmt"
	"slices"
	"sync"
)

// The crash rule, sector by sector (see the package doc, "The crash
// oracle"): after a crash, each SectorSize-aligned guest sector reads as
// its durable value with some subset of the pending writes that cover it
// applied in issue order (in any order among the writes of one concurrent
// group, see BeginGroup). A boundary between values inside a sector is
// therefore legal only where a pending guest write starts or ends.
//
// The decision is exact and greedy. Walk the pending writes that cover the
// sector from the last issued to the first, keeping U, the bytes of the
// sector that no write kept so far covers. A write that agrees with the
// bytes read on all of its bytes in U is kept (its bytes in U are
// explained by it; keeping it never hurts: any solution without it stays
// one with it, since its bytes in U already hold its values); one that
// disagrees on a byte of U must be dropped (no later kept write would hide
// that byte). Inside a concurrent group the writes may be kept in any
// order: the group is swept again until no write of it can be kept. What
// is left of U must hold the durable value. Bytes that no pending write
// covers take no part: they must read their durable value, so the rule
// decomposes exactly over the read ranges the callers use (the pending
// writes' union, cut at sector boundaries, and everything outside it).

// Reasons a crash check rejects bytes (Mismatch.Reason).
const (
	// ReasonValue: a byte is neither its durable value nor the value of
	// any pending write covering it (for Verify: not the current value).
	ReasonValue = "value"
	// ReasonTorn: every byte has an allowed value, but a pending write is
	// applied to part of a sector and not to the rest of its bytes there
	// (a boundary inside a sector where no guest write starts or ends).
	ReasonTorn = "torn"
	// ReasonOrder: every byte has an allowed value, but inside a sector an
	// earlier write's value shows over a later write that is applied
	// there (overlapping writes applied out of issue order; writes of one
	// concurrent group may land in any order).
	ReasonOrder = "order"
)

// cand is a pending write intersecting a judged range: its bytes over
// [lo, hi), generated lazily.
type cand struct {
	rec    *record
	lo, hi int64
	want   []byte
	filled bool
	group  int  // the record's concurrent group (0: none)
	failed bool // the write returned an error: judged byte by byte
}

func (c *cand) bytes() []byte {
	if !c.filled {
		c.rec.expect(c.want, c.lo)
		c.filled = true
	}
	return c.want
}

// span is an interval [lo, hi) of guest offsets.
type span struct{ lo, hi int64 }

// attrRun says guest bytes [lo, hi) read as cands[idx]'s.
type attrRun struct {
	lo, hi int64
	idx    int
}

// judgeScratch is reusable memory of one judge call (pooled).
type judgeScratch struct {
	durable []byte
	buf     []byte
	cands   []cand
	u, nu   []span
	kept    []bool
	runs    []attrRun
	sec     []attrRun
	memo    []memoRun // a JudgeMemo's answer
}

var judgePool = sync.Pool{New: func() any { return new(judgeScratch) }}

// maxPooledJudge bounds the scratch bytes kept in the pool.
const maxPooledJudge = 1 << 20

func (sc *judgeScratch) put() {
	if cap(sc.buf) > maxPooledJudge {
		sc.buf = nil
	}
	if cap(sc.durable) > maxPooledJudge {
		sc.durable = nil
	}
	judgePool.Put(sc)
}

// sectorFail describes the first sector that breaks the rule.
type sectorFail struct {
	reason string
	at     int64 // first unexplained byte
	detail string
}

// judge checks got, read at off after a crash, against the rule. On
// success it returns nil and leaves in sc.runs the bytes that pending
// writes explain (everything else is explained by the durable contents),
// ascending and merged, indexing sc.cands. On failure it returns the ok
// mask of got (false: an unexplained byte of a failing sector, or a byte
// no candidate allows) and the first failing sector's reason.
func (d *Disk) judge(off int64, got []byte, sc *judgeScratch) ([]bool, *sectorFail) {
	n := len(got)
	end := off + int64(n)
	sc.runs = sc.runs[:0]
	sc.cands = sc.cands[:0]
	if cap(sc.durable) < n {
		sc.durable = make([]byte, n)
	}
	dur := sc.durable[:n]
	d.durable.read(dur, off)
	if d.excused {
		d.durable.allowAny(dur, got, off)
	}
	if bytes.Equal(dur, got) {
		return nil, nil
	}
	need := 0
	for _, r := range d.pending {
		if lo, hi := max(r.Off, off), min(r.Off+r.Len, end); r.Kind != KindGrow && lo < hi {
			need += int(hi - lo)
		}
	}
	if cap(sc.buf) < need {
		sc.buf = make([]byte, need)
	}
	buf := sc.buf[:need]
	for _, r := range d.pending {
		lo, hi := max(r.Off, off), min(r.Off+r.Len, end)
		if r.Kind == KindGrow || lo >= hi {
			continue
		}
		sc.cands = append(sc.cands, cand{rec: r, lo: lo, hi: hi, want: buf[:hi-lo], group: r.group, failed: r.failed})
		buf = buf[hi-lo:]
	}
	if d.excused {
		// Excused bytes agree with every candidate (any value allowed).
		for j := range sc.cands {
			c := &sc.cands[j]
			d.durable.allowAny(c.bytes(), got[c.lo-off:c.hi-off], c.lo)
		}
	}
	var fail *sectorFail
	var ok []bool
	for s := off - off%SectorSize; s < end; s += SectorSize {
		lo, hi := max(s, off), min(s+SectorSize, end)
		g, w := got[lo-off:hi-off], dur[lo-off:hi-off]
		if bytes.Equal(g, w) {
			continue
		}
		if d.judgeSector(off, lo, hi, got, dur, sc) {
			continue
		}
		if fail == nil {
			fail = d.explainSector(off, lo, hi, got, dur, sc)
			ok = make([]bool, n)
			for i := range ok {
				ok[i] = true
			}
		}
		// Bytes that no candidate allows are the bad ones; if there are
		// none, the sector is torn or out of order and every byte left
		// unexplained that is not its durable value is bad.
		marked := false
		for _, u := range sc.u {
			for p := u.lo; p < u.hi; p++ {
				if got[p-off] != dur[p-off] && !sc.allowed(off, got, p) {
					ok[p-off], marked = false, true
				}
			}
		}
		for _, u := range sc.u {
			for p := u.lo; p < u.hi && !marked; p++ {
				if got[p-off] != dur[p-off] {
					ok[p-off] = false
				}
			}
		}
	}
	return ok, fail
}

// allowed reports whether some candidate covering p gives it the value
// read (the durable value is checked by the caller).
func (sc *judgeScratch) allowed(off int64, got []byte, p int64) bool {
	for j := range sc.cands {
		c := &sc.cands[j]
		if c.lo <= p && p < c.hi && c.bytes()[p-c.lo] == got[p-off] {
			return true
		}
	}
	return false
}

// judgeSector runs the greedy decision over the sector part [lo, hi) of
// the judged range (read at off). On success it appends the sector's
// attribution to sc.runs. It leaves in sc.u what no kept write explains.
func (d *Disk) judgeSector(off, lo, hi int64, got, dur []byte, sc *judgeScratch) bool {
	sc.u = append(sc.u[:0], span{lo, hi})
	sc.sec = sc.sec[:0]
	cands := sc.cands
	for b := len(cands); b > 0 && len(sc.u) > 0; {
		a := b - 1
		if g := cands[a].group; g != 0 {
			for a > 0 && cands[a-1].group == g {
				a--
			}
		}
		if a == b-1 {
			sc.keep(off, got, a)
		} else {
			if cap(sc.kept) < b-a {
				sc.kept = make([]bool, b-a)
			}
			kept := sc.kept[:b-a]
			clear(kept)
			for changed := true; changed && len(sc.u) > 0; {
				changed = false
				for j := b - 1; j >= a; j-- {
					if !kept[j-a] && sc.keep(off, got, j) {
						kept[j-a], changed = true, true
					}
				}
			}
		}
		b = a
	}
	for _, u := range sc.u {
		if !bytes.Equal(got[u.lo-off:u.hi-off], dur[u.lo-off:u.hi-off]) {
			return false
		}
	}
	// Attribution: the sector's runs, ascending, merged into sc.runs.
	slices.SortFunc(sc.sec, func(x, y attrRun) int { return int(x.lo - y.lo) })
	for _, r := range sc.sec {
		if k := len(sc.runs); k > 0 && sc.runs[k-1].idx == r.idx && sc.runs[k-1].hi == r.lo {
			sc.runs[k-1].hi = r.hi
			continue
		}
		sc.runs = append(sc.runs, r)
	}
	return true
}

// keep keeps candidate j if it agrees with got on all of its bytes in U
// (it then explains them: they leave U) and reports whether it did. A
// candidate with no bytes in U is not kept (it would explain nothing).
func (sc *judgeScratch) keep(off int64, got []byte, j int) bool {
	c := &sc.cands[j]
	if c.failed {
		return sc.keepBytes(off, got, j)
	}
	hit := false
	for _, u := range sc.u {
		lo, hi := max(u.lo, c.lo), min(u.hi, c.hi)
		if lo >= hi {
			continue
		}
		hit = true
		if !bytes.Equal(got[lo-off:hi-off], c.bytes()[lo-c.lo:hi-c.lo]) {
			return false
		}
	}
	if !hit {
		return false
	}
	sc.nu = sc.nu[:0]
	for _, u := range sc.u {
		lo, hi := max(u.lo, c.lo), min(u.hi, c.hi)
		if lo >= hi {
			sc.nu = append(sc.nu, u)
			continue
		}
		sc.sec = append(sc.sec, attrRun{lo, hi, j})
		if u.lo < lo {
			sc.nu = append(sc.nu, span{u.lo, lo})
		}
		if hi < u.hi {
			sc.nu = append(sc.nu, span{hi, u.hi})
		}
	}
	sc.u, sc.nu = sc.nu, sc.u
	return true
}

// keepBytes is keep for a failed write: every byte of it in U that holds
// its value is explained by it (each byte kept or not on its own).
func (sc *judgeScratch) keepBytes(off int64, got []byte, j int) bool {
	c := &sc.cands[j]
	kept := false
	sc.nu = sc.nu[:0]
	for _, u := range sc.u {
		lo, hi := max(u.lo, c.lo), min(u.hi, c.hi)
		if lo >= hi {
			sc.nu = append(sc.nu, u)
			continue
		}
		if u.lo < lo {
			sc.nu = append(sc.nu, span{u.lo, lo})
		}
		want := c.bytes()
		for p := lo; p < hi; {
			q := p
			match := got[p-off] == want[p-c.lo]
			for q < hi && (got[q-off] == want[q-c.lo]) == match {
				q++
			}
			if match {
				sc.sec = append(sc.sec, attrRun{p, q, j})
				kept = true
			} else {
				sc.nu = append(sc.nu, span{p, q})
			}
			p = q
		}
		if hi < u.hi {
			sc.nu = append(sc.nu, span{hi, u.hi})
		}
	}
	sc.u, sc.nu = sc.nu, sc.u
	return kept
}

// explainSector says why the sector part [lo, hi) breaks the rule, after
// judgeSector failed on it (sc.u holds the bytes it could not explain).
func (d *Disk) explainSector(off, lo, hi int64, got, dur []byte, sc *judgeScratch) *sectorFail {
	sector := lo - lo%SectorSize
	// A byte no candidate allows, else the first unexplained byte that is
	// not its durable value.
	x := int64(-1)
	for _, u := range sc.u {
		for p := u.lo; p < u.hi && x < 0; p++ {
			if got[p-off] != dur[p-off] && !sc.allowed(off, got, p) {
				return &sectorFail{ReasonValue, p, fmt.Sprintf("the byte at %#x is neither its durable value nor any pending write's", p)}
			}
		}
	}
	for _, u := range sc.u {
		for p := u.lo; p < u.hi && x < 0; p++ {
			if got[p-off] != dur[p-off] {
				x = p
			}
		}
	}
	// The latest write whose value the byte holds.
	wi := -1
	for j := len(sc.cands) - 1; j >= 0; j-- {
		c := &sc.cands[j]
		if c.lo <= x && x < c.hi && c.bytes()[x-c.lo] == got[x-off] {
			wi = j
			break
		}
	}
	w := &sc.cands[wi]
	// A byte of w in this sector that does not hold w's value and that no
	// later write covering it explains.
	for p := max(lo, w.lo); p < min(hi, w.hi); p++ {
		if got[p-off] == w.bytes()[p-w.lo] {
			continue
		}
		later := false
		for j := wi + 1; j < len(sc.cands); j++ {
			c := &sc.cands[j]
			if c.lo <= p && p < c.hi && c.bytes()[p-c.lo] == got[p-off] {
				later = true
				break
			}
		}
		if later {
			continue
		}
		for j := wi - 1; j >= 0; j-- {
			c := &sc.cands[j]
			if c.group != 0 && c.group == w.group {
				continue
			}
			if c.lo <= p && p < c.hi && c.bytes()[p-c.lo] == got[p-off] && got[p-off] != dur[p-off] {
				return &sectorFail{ReasonOrder, x, fmt.Sprintf(
					"in the sector at %#x, %s shows at %#x over %s, issued later and applied at %#x",
					sector, c.rec.Source, p, w.rec.Source, x)}
			}
		}
		return &sectorFail{ReasonTorn, x, fmt.Sprintf(
			"in the sector at %#x, %s is applied at %#x but not at %#x (a boundary inside the sector where no guest write starts or ends)",
			sector, w.rec.Source, x, p)}
	}
	return &sectorFail{ReasonTorn, x, fmt.Sprintf(
		"the sector at %#x is no ordered subset of the pending writes covering it (first unexplained byte %#x)", sector, x)}
}
