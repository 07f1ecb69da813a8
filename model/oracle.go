package model

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"sync"
)

// Candidate is one value allowed at a byte, with the operation behind it.
type Candidate struct {
	Source
	Durable bool   // the value as of the last flush (else a pending operation's)
	Want    []byte // the candidate's bytes from Mismatch.Off (an excerpt)
}

// Mismatch explains bytes that are not allowed. It is returned by Verify
// (Crash false: the only allowed value is the current one) and VerifyCrash.
type Mismatch struct {
	Crash      bool
	ReadOff    int64       // the checked range
	ReadLen    int64       //
	Off        int64       // guest offset of the first bad byte
	Len        int64       // length of the bad run from Off to its last bad byte (it ends before 16 good bytes in a row)
	Bad        int64       // bad bytes in the whole checked range
	Got        []byte      // an excerpt of the bytes read, from Off
	Candidates []Candidate // what was allowed at Off, durable value first
	Looks      string      // what the bytes read from Off look like
}

const excerptLen = 32

// runGap is how many allowed bytes in a row end a bad run.
const runGap = 16

func (m *Mismatch) Error() string {
	var b strings.Builder
	what := "read check"
	if m.Crash {
		what = "crash check"
	}
	fmt.Fprintf(&b, "model: %s: bad data at %#x: run of %#x bytes (%#x bad in the read [%#x,+%#x))\n",
		what, m.Off, m.Len, m.Bad, m.ReadOff, m.ReadLen)
	fmt.Fprintf(&b, "  read:    %s\n", hexExcerpt(m.Got))
	fmt.Fprintf(&b, "  looks like: %s\n", m.Looks)
	for _, c := range m.Candidates {
		state := "pending"
		if c.Durable {
			state = "durable"
		}
		if !m.Crash {
			state = "current"
		}
		fmt.Fprintf(&b, "  allowed (%s) %s: %s\n", state, c.Source, hexExcerpt(c.Want))
	}
	return strings.TrimSuffix(b.String(), "\n")
}

func hexExcerpt(p []byte) string {
	return hex.EncodeToString(p[:min(len(p), excerptLen)])
}

var scratchPool = sync.Pool{New: func() any { return new([]byte) }}

func getScratch(n int) *[]byte {
	b := scratchPool.Get().(*[]byte)
	if cap(*b) < n {
		*b = make([]byte, n)
	}
	*b = (*b)[:n]
	return b
}

// Verify checks bytes read from a running disk at off: they must equal the
// current contents exactly. It returns nil or a *Mismatch (or a
// *RangeError).
func (d *Disk) Verify(off int64, got []byte) error {
	if err := d.checkRange("verify", off, int64(len(got))); err != nil {
		return err
	}
	sp := getScratch(len(got))
	defer scratchPool.Put(sp)
	want := *sp
	d.current.read(want, off)
	if bytes.Equal(want, got) {
		return nil
	}
	ok := make([]bool, len(got))
	for i := range got {
		ok[i] = want[i] == got[i]
	}
	return d.mismatch(false, off, got, ok)
}

// VerifyCrash checks bytes read at off after a crash: each byte must equal
// its durable value (as of the last flush) or the value a pending operation
// wrote to it. The range may extend to the current size (see CrashSizes for
// the sizes a crashed disk may have). It returns nil or a *Mismatch (or a
// *RangeError).
func (d *Disk) VerifyCrash(off int64, got []byte) error {
	if err := d.checkRange("verify-crash", off, int64(len(got))); err != nil {
		return err
	}
	sp := getScratch(len(got))
	defer scratchPool.Put(sp)
	if ok := d.crashOK(off, got, *sp); ok != nil {
		return d.mismatch(true, off, got, ok)
	}
	return nil
}

