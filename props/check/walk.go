package check

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"math/bits"
	"sync"
	"syscall"
)

// The checker's own decoding of the QED header (docs/format.md, Header). It
// deliberately shares nothing with impl/qed.
//
//	 0        4              8            12            16
//	 +--------+--------------+------------+-------------+
//	 | magic  | cluster_size | table_size | header_size |
//	 +--------+--------------+------------+-------------+
//	16                 24                 32                     40
//	 +-----------------+------------------+----------------------+
//	 | features        | compat_features  | autoclear_features   |
//	 +-----------------+------------------+----------------------+
//	40                 48                 56                 60              64
//	 +-----------------+------------------+------------------+---------------+
//	 | l1_table_offset | image_size       | backing_filename | backing_      |
//	 |                 |                  | _offset          | filename_size |
//	 +-----------------+------------------+------------------+---------------+
const (
	hdrMagic         = 0
	hdrClusterSize   = hdrMagic + 4
	hdrTableSize     = hdrClusterSize + 4
	hdrHeaderSize    = hdrTableSize + 4
	hdrFeatures      = hdrHeaderSize + 4
	hdrCompat        = hdrFeatures + 8
	hdrAutoclear     = hdrCompat + 8
	hdrL1TableOffset = hdrAutoclear + 8
	hdrImageSize     = hdrL1TableOffset + 8
	hdrBackingOffset = hdrImageSize + 8
	hdrBackingSize   = hdrBackingOffset + 4
	hdrFieldsSize    = hdrBackingSize + 4

	qedMagic = 0x00444551 // "QED\0" little-endian

	featBacking   = FeatureBacking
	featNeedCheck = FeatureNeedCheck
	featNoProbe   = FeatureNoProbe
	featKnown     = featBacking | featNeedCheck | featNoProbe

	minClusterSize = 4 << 10
	maxClusterSize = 64 << 20
	maxTableSize   = 16
	entrySize      = 8
)

// The incompatible feature bits of the header's features field
// (Header.Features) the format defines.
const (
	FeatureBacking   = 0x01 // BACKING_FILE: the image has a backing file
	FeatureNeedCheck = 0x02 // NEED_CHECK: the image may be inconsistent
	FeatureNoProbe   = 0x04 // BACKING_FORMAT_NO_PROBE: the backing file is raw
)

// DefaultViolationLimit is how many violations a report stores when the
// checker's ViolationLimit is 0. Counts always include every violation.
const DefaultViolationLimit = 1000

// MaxCheckedClusters bounds the cluster bitmap (512 MiB): a file with more
// whole clusters than this is refused with ErrTooLarge.
const MaxCheckedClusters = 1 << 32

// ErrTooLarge is returned for a file whose cluster bitmap would
// exceed MaxCheckedClusters.
var ErrTooLarge = errors.New("check: image file too large to check")

// readerChunk is how much of a table is read at once from an io.ReaderAt.
const readerChunk = 64 << 10

// Checker checks QED images, reusing its bitmaps and buffers
// between calls so that checking many crash states allocates little. The
// zero value is ready to use. A Checker is not safe for concurrent
// use.
type Checker struct {
	// ViolationLimit caps the violations stored per report
	// (0 = DefaultViolationLimit). Counts are never capped.
	ViolationLimit int
	// Mapped, if set, makes the report list the guest ranges whose L2
	// entries point at a cluster (valid or not; zero clusters and
	// unallocated entries are not listed): Report.Mapped.
	Mapped bool

	used, table  []uint64 // cluster bitmaps: referenced, referenced as a table
	l1buf, l2buf []byte   // read buffers for io.ReaderAt sources

	// The sources live here so that passing them as a source interface
	// does not allocate; they are cleared after each check.
	bsrc bytesSource
	rsrc readerSource
}

var checkerPool = sync.Pool{New: func() any { return new(Checker) }}

// Structure checks the QED image held in img. It never fails: every
// problem is a violation in the report.
func Structure(img []byte) *Report {
	c := checkerPool.Get().(*Checker)
	defer checkerPool.Put(c)
	return c.Check(img)
}

