package qed

import (
	"fmt"
	"runtime"
	"slices"
	"sync"
	"time"
)

// Concurrent allocating writes.
//
// An allocating write that needs a copy-on-write read from the backing
// file (allocateConcurrent) has three steps, and holds mu exclusively only
// for the first and the last (one without such a read, which has nothing
// slow to overlap, does all three under the lock):
//
//  1. Reserve, under mu held exclusively: look the clusters up again (they
//     may have been allocated since the caller looked); wait while an
//     allocation in flight covers any of them; with no backing file make
//     NEED_CHECK durable (setNeedCheckLocked); bump the end of the file by
//     the clusters' size (allocClustersLocked, the one allocator); record
//     the allocation as in flight (imageMutex.inflight). The clusters now
//     belong to this write alone: nothing links to them, no other
//     allocation can be handed them, and no other allocation can start on
//     the same guest clusters.
//  2. Fill and write, with no lock held: read the copy-on-write fill from
//     the backing file (the slow part with a slow backing file) and write
//     fill and data into the reserved clusters (fillAndWrite). Readers and
//     in-place writers run meanwhile; they still see the clusters as
//     unallocated (reads return the backing file's bytes, which is what a
//     read concurrent with an unfinished write may return), and an
//     in-place write cannot touch them (they are not linked).
//  3. Link, under mu held exclusively: drop the in-flight record and wake
//     the waiters; point the L2 entries at the clusters in the cached table
//     (linkLocked, dirty until the next metadata writeback); a write that
//     failed in step 2 links nothing and leaves its clusters leaked.
//
// What must be durable before what (docs/format.md, "Crash safety"), and
// why concurrency keeps it:
//
//   - Data before the L2 entry that links it (with a backing file). An L2
//     entry reaches the file only in flushMetaLocked, whose first Sync
//     comes after it took mu exclusively. Every entry dirty at that moment
//     was linked in a step 3 that ran after the same goroutine's data
//     write (step 2) returned, so that Sync covers the data of every entry
//     the writeback writes. Allocations still in step 2 are not linked:
//     whether their data is in that Sync does not matter.
//   - L2 table before the L1 entry that links it: unchanged; new tables are
//     created and linked in step 3 under mu, and flushMetaLocked syncs the
//     tables before it writes L1.
//   - NEED_CHECK (no backing file): durable before any L2 entry that may
//     overtake its data. Step 1 sets it (header write, Sync) before the
//     clusters are even reserved, and step 3 sets it again if it is clear
//     (a no-op in practice). Nothing clears it while an allocation is in
//     flight: Close, Check, Resize and the image utilities take mu with
//     Lock, which waits until no allocation is in flight; the idle clear
//     skips when one is (the allocation re-arms the timer when it links).
//   - The file may end short of the reserved clusters (fresh clusters get
//     no zero fill); flushMetaLocked extends it to the allocator's end,
//     which covers clusters still in flight too: extending only adds
//     zeros, and a cluster reserved but not linked at a crash is a leak.
//
// Two writes into one L2 table: each reserves its own clusters in step 1
// and links them in step 3, both under mu, so the cached table sees the
// two updates one after the other and the dirty range covers both; the
// first to link into a table not yet allocated creates it (linkLocked)
// and the second finds it. Two overlapping writes into one unallocated
// cluster: the second waits in step 1 until the first has linked, looks
// the cluster up again, finds it allocated and writes in place. Were both
// to allocate it (seeded defect DefectConcurrentDoubleAllocation), the
// later link would replace the earlier one, whose data would be lost: the
// later cluster's copy-on-write fill was read before the earlier write
// landed. Each allocation in flight builds its fill and data in a buffer
// of its own (from the pool); sharing the serialised path's scratch buffer
// would let one allocation write another's bytes into its cluster (seeded
// defect DefectConcurrentSharedCOWBuffer).
//
// Flush takes mu without waiting for allocations in flight (lockMeta): it
// makes durable the writes that completed, and an allocation in flight has
// not completed. The operations that change the image as a whole (Close,
// Check, Resize, WriteZeroes, SetBacking, Rebase, Commit) take mu with
// Lock, which first lets every allocation in flight finish and holds new
// ones back, so they see a quiet image as before.

