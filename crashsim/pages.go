package crashsim

import (
	"math"
	"slices"
	"sync"
	"sync/atomic"
)

// Page-granular persistent storage.
//
// A file's bytes live in a radix tree of PageSize pages with fan-out
// fanout. Trees are persistent: a snapshot is a copy of the root pointer,
// and a writer copies the path from the root to each page it changes
// (copy-on-write), so building a crash state costs time proportional to
// the pages its kept writes touch, never to the file size. Nodes carry
// the generation of the writer that owns them; a writer mutates a node in
// place only when the generation matches, which makes runs of writes
// between two snapshots cheap (the Clojure "transient" trick). Every
// snapshot switches its owner to a fresh generation, so a shared node is
// never modified.
//
// Invariant: every byte at or past a content's size reads as zero (a
// shrinking truncate zeroes the tail of the last page and drops the pages
// beyond), so extending the size never exposes stale bytes.

const (
	// PageSize is the granularity of copy-on-write storage.
	PageSize  = 4096
	pageShift = 12
	fanBits   = 5
	fanout    = 1 << fanBits
	fanMask   = fanout - 1
)

var genCounter atomic.Uint64

// newGen returns a generation no node has been created with yet.
func newGen() uint64 { return genCounter.Add(1) }

type node struct {
	gen  uint64
	kids *[fanout]*node  // interior node
	data *[PageSize]byte // leaf (page)
}

// content is one version of a file's bytes: an immutable-by-convention
// tree plus a length. height is the number of interior levels above the
// pages (capacity fanout^height pages).
//
// A content may also carry an overlay: operations applied lazily on top
// of the tree, in order. Crash states are built as overlays that point at
// the trace's own data, so building one copies no page at all; the first
// mutation (or a long overlay) flattens it into the tree.
type content struct {
	root   *node
	height int
	size   int64
	ovl    []ovlOp // immutable once shared; never appended to in place
}

// ovlOp writes data at off, or zeroes n bytes at off when data is nil.
// A torn write's op (torn set) writes only the sectors its mask keeps;
// the bytes of its other sectors show what lies below (perf, issue 19
// goal 5: a torn megabyte write is one op, not one per sector, which made
// the overlay long and every such state flatten at build).
type ovlOp struct {
	off  int64
	n    int64
	data []byte
	torn *tornMask
}

// tornMask says which sectors of a torn write survive: sector s (absolute
// index, the bytes [s*g, (s+1)*g)) when keep[s-first] == 1.
type tornMask struct {
	g     int64
	first int64
	keep  []uint8
}

// each calls f with the maximal runs [a, b) of [lo, hi) (inside o's
// range) whose bytes o holds: the whole of it, or a torn write's kept
// sectors there.
func (o *ovlOp) each(lo, hi int64, f func(a, b int64)) {
	if o.torn == nil {
		f(lo, hi)
		return
	}
	t := o.torn
	start := int64(-1)
	for s := lo / t.g; s*t.g < hi; s++ {
		a := max(lo, s*t.g)
		if i := s - t.first; i >= 0 && i < int64(len(t.keep)) && t.keep[i] == 1 {
			if start < 0 {
				start = a
			}
			continue
		}
		if start >= 0 {
			f(start, a)
			start = -1
		}
	}
	if start >= 0 {
		f(start, hi)
	}
}

// maxOverlay bounds the overlay a crash state keeps lazily.
const maxOverlay = 64

// flatten applies the overlay to the tree, owned by gen.
func (c *content) flatten(gen uint64) {
	if len(c.ovl) == 0 {
		return
	}
	ovl, size := c.ovl, c.size
	c.ovl = nil
	for _, o := range ovl {
		switch {
		case o.data != nil:
			o.each(o.off, o.off+o.n, func(a, b int64) { c.writeAt(o.data[a-o.off:b-o.off], a, gen) })
		case o.n == zeroToEnd:
			// c.size is already the state's final size (overlayChoice
			// set it), which may equal o.off: cut the tree's pages from
			// o.off whatever the size says, or an extending write after
			// the flatten would show the bytes the truncate removed.
			c.cut(o.off, gen)
		default:
			c.zeroRange(o.off, o.n, gen)
		}
	}
	c.size = size
}

// zeroToEnd as an ovlOp length clears everything from off on (a truncate).
const zeroToEnd = -1

// capacityPages reports how many pages a tree of height h can address
// (saturating: heights beyond 12 cover every int64 offset).
func capacityPages(h int) int64 {
	if h*fanBits >= 63-pageShift {
		return 1 << (63 - pageShift)
	}
	return 1 << (uint(h) * fanBits)
}

