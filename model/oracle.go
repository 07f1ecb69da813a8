package model

import (
	"bytes"
	"cmp"
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
	// Reason says which rule the bytes break: ReasonValue (a byte no
	// candidate allows), ReasonTorn or ReasonOrder (a sector that is no
	// ordered subset of the pending writes covering it); Detail says it
	// in words, naming the sector, the bytes and the writes.
	Reason string
	Detail string
	// Found is the write of this disk's chain whose pattern the bytes
	// read from Off are, at its own guest offset (nil when they are not).
	Found *Source
}

// BackingForZeros reports whether the bad bytes are the backing file's
// where every candidate reads zeros: a cluster the guest zeroed, or never
// wrote past a grow, reading through to a backing layer's data at the same
// guest offset (the shape of QEMU's F2 in docs/findings.md, and of any
// implementation that forgets a zero mark or a hidden backing tail).
func (m *Mismatch) BackingForZeros() bool {
	if m.Found == nil || m.Found.Layer == 0 || len(m.Candidates) == 0 {
		return false
	}
	for _, c := range m.Candidates {
		if c.Kind != KindNone && c.Kind != KindZeroes && c.Kind != KindGrow {
			return false
		}
	}
	return true
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
	if m.Detail != "" {
		fmt.Fprintf(&b, "  rule broken (%s): %s\n", m.Reason, m.Detail)
	}
	fmt.Fprintf(&b, "  read:    %s\n", hexExcerpt(m.Got))
	fmt.Fprintf(&b, "  looks like: %s\n", m.Looks)
	if m.BackingForZeros() {
		fmt.Fprintf(&b, "  that is: %s's data where only zeros are allowed (a zeroed or grown range reads through to the backing file)\n", m.Found)
	}
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

// verifyChunk is the most Verify expects at once of a range that passes.
const verifyChunk = 1 << 20

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
	// Chunk by chunk (memory, issue 19 goal 5: a read of a big image is
	// hundreds of megabytes, and a scratch buffer as long stayed in the
	// pool); only a range that does not pass is expected whole.
	sp := getScratch(min(len(got), verifyChunk))
	defer scratchPool.Put(sp)
	same := true
	for at := 0; at < len(got) && same; at += verifyChunk {
		g := got[at:min(len(got), at+verifyChunk)]
		want := (*sp)[:len(g)]
		d.current.read(want, off+int64(at))
		if d.excused {
			d.current.allowAny(want, g, off+int64(at))
		}
		same = bytes.Equal(want, g)
	}
	if same {
		return nil
	}
	want := make([]byte, len(got))
	d.current.read(want, off)
	if d.excused {
		d.current.allowAny(want, got, off)
	}
	ok := make([]bool, len(got))
	for i := range got {
		ok[i] = want[i] == got[i]
	}
	m := d.mismatch(false, off, got, ok)
	m.Reason = ReasonValue
	return m
}

// VerifyCrash checks bytes read at off after a crash against the crash
// rule: each sector (SectorSize-aligned) must read as its durable value
// (as of the last flush) with some subset of the pending writes covering it
// applied in issue order (any order inside a concurrent group). A sector
// cut by the edge of the range is judged on its part inside the range
// only, so callers pass sector-aligned ranges (or cut them where no
// pending write lies) for the rule to be exact. The range may extend to
// the current size (see CrashSizes for the sizes a crashed disk may
// have). It returns nil or a *Mismatch (or a *RangeError).
func (d *Disk) VerifyCrash(off int64, got []byte) error {
	if err := d.checkRange("verify-crash", off, int64(len(got))); err != nil {
		return err
	}
	sc := judgePool.Get().(*judgeScratch)
	defer sc.put()
	if ok, f := d.judge(off, got, sc); f != nil {
		return d.crashMismatch(off, got, ok, f)
	}
	return nil
}

