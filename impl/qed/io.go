package qed

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"runtime"
)

// run is a stretch of guest clusters, all in one L2 table, that share a
// mapping kind; for ExtentData the host clusters are contiguous.
type run struct {
	kind ExtentKind
	host uint64 // host offset of the first cluster (ExtentData only)
	n    uint64 // clusters
}

// lookupLocked classifies the clusters starting at the one holding guest
// offset pos, at most maxN of them and never past the end of one L2
// table's range. mu must be held (shared suffices). An entry that is not a
// valid offset is an error, never a mapping: bytes are never read from or
// written to a wrong place.
func (im *Image) lookupLocked(pos, maxN uint64) (run, error) {
	g := &im.geo
	l1i := g.l1Index(pos)
	l2i := g.l2Index(pos)
	n := min(maxN, g.nelems-l2i)
	l1e := im.l1.get(l1i)
	if l1e == 0 {
		return run{kind: ExtentUnallocated, n: n}, nil
	}
	if !g.validTableOffset(l1e, im.fileSize) {
		return run{}, &FormatError{Field: fmt.Sprintf("L1[%d]", l1i), Value: l1e,
			Offset: int64(im.hdr.L1TableOffset + l1i*entrySize),
			Reason: fmt.Sprintf("not a valid L2 table offset (file has %d whole-cluster bytes)", im.fileSize), Err: ErrCorrupt}
	}
	t, err := im.getL2Locked(l1e)
	if err != nil {
		return run{}, err
	}
	defer im.cache.release(t)
	first := t.entries.get(l2i)
	r := run{n: 1}
	switch first {
	case 0:
		r.kind = ExtentUnallocated
	case l2ZeroCluster:
		r.kind = ExtentZero
	default:
		if !g.validClusterOffset(first, im.fileSize) {
			return run{}, &FormatError{Field: fmt.Sprintf("L2[%d] (table at %d)", l2i, l1e), Value: first,
				Offset: int64(l1e + l2i*entrySize),
				Reason: fmt.Sprintf("not a valid data cluster offset (file has %d whole-cluster bytes)", im.fileSize), Err: ErrCorrupt}
		}
		r.kind = ExtentData
		r.host = first
	}
	for r.n < n {
		e := t.entries.get(l2i + r.n)
		switch r.kind {
		case ExtentUnallocated:
			if e != 0 {
				return r, nil
			}
		case ExtentZero:
			if e != l2ZeroCluster {
				return r, nil
			}
		case ExtentData:
			if e != first+r.n*g.clusterSize || !g.validClusterOffset(e, im.fileSize) {
				return r, nil
			}
		}
		r.n++
	}
	return r, nil
}

// getL2Locked returns the L2 table at off, pinned; release it with
// im.cache.release. mu must be held (shared suffices); off must be a
// valid table offset, so the read is bounded by the file's size.
func (im *Image) getL2Locked(off uint64) (*l2Table, error) {
	if t := im.cache.get(off); t != nil {
		return t, nil
	}
	if im.yieldInFlight && !im.readOnly {
		// On in-memory files (alloc.go's yield before an allocation's
		// I/O) a table read never blocks, so two writers of a
		// concurrent group that miss the same table would rarely both
		// read it and race to insert it (l2Cache.insert keeps the first
		// and drops the second): yield first, as a real read would. Not
		// on read-only images (the oracle's opens of every crash state,
		// which run no concurrent requests).
		runtime.Gosched()
	}
	t := im.newL2Table(off, false)
	if err := im.readTable(off, &t.entries); err != nil {
		t.entries.release()
		return nil, fileErr(im.path, "reading L2 table", err)
	}
	return im.cache.insert(t), nil
}

// newL2Table returns a table at file offset off with pooled entries, all
// zero: a fresh table (allocated this session, offset set by the caller)
// or one to be read from the file. A big table's pages are given storage
// only as entries are set or read (table.go).
func (im *Image) newL2Table(off uint64, fresh bool) *l2Table {
	return &l2Table{offset: off, entries: im.newTable(im.geo.nelems), fresh: fresh}
}

