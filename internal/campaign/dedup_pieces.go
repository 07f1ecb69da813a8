package campaign

import (
	"cmp"
	"hash/maphash"
	"io"
	"path"
	"slices"

	"github.com/qedtorture/qedtorture/crashsim"
	"github.com/spf13/afero"
)

// The dedup key from a state's pieces (issue 19 goal 5).
//
// key reads every byte a state's kept writes cover, compares it with the
// durable file and hashes what differs: with megabyte writes (4 MiB
// clusters) that was a third of a campaign's CPU, paid again for every
// state of a point although the states share the same few writes. keyOf
// computes a key with the same meaning (equal exactly when every file of
// the directory is byte-identical, up to a 128-bit hash) from what the
// state keeps, crashsim.Point.AppendPieces, with the bytes of each write
// hashed once per point:
//
//   - A file's contents are summarized by the sum, modulo 2^64, of a
//     contribution per 512-byte sector s: 0 for a sector of zeros, else a
//     seeded hash of s and the sector's bytes (two independent lanes,
//     each with its own seed). The sum over the file's sectors is a
//     function of its bytes alone, however they were written, so states
//     with the same bytes get the same sum; two different contents differ
//     in at least one (sector, bytes) pair, whose contribution is an
//     independent random value in each lane: the sums collide with
//     probability about 2^-64 per lane, 2^-128 for the key, as for key.
//   - A state differs from the point's durable file only in the sectors
//     its pieces cover (crashsim's guarantee, TestAppendPiecesRebuilds),
//     so its sum is the durable sum plus, over those sectors, the state's
//     contribution minus the durable one. The durable contributions of
//     every sector the point's unsynced operations touch are computed
//     once per point (pieceState.durable, holes skipped), those of each write's
//     whole sectors once per write (opSums, kept while the write is
//     pending), both as prefix sums: a run of whole sectors that one
//     write (or zeros) covers costs O(1), whatever its length.
//   - Which piece shows where is painted by a sweep over the pieces'
//     edges (paint: the last operation's piece covering a byte).
//   - A sector covered by parts of several pieces, or partly by one (an
//     unaligned write, a torn write's edge), is read from the state's
//     file and hashed (a few per state). Garbage sectors are hashed from
//     their bytes.
//   - The key folds, per file of the directory in name order, its name,
//     its length (Stat: the size effect and truncates) and its sum.
//
// keyOf's keys are not key's: a point's states all take one path (keyOf
// falls back to key for a whole point when the point is not exact:
// unsynced namespace operations, paths outside the directory, tests'
// full mode), so two keys compared always come from the same function.
// TestStateKeyExact and TestKeyOfRandomOps hold keyOf to "equal exactly
// when byte-identical" over every model, with unaligned and overlapping
// writes, truncates, discards and files that grow.

// keySector is the granularity of keyOf's sums.
const keySector = 512

// prefixSums are the running sums of two lanes of contributions over the
// sectors [first, first+len(p1)-1): p1[i] is the sum over [first,
// first+i).
type prefixSums struct {
	first  int64
	p1, p2 []uint64
}

// sum returns the two lanes' sums over the sectors [lo, hi), which must
// lie inside the range covered.
func (ps *prefixSums) sum(lo, hi int64) (uint64, uint64) {
	a, b := lo-ps.first, hi-ps.first
	return ps.p1[b] - ps.p1[a], ps.p2[b] - ps.p2[a]
}

func (ps *prefixSums) end() int64 { return ps.first + int64(len(ps.p1)) - 1 }

// opSums are the contributions of a write's whole sectors (the file
// sectors [first, end) inside its range), computed from its data once.
type opSums struct {
	data []byte // the write's data (identity: kept alive, so the same memory is the same write)
	off  int64
	prefixSums
}

