package model

import (
	"bytes"
	"slices"
	"sync"
)

// The judgement memo (perf, issue 19 goal 5). The crash states of one
// crash point, and of the points that share its model, are judged
// against the same durable contents and the same pending writes: they
// differ only in which parts of those writes they kept. Recover reads
// back every state's uncertain ranges in the same chunks and runs the
// sector rule over each (judge), which generates the durable and the
// candidate bytes of the chunk and compares them sector by sector. A
// chunk read back equal to one already judged for the same model gets
// the same answer: judge is a function of the disk's durable extents,
// its pending records, its excused flag, the chunk's offset and the
// bytes read, nothing else. So a JudgeMemo keeps, per chunk (offset and
// length), the bytes of up to maxMemoVariants chunks that passed and
// their attribution (which record each byte now holds), and a chunk read
// equal to one of them byte for byte takes that attribution without
// judge: every byte is still read back through the implementation and
// compared, once, with bytes the sector rule accepted. A chunk that
// differs from all of them is judged. Failures are not kept (a failing
// state is judged in full, and its report is judge's).
//
// A memo is bound to one model at a time (the durable extents, the
// pending records and the excused flag, compared by value: records are
// shared by a disk's clones and never change once pending); a Recover
// on another model forgets everything and binds the memo to it. Its
// bytes are bounded (MaxJudgeMemo); past the bound nothing more is kept.
// Safe for concurrent use; meant for one campaign worker.

// MaxJudgeMemo bounds the bytes of the chunks a JudgeMemo keeps.
const MaxJudgeMemo = 32 << 20

// maxMemoVariants bounds the chunks kept per offset and length.
const maxMemoVariants = 4

// JudgeMemo remembers the sector rule's answers for chunks read back
// after a crash (see RecoverViewMemo). The zero value is ready to use.
type JudgeMemo struct {
	mu      sync.Mutex
	gen     uint64 // bumped at every rebinding
	bound   bool
	durable extentMap
	pending []*record
	excused bool
	chunks  map[memoSpan][]memoVerdict
	// The kept chunks' bytes, in slabs of memoSlab bytes (filled in
	// order, slabs[cur] the one being filled; kept when rebinding):
	// growing allocates no copy.
	slabs [][]byte
	cur   int
	runs  []memoRun // their attributions
	// Hits and misses count the chunks answered from the memo and
	// judged (for tests and speed work).
	hits, misses int64
}

type memoSpan struct{ off, n int64 }

// memoVerdict is a chunk that passed: its bytes slabs[slab][b0:b1] and
// its attribution runs[r0:r1]; div is where its bytes first differ from
// the first chunk kept at the same offset and length (that chunk's own
// div is unused).
type memoVerdict struct{ slab, b0, b1, r0, r1, div int }

// memoSlab is the size of the memo's slabs of bytes (a chunk is at most
// recoverChunk bytes).
const memoSlab = 1 << 20

func (jm *JudgeMemo) bytesOf(v memoVerdict) []byte { return jm.slabs[v.slab][v.b0:v.b1] }

// memoRun says guest bytes [lo, hi) read as rec's.
type memoRun struct {
	lo, hi int64
	rec    *record
}

// bind makes the memo d's, forgetting what it kept for another model,
// and returns its generation. mu must be held.
func (jm *JudgeMemo) bind(d *Disk) uint64 {
	if jm.bound && jm.excused == d.excused && slices.Equal(jm.durable, d.durable) && slices.Equal(jm.pending, d.pending) {
		return jm.gen
	}
	jm.gen++
	jm.bound = true
	jm.durable = append(jm.durable[:0], d.durable...)
	jm.pending = append(jm.pending[:0], d.pending...)
	jm.excused = d.excused
	if jm.chunks == nil {
		jm.chunks = map[memoSpan][]memoVerdict{}
	}
	clear(jm.chunks)
	for i := range jm.slabs {
		jm.slabs[i] = jm.slabs[i][:0]
	}
	jm.cur, jm.runs = 0, jm.runs[:0]
	return jm.gen
}