// clustersSpanned returns how many clusters [pos, pos+length) touches.
func (g *geometry) clustersSpanned(pos, length uint64) uint64 {
	if length == 0 {
		return 0
	}
	first := pos >> g.l2Shift
	last := (pos + length - 1) >> g.l2Shift
	return last - first + 1
}

// runBytes returns how many bytes of [pos, pos+remaining) the run r,
// starting at the cluster holding pos, covers.
func (g *geometry) runBytes(pos, remaining uint64, r run) uint64 {
	return min(remaining, r.n*g.clusterSize-g.offsetInCluster(pos))
}

// walkRunsLocked calls fn for each run of same-kind clusters covering
// guest bytes [pos, pos+length), in order: cur is the first byte of the
// run inside the range, k how many bytes of the range it covers. Each run
// is looked up after fn returned for the previous one, so fn may change
// the mapping (allocate) of the bytes it was given. fn returns more=false
// to stop early. walkRunsLocked returns the bytes of the runs fn finished
// (with more=true or at the end); on an error, those before the failing
// run. mu must be held.
func (im *Image) walkRunsLocked(pos, length uint64, fn func(cur, k uint64, r run) (more bool, err error)) (uint64, error) {
	g := &im.geo
	done := uint64(0)
	for done < length {
		cur := pos + done
		rem := length - done
		r, err := im.lookupLocked(cur, g.clustersSpanned(cur, rem))
		if err != nil {
			return done, err
		}
		k := g.runBytes(cur, rem, r)
		more, err := fn(cur, k, r)
		if err != nil || !more {
			return done, err
		}
		done += k
	}
	return done, nil
}

// checkOpen returns ErrClosed once the image is closed. mu must be held.
func (im *Image) checkOpenLocked() error {
	if im.closed {
		return ErrClosed
	}
	return nil
}

// ReadAt reads len(p) guest bytes at off (io.ReaderAt semantics: a read
// reaching past the image size returns the bytes before it and io.EOF).
func (im *Image) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("%w: negative offset %d", ErrOutOfRange, off)
	}
	im.mu.RLock()
	defer im.mu.RUnlock()
	if err := im.checkOpenLocked(); err != nil {
		return 0, err
	}
	size := im.hdr.ImageSize
	if uint64(off) >= size {
		if len(p) == 0 {
			return 0, nil
		}
		return 0, io.EOF
	}
	want := min(uint64(len(p)), size-uint64(off))
	if err := im.readLocked(p[:want], uint64(off)); err != nil {
		return 0, err
	}
	if want < uint64(len(p)) {
		return int(want), io.EOF
	}
	return int(want), nil
}

// readLocked fills p from guest offset pos, inside the image.
func (im *Image) readLocked(p []byte, pos uint64) error {
	g := &im.geo
	_, err := im.walkRunsLocked(pos, uint64(len(p)), func(cur, k uint64, r run) (bool, error) {
		buf := p[cur-pos : cur-pos+k]
		switch r.kind {
		case ExtentData:
			host := r.host + g.offsetInCluster(cur)
			if n, err := im.f.ReadAt(buf, int64(host)); n < len(buf) {
				// A cluster allocated in this session may end past the
				// end of the file until the next writeback extends it
				// (allocateLocked skips zero fill): if what is missing
				// lies at or past the file's length at open, it is such a
				// fresh cluster's unwritten tail and reads as zeros. (The
				// run may start in an older cluster: judge by where the
				// read stopped, not by the run's first cluster.)
				if (err == nil || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)) && host+uint64(n) >= im.openLen {
					clear(buf[n:])
				} else {
					if err == nil {
						err = io.ErrUnexpectedEOF
					}
					return false, fileErr(im.path, fmt.Sprintf("reading data at host offset %d", host), err)
				}
			}
		case ExtentZero:
			clear(buf)
		default:
			if err := im.readBacking(buf, cur); err != nil {
				return false, err
			}
			if im.backing == nil && im.repaired && defect(DefectUnallocatedGarbageAfterRepair) {
				im.defectGarbleUnallocated(buf, cur)
			}
		}
		return true, nil
	})
	return err
}

// readBacking fills p with what the backing file holds at guest offset
// pos, or zeros without one.
func (im *Image) readBacking(p []byte, pos uint64) error {
	if im.backing == nil {
		clear(p)
		return nil
	}
	return im.backing.readAt(p, int64(pos))
}