// pieceState is keyOf's per-point state, built by setPoint.
type pieceState struct {
	k       int64           // the point prepared (with img; img nil: none yet)
	img     *crashsim.Image // its durable image
	dir     string
	ok      bool                    // the point is exact: keyOf uses pieces
	durable map[string][]prefixSums // file path -> durable contributions over the dirty sectors below its length, sorted
	ops     map[int]*opSums         // by index in the point's Unsynced()
	unsync  []crashsim.Op
	pieces  []crashsim.Piece
	vis     []visible
	evs     []event
	heap    []int
	ended   []bool
	sec     [keySector]byte
}

// visible is a part [lo, hi) of a piece that no later piece hides.
type visible struct {
	lo, hi int64
	pc     int // index into pieceState.pieces
}

// contribution returns the two lanes' contributions of sector s holding b
// (keySector bytes).
func (sh *stateHasher) contribution(s int64, b []byte) (uint64, uint64) {
	if allZero(b) {
		return 0, 0
	}
	var h1, h2 maphash.Hash
	h1.SetSeed(sh.s1)
	h2.SetSeed(sh.s2)
	maphash.WriteComparable(&h1, s)
	maphash.WriteComparable(&h2, s)
	h1.Write(b)
	h2.Write(b)
	return h1.Sum64(), h2.Sum64()
}

// sums returns the prefix sums of the contributions of sectors [lo, hi)
// read from f (length n; zeros past it), skipping holes (which read
// zeros; their boundaries are 4 KiB-aligned or n, so no sector straddles
// one).
func (sh *stateHasher) sums(f afero.File, n, lo, hi int64) (prefixSums, bool) {
	ps := prefixSums{first: lo, p1: make([]uint64, hi-lo+1), p2: make([]uint64, hi-lo+1)}
	var c1, c2 uint64
	s := lo
	if plo, phi := lo*keySector/hashPage*hashPage, min((hi*keySector+hashPage-1)/hashPage*hashPage, n); plo < phi {
		for _, r := range dataRuns(f, [2]int64{plo, phi}, false) {
			for ; s < hi && s*keySector < r.hi; s++ {
				if !r.hole {
					b := sh.ps.sec[:]
					clear(b)
					at := s * keySector
					if _, err := f.ReadAt(b[:min(keySector, n-at)], at); err != nil && err != io.EOF {
						return ps, false
					}
					x1, x2 := sh.contribution(s, b)
					c1, c2 = c1+x1, c2+x2
				}
				ps.p1[s-lo+1], ps.p2[s-lo+1] = c1, c2
			}
		}
	}
	for ; s < hi; s++ { // past the length: zeros
		ps.p1[s-lo+1], ps.p2[s-lo+1] = c1, c2
	}
	return ps, true
}

// setPiecePoint prepares keyOf for the point p (sh.setPoint has run):
// the durable contributions of the sectors its unsynced operations touch,
// and the last point's write sums of the writes still pending.
func (sh *stateHasher) setPiecePoint(p *crashsim.Point) {
	ps := &sh.ps
	prev := map[int64]*opSums{}
	for i, c := range ps.ops {
		prev[ps.unsync[i].Index] = c
	}
	ps.ok, ps.durable, ps.ops, ps.unsync = false, map[string][]prefixSums{}, map[int]*opSums{}, p.Unsynced()
	if !sh.exact || sh.full {
		return
	}
	ranges := map[string][][2]int64{}
	for _, o := range ps.unsync {
		pth := path.Clean(o.Path)
		switch o.Kind {
		case crashsim.OpWrite:
			ranges[pth] = append(ranges[pth], [2]int64{o.Off, o.Off + int64(len(o.Data))})
		case crashsim.OpDiscard:
			ranges[pth] = append(ranges[pth], [2]int64{o.Off, o.Off + o.Size})
		case crashsim.OpTruncate:
			ranges[pth] = append(ranges[pth], [2]int64{o.Size, -1})
		}
	}
	for pth, rs := range ranges {
		d, ok := sh.base[path.Base(pth)]
		if !ok {
			return // a file with no durable version: key
		}
		dsec := (d.size + keySector - 1) / keySector
		var segs [][2]int64 // sectors below the durable length
		for _, r := range rs {
			lo, hi := r[0]/keySector, dsec
			if r[1] >= 0 {
				hi = min(hi, (r[1]+keySector-1)/keySector)
			}
			if lo < hi {
				segs = append(segs, [2]int64{lo, hi})
			}
		}
		for _, sg := range mergeSpans(nil, segs) {
			sums, ok := sh.sums(d.f, d.size, sg[0], sg[1])
			if !ok {
				return
			}
			ps.durable[pth] = append(ps.durable[pth], sums)
		}
	}
	// A write's sums are a function of its data, offset and the seeds:
	// those of the last point are reused for the same write (the same
	// memory, which the cache keeps alive, so it cannot be another
	// write's).
	for i, o := range ps.unsync {
		if c := prev[o.Index]; c != nil && o.Kind == crashsim.OpWrite && len(o.Data) > 0 &&
			len(c.data) == len(o.Data) && &c.data[0] == &o.Data[0] && c.off == o.Off {
			ps.ops[i] = c
		}
	}
	ps.ok = true
}