// ReaderAt checks the QED image of size bytes readable from r.
// The error is non-nil only when the check could not be completed (a read
// failed: ErrRead; the file is too large: ErrTooLarge).
func ReaderAt(r io.ReaderAt, size int64) (*Report, error) {
	c := checkerPool.Get().(*Checker)
	defer checkerPool.Put(c)
	return c.CheckReaderAt(r, size)
}

// File checks the open QED image f (an *os.File, an afero.File: anything
// with ReadAt and Stat). Errors name the file (its Name method, when it has
// one) and wrap ErrRead or ErrTooLarge as ReaderAt's do.
func File(f FileReader) (*Report, error) {
	c := checkerPool.Get().(*Checker)
	defer checkerPool.Put(c)
	return c.CheckFile(f)
}

// FileMapped is File with the Mapped option (Report.Mapped,
// MappedHost, Zeroed and Tables filled in), from the same pool.
func FileMapped(f FileReader) (*Report, error) {
	c := checkerPool.Get().(*Checker)
	defer checkerPool.Put(c)
	c.Mapped = true
	defer func() { c.Mapped = false }()
	return c.CheckFile(f)
}

// Check checks the QED image held in img.
func (c *Checker) Check(img []byte) *Report {
	c.bsrc.b = img
	defer func() { c.bsrc.b = nil }()
	rep, err := c.run(&c.bsrc, int64(len(img)), math.MaxInt)
	if err != nil {
		// A byte slice cannot fail to read and its bitmap is bounded by
		// its own length, so this is a broken invariant.
		panic("check: structure check of a byte slice failed: " + err.Error())
	}
	return rep
}

// CheckReaderAt checks the QED image of size bytes readable from r.
func (c *Checker) CheckReaderAt(r io.ReaderAt, size int64) (*Report, error) {
	c.rsrc.r = r
	defer func() { c.rsrc.r = nil }()
	return c.run(&c.rsrc, size, readerChunk)
}

// FileReader is what File needs of an open file: its bytes and its size.
// *os.File and afero.File implement it. A file that is also an io.Seeker
// is asked where its data is (SEEK_DATA, see readerSource.dataFrom), which
// moves its offset; the checker reads only with ReadAt.
type FileReader interface {
	io.ReaderAt
	Stat() (fs.FileInfo, error)
}

// CheckFile checks the open QED image f. Errors name the file (see File).
func (c *Checker) CheckFile(f FileReader) (*Report, error) {
	name := "the image file"
	if n, ok := f.(interface{ Name() string }); ok {
		name = n.Name()
	}
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("check: structure check of %s: %w", name, err)
	}
	rep, err := c.CheckReaderAt(f, st.Size())
	if err != nil {
		return rep, fmt.Errorf("check: structure check of %s: %w", name, err)
	}
	return rep, nil
}

// source reads n bytes at off; the result is valid until the next read
// into the same buffer. Callers only read ranges verified to lie in the file.
type source interface {
	read(buf *[]byte, off uint64, n int) ([]byte, error)
	// dataFrom returns the first offset >= off that may hold a nonzero
	// byte (ok), or ok=false when the source cannot tell.
	dataFrom(off uint64) (next uint64, ok bool)
}

type bytesSource struct{ b []byte }

func (s *bytesSource) read(_ *[]byte, off uint64, n int) ([]byte, error) {
	return s.b[off : off+uint64(n)], nil
}

func (s *bytesSource) dataFrom(uint64) (uint64, bool) { return 0, false }

type readerSource struct{ r io.ReaderAt }

// Whence values of lseek(2) on Linux, which crashsim's files accept too.
const (
	seekData = 3
	seekHole = 4
)

// dataFrom asks a reader that can seek for the next data offset
// (lseek's SEEK_DATA: an in-memory crashsim file or a file on Linux), so
// that the walk skips the holes of a sparse table (a 1 GiB table of 64 MiB
// clusters is mostly never written). A hole reads as zeros, which is
// what the walk skips anyway: the report is the same. ENXIO (no data
// after off) means zeros to the end; any other error (no SEEK_DATA on
// this system or this file) means "read it".
func (s *readerSource) dataFrom(off uint64) (uint64, bool) {
	sk, ok := s.r.(io.Seeker)
	if !ok || off > math.MaxInt64 {
		return 0, false
	}
	next, err := sk.Seek(int64(off), seekData)
	if errors.Is(err, syscall.ENXIO) {
		return math.MaxUint64, true
	}
	if err != nil || next < int64(off) {
		return 0, false
	}
	return uint64(next), true
}