// imageMutex is Image.mu: a readers-writer lock plus the allocations in
// flight (alloc.go's step 2).
//
//   - RLock / RUnlock: reads, in-place writes, Map (as sync.RWMutex).
//   - Lock: exclusive, with no allocation in flight: it waits until every
//     allocation in flight has linked, and new ones wait until it is
//     released. Every operation that needs a quiet image uses it.
//   - lockMeta: exclusive, allocations may be in flight (in step 2, which
//     holds no lock). For steps 1 and 3 of an allocation, Flush and the
//     idle clear.
//   - Unlock releases either exclusive lock.
type imageMutex struct {
	rw   sync.RWMutex
	cond sync.Cond // L = &rw; broadcast when an allocation links or a drain ends

	// Guarded by rw held exclusively:
	inflight []inflightAlloc
	draining int // Lock calls waiting for inflight to empty
}

// inflightAlloc is one allocation in step 2: guest clusters [first,
// first+n) (cluster indexes, not bytes).
type inflightAlloc struct {
	id       uint64
	first, n uint64
}

func (m *imageMutex) init() { m.cond.L = &m.rw }

func (m *imageMutex) RLock()   { m.rw.RLock() }
func (m *imageMutex) RUnlock() { m.rw.RUnlock() }
func (m *imageMutex) Unlock()  { m.rw.Unlock() }

// lockMeta takes the lock exclusively; allocations may be in flight.
func (m *imageMutex) lockMeta() { m.rw.Lock() }

// Lock takes the lock exclusively once no allocation is in flight.
func (m *imageMutex) Lock() {
	m.rw.Lock()
	if len(m.inflight) == 0 {
		return
	}
	m.draining++
	for len(m.inflight) > 0 {
		m.cond.Wait()
	}
	m.draining--
	if m.draining == 0 {
		m.cond.Broadcast()
	}
}

// waitDrained waits while a Lock call drains the allocations in flight,
// so that a new allocation does not start before it: a stream of
// allocations would otherwise hold Lock off for ever. rw must be held
// exclusively (lockMeta).
func (m *imageMutex) waitDrained() {
	for m.draining > 0 {
		m.cond.Wait()
	}
}

// overlapping reports whether an allocation in flight covers any of the
// guest clusters [first, first+n). rw must be held exclusively.
func (m *imageMutex) overlapping(first, n uint64) bool {
	for _, a := range m.inflight {
		if a.first < first+n && first < a.first+a.n {
			return true
		}
	}
	return false
}