// crashOK returns nil if got is allowed at off after a crash, else a mask of
// the allowed bytes. want is scratch space of len(got). Only the span from
// the first to the last byte that differs from the durable contents is
// examined byte by byte.
func (d *Disk) crashOK(off int64, got, want []byte) []bool {
	d.durable.read(want, off)
	if bytes.Equal(want, got) {
		return nil
	}
	lo, hi := diffSpan(want, got)
	span := hi - lo
	mp := getScratch(span)
	defer scratchPool.Put(mp)
	good := *mp // good[i] != 0: byte lo+i is allowed
	for i := range good {
		good[i] = b2u(want[lo+i] == got[lo+i])
	}
	sOff, sEnd := off+int64(lo), off+int64(hi)
	for _, r := range d.pending {
		a, b := max(r.Off, sOff), min(r.Off+r.Len, sEnd)
		if r.Kind == KindGrow || a >= b {
			continue
		}
		w := want[a-off : b-off]
		r.expect(w, a)
		g, o := got[a-off:b-off], good[a-sOff:b-sOff]
		for i := range w {
			o[i] |= b2u(w[i] == g[i])
		}
	}
	if bytes.IndexByte(good, 0) < 0 {
		return nil
	}
	ok := make([]bool, len(got))
	for i := range ok {
		ok[i] = i < lo || i >= hi || good[i-lo] != 0
	}
	return ok
}

func b2u(b bool) byte {
	if b {
		return 1
	}
	return 0
}

// diffSpan returns the first index where a and b differ and one past the
// last; they must differ somewhere.
func diffSpan(a, b []byte) (lo, hi int) {
	for lo+8 <= len(a) && binary.LittleEndian.Uint64(a[lo:]) == binary.LittleEndian.Uint64(b[lo:]) {
		lo += 8
	}
	for a[lo] == b[lo] {
		lo++
	}
	hi = len(a)
	for hi-8 >= lo && binary.LittleEndian.Uint64(a[hi-8:]) == binary.LittleEndian.Uint64(b[hi-8:]) {
		hi -= 8
	}
	for a[hi-1] == b[hi-1] {
		hi--
	}
	return lo, hi
}

func (d *Disk) mismatch(crash bool, off int64, got []byte, ok []bool) *Mismatch {
	first := slices.Index(ok, false)
	// The bad run ends at the last bad byte before runGap allowed bytes in a
	// row, so that bytes which match a candidate by chance (1 in 256 each)
	// do not cut it up.
	run, good, bad := first, 0, int64(0)
	for i := first; i < len(ok); i++ {
		if !ok[i] {
			bad++
			if good < runGap {
				run, good = i+1, 0
			}
		} else {
			good++
		}
	}
	pos := off + int64(first)
	runLen := int64(run - first)
	m := &Mismatch{
		Crash: crash, ReadOff: off, ReadLen: int64(len(got)),
		Off: pos, Len: runLen, Bad: bad,
		Got:   slices.Clone(got[first:min(len(got), first+excerptLen)]),
		Looks: d.Explain(pos, got[first:min(run, first+4096)]),
	}
	add := func(r *record, limit int64, durable bool) {
		n := min(limit, pos+min(runLen, excerptLen)) - pos
		w := make([]byte, n)
		r.expect(w, pos)
		m.Candidates = append(m.Candidates, Candidate{Source: r.source(), Durable: durable, Want: w})
	}
	if !crash {
		r, lim := d.current.at(pos, d.size)
		add(r, lim, false)
		return m
	}
	r, lim := d.durable.at(pos, d.size)
	add(r, lim, true)
	for _, r := range d.pending {
		if r.Kind != KindGrow && r.Off <= pos && pos < r.Off+r.Len {
			add(r, r.Off+r.Len, false)
		}
	}
	return m
}

// Explain says what bytes p, read at guest offset off, look like: "zeros",
// a pattern write of this disk's chain (and from which guest offset), or
// "unknown". It is meant for failure reports.
func (d *Disk) Explain(off int64, p []byte) string {
	return d.explain(off, p, 3)
}