func (s *readerSource) read(buf *[]byte, off uint64, n int) ([]byte, error) {
	if cap(*buf) < n {
		*buf = make([]byte, n)
	}
	b := (*buf)[:n]
	m, err := s.r.ReadAt(b, int64(off))
	if m == n {
		return b, nil
	}
	if err == nil {
		err = io.ErrUnexpectedEOF
	}
	return nil, fmt.Errorf("%w: %d bytes at offset %d: %w", ErrRead, n, off, err)
}

// walker holds one check's state.
type walker struct {
	c     *Checker
	rep   *Report
	src   source
	chunk int
	limit int

	cs, csMask uint64
	csShift    uint
	tableBytes uint64 // table_size * cluster_size
	headerEnd  uint64 // first byte after the header clusters
	fileEnd    uint64 // file size rounded down to a whole cluster
	l1         uint64
	needCheck  bool

	// priors, in the second pass only, collects the first reference to
	// each doubly referenced cluster.
	priors map[uint64]Location
}

func (c *Checker) run(src source, size int64, chunk int) (*Report, error) {
	rep := &Report{FileSize: size}
	w := &walker{c: c, rep: rep, src: src, chunk: chunk, limit: c.ViolationLimit}
	if w.limit <= 0 {
		w.limit = DefaultViolationLimit
	}
	if size < hdrFieldsSize {
		w.add(ViolShortFile, SeverityError, hdrLoc("magic", hdrMagic), uint64(max(size, 0)),
			"file of %d bytes is shorter than the %d bytes of header fields", size, hdrFieldsSize)
		return rep, nil
	}
	hb, err := src.read(&c.l1buf, 0, hdrFieldsSize)
	if err != nil {
		return rep, err
	}
	h := &rep.Header
	le := binary.LittleEndian
	h.Magic = le.Uint32(hb[hdrMagic:])
	h.ClusterSize = le.Uint32(hb[hdrClusterSize:])
	h.TableSize = le.Uint32(hb[hdrTableSize:])
	h.HeaderSize = le.Uint32(hb[hdrHeaderSize:])
	h.Features = le.Uint64(hb[hdrFeatures:])
	h.CompatFeatures = le.Uint64(hb[hdrCompat:])
	h.AutoclearFeatures = le.Uint64(hb[hdrAutoclear:])
	h.L1TableOffset = le.Uint64(hb[hdrL1TableOffset:])
	h.ImageSize = le.Uint64(hb[hdrImageSize:])
	h.BackingNameOffset = le.Uint32(hb[hdrBackingOffset:])
	h.BackingNameSize = le.Uint32(hb[hdrBackingSize:])
	w.needCheck = h.Features&featNeedCheck != 0

	magicOK := h.Magic == qedMagic
	if !magicOK {
		w.add(ViolBadMagic, SeverityError, hdrLoc("magic", hdrMagic), uint64(h.Magic),
			"magic is 0x%08x, want 0x%08x (\"QED\\0\")", h.Magic, qedMagic)
	}
	if unk := h.Features &^ featKnown; unk != 0 {
		w.add(ViolUnknownFeatures, SeverityError, hdrLoc("features", hdrFeatures), h.Features,
			"unknown incompatible feature bits 0x%x", unk)
	}
	csOK := h.ClusterSize >= minClusterSize && h.ClusterSize <= maxClusterSize && bits.OnesCount32(h.ClusterSize) == 1
	if !csOK {
		w.add(ViolBadClusterSize, SeverityError, hdrLoc("cluster_size", hdrClusterSize), uint64(h.ClusterSize),
			"cluster_size %d is not a power of two in %d..%d", h.ClusterSize, minClusterSize, maxClusterSize)
	}
	tsOK := h.TableSize >= 1 && h.TableSize <= maxTableSize && bits.OnesCount32(h.TableSize) == 1
	if !tsOK {
		w.add(ViolBadTableSize, SeverityError, hdrLoc("table_size", hdrTableSize), uint64(h.TableSize),
			"table_size %d is not a power of two in 1..%d", h.TableSize, maxTableSize)
	}
	switch {
	case h.HeaderSize == 0:
		w.add(ViolBadHeaderSize, SeverityError, hdrLoc("header_size", hdrHeaderSize), 0,
			"header_size is 0; the header occupies at least one cluster")
	case csOK && uint64(h.HeaderSize)*uint64(h.ClusterSize) > math.MaxUint32:
		w.add(ViolBadHeaderSize, SeverityError, hdrLoc("header_size", hdrHeaderSize), uint64(h.HeaderSize),
			"header_size %d * cluster_size %d overflows 32 bits", h.HeaderSize, h.ClusterSize)
	}
	if h.ImageSize%512 != 0 {
		w.add(ViolBadImageSize, SeverityError, hdrLoc("image_size", hdrImageSize), h.ImageSize,
			"image_size %d is not a multiple of 512", h.ImageSize)
	}
	if csOK && tsOK {
		// n = table_size*cluster_size/8 entries; max = n*n*cluster_size,
		// all powers of two: compare exponents to avoid overflow.
		csLog := bits.TrailingZeros32(h.ClusterSize)
		nLog := bits.TrailingZeros32(h.TableSize) + csLog - 3
		if maxLog := 2*nLog + csLog; maxLog < 64 && h.ImageSize > uint64(1)<<maxLog {
			w.add(ViolBadImageSize, SeverityError, hdrLoc("image_size", hdrImageSize), h.ImageSize,
				"image_size %d exceeds the geometry's maximum %d", h.ImageSize, uint64(1)<<maxLog)
		}
	}
	if h.Features&featBacking != 0 {
		end := uint64(h.BackingNameOffset) + uint64(h.BackingNameSize)
		hdrBytes := uint64(h.HeaderSize) * uint64(h.ClusterSize)
		switch {
		case csOK && end > hdrBytes:
			w.add(ViolBadBackingName, SeverityError, hdrLoc("backing_filename_offset", hdrBackingOffset), end,
				"backing name [%d, %d) extends past the header clusters (%d bytes)", h.BackingNameOffset, end, hdrBytes)
		case end > uint64(size):
			w.add(ViolBadBackingName, SeverityError, hdrLoc("backing_filename_offset", hdrBackingOffset), end,
				"backing name [%d, %d) extends past the end of the file (%d bytes)", h.BackingNameOffset, end, size)
		}
	} else if h.Features&featNoProbe != 0 {
		w.add(ViolNoProbeWithoutBacking, SeverityWarning, hdrLoc("features", hdrFeatures), h.Features,
			"BACKING_FORMAT_NO_PROBE is set without BACKING_FILE")
	}

	if csOK && tsOK {
		w.cs = uint64(h.ClusterSize)
		w.csMask = w.cs - 1
		w.csShift = uint(bits.TrailingZeros32(h.ClusterSize))
		w.tableBytes = uint64(h.TableSize) * w.cs
		w.headerEnd = uint64(max(h.HeaderSize, 1)) * w.cs
		w.fileEnd = uint64(size) &^ w.csMask
		rep.FileClusters = w.fileEnd >> w.csShift
		rep.TotalClusters = h.ImageSize>>w.csShift + boolToUint64(h.ImageSize&w.csMask != 0)
		w.l1 = h.L1TableOffset
		l1Kind, why := w.placeTable(w.l1)
		if l1Kind != ViolNone {
			w.add(l1Kind, SeverityError, hdrLoc("l1_table_offset", hdrL1TableOffset), w.l1, "L1 table %s", why)
		}
		if magicOK && l1Kind == ViolNone {
			if rep.FileClusters > MaxCheckedClusters {
				return rep, fmt.Errorf("%w: %d clusters (limit %d)", ErrTooLarge, rep.FileClusters, MaxCheckedClusters)
			}
			if err := w.walk(); err != nil {
				return rep, err
			}
			rep.Walked = true
			// Every mark lies at or after the header and inside the file
			// (placement was checked first), so the unmarked clusters after
			// the header are exactly the leaks.
			rep.Leaks = rep.FileClusters - w.headerEnd>>w.csShift - popcount(c.used)
			if err := w.findPriors(); err != nil {
				return rep, err
			}
		}
	}

	if magicOK && !w.needCheck && !rep.IsConsistent() {
		errs := 0
		for k := ViolNone + 1; k < numViolationKinds; k++ {
			if k != ViolNoProbeWithoutBacking {
				errs += rep.counts[k]
			}
		}
		w.add(ViolNeedCheckClearButInconsistent, SeverityError, hdrLoc("features", hdrFeatures), h.Features,
			"NEED_CHECK is clear but the image has %d errors: an image marked clean must be fully consistent", errs)
	}
	return rep, nil
}