// opSumsOf returns the contributions of write i's whole sectors.
func (sh *stateHasher) opSumsOf(i int) *opSums {
	ps := &sh.ps
	if c := ps.ops[i]; c != nil {
		return c
	}
	o := &ps.unsync[i]
	end := o.Off + int64(len(o.Data))
	lo, hi := (o.Off+keySector-1)/keySector, end/keySector
	c := &opSums{data: o.Data, off: o.Off, prefixSums: prefixSums{first: lo}}
	if hi < lo {
		hi = lo
	}
	c.p1, c.p2 = make([]uint64, hi-lo+1), make([]uint64, hi-lo+1)
	var c1, c2 uint64
	for s := lo; s < hi; s++ {
		at := s*keySector - o.Off
		x1, x2 := sh.contribution(s, o.Data[at:at+keySector])
		c1, c2 = c1+x1, c2+x2
		c.p1[s-lo+1], c.p2[s-lo+1] = c1, c2
	}
	ps.ops[i] = c
	return c
}

// durableSum returns the durable contributions of the file at pth over
// the sectors [lo, hi): from the point's sums below the durable length,
// zero past it. ok is false if a sector below the durable length has no
// sum (not a sector the point's operations touch: cannot happen for a
// state's pieces).
func (sh *stateHasher) durableSum(pth string, dsize, lo, hi int64) (uint64, uint64, bool) {
	hi = min(hi, (dsize+keySector-1)/keySector)
	var c1, c2 uint64
	segs := sh.ps.durable[pth]
	i, _ := slices.BinarySearchFunc(segs, lo, func(s prefixSums, lo int64) int { return cmp.Compare(s.end(), lo+1) })
	for ; lo < hi; i++ {
		if i >= len(segs) || segs[i].first > lo {
			return 0, 0, false
		}
		e := min(hi, segs[i].end())
		x1, x2 := segs[i].sum(lo, e)
		c1, c2 = c1+x1, c2+x2
		lo = e
	}
	return c1, c2, true
}

// keyOf returns the key of the state id of p (fs its files in dir),
// computed from its pieces when the point allows (see above), else key's.
func (sh *stateHasher) keyOf(dir string, p *crashsim.Point, id crashsim.StateID, fs afero.Fs, snap int) (stateKey, bool) {
	if ps := &sh.ps; ps.img != p.Durable() || ps.k != p.K() || ps.dir != dir {
		sh.setPoint(dir, p)
		sh.setPiecePoint(p)
		ps.k, ps.img, ps.dir = p.K(), p.Durable(), dir
	}
	if !sh.ps.ok {
		return sh.key(dir, p, fs, snap)
	}
	ps := &sh.ps
	var err error
	if ps.pieces, err = p.AppendPieces(ps.pieces[:0], id); err != nil {
		return stateKey{}, false
	}
	infos, err := afero.ReadDir(fs, dir)
	if err != nil {
		return stateKey{}, false
	}
	var h1, h2 maphash.Hash
	h1.SetSeed(sh.s1)
	h2.SetSeed(sh.s2)
	cdir := path.Clean(dir)
	for _, fi := range infos { // sorted by name
		if fi.IsDir() {
			continue
		}
		pth := path.Join(cdir, fi.Name())
		s1, s2, ok := sh.fileSum(pth, fi.Size(), fs)
		if !ok {
			return stateKey{}, false
		}
		for _, h := range []*maphash.Hash{&h1, &h2} {
			h.WriteString(fi.Name())
			maphash.WriteComparable(h, fi.Size())
		}
		maphash.WriteComparable(&h1, s1)
		maphash.WriteComparable(&h2, s2)
	}
	return stateKey{snap: snap, k: p.K(), h1: h1.Sum64(), h2: h2.Sum64()}, true
}