func (d *Disk) explain(off int64, p []byte, depth int) string {
	if len(p) == 0 {
		return "nothing"
	}
	z := 0
	for z < len(p) && p[z] == 0 {
		z++
	}
	if z == len(p) {
		return fmt.Sprintf("zeros (%#x bytes)", len(p))
	}
	if z >= 8 {
		if depth == 0 {
			return fmt.Sprintf("zeros for %#x bytes, then more", z)
		}
		return fmt.Sprintf("zeros for %#x bytes, then %s", z, d.explain(off+int64(z), p[z:], depth-1))
	}
	m, found := Identify(p, func(id uint64) bool { return d.lookup(id) != nil })
	if !found {
		if m, found = Identify(p, nil); found {
			return fmt.Sprintf("pattern of id %d, never issued on this disk chain (from guest offset %#x, %#x bytes)",
				m.ID, m.SrcOff, m.Len)
		}
		return "unknown (neither zeros nor a known pattern)"
	}
	r := d.lookup(m.ID)
	at := off + int64(m.Index)
	var b strings.Builder
	if m.Index > 0 {
		fmt.Fprintf(&b, "after %d other bytes, ", m.Index)
	}
	fmt.Fprintf(&b, "pattern of %s for %#x bytes, ", r.Source, m.Len)
	if m.SrcOff == at {
		b.WriteString("at its own offset")
	} else {
		fmt.Fprintf(&b, "generated for guest offset %#x (misplaced by %+#x)", m.SrcOff, at-m.SrcOff)
	}
	if m.SrcOff < r.Off || m.SrcOff+int64(m.Len) > r.Off+r.Len {
		b.WriteString(", partly outside that write's range")
	}
	if rest := p[m.Index+m.Len:]; len(rest) > 0 && depth > 0 {
		fmt.Fprintf(&b, "; then %s", d.explain(at+int64(m.Len), rest, depth-1))
	}
	return b.String()
}

// CrashSizes returns the sizes the disk may have after a crash, ascending:
// the durable size and the size set by every pending Grow.
func (d *Disk) CrashSizes() []int64 {
	s := []int64{d.durableSize}
	for _, r := range d.pending {
		if r.Kind == KindGrow {
			s = append(s, r.Off+r.Len)
		}
	}
	slices.Sort(s)
	return slices.Compact(s)
}

// Range is a byte range of the disk.
type Range struct{ Off, Len int64 }

// Uncertain returns the ranges whose contents after a crash are not known
// (the union of the pending writes, write-zeroes included), sorted and
// merged. Outside them a crashed disk must read exactly the durable
// contents.
func (d *Disk) Uncertain() []Range {
	var rs []Range
	for _, r := range d.pending {
		if r.Kind != KindGrow && r.Len > 0 {
			rs = append(rs, Range{r.Off, r.Len})
		}
	}
	slices.SortFunc(rs, func(a, b Range) int { return cmp.Compare(a.Off, b.Off) })
	out := rs[:0]
	for _, r := range rs {
		if n := len(out); n > 0 && r.Off <= out[n-1].Off+out[n-1].Len {
			out[n-1].Len = max(out[n-1].Len, r.Off+r.Len-out[n-1].Off)
			continue
		}
		out = append(out, r)
	}
	return out
}

// recoverChunk bounds the memory Recover uses per read-back.
const recoverChunk = 64 << 10

// recoverScratch is Recover's reusable memory (perf, issue 5: fresh
// buffers per call were half of Recover's time in the crash oracle):
// the read-back chunk and attribute's candidate bytes.
type recoverScratch struct{ buf, attr []byte }

var recoverPool = sync.Pool{New: func() any { return new(recoverScratch) }}

// maxPooledAttr bounds the attribute scratch kept in the pool.
const maxPooledAttr = 1 << 20

func (sc *recoverScratch) put() {
	if cap(sc.attr) > maxPooledAttr {
		sc.attr = nil
	}
	recoverPool.Put(sc)
}

// Recover collapses the model after a crash and a successful recovery:
// size is the size the recovered disk reports and read reads its contents.
// Recover reads back only the Uncertain ranges (below size), checks them as
// VerifyCrash does, and makes what was read the new durable and current
// contents, with no pending operations. On error (size not allowed, read
// error, *Mismatch) the model is unchanged. The read-back is assumed to be
// durable, as the crashed medium is.
func (d *Disk) Recover(size int64, read func(p []byte, off int64) error) error {
	allowed := d.CrashSizes()
	if !slices.Contains(allowed, size) {
		return &SizeError{Op: "recover", Size: size, Allowed: allowed, Err: ErrCrashSize}
	}
	m := slices.Clone(d.durable).clip(size)
	uncertain := d.Uncertain()
	longest := int64(0)
	for _, u := range uncertain {
		longest = max(longest, u.Len)
	}
	sc := recoverPool.Get().(*recoverScratch)
	defer sc.put()
	if n := int(min(longest, recoverChunk)); cap(sc.buf) < n {
		sc.buf = make([]byte, n)
	}
	buf := sc.buf
	for _, u := range uncertain {
		for off := u.Off; off < min(u.Off+u.Len, size); {
			n := min(u.Off+u.Len, size, off+recoverChunk) - off
			p := buf[:n]
			if err := read(p, off); err != nil {
				return fmt.Errorf("%w at [%#x,+%#x): %w", ErrRead, off, n, err)
			}
			var ok bool
			if m, sc.attr, ok = d.attribute(m, off, p, sc.attr); !ok {
				mask := d.crashOK(off, p, make([]byte, n))
				if mask == nil { // attribute and crashOK disagree: a bug here
					panic(fmt.Sprintf("model: internal error: attribute rejects [%#x,+%#x), crashOK accepts it", off, n))
				}
				return d.mismatch(true, off, p, mask)
			}
			off += n
		}
	}
	d.ops++
	d.flushOp = d.ops
	d.durable = m
	d.current = slices.Clone(m)
	d.pending = nil
	d.size, d.durableSize = size, size
	return nil
}

