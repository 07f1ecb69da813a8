package qed

import (
	"container/list"
	"sync"
)

// l2Table is one cached L2 table. Its entries are read under Image.mu held
// shared and modified only under Image.mu held exclusively, so readers never
// see a table change under them; refs pins the table against eviction while
// a request uses it.
type l2Table struct {
	offset  uint64
	entries []uint64
	refs    int           // guarded by l2Cache.mu
	elem    *list.Element // guarded by l2Cache.mu; nil once evicted
}

// l2Cache is a bounded LRU of L2 tables keyed by file offset. It is
// write-through: a table's entries always equal what was last written to
// the file. A pinned table (refs > 0) is never evicted; when every table
// is pinned the cache may briefly hold more than max.
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
		if t.refs == 0 {
			c.lru.Remove(e)
			t.elem = nil
			delete(c.byOff, t.offset)
		}
		e = prev
	}
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

// len returns the number of cached tables.
func (c *l2Cache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len()
}