// fileSum returns the two lanes' sums of the state's contributions minus
// the durable ones over the sectors the state's pieces of the file at pth
// (length n in the state) cover.
func (sh *stateHasher) fileSum(pth string, n int64, fs afero.Fs) (uint64, uint64, bool) {
	ps := &sh.ps
	d, ok := sh.base[path.Base(pth)]
	if !ok {
		return 0, 0, false
	}
	// Bytes past both lengths and every kept write are zeros in the state
	// and in the durable file: a piece of zeros is clipped there.
	limit := max(n, d.size)
	for _, pc := range ps.pieces {
		if pc.Data != nil && pc.Path == pth {
			limit = max(limit, pc.Off+pc.Len)
		}
	}
	limit = (limit + keySector - 1) / keySector * keySector
	if !ps.paint(pth, limit) {
		return 0, 0, false
	}
	if len(ps.vis) == 0 {
		return 0, 0, true
	}
	var f afero.File
	defer func() {
		if f != nil {
			f.Close()
		}
	}()
	var c1, c2 uint64
	add := func(x1, x2 uint64) { c1, c2 = c1+x1, c2+x2 }
	sub := func(x1, x2 uint64) { c1, c2 = c1-x1, c2-x2 }
	lastMixed := int64(-1)
	// mixed adds sector s as read from the state's file, minus its
	// durable contribution (once per sector).
	mixed := func(s int64) bool {
		if s <= lastMixed {
			return true
		}
		lastMixed = s
		if f == nil {
			var err error
			if f, err = fs.Open(pth); err != nil {
				return false
			}
		}
		b := ps.sec[:]
		clear(b)
		if at := s * keySector; at < n {
			if _, err := f.ReadAt(b[:min(keySector, n-at)], at); err != nil && err != io.EOF {
				return false
			}
		}
		add(sh.contribution(s, b))
		x1, x2, ok := sh.durableSum(pth, d.size, s, s+1)
		sub(x1, x2)
		return ok
	}
	for _, v := range ps.vis {
		pc := &ps.pieces[v.pc]
		first, last := v.lo/keySector, (v.hi-1)/keySector
		// v's whole sectors [wlo, whi) hold its bytes alone; a sector it
		// covers in part (first, last) is mixed.
		wlo, whi := (v.lo+keySector-1)/keySector, v.hi/keySector
		if v.lo%keySector != 0 && !mixed(first) {
			return 0, 0, false
		}
		if wlo < whi {
			switch {
			case pc.Data == nil: // zeros contribute nothing
			case pc.Garbage:
				for s := wlo; s < whi; s++ {
					at := s*keySector - pc.Off
					add(sh.contribution(s, pc.Data[at:at+keySector]))
				}
			default:
				add(sh.opSumsOf(pc.Op).sum(wlo, whi))
			}
			x1, x2, ok := sh.durableSum(pth, d.size, wlo, whi)
			if !ok {
				return 0, 0, false
			}
			sub(x1, x2)
		}
		if v.hi%keySector != 0 && !mixed(last) {
			return 0, 0, false
		}
	}
	return c1, c2, true
}

// event is a piece's start or end, for paint.
type event struct {
	at    int64
	pc    int
	start bool
}