// allocateConcurrent writes the leading part of p (at guest offset pos)
// that lies in one run of unallocated or zero clusters, allocating them
// with the three steps above, and returns how many bytes it wrote. It
// returns 0 and no error when the cluster at pos turned out to be
// allocated (by another write since the caller looked): the caller then
// writes it in place.
func (im *Image) allocateConcurrent(p []byte, pos uint64) (int, error) {
	g := &im.geo
	m := &im.mu
	m.lockMeta()
	var (
		r     run
		k     uint64
		host  uint64
		entry inflightAlloc
	)
	for {
		m.waitDrained()
		if err := im.checkWriteLocked(int64(pos), int64(len(p))); err != nil {
			m.Unlock()
			return 0, err
		}
		var err error
		r, err = im.lookupLocked(pos, g.clustersSpanned(pos, uint64(len(p))))
		if err != nil {
			m.Unlock()
			return 0, err
		}
		if r.kind == ExtentData {
			m.Unlock()
			return 0, nil
		}
		k = g.runBytes(pos, uint64(len(p)), r)
		first, n := pos>>g.l2Shift, g.clustersSpanned(pos, k)
		if m.overlapping(first, n) {
			// Another write is allocating one of these clusters: wait
			// until it links them, then look again.
			m.cond.Wait()
			continue
		}
		if host, err = im.reserveLocked(pos, k); err != nil {
			m.Unlock()
			return 0, err
		}
		if !im.readsBackingLocked(pos, k, r) {
			// Nothing slow to overlap: no copy-on-write read, only the
			// data write (a page-cache write, serialised by the kernel's
			// inode lock anyway). Steps 2 and 3 under the lock, as
			// allocateLocked does: two lock round trips and a goroutine
			// switch per allocation cost more than they save here.
			short, err := im.fillAndWrite(pos, p[:k], r, host, im.cowBuffer)
			if err == nil {
				err = im.linkAllocLocked(pos, k, host, short)
			}
			m.Unlock()
			if err != nil {
				return 0, err
			}
			return int(k), nil
		}
		im.allocSeq++
		entry = inflightAlloc{id: im.allocSeq, first: first, n: n}
		m.inflight = append(m.inflight, entry)
		break
	}
	m.Unlock()

	// Step 2, no lock held. On in-memory files (crashsim, afero's
	// MemMapFs: the files guardFile serialises), whose I/O never blocks,
	// the writes of a concurrent group would rarely overlap this step, and
	// the campaign and the state machine would not exercise it: yield
	// first, as real I/O would. Not on OS files: there a yield wakes
	// another thread per allocation, which costs more than it gives.
	if im.yieldInFlight {
		runtime.Gosched()
	}
	var bp *[]byte
	short, err := im.fillAndWrite(pos, p[:k], r, host, func(n uint64) []byte {
		if defect(DefectConcurrentSharedCOWBuffer) {
			// The seeded defect: the scratch buffer of the serialised
			// path, shared by every allocation in flight.
			return im.sharedCOWBufferDefect(n)
		}
		bp = getBytes(int(n))
		return *bp
	})
	if bp != nil {
		putBytes(bp)
	}

	m.lockMeta()
	defer m.Unlock()
	m.inflight = slices.DeleteFunc(m.inflight, func(a inflightAlloc) bool { return a.id == entry.id })
	m.cond.Broadcast()
	if err != nil {
		return 0, err // the reserved clusters stay leaked, never linked
	}
	if err := im.linkAllocLocked(pos, k, host, short); err != nil {
		return 0, err
	}
	return int(k), nil
}

// readsBackingLocked reports whether allocating the clusters holding
// guest bytes [pos, pos+length) of run r needs a copy-on-write read from
// the backing file: a partial cluster at either end of an unallocated run
// over a backing file. (Zero clusters fill with zeros; without a backing
// file the fill is zeros.)
func (im *Image) readsBackingLocked(pos, length uint64, r run) bool {
	g := &im.geo
	if im.backing == nil || !(r.kind == ExtentUnallocated || (r.kind == ExtentZero && defect(DefectZeroClusterPartialWriteReadsBacking))) {
		return false
	}
	return g.offsetInCluster(pos) != 0 || g.offsetInCluster(pos+length) != 0
}

// reserveLocked is step 1 of an allocation of the clusters holding guest
// bytes [pos, pos+length): NEED_CHECK made durable first when there is no
// backing file, then the clusters handed out by the allocator. It returns
// their host offset. mu must be held exclusively.
func (im *Image) reserveLocked(pos, length uint64) (uint64, error) {
	if im.backing == nil && !defect(DefectNeedCheckAfterMetadata) {
		if err := im.setNeedCheckLocked(); err != nil {
			return 0, err
		}
	}
	return im.allocClustersLocked(im.geo.clustersSpanned(pos, length)), nil
}