// checkWritable validates a write of length bytes at off. mu must be held.
func (im *Image) checkWriteLocked(off, length int64) error {
	if err := im.checkOpenLocked(); err != nil {
		return err
	}
	if im.readOnly {
		return ErrReadOnly
	}
	if off < 0 || length < 0 || uint64(off)+uint64(length) > im.hdr.ImageSize || uint64(off)+uint64(length) < uint64(off) {
		return fmt.Errorf("%w: %d bytes at %d, image size %d", ErrOutOfRange, length, off, im.hdr.ImageSize)
	}
	return nil
}

// WriteAt writes p at guest offset off. A write reaching past the image
// size writes nothing and fails with ErrOutOfRange.
//
// Writes into allocated clusters happen in place under mu held shared, in
// parallel with reads and other in-place writes; they touch no metadata,
// so they need no ordering. A stretch of clusters that needs allocation
// goes through allocateConcurrent, which holds mu exclusively only to
// reserve the clusters and to link them: its copy-on-write read and data
// write run outside the lock, in parallel with other allocating writes
// (alloc.go). Then the rest of the write continues, in place or
// allocating, stretch by stretch.
func (im *Image) WriteAt(p []byte, off int64) (int, error) {
	done := 0
	for {
		k, err := im.writeInPlace(p[done:], off+int64(done))
		done += k
		if err != nil || done == len(p) {
			return done, err
		}
		k, err = im.allocateConcurrent(p[done:], uint64(off)+uint64(done))
		done += k
		if err != nil || done == len(p) {
			return done, err
		}
	}
}

// writeInPlace writes the leading part of p that lands in allocated
// clusters and returns how many bytes it wrote.
func (im *Image) writeInPlace(p []byte, off int64) (int, error) {
	im.mu.RLock()
	defer im.mu.RUnlock()
	if err := im.checkWriteLocked(off, int64(len(p))); err != nil {
		return 0, err
	}
	g := &im.geo
	pos := uint64(off)
	done, err := im.walkRunsLocked(pos, uint64(len(p)), func(cur, k uint64, r run) (bool, error) {
		if r.kind != ExtentData {
			return false, nil
		}
		return true, im.writeDataAt(p[cur-pos:cur-pos+k], r.host+g.offsetInCluster(cur))
	})
	return int(done), err
}

// writeDataAt writes guest data at a host offset already allocated.
func (im *Image) writeDataAt(p []byte, host uint64) error {
	if defect(DefectSplitSectorWrite) {
		if split, err := im.defectSplitWrite(p, host); split {
			if err != nil {
				return fmt.Errorf("qed: %s: writing data at host offset %d: %w", im.path, host, err)
			}
			return nil
		}
	}
	if _, err := im.f.WriteAt(p, int64(host)); err != nil {
		return fileErr(im.path, fmt.Sprintf("writing data at host offset %d", host), err)
	}
	return nil
}

// writeLocked writes p at guest offset pos with mu held exclusively:
// in place where allocated, through allocateLocked elsewhere.
func (im *Image) writeLocked(p []byte, pos uint64) error {
	g := &im.geo
	_, err := im.walkRunsLocked(pos, uint64(len(p)), func(cur, k uint64, r run) (bool, error) {
		buf := p[cur-pos : cur-pos+k]
		if r.kind == ExtentData {
			return true, im.writeDataAt(buf, r.host+g.offsetInCluster(cur))
		}
		return true, im.allocateLocked(cur, buf, r)
	})
	return err
}

// allocClustersLocked is the one allocator: it hands out n clusters at
// the end of the file. It writes nothing; a crash before the clusters are
// linked leaves them leaked, never referenced.
func (im *Image) allocClustersLocked(n uint64) uint64 {
	off := im.fileSize
	im.fileSize += n * im.geo.clusterSize
	return off
}