// pagePool holds pages given back by FS.Release (perf, issue 5: copying
// pages on a crash state's first writes was most of an oracle run's
// allocation). A pooled page is referenced by no tree.
var pagePool sync.Pool // of *[PageSize]byte

func getPage() *[PageSize]byte {
	if d, ok := pagePool.Get().(*[PageSize]byte); ok {
		return d
	}
	return new([PageSize]byte)
}

func (c *content) own(n *node, gen uint64, leaf bool) *node {
	return c.ownPage(n, gen, leaf, false)
}

// ownPage is own; with whole, a new leaf's bytes are left as they come
// from the pool (neither copied from n nor cleared): the caller is about
// to overwrite all of them.
func (c *content) ownPage(n *node, gen uint64, leaf, whole bool) *node {
	if n != nil && n.gen == gen {
		return n
	}
	m := &node{gen: gen}
	if leaf {
		m.data = getPage()
		switch {
		case whole:
		case n != nil:
			*m.data = *n.data
		default:
			clear(m.data[:])
		}
	} else {
		m.kids = new([fanout]*node)
		if n != nil {
			*m.kids = *n.kids
		}
	}
	return m
}

// grow raises the tree until page index pg is addressable.
func (c *content) grow(pg int64, gen uint64) {
	for pg >= capacityPages(c.height) {
		if c.root != nil {
			r := &node{gen: gen, kids: new([fanout]*node)}
			r.kids[0] = c.root
			c.root = r
		}
		c.height++
	}
}

// pageForWrite returns the page pg owned by gen, copying the path to it.
func (c *content) pageForWrite(pg int64, gen uint64) *[PageSize]byte {
	return c.pageForOverwrite(pg, gen, false)
}

// pageForOverwrite is pageForWrite; with whole, the caller overwrites
// every byte of the page, so a page it has to make (a hole, or another
// generation's) is not filled first (perf, issue 19 goal 5: a megabyte
// write paid a copy or a clear of every page before its own copy).
func (c *content) pageForOverwrite(pg int64, gen uint64, whole bool) *[PageSize]byte {
	c.grow(pg, gen)
	c.root = c.ownPage(c.root, gen, c.height == 0, whole)
	n := c.root
	for h := c.height; h > 0; h-- {
		i := (pg >> (uint(h-1) * fanBits)) & fanMask
		k := c.ownPage(n.kids[i], gen, h == 1, whole)
		n.kids[i] = k
		n = k
	}
	return n.data
}

// page returns page pg for reading, or nil when it is a hole.
func (c *content) page(pg int64) *[PageSize]byte {
	if pg >= capacityPages(c.height) {
		return nil
	}
	n := c.root
	for h := c.height; h > 0 && n != nil; h-- {
		n = n.kids[(pg>>(uint(h-1)*fanBits))&fanMask]
	}
	if n == nil {
		return nil
	}
	return n.data
}

// nextData returns the first offset >= off and below size that may hold
// data (a page of the tree, or a range of the overlay), or -1.
func (c *content) nextData(off int64) int64 {
	best := int64(-1)
	if pg := c.nextPage(off >> pageShift); pg >= 0 {
		best = max(pg<<pageShift, off)
	}
	for _, o := range c.ovl {
		if o.n == zeroToEnd {
			continue // a truncate: zeros
		}
		if o.off+o.n > off && (best < 0 || max(o.off, off) < best) {
			best = max(o.off, off)
		}
	}
	if best >= c.size {
		return -1
	}
	return best
}

// nextHole returns the first offset >= off (off < size) in no page of the
// tree and in no range of the overlay, or size.
func (c *content) nextHole(off int64) int64 {
	for off < c.size {
		moved := false
		if c.page(off>>pageShift) != nil {
			off = (off>>pageShift + 1) << pageShift
			moved = true
		}
		for _, o := range c.ovl {
			if o.n != zeroToEnd && o.off <= off && off < o.off+o.n {
				off = o.off + o.n
				moved = true
			}
		}
		if !moved {
			break
		}
	}
	return min(off, c.size)
}

// nextPage returns the index of the first page >= pg present in the
// tree, or -1. Empty subtrees are skipped whole.
func (c *content) nextPage(pg int64) int64 {
	if c.root == nil || pg >= capacityPages(c.height) {
		return -1
	}
	return nextPageIn(c.root, c.height, max(pg, 0))
}

// nextPageIn searches the subtree n of height h (page indexes relative to
// it) for the first page >= pg.
func nextPageIn(n *node, h int, pg int64) int64 {
	if n == nil {
		return -1
	}
	if h == 0 {
		return 0 // a leaf: pg is 0 here
	}
	span := capacityPages(h - 1)
	for i := pg / span; i < fanout; i++ {
		rel := int64(0)
		if i == pg/span {
			rel = pg % span
		}
		if r := nextPageIn(n.kids[i], h-1, rel); r >= 0 {
			return i*span + r
		}
	}
	return -1
}