func hdrLoc(field string, off uint64) Location {
	return Location{Kind: LocHeader, Field: field, Entry: -1, Offset: off}
}

func boolToUint64(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

// add records a violation, formatting its message only when it is stored.
func (w *walker) add(k ViolationKind, sev Severity, at Location, value uint64, format string, args ...any) {
	r := w.rep
	r.counts[k]++
	if k.isDoubleRef() || (k.isEntryKind() && at.Kind != LocHeader) {
		r.corruptions++
	}
	if len(r.Violations) >= w.limit {
		r.Omitted++
		return
	}
	r.Violations = append(r.Violations, Violation{
		Kind:       k,
		Severity:   sev,
		Repairable: w.needCheck && k.isEntryKind() && at.Kind != LocHeader,
		At:         at,
		Value:      value,
		Msg:        fmt.Sprintf(format, args...),
	})
}

// placeTable checks that a table at off is aligned, after the header and
// wholly inside the file.
func (w *walker) placeTable(off uint64) (ViolationKind, string) {
	switch {
	case off&w.csMask != 0:
		return ViolTableMisaligned, fmt.Sprintf("offset 0x%x is not aligned to the %d-byte cluster", off, w.cs)
	case off < w.headerEnd:
		return ViolTableInHeader, fmt.Sprintf("offset 0x%x lies in the header clusters (below 0x%x)", off, w.headerEnd)
	case off > w.fileEnd || w.tableBytes > w.fileEnd-off:
		return ViolTablePastEOF, fmt.Sprintf("[0x%x, +0x%x) is not inside the file's %d whole clusters (0x%x bytes)",
			off, w.tableBytes, w.fileEnd>>w.csShift, w.fileEnd)
	}
	return ViolNone, ""
}

func resetBits(b []uint64, words uint64) []uint64 {
	if uint64(cap(b)) < words {
		return make([]uint64, words)
	}
	b = b[:words]
	clear(b)
	return b
}

func popcount(b []uint64) uint64 {
	var n int
	for _, x := range b {
		n += bits.OnesCount64(x)
	}
	return uint64(n)
}

// zeroBlockLen is the stride of zeroRun: 32 table entries.
const zeroBlockLen = 256

var zeroEntries [zeroBlockLen]byte

// zeroRun returns zeroBlockLen when j starts an aligned block of
// zeroBlockLen bytes of b that are all zero (32 unused entries, skipped
// with one vectorized compare: perf, issue 5, most of a small image's
// tables is unused), else 0.
func zeroRun(b []byte, j int) int {
	if j%zeroBlockLen == 0 && j+zeroBlockLen <= len(b) && bytes.Equal(b[j:j+zeroBlockLen], zeroEntries[:]) {
		return zeroBlockLen
	}
	return 0
}

// skipHole returns where the walk of the table at host offset table goes
// on from byte done of it: done itself, or, when the source says the
// bytes from there are a hole (they read zeros: no entry), the first
// whole entry at or before the next data (tableBytes when none is in the
// table). Zero entries count nothing in either table, so skipping them
// changes no report.
func (w *walker) skipHole(table, done uint64) uint64 {
	if w.chunk == math.MaxInt {
		return done // a byte slice: scanning is as cheap as asking
	}
	next, ok := w.src.dataFrom(table + done)
	if !ok || next <= table+done {
		return done
	}
	return min(w.tableBytes, (next-table)/entrySize*entrySize)
}

// walk marks the L1 table, then follows every L1 entry in order, as QEMU's
// check does.
func (w *walker) walk() error {
	c := w.c
	words := (w.rep.FileClusters + 63) / 64
	c.used = resetBits(c.used, words)
	c.table = resetBits(c.table, words)

	w.markTable(w.l1, hdrLoc("l1_table_offset", hdrL1TableOffset))
	if c.Mapped {
		w.rep.Tables = append(w.rep.Tables, TableRef{Host: w.l1, Index: -1})
	}
	le := binary.LittleEndian
	for done := uint64(0); done < w.tableBytes; {
		if done = w.skipHole(w.l1, done); done >= w.tableBytes {
			break
		}
		n := min(uint64(w.chunk), w.tableBytes-done)
		b, err := w.src.read(&c.l1buf, w.l1+done, int(n))
		if err != nil {
			return err
		}
		for j := 0; j+entrySize <= len(b); j += entrySize {
			if skip := zeroRun(b, j); skip > 0 {
				j += skip - entrySize
				continue
			}
			v := le.Uint64(b[j:])
			if v == 0 {
				continue
			}
			pos := done + uint64(j)
			if err := w.walkL2(int(pos/entrySize), w.l1+pos, v); err != nil {
				return err
			}
		}
		done += n
	}
	return nil
}

// walkL2 validates L1 entry idx (at host offset entryOff, value l2) and
// walks the L2 table it links.
func (w *walker) walkL2(idx int, entryOff, l2 uint64) error {
	at := Location{Kind: LocL1, TableOffset: w.l1, Entry: idx, Offset: entryOff}
	if k, why := w.placeTable(l2); k != ViolNone {
		w.add(k, SeverityError, at, l2, "L2 table %s", why)
		return nil
	}
	if !w.markTable(l2, at) {
		return nil // shares clusters with an earlier table or data: not walked, as in QEMU
	}
	rep := w.rep
	if w.c.Mapped {
		rep.Tables = append(rep.Tables, TableRef{Host: l2, Index: idx})
	}
	rep.L2Tables++
	c := w.c
	le := binary.LittleEndian
	var last uint64
	for done := uint64(0); done < w.tableBytes; {
		if done = w.skipHole(l2, done); done >= w.tableBytes {
			break
		}
		n := min(uint64(w.chunk), w.tableBytes-done)
		b, err := w.src.read(&c.l2buf, l2+done, int(n))
		if err != nil {
			return err
		}
		for j := 0; j+entrySize <= len(b); j += entrySize {
			if skip := zeroRun(b, j); skip > 0 {
				j += skip - entrySize // zero entries change no count
				continue
			}
			v := le.Uint64(b[j:])
			if v <= 1 {
				rep.ZeroClusters += v
				if v == 1 && c.Mapped {
					w.zeroEntry(idx, int((done+uint64(j))/entrySize))
				}
				continue
			}
			rep.AllocatedClusters++
			if c.Mapped {
				w.mapEntry(idx, int((done+uint64(j))/entrySize), v)
			}
			if last != 0 && last+w.cs != v {
				rep.FragmentedClusters++
			}
			last = v
			if v&w.csMask != 0 || v < w.headerEnd || v >= w.fileEnd {
				// last keeps the invalid offset, as in QEMU 7.2's count.
				w.badData(idx, l2, done+uint64(j), v)
				continue
			}
			cl := v >> w.csShift
			word, bit := cl/64, uint64(1)<<(cl%64)
			if c.used[word]&bit != 0 || w.priors != nil {
				w.dataCollision(cl, Location{Kind: LocL2, TableIndex: idx, TableOffset: l2,
					Entry: int((done + uint64(j)) / entrySize), Offset: l2 + done + uint64(j)})
			}
			c.used[word] |= bit
		}
		done += n
	}
	return nil
}

// mapEntry adds the guest cluster of L2 entry e of the table linked by L1
// entry idx to the report's Mapped ranges (merged with the last one when
// they touch). Guest offsets past what the header's geometry can address
// cannot occur: idx and e are bounded by the table sizes.
func (w *walker) mapEntry(idx, e int, host uint64) {
	per := w.tableBytes / entrySize
	off := int64((uint64(idx)*per + uint64(e)) << w.csShift)
	m, h := w.rep.Mapped, w.rep.MappedHost
	if n := len(m); n > 0 && m[n-1].Off+m[n-1].Len == off && h[n-1]+uint64(m[n-1].Len) == host {
		m[n-1].Len += int64(w.cs)
		return
	}
	w.rep.Mapped = append(m, Range{Off: off, Len: int64(w.cs)})
	w.rep.MappedHost = append(h, host)
}

// zeroEntry adds the guest cluster of zero-cluster entry e of the table
// linked by L1 entry idx to the report's Zeroed ranges.
func (w *walker) zeroEntry(idx, e int) {
	per := w.tableBytes / entrySize
	off := int64((uint64(idx)*per + uint64(e)) << w.csShift)
	z := w.rep.Zeroed
	if n := len(z); n > 0 && z[n-1].Off+z[n-1].Len == off {
		z[n-1].Len += int64(w.cs)
		return
	}
	w.rep.Zeroed = append(z, Range{Off: off, Len: int64(w.cs)})
}

func (w *walker) badData(idx int, l2, pos, v uint64) {
	at := Location{Kind: LocL2, TableIndex: idx, TableOffset: l2, Entry: int(pos / entrySize), Offset: l2 + pos}
	switch {
	case v&w.csMask != 0:
		w.add(ViolDataMisaligned, SeverityError, at, v, "data offset 0x%x is not aligned to the %d-byte cluster", v, w.cs)
	case v < w.headerEnd:
		w.add(ViolDataInHeader, SeverityError, at, v, "data offset 0x%x lies in the header clusters (below 0x%x)", v, w.headerEnd)
	default:
		w.add(ViolDataPastEOF, SeverityError, at, v, "data offset 0x%x is at or past the end of the file's whole clusters (0x%x)", v, w.fileEnd)
	}
}

// dataCollision handles a data reference to cluster cl that is already
// marked (or, in the priors pass, any data reference).
func (w *walker) dataCollision(cl uint64, at Location) {
	c := w.c
	word, bit := cl/64, uint64(1)<<(cl%64)
	if w.priors != nil {
		if p, ok := w.priors[cl]; ok && p.Kind == LocNone {
			w.priors[cl] = at
		}
		if c.used[word]&bit == 0 {
			return
		}
	}
	if c.table[word]&bit != 0 {
		w.add(ViolDoubleRefTableData, SeverityError, at, cl<<w.csShift,
			"data cluster 0x%x is also (part of) a table", cl<<w.csShift)
	} else {
		w.add(ViolDoubleRefDataData, SeverityError, at, cl<<w.csShift,
			"data cluster 0x%x is referenced by two L2 entries", cl<<w.csShift)
	}
}

// markTable marks the clusters of the table at off, reporting each already
// referenced cluster. It reports whether the table collided with nothing.
func (w *walker) markTable(off uint64, at Location) bool {
	c := w.c
	ok := true
	first := off >> w.csShift
	for cl := first; cl < first+w.tableBytes>>w.csShift; cl++ {
		word, bit := cl/64, uint64(1)<<(cl%64)
		if w.priors != nil {
			if p, found := w.priors[cl]; found && p.Kind == LocNone {
				w.priors[cl] = at
			}
		}
		if c.used[word]&bit != 0 {
			ok = false
			if c.table[word]&bit != 0 {
				w.add(ViolDoubleRefTableTable, SeverityError, at, cl<<w.csShift,
					"table cluster 0x%x is also (part of) another table; table not walked", cl<<w.csShift)
			} else {
				w.add(ViolDoubleRefTableData, SeverityError, at, cl<<w.csShift,
					"table cluster 0x%x is also a data cluster; table not walked", cl<<w.csShift)
			}
		}
		c.used[word] |= bit
		c.table[word] |= bit
	}
	return ok
}

// findPriors fills Violation.Prior for stored double references by walking
// again and recording the first reference to each shared cluster. It runs
// only when there are double references (a slow path).
func (w *walker) findPriors() error {
	rep := w.rep
	var need map[uint64]Location
	for _, v := range rep.Violations {
		if v.Kind.isDoubleRef() {
			if need == nil {
				need = make(map[uint64]Location)
			}
			need[v.Value>>w.csShift] = Location{}
		}
	}
	if need == nil {
		return nil
	}
	w2 := *w
	w2.rep = &Report{FileSize: rep.FileSize, FileClusters: rep.FileClusters}
	w2.priors = need
	w2.limit = -1
	if err := w2.walk(); err != nil {
		return err
	}
	for i := range rep.Violations {
		v := &rep.Violations[i]
		if v.Kind.isDoubleRef() {
			v.Prior = need[v.Value>>w.csShift]
		}
	}
	return nil
}