// allocateLocked is the allocating write for callers that hold mu
// exclusively with no allocation in flight (WriteZeroes' partial clusters,
// Resize, Rebase: mu.Lock drains allocations in flight first). It writes
// data at guest offset pos into the run r of unallocated or zero clusters
// (data lies inside r) with the same three steps as allocateConcurrent,
// all under the lock: reserve (reserveLocked), fill and write
// (fillAndWrite, with the image's scratch buffer), link (linkAllocLocked).
// The crash-safety argument is the one of alloc.go.
func (im *Image) allocateLocked(pos uint64, data []byte, r run) error {
	host, err := im.reserveLocked(pos, uint64(len(data)))
	if err != nil {
		return err
	}
	short, err := im.fillAndWrite(pos, data, r, host, im.cowBuffer)
	if err != nil {
		return err
	}
	return im.linkAllocLocked(pos, uint64(len(data)), host, short)
}

// maxCOWBuffer bounds the buffer fillAndWrite builds to write fill and
// data at once; larger allocations write head, data and tail separately.
const maxCOWBuffer = 4 << 20

// cowBuffer returns a scratch buffer of n bytes (n <= maxCOWBuffer). mu
// must be held exclusively: the buffer is shared by allocateLocked calls.
func (im *Image) cowBuffer(n uint64) []byte {
	if im.cow == nil || uint64(cap(*im.cow)) < n {
		if im.cow != nil {
			putBytes(im.cow)
		}
		im.cow = getBytes(int(n))
	}
	return (*im.cow)[:n]
}