// readAt copies bytes at off into p, zeros past holes; it does not look
// at size (callers clip).
//
// When an overlay operation that is not torn covers all of p, the tree
// and the operations before it are not read: it overwrites every byte
// (perf, issue 19 goal 5: a read of a crash state's kept megabyte write
// copied each byte twice).
func (c *content) readAt(p []byte, off int64) {
	end := off + int64(len(p))
	ovl := c.ovl
	covered := false
	for i := len(ovl) - 1; i >= 0 && len(p) > 0; i-- {
		if o := &ovl[i]; o.torn == nil && o.off <= off && (o.n == zeroToEnd || o.off+o.n >= end) {
			ovl, covered = ovl[i:], true
			break
		}
	}
	if !covered {
		c.readTree(p, off)
	}
	for _, o := range ovl {
		lo, hi := max(o.off, off), end
		if o.n != zeroToEnd {
			hi = min(hi, o.off+o.n)
		}
		if lo >= hi {
			continue
		}
		if o.data != nil {
			o.each(lo, hi, func(a, b int64) { copy(p[a-off:b-off], o.data[a-o.off:b-o.off]) })
		} else {
			clear(p[lo-off : hi-off])
		}
	}
}

func (c *content) readTree(p []byte, off int64) {
	for len(p) > 0 {
		pg, po := off>>pageShift, int(off&(PageSize-1))
		n := min(len(p), PageSize-po)
		if d := c.page(pg); d != nil {
			copy(p[:n], d[po:po+n])
		} else {
			clear(p[:n])
		}
		p, off = p[n:], off+int64(n)
	}
}

// trim removes [lo, hi) from the overlay: every overlay operation keeps
// only its parts outside the range, in the same order (perf, issue 19
// goal 5: a crash state's first write used to flatten the whole overlay,
// copying every kept byte of megabyte writes into pages). The caller then
// writes all of [lo, hi) into the tree, which no overlay operation hides
// any more; elsewhere the tree and the overlay are as before, so every
// byte reads as before. A new slice is made (clipped: an overlay may be
// shared, and build appends in place only with spare capacity).
func (c *content) trim(lo, hi int64) {
	k := slices.IndexFunc(c.ovl, func(o ovlOp) bool { return o.overlaps(lo, hi) })
	if k < 0 {
		return
	}
	out := make([]ovlOp, 0, len(c.ovl)+1)
	out = append(out, c.ovl[:k]...)
	for _, o := range c.ovl[k:] {
		if !o.overlaps(lo, hi) {
			out = append(out, o)
			continue
		}
		if o.off < lo {
			x := ovlOp{off: o.off, n: lo - o.off, torn: o.torn}
			if o.data != nil {
				x.data = o.data[:lo-o.off]
			}
			out = append(out, x)
		}
		switch {
		case o.n == zeroToEnd:
			out = append(out, ovlOp{off: max(hi, o.off), n: zeroToEnd})
		case o.off+o.n > hi:
			x := ovlOp{off: hi, n: o.off + o.n - hi, torn: o.torn}
			if o.data != nil {
				x.data = o.data[hi-o.off:]
			}
			out = append(out, x)
		}
	}
	c.ovl = slices.Clip(out)
}

// overlaps reports whether o covers a byte of [lo, hi) (lo < hi).
func (o ovlOp) overlaps(lo, hi int64) bool {
	return o.off < hi && (o.n == zeroToEnd || o.off+o.n > lo)
}

// writeAt stores p at off and extends size when needed.
func (c *content) writeAt(p []byte, off int64, gen uint64) {
	if len(p) > 0 {
		c.trim(off, off+int64(len(p)))
	}
	end := off + int64(len(p))
	for len(p) > 0 {
		pg, po := off>>pageShift, int(off&(PageSize-1))
		n := min(len(p), PageSize-po)
		d := c.pageForOverwrite(pg, gen, n == PageSize)
		copy(d[po:po+n], p[:n])
		p, off = p[n:], off+int64(n)
	}
	if end > c.size {
		c.size = end
	}
}

// sharedGen is the generation of a leaf that points into bytes the
// content does not own (writeShared): newGen never returns it, so no
// writer mutates such a leaf in place (ownPage copies it first) and
// releasePages never gives it to the pool.
const sharedGen = math.MaxUint64