// Bind binds the memo to d (see bind) and returns the generation to pass
// to lookup and store.
func (jm *JudgeMemo) Bind(d *Disk) uint64 {
	jm.mu.Lock()
	defer jm.mu.Unlock()
	return jm.bind(d)
}

// lookup returns, appended to out, the attribution of a kept chunk at
// off equal to got, and whether there was one (for generation gen).
func (jm *JudgeMemo) lookup(gen uint64, off int64, got []byte, out []memoRun) ([]memoRun, bool) {
	jm.mu.Lock()
	defer jm.mu.Unlock()
	if gen != jm.gen {
		return out, false
	}
	// got is compared with the first chunk kept; where they first
	// differ (x), only a chunk that first differs from the first one at x
	// too can equal got (it equals the first one, hence got, before x;
	// any other differs from got before x or at x), and it is compared
	// from x on. Every byte of got is compared, once per chunk tried,
	// and not more than once before x.
	vs := jm.chunks[memoSpan{off, int64(len(got))}]
	if len(vs) > 0 {
		x := mismatch(jm.bytesOf(vs[0]), got)
		if x == len(got) {
			jm.hits++
			return append(out, jm.runs[vs[0].r0:vs[0].r1]...), true
		}
		for _, v := range vs[1:] {
			if v.div == x && bytes.Equal(jm.bytesOf(v)[x:], got[x:]) {
				jm.hits++
				return append(out, jm.runs[v.r0:v.r1]...), true
			}
		}
	}
	jm.misses++
	return out, false
}

// mismatch returns the index of the first byte where a and b (of equal
// length) differ, len(a) when they are equal.
func mismatch(a, b []byte) int {
	i := 0
	for _, blk := range [...]int{8192, 512, 8} {
		for ; i+blk <= len(a) && bytes.Equal(a[i:i+blk], b[i:i+blk]); i += blk {
		}
	}
	for ; i < len(a) && a[i] == b[i]; i++ {
	}
	return i
}

// store keeps got, read at off, which judge passed with the attribution
// runs (indexing cands), for generation gen, when there is room.
func (jm *JudgeMemo) store(gen uint64, off int64, got []byte, runs []attrRun, cands []cand) {
	jm.mu.Lock()
	defer jm.mu.Unlock()
	k := memoSpan{off, int64(len(got))}
	if gen != jm.gen || len(jm.chunks[k]) >= maxMemoVariants || len(got) > memoSlab {
		return
	}
	if jm.cur < len(jm.slabs) && len(jm.slabs[jm.cur])+len(got) > memoSlab {
		jm.cur++
	}
	if jm.cur == len(jm.slabs) {
		if (jm.cur+1)*memoSlab > MaxJudgeMemo {
			return
		}
		jm.slabs = append(jm.slabs, make([]byte, 0, memoSlab))
	}
	slab := jm.slabs[jm.cur]
	v := memoVerdict{slab: jm.cur, b0: len(slab), r0: len(jm.runs)}
	if vs := jm.chunks[k]; len(vs) > 0 {
		v.div = mismatch(jm.bytesOf(vs[0]), got)
	}
	jm.slabs[jm.cur] = append(slab, got...)
	v.b1 = len(jm.slabs[jm.cur])
	for _, r := range runs {
		jm.runs = append(jm.runs, memoRun{r.lo, r.hi, cands[r.idx].rec})
	}
	v.r1 = len(jm.runs)
	jm.chunks[k] = append(jm.chunks[k], v)
}

// Counts returns how many chunks the memo answered and how many it did
// not (since it was made).
func (jm *JudgeMemo) Counts() (hits, misses int64) {
	jm.mu.Lock()
	defer jm.mu.Unlock()
	return jm.hits, jm.misses
}