// crashMismatch builds the *Mismatch of a failed judge.
func (d *Disk) crashMismatch(off int64, got []byte, ok []bool, f *sectorFail) *Mismatch {
	m := d.mismatch(true, off, got, ok)
	m.Reason, m.Detail = f.reason, f.detail
	return m
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
	if p := got[first:min(run, first+4096)]; len(p) > 0 {
		if f, ok := Identify(p, func(id uint64) bool { return d.lookup(id) != nil }); ok && f.Index == 0 && f.SrcOff == pos {
			src := d.lookup(f.ID).source()
			m.Found = &src
		}
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

// recoverChunk bounds the memory Recover uses per read-back (a multiple
// of SectorSize: chunks end on sector boundaries, so that no sector is
// judged in two parts).
const recoverChunk = 64 << 10

// recoverScratch is Recover's reusable memory (perf, issue 5: fresh
// buffers per call were half of Recover's time in the crash oracle).
type recoverScratch struct{ buf []byte }

var recoverPool = sync.Pool{New: func() any { return new(recoverScratch) }}

// Recover collapses the model after a crash and a successful recovery:
// size is the size the recovered disk reports and read reads its contents.
// Recover reads back only the Uncertain ranges (below size), checks them as
// VerifyCrash does (sector by sector: a read-back chunk ends on a sector
// boundary unless the uncertain range ends first, and the bytes of a
// sector outside the uncertain ranges are covered by no pending write), and
// makes what was read the new durable and current contents, with no
// pending operations. On error (size not allowed, read error, *Mismatch)
// the model is unchanged. The read-back is assumed to be durable, as the
// crashed medium is.
func (d *Disk) Recover(size int64, read func(p []byte, off int64) error) error {
	sc := recoverPool.Get().(*recoverScratch)
	defer recoverPool.Put(sc)
	return d.RecoverView(size, func(off, n int64) ([]byte, error) {
		if int64(cap(sc.buf)) < n {
			sc.buf = make([]byte, n)
		}
		p := sc.buf[:n]
		return p, read(p, off)
	})
}

// RecoverView is Recover with the bytes read back handed over instead of
// copied: view returns the n bytes at off (held by the caller, read-only
// to Recover and unchanged until the next call), so a caller that already
// holds them (the crash oracle keeps what its data stage read) lends them
// without a copy. The chunks asked for are Recover's.
func (d *Disk) RecoverView(size int64, view func(off, n int64) ([]byte, error)) error {
	return d.RecoverViewMemo(size, view, nil)
}

// RecoverViewMemo is RecoverView with a JudgeMemo (nil: none): a chunk
// read back equal, byte for byte, to one that passed the sector rule on
// a disk with the same durable extents, pending writes and excused flag
// takes its attribution without being judged again (see JudgeMemo); the
// others are judged, and those that pass are kept. The result (the error,
// and on success the recovered contents) is RecoverView's.
func (d *Disk) RecoverViewMemo(size int64, view func(off, n int64) ([]byte, error), memo *JudgeMemo) error {
	return d.RecoverProven(size, view, memo, nil)
}

// RecoverProven is RecoverViewMemo with the parts of the uncertain ranges
// that lie in proven (sorted, disjoint, whole sectors) taken as their
// durable contents without being read: view is not asked for them, and
// the recovered contents keep the durable extents there, as Recover does
// for bytes read equal to their durable value (the sector rule always
// allows it, sector by sector). The caller vouches for proven: the crash
// oracle passes the parts a crashed image's map proves to read as the
// durable contents by the format (clusters it does not map, over the
// backing chain's data or zeros), never the implementation's word.
func (d *Disk) RecoverProven(size int64, view func(off, n int64) ([]byte, error), memo *JudgeMemo, proven []Range) error {
	allowed := d.CrashSizes()
	if !slices.Contains(allowed, size) {
		return &SizeError{Op: "recover", Size: size, Allowed: allowed, Err: ErrCrashSize}
	}
	m := slices.Clone(d.durable).clip(size)
	uncertain := d.Uncertain()
	js := judgePool.Get().(*judgeScratch)
	defer js.put()
	var gen uint64
	if memo != nil {
		gen = memo.Bind(d)
	}
	if len(proven) > 0 {
		uncertain = SubtractRanges(uncertain, proven)
	}
	for _, u := range uncertain {
		for off := u.Off; off < min(u.Off+u.Len, size); {
			stop := (off + recoverChunk) / SectorSize * SectorSize
			n := min(u.Off+u.Len, size, stop) - off
			p, err := view(off, n)
			if err != nil {
				return fmt.Errorf("%w at [%#x,+%#x): %w", ErrRead, off, n, err)
			}
			if int64(len(p)) != n {
				return fmt.Errorf("%w at [%#x,+%#x): %d bytes handed over", ErrRead, off, n, len(p))
			}
			if memo != nil {
				var hit bool
				if js.memo, hit = memo.lookup(gen, off, p, js.memo[:0]); hit {
					for _, r := range js.memo {
						m = m.set(r.lo, r.hi, r.rec)
					}
					off += n
					continue
				}
			}
			if ok, f := d.judge(off, p, js); f != nil {
				return d.crashMismatch(off, p, ok, f)
			}
			// What pending writes explain; the rest stays durable.
			for _, r := range js.runs {
				m = m.set(r.lo, r.hi, js.cands[r.idx].rec)
			}
			if memo != nil {
				memo.store(gen, off, p, js.runs, js.cands)
			}
			off += n
		}
	}
	if d.excused {
		// Excused bytes stay excused (the damage is still there), even
		// where a pending write agreed with them.
		for _, e := range d.durable {
			if e.rec != nil && e.rec.Kind == KindUnknown && e.off < size {
				m = m.set(e.off, min(e.end, size), e.rec)
			}
		}
	}
	d.ops++
	d.flushOp = d.ops
	d.durable = m
	d.current = slices.Clone(m)
	d.pending = nil
	d.group = 0
	d.size, d.durableSize = size, size
	return nil
}

// SubtractRanges returns the parts of a (sorted, disjoint) outside b
// (sorted, disjoint), in order.
func SubtractRanges(a, b []Range) []Range {
	var out []Range
	j := 0
	for _, r := range a {
		pos, end := r.Off, r.Off+r.Len
		for j < len(b) && b[j].Off+b[j].Len <= pos {
			j++
		}
		for k := j; k < len(b) && b[k].Off < end && pos < end; k++ {
			if b[k].Off > pos {
				out = append(out, Range{Off: pos, Len: b[k].Off - pos})
			}
			pos = max(pos, b[k].Off+b[k].Len)
		}
		if pos < end {
			out = append(out, Range{Off: pos, Len: end - pos})
		}
	}
	return out
}