// writeShared is writeAt for bytes that stay unchanged for as long as
// the content may read them (a trace's copy of a write): every page p
// covers whole becomes a leaf pointing into p instead of a copy (memory,
// issue 19 goal 5: the trace and the files held every written byte
// twice, a 64 MiB-cluster workload's hundreds of megabytes).
func (c *content) writeShared(p []byte, off int64, gen uint64) {
	if len(p) == 0 {
		return
	}
	c.trim(off, off+int64(len(p)))
	end := off + int64(len(p))
	for len(p) > 0 {
		pg, po := off>>pageShift, int(off&(PageSize-1))
		n := min(len(p), PageSize-po)
		if n == PageSize {
			c.setLeaf(pg, (*[PageSize]byte)(p[:PageSize]), gen)
		} else {
			d := c.pageForOverwrite(pg, gen, false)
			copy(d[po:po+n], p[:n])
		}
		p, off = p[n:], off+int64(n)
	}
	if end > c.size {
		c.size = end
	}
}

// setLeaf makes d page pg (a leaf of sharedGen), copying the path to it.
func (c *content) setLeaf(pg int64, d *[PageSize]byte, gen uint64) {
	c.grow(pg, gen)
	leaf := &node{gen: sharedGen, data: d}
	if c.height == 0 {
		c.root = leaf
		return
	}
	c.root = c.ownPage(c.root, gen, false, false)
	n := c.root
	for h := c.height; h > 1; h-- {
		i := (pg >> (uint(h-1) * fanBits)) & fanMask
		k := c.ownPage(n.kids[i], gen, false, false)
		n.kids[i] = k
		n = k
	}
	n.kids[pg&fanMask] = leaf
}

// zeroRange zeroes [off, off+n) without changing size; hole pages stay holes.
func (c *content) zeroRange(off, n int64, gen uint64) {
	if n > 0 {
		c.trim(off, off+n)
	}
	for n > 0 {
		pg, po := off>>pageShift, off&(PageSize-1)
		k := min(n, PageSize-po)
		if c.page(pg) != nil {
			d := c.pageForOverwrite(pg, gen, k == PageSize)
			clear(d[po : po+k])
		}
		off, n = off+k, n-k
	}
}

// truncate sets the size; shrinking zeroes the tail and drops later pages.
//
// Over an overlay (perf, issue 19 goal 5: impl/qed's flush truncates,
// which used to flatten a crash state's overlay): growing only sets the
// size (past the old size the tree reads zeros, and the overlay holds no
// data there; a truncate's zeros in it stay, still hiding what the tree
// keeps past them), and shrinking trims the overlay from size on before
// cutting the tree.
func (c *content) truncate(size int64, gen uint64) {
	if size >= c.size {
		c.size = size
		return
	}
	c.trim(size, math.MaxInt64)
	c.cut(size, gen)
	c.size = size
}

// cut zeroes the tree from size on and drops the later pages (no overlay
// operation may hold data from size on; the size is the caller's).
func (c *content) cut(size int64, gen uint64) {
	if size == 0 {
		c.root, c.height = nil, 0
		return
	}
	// Zero the tail of the last kept page.
	if po := size & (PageSize - 1); po != 0 && c.page(size>>pageShift) != nil {
		d := c.pageForWrite(size>>pageShift, gen)
		clear(d[po:])
	}
	firstDrop := (size + PageSize - 1) >> pageShift
	if firstDrop < capacityPages(c.height) && c.root != nil {
		c.root = c.dropFrom(c.root, c.height, firstDrop, gen)
	}
}

// dropFrom clears every page with index >= first (relative to n's subtree).
func (c *content) dropFrom(n *node, h int, first int64, gen uint64) *node {
	if n == nil || h == 0 {
		if first <= 0 {
			return nil
		}
		return n
	}
	if first <= 0 {
		return nil
	}
	span := capacityPages(h - 1)
	i := first / span
	anything := false
	for j := i; j < fanout; j++ {
		if n.kids[j] != nil {
			anything = true
			break
		}
	}
	if !anything {
		return n
	}
	n = c.own(n, gen, false)
	if i < fanout {
		n.kids[i] = c.dropFrom(n.kids[i], h-1, first-i*span, gen)
		for j := i + 1; j < fanout; j++ {
			n.kids[j] = nil
		}
	}
	return n
}

// releasePages gives the pages of the tree under n owned by gen to
// pagePool. Only a node of gen can lead to one (a node of another
// generation is shared and never points at a node created after it), so
// shared subtrees are not walked. The caller guarantees that nothing will
// read the pages of gen again.
func releasePages(n *node, gen uint64) {
	if n == nil || n.gen != gen {
		return
	}
	if n.data != nil {
		pagePool.Put(n.data)
		n.data = nil
		return
	}
	if n.kids != nil {
		for _, k := range n.kids {
			releasePages(k, gen)
		}
	}
}