// allZero reports whether b holds only zero bytes.
func allZero(b []byte) bool {
	for len(b) >= 8 {
		if binary.LittleEndian.Uint64(b) != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// zeroMarkLocked turns the n whole clusters from guest offset start
// (unallocated or zero) into zero clusters (L2 = 1). No data is written and
// no entry can dangle, so only linkLocked's table ordering applies.
func (im *Image) zeroMarkLocked(start, n uint64) error {
	if err := im.linkLocked(start, n, l2ZeroCluster); err != nil {
		return err
	}
	if im.cache.overfull() {
		return im.flushMetaLocked() // dirty tables cannot be evicted
	}
	return nil
}

// linkLocked points the L2 entries of the n clusters from guest offset
// start (all in one L2 table) at host clusters from first on, or marks
// them all zero when first is l2ZeroCluster.
//
// The change is made in the cached table only and recorded as dirty; when
// the L1 entry is empty, a new L2 table is allocated, cached as fresh and
// linked in the in-memory L1 (recorded as dirty too). flushMetaLocked
// writes them in the order the crash-safety rules need (data, then L2
// tables, then L1). Readers see the new mapping at once: every lookup goes
// through the in-memory L1 and the cache, and a dirty table is never
// evicted.
func (im *Image) linkLocked(start, n, first uint64) error {
	g := &im.geo
	l1i := g.l1Index(start)
	l2i := g.l2Index(start)
	value := func(i uint64) uint64 {
		if first == l2ZeroCluster {
			return l2ZeroCluster
		}
		return first + i*g.clusterSize
	}
	if im.l1.get(l1i) == 0 {
		t := im.newL2Table(0, true)
		for i := range n {
			t.entries.set(l2i+i, value(i))
		}
		t.offset = im.allocClustersLocked(g.tableSize)
		t.markDirty(l2i, l2i+n)
		if g.sparseTables && t.offset >= im.openLen {
			// A big table past the file's length at open: its clusters
			// read as zeros once the file covers them, so the writeback
			// extends the file (lenShort) and writes only the sectors of
			// the entries set, not a whole table of zeros (which is 1 GiB
			// for 64 MiB clusters and 16-cluster tables).
			t.sparse = true
			im.lenShort = true
		}
		im.l1.set(l1i, t.offset)
		im.markL1DirtyLocked(l1i)
		im.cache.release(im.cache.insert(t))
		return nil
	}
	t, err := im.getL2Locked(im.l1.get(l1i))
	if err != nil {
		return err
	}
	defer im.cache.release(t)
	if defect(DefectCacheStaleTable) {
		// The seeded defect: write the entries through, then let the
		// cached copy go stale, as if the in-use table had been evicted
		// and re-read before the write.
		old := make([]uint64, n)
		for i := range n {
			old[i] = t.entries.get(l2i + i)
			t.entries.set(l2i+i, value(i))
		}
		err := im.writeTableLocked(t.offset, &t.entries, l2i, n)
		for i := range n {
			t.entries.set(l2i+i, old[i])
		}
		return err
	}
	for i := range n {
		t.entries.set(l2i+i, value(i))
	}
	t.markDirty(l2i, l2i+n)
	return nil
}

// markL1DirtyLocked records that L1 entry i changed in memory.
func (im *Image) markL1DirtyLocked(i uint64) {
	if im.l1DirtyLo >= im.l1DirtyHi {
		im.l1DirtyLo, im.l1DirtyHi = i, i+1
		return
	}
	im.l1DirtyLo, im.l1DirtyHi = min(im.l1DirtyLo, i), max(im.l1DirtyHi, i+1)
}

// metaDirtyLocked reports whether flushMetaLocked has anything to write.
func (im *Image) metaDirtyLocked() bool {
	return im.lenShort || im.l1DirtyLo < im.l1DirtyHi || len(im.cache.dirtyTables()) > 0
}

// flushMetaLocked is the one metadata writeback, and a flush: on success
// every completed write and every metadata change is durable. mu must be
// held exclusively.
//
// Ordering:
//  1. If an allocation left the file shorter than the allocator's end
//     (lenShort), the file is extended to it, so that no L2 entry written
//     below can point past the end of the file once it is durable.
//  2. With a backing file, Sync: the data and copy-on-write fill of every
//     new cluster (and the extension) are durable before any L2 entry
//     points at them. Without a backing file this Sync is skipped: the
//     entries may overtake their data, which NEED_CHECK (set durably
//     before the first allocation) covers.
//  3. Dirty L2 tables are written: fresh ones whole, others as the
//     512-byte sectors holding their changed entries. A fresh big table
//     (geometry.sparseTables) is written as the sectors of its entries
//     set: it lies past the file's length at open, and the extension of
//     step 1 makes the rest of it read zeros.
//  4. If L1 entries changed: Sync, so every new L2 table is durable before
//     L1 points at it; then the changed L1 sectors are written.
//  5. Sync.
//
// A crash anywhere leaves, with a backing file, at most leaked clusters
// (entries reach the disk only pointing at durable data and tables);
// without one, NEED_CHECK set and a state the check repairs. Tables are
// marked clean only after the final Sync succeeded; on error they stay
// dirty and the next writeback writes them again.
func (im *Image) flushMetaLocked() error {
	tables := im.cache.dirtyTables()
	l1Dirty := im.l1DirtyLo < im.l1DirtyHi
	if !im.lenShort && !l1Dirty && len(tables) == 0 {
		if err := im.f.Sync(); err != nil {
			return fileErr(im.path, "flush", err)
		}
		return nil
	}
	if im.lenShort {
		if err := im.f.Truncate(int64(im.fileSize)); err != nil {
			return fileErr(im.path, fmt.Sprintf("extending the file to %d bytes", im.fileSize), err)
		}
		im.lenShort = false
	}
	if im.backing != nil && !defect(DefectNoSyncDataBeforeL2Link) {
		if err := im.f.Sync(); err != nil {
			return fileErr(im.path, "flush before linking new data", err)
		}
	}
	for _, t := range tables {
		lo, hi := t.dirtyLo, t.dirtyHi
		if t.fresh && !t.sparse {
			lo, hi = 0, im.geo.nelems
		}
		if err := im.writeTableLocked(t.offset, &t.entries, lo, hi-lo); err != nil {
			return err
		}
	}
	if im.backing == nil && defect(DefectNeedCheckAfterMetadata) {
		if err := im.setNeedCheckLocked(); err != nil {
			return err
		}
	}
	if l1Dirty {
		if !defect(DefectNoSyncL2BeforeL1Link) {
			if err := im.f.Sync(); err != nil {
				return fileErr(im.path, "flush before linking new L2 table", err)
			}
		}
		if err := im.writeTableLocked(im.hdr.L1TableOffset, &im.l1, im.l1DirtyLo, im.l1DirtyHi-im.l1DirtyLo); err != nil {
			return err
		}
	}
	if err := im.f.Sync(); err != nil {
		return fileErr(im.path, "flush", err)
	}
	for _, t := range tables {
		t.markClean()
	}
	im.l1DirtyLo, im.l1DirtyHi = 0, 0
	im.cache.evict()
	return nil
}

// writeTableLocked is the one table-write path: it writes entries
// [first, first+n) of the table t at file offset off, rounded out to
// whole 512-byte sectors (a table update rewrites only the sectors it
// changes), in one write request. It does not sync.
//
// On little-endian hosts the entries' own memory is written when the
// sectors lie in one page of t, as every write of a small table and of a
// few entries of a big one does (perf: a fresh table is written whole, and a fresh buffer plus
// encoding per write was a large part of a metadata writeback): WriteAt
// must not retain p (io.WriterAt), and the entries cannot change during
// the call (mu is held exclusively).
func (im *Image) writeTableLocked(off uint64, t *table, first, n uint64) error {
	if at, err := t.write(im.f, off, first, n); err != nil {
		return fileErr(im.path, fmt.Sprintf("writing table at %d", at), err)
	}
	return nil
}

// WriteZeroes makes length guest bytes at off read as zeros. Whole
// clusters that are unallocated or zero become zero clusters (L2 = 1) with
// no data written; whole allocated clusters get zeros written in place;
// partial clusters at either end are ordinary writes of zeros, so the rest
// of such a cluster keeps its content (backing data included). A range
// ending at the image size counts as covering the last cluster whole.
func (im *Image) WriteZeroes(off, length int64) error {
	im.mu.Lock()
	defer im.mu.Unlock()
	if err := im.checkWriteLocked(off, length); err != nil {
		return err
	}
	g := &im.geo
	pos, end := uint64(off), uint64(off)+uint64(length)
	alignedStart := (pos + g.clusterSize - 1) &^ (g.clusterSize - 1)
	if defect(DefectZeroesWholeClusters) {
		alignedStart = g.startOfCluster(pos)
	}
	if alignedStart >= end {
		// The range covers no whole cluster.
		return im.writeLocked(make([]byte, end-pos), pos)
	}
	alignedEnd := g.startOfCluster(end)
	if end == im.hdr.ImageSize || defect(DefectZeroesWholeClusters) {
		alignedEnd = (end + g.clusterSize - 1) &^ (g.clusterSize - 1)
	}
	if alignedStart > pos {
		if err := im.writeLocked(make([]byte, alignedStart-pos), pos); err != nil {
			return err
		}
	}
	for cur := alignedStart; cur < alignedEnd; {
		r, err := im.lookupLocked(cur, (alignedEnd-cur)>>g.l2Shift)
		if err != nil {
			return err
		}
		k := r.n * g.clusterSize
		switch r.kind {
		case ExtentData:
			if err := im.zeroInPlace(r.host, min(k, im.hdr.ImageSize-cur)); err != nil {
				return err
			}
		case ExtentUnallocated:
			if err := im.zeroMarkLocked(cur, r.n); err != nil {
				return err
			}
		}
		cur += k
	}
	if end > alignedEnd {
		return im.writeLocked(make([]byte, end-alignedEnd), alignedEnd)
	}
	return nil
}

// zeroInPlace writes length zero bytes at an allocated host offset.
func (im *Image) zeroInPlace(host, length uint64) error {
	zeros := make([]byte, min(length, 4<<20))
	for done := uint64(0); done < length; {
		k := min(uint64(len(zeros)), length-done)
		if err := im.writeDataAt(zeros[:k], host+done); err != nil {
			return err
		}
		done += k
	}
	return nil
}

// Map returns the guest ranges of the image, in order, merged into runs of
// the same kind (host-contiguous for ExtentData).
func (im *Image) Map() ([]Extent, error) {
	im.mu.RLock()
	defer im.mu.RUnlock()
	if err := im.checkOpenLocked(); err != nil {
		return nil, err
	}
	var out []Extent
	_, err := im.walkRunsLocked(0, im.hdr.ImageSize, func(cur, k uint64, r run) (bool, error) {
		e := Extent{Start: int64(cur), Length: int64(k), Kind: r.kind}
		if r.kind == ExtentData {
			e.HostOffset = int64(r.host)
		}
		if n := len(out); n > 0 {
			last := &out[n-1]
			if last.Kind == e.Kind && (e.Kind != ExtentData || last.HostOffset+last.Length == e.HostOffset) {
				last.Length += e.Length
				return true, nil
			}
		}
		out = append(out, e)
		return true, nil
	})
	return out, err
}