// paint sets ps.vis to the visible parts of the state's pieces of the file
// at pth (pieces of zeros clipped at limit), ascending: a byte shows the
// last operation's piece that covers it. One operation's pieces are
// disjoint and ascending (crashsim's AppendPieces), so with one operation
// they are all visible as they are; with more, a sweep over their edges
// keeps the active pieces in a heap by operation (at most one piece per
// operation covers a byte, so the latest one is unique): O(n log n).
func (ps *pieceState) paint(pth string, limit int64) bool {
	ps.vis, ps.evs = ps.vis[:0], ps.evs[:0]
	ops, lastOp := 0, -1
	for i := range ps.pieces {
		pc := &ps.pieces[i]
		if pc.Path != pth {
			continue
		}
		lo, hi := pc.Off, pc.Off+pc.Len
		if pc.Data == nil {
			hi = min(hi, limit)
		}
		if lo >= hi {
			continue
		}
		if pc.Op != lastOp {
			ops, lastOp = ops+1, pc.Op
		}
		ps.evs = append(ps.evs, event{at: lo, pc: i, start: true}, event{at: hi, pc: i})
	}
	if ops <= 1 {
		for k := 0; k < len(ps.evs); k += 2 {
			if n := len(ps.vis); n > 0 && ps.evs[k].at < ps.vis[n-1].hi {
				return false // not ascending: not what AppendPieces gives
			}
			ps.vis = append(ps.vis, visible{lo: ps.evs[k].at, hi: ps.evs[k+1].at, pc: ps.evs[k].pc})
		}
		return true
	}
	slices.SortFunc(ps.evs, func(a, b event) int { return cmp.Compare(a.at, b.at) })
	if cap(ps.ended) < len(ps.pieces) {
		ps.ended = make([]bool, len(ps.pieces))
	}
	ended := ps.ended[:len(ps.pieces)]
	clear(ended)
	h := ps.heap[:0]
	later := func(i, j int) bool { return ps.pieces[h[i]].Op > ps.pieces[h[j]].Op }
	push := func(pc int) {
		h = append(h, pc)
		for i := len(h) - 1; i > 0; {
			p := (i - 1) / 2
			if !later(i, p) {
				break
			}
			h[i], h[p] = h[p], h[i]
			i = p
		}
	}
	pop := func() {
		h[0] = h[len(h)-1]
		h = h[:len(h)-1]
		for i := 0; ; {
			l, r, m := 2*i+1, 2*i+2, i
			if l < len(h) && later(l, m) {
				m = l
			}
			if r < len(h) && later(r, m) {
				m = r
			}
			if m == i {
				break
			}
			h[i], h[m] = h[m], h[i]
			i = m
		}
	}
	for e := 0; e < len(ps.evs); {
		x := ps.evs[e].at
		for ; e < len(ps.evs) && ps.evs[e].at == x; e++ {
			if ps.evs[e].start {
				push(ps.evs[e].pc)
			} else {
				ended[ps.evs[e].pc] = true
			}
		}
		for len(h) > 0 && ended[h[0]] {
			pop()
		}
		if len(h) == 0 || e == len(ps.evs) {
			continue
		}
		top, next := h[0], ps.evs[e].at
		if n := len(ps.vis); n > 0 && ps.vis[n-1].pc == top && ps.vis[n-1].hi == x {
			ps.vis[n-1].hi = next
		} else {
			ps.vis = append(ps.vis, visible{lo: x, hi: next, pc: top})
		}
	}
	ps.heap = h
	return true
}

// mergeSpans returns the union of two sorted lists of disjoint spans, in
// a (reused).
func mergeSpans(a, b [][2]int64) [][2]int64 {
	if len(b) == 0 {
		return a
	}
	all := append(a, b...)
	slices.SortFunc(all, func(x, y [2]int64) int { return cmp.Compare(x[0], y[0]) })
	out := all[:0]
	for _, s := range all {
		if k := len(out); k > 0 && s[0] <= out[k-1][1] {
			out[k-1][1] = max(out[k-1][1], s[1])
			continue
		}
		out = append(out, s)
	}
	return out
}