// attribute sets [off, off+len(p)) of m to records that reproduce p, each
// byte from its durable record or a pending one, or reports false if some
// byte of p is not allowed (m is then partly updated). scratch is reused
// memory, returned grown. Runs are taken greedily by the candidate matching
// longest, so coincidental matches do not fragment the map.
func (d *Disk) attribute(m extentMap, off int64, p, scratch []byte) (extentMap, []byte, bool) {
	type cand struct {
		rec    *record
		lo, hi int64
		want   []byte
		filled bool // want holds rec's bytes (filled lazily: perf, issue 5)
	}
	end := off + int64(len(p))
	var cands []cand
	// Lay out all candidates' bytes in scratch first, then slice it.
	need := int64(len(p))
	for _, r := range d.pending {
		if lo, hi := max(r.Off, off), min(r.Off+r.Len, end); r.Kind != KindGrow && lo < hi {
			need += hi - lo
		}
	}
	if int64(cap(scratch)) < need {
		scratch = make([]byte, need)
	}
	buf := scratch[:need]
	d.durable.read(buf[:len(p)], off)
	for pos := off; pos < end; {
		r, hi := d.durable.at(pos, end)
		cands = append(cands, cand{r, pos, hi, buf[pos-off : hi-off], true})
		pos = hi
	}
	buf = buf[len(p):]
	for i := len(d.pending) - 1; i >= 0; i-- {
		r := d.pending[i]
		lo, hi := max(r.Off, off), min(r.Off+r.Len, end)
		if r.Kind == KindGrow || lo >= hi {
			continue
		}
		w := buf[:hi-lo]
		buf = buf[hi-lo:]
		cands = append(cands, cand{r, lo, hi, w, false})
	}
	for pos := off; pos < end; {
		// The candidate that matches longest from pos takes the run.
		best, bestEnd := -1, pos
		// Once a candidate matches to end none can match longer (ties
		// go to the earlier candidate), so the pending candidates' bytes
		// are generated only when some earlier one stops short.
		for i := range cands {
			if bestEnd == end {
				break
			}
			c := &cands[i]
			if c.lo <= pos && pos < c.hi {
				if !c.filled {
					c.rec.expect(c.want, c.lo)
					c.filled = true
				}
				if e := pos + int64(commonPrefix(c.want[pos-c.lo:], p[pos-off:c.hi-off])); e > bestEnd {
					best, bestEnd = i, e
				}
			}
		}
		if best < 0 {
			return m, scratch, false // the byte at pos is not allowed
		}
		m = m.set(pos, bestEnd, cands[best].rec)
		pos = bestEnd
	}
	return m, scratch, true
}

// commonPrefix returns the length of the common prefix of a and b.
func commonPrefix(a, b []byte) int {
	n := min(len(a), len(b))
	i := 0
	// Skip equal 256-byte blocks with bytes.Equal (vectorized; perf,
	// issue 5), then find the first difference word by word.
	for i+256 <= n && bytes.Equal(a[i:i+256], b[i:i+256]) {
		i += 256
	}
	for i+8 <= n && binary.LittleEndian.Uint64(a[i:]) == binary.LittleEndian.Uint64(b[i:]) {
		i += 8
	}
	for i < n && a[i] == b[i] {
		i++
	}
	return i
}
