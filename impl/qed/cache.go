package qed

import (
	"cmp"
	"container/list"
	"slices"
	"sync"
)

// l2Table is one cached L2 table. Its entries are read under Image.mu held
// shared and modified only under Image.mu held exclusively, so readers never
// see a table change under them; refs pins the table against eviction while
// a request uses it.
//
// A table may be dirty: entries [dirtyLo, dirtyHi) (or, when fresh, the
// whole table, never written yet) differ from the file and are written by
// the next metadata writeback (Image.flushMetaLocked). The dirty fields are
// written only under Image.mu held exclusively and read under Image.mu
// held in either mode; a dirty table is never evicted.
type l2Table struct {
	offset  uint64
	entries table         // pooled storage, given back by drain
	refs    int           // guarded by l2Cache.mu
	elem    *list.Element // guarded by l2Cache.mu; nil once evicted

	fresh            bool   // allocated this session, not yet written at all
	sparse           bool   // fresh and big: only its dirty entries are written (linkLocked)
	dirtyLo, dirtyHi uint64 // changed entry range; empty when dirtyLo >= dirtyHi
}

// dirty reports whether t has changes not yet written to the file.
func (t *l2Table) dirty() bool { return t.fresh || t.dirtyLo < t.dirtyHi }

// markDirty records that entries [lo, hi) changed in memory.
func (t *l2Table) markDirty(lo, hi uint64) {
	if t.dirtyLo >= t.dirtyHi {
		t.dirtyLo, t.dirtyHi = lo, hi
		return
	}
	t.dirtyLo, t.dirtyHi = min(t.dirtyLo, lo), max(t.dirtyHi, hi)
}

// markClean records that the file holds every entry of t.
func (t *l2Table) markClean() { t.fresh, t.dirtyLo, t.dirtyHi = false, 0, 0 }

// l2Cache is a bounded LRU of L2 tables keyed by file offset. It is
// write-back: a table's entries equal what was last written to the file
// unless the table is dirty. A pinned table (refs > 0) or a dirty one is
// never evicted; the cache may therefore briefly hold more than max, and
// the Image writes its metadata back as soon as overfull reports it (after
// an allocating write), which bounds memory by max plus the tables pinned
// by requests in flight.
type l2Cache struct {
	mu    sync.Mutex // guards byOff, lru and every table's refs and elem
	max   int
	byOff map[uint64]*l2Table
	lru   *list.List // of *l2Table, most recently used at the front
}

func newL2Cache(max int) *l2Cache {
	return &l2Cache{max: max, byOff: make(map[uint64]*l2Table), lru: list.New()}
}

// get returns the cached table at off, pinned, or nil.
func (c *l2Cache) get(off uint64) *l2Table {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.byOff[off]
	if t == nil {
		return nil
	}
	t.refs++
	c.lru.MoveToFront(t.elem)
	return t
}

// insert adds t (unpinned by the caller) and returns the cached table for
// its offset, pinned. If another goroutine inserted the same offset first,
// that table wins and t is dropped: both were read from the same bytes.
func (c *l2Cache) insert(t *l2Table) *l2Table {
	c.mu.Lock()
	defer c.mu.Unlock()
	if old := c.byOff[t.offset]; old != nil {
		old.refs++
		c.lru.MoveToFront(old.elem)
		return old
	}
	t.refs = 1
	t.elem = c.lru.PushFront(t)
	c.byOff[t.offset] = t
	c.evictLocked()
	return t
}

// release unpins t.
func (c *l2Cache) release(t *l2Table) {
	if t == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	t.refs--
	if t.refs < 0 {
		panic("qed: l2 table released more often than pinned")
	}
	c.evictLocked()
}

// evictLocked drops least recently used unpinned tables until the cache
// is within its bound.
func (c *l2Cache) evictLocked() {
	for e := c.lru.Back(); e != nil && c.lru.Len() > c.max; {
		prev := e.Prev()
		t := e.Value.(*l2Table)
		if (t.refs == 0 && !t.dirty()) || defect(DefectCacheEvictInUse) {
			c.lru.Remove(e)
			t.elem = nil
			delete(c.byOff, t.offset)
		}
		e = prev
	}
}

// drain empties the cache, giving each table's storage back to the
// pools. The caller guarantees that no request holds a table
// (Image.Close, Image.emptyLocked).
func (c *l2Cache) drain() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for e := c.lru.Front(); e != nil; e = e.Next() {
		t := e.Value.(*l2Table)
		t.elem = nil
		t.entries.release()
	}
	c.lru.Init()
	clear(c.byOff)
}

// overfull reports whether the cache holds more tables than its bound
// (which happens only when dirty or pinned tables could not be evicted).
func (c *l2Cache) overfull() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len() > c.max
}

// dirtyTables returns the dirty tables, in file offset order. The caller
// holds Image.mu exclusively.
func (c *l2Cache) dirtyTables() []*l2Table {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*l2Table
	for e := c.lru.Front(); e != nil; e = e.Next() {
		if t := e.Value.(*l2Table); t.dirty() {
			out = append(out, t)
		}
	}
	slices.SortFunc(out, func(a, b *l2Table) int { return cmp.Compare(a.offset, b.offset) })
	return out
}

// evict drops unpinned clean tables beyond the bound (after a writeback
// cleaned them).
func (c *l2Cache) evict() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.evictLocked()
}

// clear drops every unpinned table (used after repair rewrote tables).
func (c *l2Cache) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for e := c.lru.Back(); e != nil; {
		prev := e.Prev()
		t := e.Value.(*l2Table)
		if t.refs == 0 {
			c.lru.Remove(e)
			t.elem = nil
			delete(c.byOff, t.offset)
		}
		e = prev
	}
}