// fillAndWrite is step 2: it writes data (guest offset pos, inside run r
// of unallocated or zero clusters) into the new clusters at host, filling
// their untouched head and tail by copy-on-write: from the backing file
// for unallocated clusters (zeros past its end or without one), zeros for
// zero clusters. It reports whether it left the file possibly short of the
// clusters' end (short). It reads only what is immutable while the
// allocation is in flight (the geometry, the files, openLen) and needs no
// lock; getBuf returns a scratch buffer of n <= maxCOWBuffer bytes.
//
// I/O economy: fill and data go out as one write of the whole new
// clusters. A cluster at or past the file's length at open (fresh: never
// written, it reads as zeros) gets no fill at all when the fill is zeros:
// only the data is written, and the file may end short of the clusters
// until the next writeback extends it (lenShort).
func (im *Image) fillAndWrite(pos uint64, data []byte, r run, host uint64, getBuf func(n uint64) []byte) (short bool, err error) {
	g := &im.geo
	start := g.startOfCluster(pos)
	end := pos + uint64(len(data))
	n := g.clustersSpanned(pos, uint64(len(data)))
	tailEnd := start + n*g.clusterSize
	fresh := host >= im.openLen
	head, tail := pos-start, tailEnd-end
	if head+tail == 0 {
		return false, im.writeDataAt(data, host)
	}
	fromBacking := r.kind == ExtentUnallocated || (r.kind == ExtentZero && defect(DefectZeroClusterPartialWriteReadsBacking))
	if fresh && (!fromBacking || im.backing == nil) {
		// Zero fill into a fresh cluster: nothing to write but the data.
		return tail > 0, im.writeDataAt(data, host+head)
	}

	// fill computes the copy-on-write bytes of guest [gpos, gpos+len(buf))
	// and reports whether they are all zeros.
	fill := func(buf []byte, gpos uint64) (bool, error) {
		if len(buf) == 0 {
			return true, nil
		}
		if fromBacking {
			if err := im.readBacking(buf, gpos); err != nil {
				return false, fileErr(im.path, fmt.Sprintf("copy-on-write read at guest offset %d", gpos), err)
			}
			if defect(DefectCOWPastBackingEndGarbage) {
				im.defectGarblePastBackingEnd(buf, gpos)
			}
			return im.backing == nil || allZero(buf), nil
		}
		clear(buf)
		return true, nil
	}
	if total := n * g.clusterSize; total <= maxCOWBuffer {
		// One buffer: head fill, data, tail fill.
		buf := getBuf(total)
		zh, err := fill(buf[:head], start)
		if err != nil {
			return false, err
		}
		zt, err := fill(buf[head+uint64(len(data)):], end)
		if err != nil {
			return false, err
		}
		if fresh && zh && zt {
			return tail > 0, im.writeDataAt(data, host+head)
		}
		copy(buf[head:], data)
		if defect(DefectConcurrentSharedCOWBuffer) {
			// The seeded defect holds the built buffer as a slow device
			// would before the write, so that in-memory runs (and their
			// replays) show the race every time two allocations overlap.
			time.Sleep(time.Millisecond)
		}
		return false, im.writeDataAt(buf, host)
	}
	// Too large for one buffer: head cluster, data, tail cluster.
	for _, part := range []struct{ gpos, length, hpos uint64 }{{start, head, host}, {end, tail, host + (end - start)}} {
		if part.length == 0 {
			continue
		}
		buf := make([]byte, part.length)
		zero, err := fill(buf, part.gpos)
		if err != nil {
			return short, err
		}
		if fresh && zero {
			short = true
			continue
		}
		if err := im.writeDataAt(buf, part.hpos); err != nil {
			return short, err
		}
	}
	return short, im.writeDataAt(data, host+head)
}

// linkAllocLocked is step 3 after a successful step 2: it links the
// clusters at host to the guest clusters holding [pos, pos+length) in the
// cached L2 table (linkLocked; the next metadata writeback writes them in
// the order the crash-safety rules need), notes a short file, writes the
// metadata back if the cache overflowed and re-arms the idle timer. mu
// must be held exclusively.
func (im *Image) linkAllocLocked(pos, length, host uint64, short bool) error {
	if im.backing == nil && !defect(DefectNeedCheckAfterMetadata) {
		// Set since step 1 (nothing clears it while an allocation is in
		// flight); made sure of here, where the entry becomes dirty.
		if err := im.setNeedCheckLocked(); err != nil {
			return err
		}
	}
	im.lenShort = im.lenShort || short
	g := &im.geo
	if err := im.linkLocked(g.startOfCluster(pos), g.clustersSpanned(pos, length), host); err != nil {
		return err
	}
	if im.cache.overfull() {
		// Dirty tables cannot be evicted: write them back to bound memory.
		if err := im.flushMetaLocked(); err != nil {
			return err
		}
	}
	im.armIdleTimerLocked()
	return nil
}
