package qed

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"github.com/qedtorture/qedtorture/internal/imagelock"
	"github.com/spf13/afero"
)

// defaultL2CacheBytes bounds the default L2 cache by memory as well as by
// count, since one table can be up to 1 GiB (16 clusters of 64 MiB).
const (
	defaultL2CacheTables = 64
	defaultL2CacheBytes  = 256 << 20
)

// Image is an open QED image. It is safe for concurrent use.
//
// Locking: mu orders guest I/O against metadata changes. ReadAt, in-place
// WriteAt, Map and Flush (with nothing to write back) hold it shared for
// their whole duration, data I/O included: the mappings they looked up
// stay valid until their I/O is done because only holders of mu
// exclusively change tables. Allocating writes hold it exclusively only to
// reserve their clusters and to link them, and do their copy-on-write read
// and data write in between with no lock, registered as in flight so that
// no other write allocates the same guest clusters (alloc.go). Write-zeroes,
// Check, Resize, Close and the image utilities take it with Lock, which
// waits until no allocation is in flight; Flush and the idle NEED_CHECK
// clear take it without waiting (lockMeta). No one changes a table a
// reader is walking.
type Image struct {
	fs       afero.Fs
	path     string
	f        afero.File
	readOnly bool
	// yieldInFlight: allocations in flight yield before their I/O
	// (in-memory files; alloc.go). Immutable after open.
	yieldInFlight bool
	geo           geometry    // immutable after open
	backing       backingFile // nil without a backing file; immutable after open
	clock         Clock
	idle          time.Duration // <0 disables the idle NEED_CHECK clear
	cache         *l2Cache      // has its own mutex

	mu imageMutex
	// Guarded by mu (written only with mu held exclusively):
	hdr      Header
	l1       table  // the L1 table (write-back: see l1DirtyLo); storage given back on Close
	fileSize uint64 // allocator: file length rounded down to a cluster
	closed   bool
	corrupt  bool   // the open-time repair left corruption: keep NEED_CHECK
	repaired bool   // this open ran the repair (seeded defects only)
	timer    Timer  // pending idle NEED_CHECK clear, or nil
	timerGen uint64 // bumped on every allocating write; stale timers no-op
	allocSeq uint64 // identifies allocations in flight (imageMutex.inflight)
	// Metadata write-back state (flushMetaLocked): the in-memory L1
	// entries [l1DirtyLo, l1DirtyHi) are not yet written; lenShort says an
	// allocation skipped writing zeros at the end of a fresh cluster, so
	// the file may end before fileSize.
	l1DirtyLo, l1DirtyHi uint64
	lenShort             bool
	cow                  *[]byte    // scratch buffer of allocateLocked (pooled: getBytes); concurrent allocations draw their own
	defectMu             sync.Mutex // DefectConcurrentSharedCOWBuffer's buffer only
	defectCOW            []byte

	// openLen is the file's length at open (immutable). Clusters at or
	// past it were never written before this session: they read as zeros
	// until written, so allocations there may skip zero fill.
	openLen uint64
	// seekData: the file answers SEEK_DATA (probeSeekData), so big
	// tables are read only where the file has data (table.read).
	// Immutable after open.
	seekData bool
}

// Create makes a new empty QED image at path on fs, as qemu-img create
// does: the file is truncated to zero, then the header, the backing name
// at offset 64 and a zeroed L1 table are written and synced.
func Create(fs afero.Fs, path string, opts CreateOptions) error {
	h, err := newHeader(opts)
	if err != nil {
		return err
	}
	if err := refuseSelfBacking(fs, path, opts.BackingFile); err != nil {
		return err
	}
	// The backing file's name durable before a header that names it: a
	// backing file made just before (its directory never synced) would
	// otherwise vanish in a crash that keeps the new header over an
	// existing image's durable name. Before the open, so that a new
	// image's own name is not made durable with it (step 4 below).
	if opts.BackingFile != "" {
		if err := syncDir(fs, filepath.Dir(resolveBacking(path, opts.BackingFile))); err != nil {
			return fileErr(path, "create", err)
		}
	}
	// No O_TRUNC: the file is truncated only after the image locks are
	// held, so an image another process has open is refused unchanged.
	f, err := fs.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return fileErr(path, "", err)
	}
	if err := lockFile(f, path, imagelock.ReadWrite, opts.NoLock); err != nil {
		f.Close()
		return fileErr(path, "", err)
	}
	err = writeNewImage(f, &h, opts.BackingFile)
	if cerr := f.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return fileErr(path, "create", err)
	}
	// The new directory entry is durable only once the directory is
	// synced (POSIX; crashsim's default): without this a crash right after
	// Create could lose the whole image although its contents were synced.
	if err := syncDir(fs, filepath.Dir(path)); err != nil {
		return fileErr(path, "create", err)
	}
	return nil
}

// refuseSelfBacking refuses a backing file that is the image itself, by any
// name: the same cleaned path, or (when both exist) the same file.
func refuseSelfBacking(fs afero.Fs, path, backing string) error {
	if backing == "" {
		return nil
	}
	b := resolveBacking(path, backing)
	same := filepath.Clean(b) == filepath.Clean(path)
	if !same {
		si, err1 := fs.Stat(path)
		sb, err2 := fs.Stat(b)
		same = err1 == nil && err2 == nil && os.SameFile(si, sb)
	}
	if same {
		return &FileError{Path: path, Err: fmt.Errorf("%w: the backing file %s is the image itself", ErrBackingLoop, backing)}
	}
	return nil
}

// syncDir makes the entries of directory dir durable. Filesystems that
// cannot open or sync a directory (EINVAL or ENOTSUP on some systems) are
// taken as making entries durable by themselves, and so is a directory
// that does not exist: a file was just made in it, so only a filesystem
// without directories (afero's in-memory one, which holds files in
// directories never made, and nothing durably) can say so. Any other
// failure, of the open as of the sync, is an error: an EIO opening the
// directory left its new entries (a new image, the backing files made
// just before it) to be lost in a crash after Create reported success
// (found by a campaign's fault sweep of the setup).
func syncDir(fs afero.Fs, dir string) error {
	d, err := fs.Open(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err == nil {
		err = d.Sync()
		d.Close()
	}
	if err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOTSUP) {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}

// newHeader builds and checks the header Create writes.
func newHeader(opts CreateOptions) (Header, error) {
	cs, ts := opts.ClusterSize, opts.TableSize
	if cs == 0 {
		cs = DefaultClusterSize
	}
	if ts == 0 {
		ts = DefaultTableSize
	}
	if !validClusterSize(cs) {
		return Header{}, fmt.Errorf("%w: cluster_size %d: must be a power of two from %d to %d", ErrInvalidOption, cs, MinClusterSize, MaxClusterSize)
	}
	if !validTableSize(ts) {
		return Header{}, fmt.Errorf("%w: table_size %d: must be a power of two from %d to %d", ErrInvalidOption, ts, MinTableSize, MaxTableSize)
	}
	if !validImageSize(opts.Size, cs, ts) {
		return Header{}, fmt.Errorf("%w: size %d: must be a multiple of 512 and at most %d", ErrInvalidOption, opts.Size, MaxImageSize(cs, ts))
	}
	h := Header{
		Magic:         Magic,
		ClusterSize:   cs,
		TableSize:     ts,
		HeaderSize:    1,
		L1TableOffset: uint64(cs),
		ImageSize:     opts.Size,
	}
	switch opts.BackingFormat {
	case "", "qed", "raw":
	default:
		return Header{}, fmt.Errorf("%w: backing format %q: want qed or raw", ErrInvalidOption, opts.BackingFormat)
	}
	if opts.BackingFile != "" {
		if uint64(HeaderFieldsSize)+uint64(len(opts.BackingFile)) > uint64(cs) || len(opts.BackingFile) > MaxBackingFilenameSize {
			return Header{}, fmt.Errorf("%w: backing file name of %d bytes does not fit in the header cluster", ErrInvalidOption, len(opts.BackingFile))
		}
		h.Features |= FeatureBackingFile
		if opts.BackingFormat == "raw" {
			h.Features |= FeatureBackingNoProbe
		}
		h.BackingFilenameOffset = HeaderFieldsSize
		h.BackingFilenameSize = uint32(len(opts.BackingFile))
		h.BackingFilename = opts.BackingFile
	}
	return h, nil
}

// writeNewImage writes a fresh image into f (new, or an existing file
// being replaced). Crash safety (proved by TestCreateCrash under real
// directory semantics and every crash model, torn sectors holding garbage
// included, at every operation index): the header fields, which make the
// file an image, are written last, alone, after everything they describe
// is durable.
//
//  1. Truncate to 0, then Sync: the old contents are gone for good before
//     anything new is written. Without this sync a crash could keep some of
//     the new writes and lose the truncate: the new header over the old L1
//     table reads the old image's data under the new geometry.
//  2. The backing name and the zeroed rest of the header cluster and L1
//     table (above maxWholeTable the file is extended over the table
//     instead, which reads zeros), then Sync. No magic yet: whatever part of this a crash keeps
//     (torn, garbage in a lost sector, or only the new length), Open
//     refuses the file.
//  3. The header fields (64 bytes, inside one sector), then Sync: a crash
//     keeps them whole (the image is complete: step 2 is durable), loses
//     them (refused) or leaves garbage in their sector (refused: magic).
//  4. Create syncs the directory after this: the name of a new file is
//     durable only once the image is complete, so a crash before leaves no
//     image at all rather than a file Open refuses.
func writeNewImage(f afero.File, h *Header, backing string) error {
	// Truncate again: a filesystem may not honour O_TRUNC, and appending
	// after old garbage would make it look allocated (a QEMU bug class).
	if err := f.Truncate(0); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	// The backing name, then the rest of the header cluster and the L1
	// table: zeros written for a small table; for a big one (a table may
	// be 1 GiB) the file is extended over it, and the empty file reads
	// zeros there. Then the header fields.
	if len(backing) > 0 {
		if _, err := f.WriteAt([]byte(backing), HeaderFieldsSize); err != nil {
			return err
		}
	}
	end := uint64(h.ClusterSize) * (1 + uint64(h.TableSize))
	if uint64(h.ClusterSize)*uint64(h.TableSize) <= maxWholeTable {
		zeros := make([]byte, min(uint64(h.ClusterSize), 1<<20))
		for off := uint64(HeaderFieldsSize + len(backing)); off < end; {
			n := min(uint64(len(zeros)), end-off)
			if _, err := f.WriteAt(zeros[:n], int64(off)); err != nil {
				return err
			}
			off += n
		}
	} else if err := f.Truncate(int64(end)); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	var head [HeaderFieldsSize]byte
	encodeHeader(h, head[:])
	if _, err := f.WriteAt(head[:], 0); err != nil {
		return err
	}
	return f.Sync()
}

// ReadHeader reads and validates only the header of the image at path. It
// takes no image lock (see ReadHeaderWith).
func ReadHeader(fs afero.Fs, path string) (Header, error) {
	return ReadHeaderWith(fs, path, OpenOptions{ReadOnly: true, NoLock: true})
}

// ReadHeaderWith is ReadHeader holding, while it reads, the read-only image
// lock an Open with opts would take (force-share with opts.ForceShare,
// none with opts.NoLock); the backing chain is not opened.
func ReadHeaderWith(fs afero.Fs, path string, opts OpenOptions) (Header, error) {
	f, err := fs.OpenFile(path, os.O_RDONLY, 0)
	if err != nil {
		return Header{}, fileErr(path, "", err)
	}
	defer f.Close()
	opts.ReadOnly = true
	if err := lockFile(f, path, lockMode(opts), opts.NoLock); err != nil {
		return Header{}, err
	}
	h, _, err := readHeader(f)
	if err != nil {
		return Header{}, fileErr(path, "", err)
	}
	return h, nil
}

// readHeader reads, validates and returns the header of f, the backing
// name included, and the file's length.
func readHeader(f afero.File) (Header, uint64, error) {
	st, err := f.Stat()
	if err != nil {
		return Header{}, 0, err
	}
	fileLen := uint64(st.Size())
	var b [HeaderFieldsSize]byte
	if n, err := f.ReadAt(b[:], 0); n < len(b) {
		if err == nil || errors.Is(err, io.EOF) {
			if n >= 4 && decodeMagic(b[:]) != Magic {
				return Header{}, 0, &FormatError{Field: "magic", Value: uint64(decodeMagic(b[:])), Offset: offMagic, Reason: "not a QED image", Err: ErrNotQED}
			}
			return Header{}, 0, &FormatError{Field: "header", Value: uint64(n), Offset: 0,
				Reason: fmt.Sprintf("truncated: %d of %d header bytes", n, HeaderFieldsSize), Err: ErrInvalidHeader}
		}
		return Header{}, 0, err
	}
	h := decodeHeader(b[:])
	if err := validateHeader(&h, fileLen); err != nil {
		return Header{}, 0, err
	}
	if h.Features&FeatureBackingFile != 0 {
		name := make([]byte, h.BackingFilenameSize) // bounded by validateHeader
		if n, err := f.ReadAt(name, int64(h.BackingFilenameOffset)); n < len(name) {
			return Header{}, 0, fmt.Errorf("qed: reading backing name at %d: %w", h.BackingFilenameOffset, err)
		}
		h.BackingFilename = string(name)
		if h.BackingFilename == "" {
			return Header{}, 0, &FormatError{Field: "backing_filename_size", Value: 0, Offset: offBackingFilenameSize,
				Reason: "backing file feature set with an empty name", Err: ErrInvalidHeader}
		}
	}
	return h, fileLen, nil
}

// Open opens the QED image at path on fs. A writable open of an image
// with NEED_CHECK set runs Check with repair before returning; a writable
// open clears unknown autoclear feature bits.
func Open(fs afero.Fs, path string, opts OpenOptions) (*Image, error) {
	maxDepth := opts.MaxBackingDepth
	if maxDepth <= 0 {
		maxDepth = DefaultMaxBackingDepth
	}
	ch := &chain{visited: map[string]bool{filepath.Clean(path): true}, maxDepth: maxDepth}
	return openImage(fs, path, opts, ch)
}

func openImage(fs afero.Fs, path string, opts OpenOptions, ch *chain) (im *Image, err error) {
	flag := os.O_RDWR
	if opts.ReadOnly {
		flag = os.O_RDONLY
	}
	if opts.ForceShare && !opts.ReadOnly {
		return nil, fmt.Errorf("%w: force-share needs a read-only open", ErrInvalidOption)
	}
	f, err := fs.OpenFile(path, flag, 0)
	if err != nil {
		return nil, fileErr(path, "", err)
	}
	// Locks first: nothing is read or changed before QEMU's users of the
	// file are known to allow this open.
	if err := lockFile(f, path, lockMode(opts), opts.NoLock); err != nil {
		f.Close()
		return nil, fileErr(path, "", err)
	}
	f = guardFile(f)
	_, guarded := f.(*lockedFile)
	defer func() {
		if err != nil {
			f.Close()
		}
	}()
	h, fileLen, err := readHeader(f)
	if err != nil {
		return nil, fileErr(path, "", err)
	}
	im = &Image{
		fs:       fs,
		path:     path,
		f:        f,
		readOnly: opts.ReadOnly,
		geo:      newGeometry(&h),
		clock:    opts.Clock,
		idle:     opts.IdleClearDelay,
		hdr:      h,
		// In-memory files (the ones guardFile serialises) never block:
		// allocations in flight yield so that they overlap (alloc.go).
		yieldInFlight: guarded,
	}
	im.mu.init()
	if im.clock == nil {
		im.clock = realClock{}
	}
	if im.idle == 0 {
		im.idle = DefaultIdleClearDelay
	}
	im.fileSize = im.geo.startOfCluster(fileLen)
	if defect(DefectAllocatorUnalignedEnd) {
		im.fileSize = fileLen
	}
	// Bytes past the last whole cluster (a crash can leave a data write
	// that extended the file into a cluster never linked) may be stale
	// guest data. The allocator would hand that partial cluster out next,
	// and a later crash that lost part of the new cluster's write would
	// show the stale bytes at another guest offset. A writable open
	// therefore cuts them off (the spec lets such bytes be overwritten)
	// and syncs before any allocation, so every cluster the allocator
	// hands out reads as zeros until written. No table entry can point
	// there validly: validity is judged against the whole clusters.
	if !opts.ReadOnly && fileLen > im.fileSize {
		if err := f.Truncate(int64(im.fileSize)); err != nil {
			return nil, fileErr(path, "dropping the partial cluster at the end of the file", err)
		}
		if err := f.Sync(); err != nil {
			return nil, fileErr(path, "sync after dropping the partial cluster", err)
		}
		fileLen = im.fileSize
	}
	im.openLen = fileLen
	n := opts.L2CacheTables
	if n <= 0 {
		n = min(defaultL2CacheTables, max(2, int(defaultL2CacheBytes/im.geo.tableBytes)))
	}
	im.cache = newL2Cache(n)

	// Unknown autoclear bits: a writable open clears them, durably
	// (header write, then Sync) before any other write, so no write made
	// under the new meaning can precede the bit's clearing on disk.
	if !im.readOnly && h.AutoclearFeatures&^KnownAutoclearFeatures != 0 {
		nh := im.hdr
		nh.AutoclearFeatures &= KnownAutoclearFeatures
		if err := im.writeHeaderLocked(nh); err != nil {
			return nil, err
		}
		if err := im.f.Sync(); err != nil {
			return nil, fileErr(path, "sync after clearing autoclear bits", err)
		}
	}

	// The L1 table lies inside the file (validateHeader), so its size is
	// bounded by the file's real size. A read-only open keeps only the
	// entries that map guest offsets below the image size, rounded up to
	// whole sectors (l1Entries; perf: the oracle reopens every crash state
	// read-only, and a small image's L1 table is mostly entries no read
	// can reach). Reads never look at or past the size; Check reads the
	// whole table from the file when im.l1 is short.
	if im.geo.sparseTables {
		im.seekData = probeSeekData(f, fileLen)
	}
	im.l1 = im.newTable(im.l1Entries())
	if err := im.readTable(h.L1TableOffset, &im.l1); err != nil {
		return nil, fileErr(path, "reading L1 table", err)
	}

	if h.Features&FeatureBackingFile != 0 {
		im.backing, err = openBacking(fs, path, &im.hdr, ch, opts)
		if err != nil {
			return nil, err
		}
	}

	if !im.readOnly && h.Features&FeatureNeedCheck != 0 {
		rep, err := im.Check(true)
		if err != nil {
			im.closeBacking()
			return nil, fileErr(path, "repair on open", err)
		}
		im.corrupt = rep.Corruptions > 0
		im.repaired = true
		if defect(DefectRecoveryDropsLink) {
			im.mu.Lock()
			err := im.defectDropLink(true)
			im.mu.Unlock()
			if err != nil {
				im.closeBacking()
				return nil, err
			}
		}
	}
	return im, nil
}

// l1Entries is how many L1 entries an open keeps in im.l1: all of them
// for a writable open (Check, repair, allocation and Resize use the whole
// table); for a read-only open, those covering guest offsets below the
// image size, rounded up to a whole 512-byte sector of entries and at
// most the table. hdr and geo must be set.
func (im *Image) l1Entries() uint64 {
	g := &im.geo
	if !im.readOnly {
		return g.nelems
	}
	n := im.hdr.ImageSize >> g.l1Shift
	if im.hdr.ImageSize&(1<<g.l1Shift-1) != 0 {
		n++
	}
	const perSector = SectorSize / entrySize
	n = (n + perSector - 1) / perSector * perSector
	return min(n, g.nelems)
}

// maxPooledTableBuf bounds the tables entriesPool keeps, in bytes.
const maxPooledTableBuf = 4 << 20

// classPool holds slices by size class: class c holds slices of capacity
// exactly 1<<c, up to maxLen elements; larger slices are never kept. get
// returns n elements of unspecified contents; put gives a slice from get
// back, and the caller keeps no reference to it.
type classPool[T any] struct {
	maxLen  int
	classes [bits.UintSize]sync.Pool // of *[]T
}

func (p *classPool[T]) get(n int) *[]T {
	c := bits.Len(uint(max(n, 1) - 1)) // smallest c with 1<<c >= n
	if 1<<c > p.maxLen {
		s := make([]T, n)
		return &s
	}
	sp, _ := p.classes[c].Get().(*[]T)
	if sp == nil {
		s := make([]T, 1<<c)
		sp = &s
	}
	*sp = (*sp)[:n]
	return sp
}

func (p *classPool[T]) put(sp *[]T) {
	c := cap(*sp)
	if c == 0 || c&(c-1) != 0 || c > p.maxLen {
		return // not from a pool class
	}
	p.classes[bits.Len(uint(c))-1].Put(sp)
}

// entriesPool holds tables of entries (perf, issue 5: an oracle run opens
// each crash state twice, and a fresh L1 table plus fresh L2 tables per
// open were most of its allocation). Check borrows its scratch tables
// here; an Image draws its L1 table and the L2 tables it reads or
// allocates from here and gives back, on Close, the L1 table and the
// tables still cached (evicted tables go to the garbage collector: a
// request may still hold one). Tables above maxPooledTableBuf bytes are
// not kept.
var entriesPool = classPool[uint64]{maxLen: maxPooledTableBuf / entrySize}

func getEntries(n int) *[]uint64 { return entriesPool.get(n) }
func putEntries(ep *[]uint64)    { entriesPool.put(ep) }

// bytesPool holds the copy-on-write buffers of allocating writes (perf,
// issue 5: the oracle's liveness write allocates a cluster on most crash
// states, one fresh buffer each), given back on Close. Buffers above
// maxCOWBuffer are not kept.
var bytesPool = classPool[byte]{maxLen: maxCOWBuffer}

func getBytes(n int) *[]byte { return bytesPool.get(n) }
func putBytes(bp *[]byte)    { bytesPool.put(bp) }

// hostLittleEndian: the on-disk table layout (little-endian uint64s) is
// the memory layout of a []uint64 on this host.
var hostLittleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// entryBytes is e's memory as bytes: on a little-endian host
// (hostLittleEndian) exactly the on-disk layout of the entries, so tables
// are read and written in place, with no buffer and no coding (perf,
// issue 5: decoding was 7 % of an oracle run). The caller must not change
// e while the bytes are in use.
func entryBytes(e []uint64) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(e))), len(e)*entrySize)
}

// newTable returns a table of n entries, all zero: paged when the
// image's tables are big (table.go).
func (im *Image) newTable(n uint64) table { return newTable(n, im.geo.sparseTables) }

// readTable reads the table at off into t (its contents replaced), only
// where the file has data for big tables (table.read). On error t's
// contents are unspecified (callers drop it).
func (im *Image) readTable(off uint64, t *table) error {
	return t.read(im.f, off, im.seekData)
}

// writeHeaderLocked is the one header-write path: it writes the fixed
// header fields of h (never the backing name or data after the fields, so
// unknown compat extensions survive) and on success makes h current. It
// does not sync; callers order it with Sync as their protocol requires.
func (im *Image) writeHeaderLocked(h Header) error {
	var b [HeaderFieldsSize]byte
	encodeHeader(&h, b[:])
	if _, err := im.f.WriteAt(b[:], 0); err != nil {
		return fileErr(im.path, "writing header", err)
	}
	im.hdr = h
	return nil
}

// Size returns the guest-visible size in bytes.
func (im *Image) Size() int64 {
	im.mu.RLock()
	defer im.mu.RUnlock()
	return int64(im.hdr.ImageSize)
}

// Header returns a copy of the current header.
func (im *Image) Header() Header {
	im.mu.RLock()
	defer im.mu.RUnlock()
	return im.hdr
}

// Path returns the path the image was opened at.
func (im *Image) Path() string { return im.path }

// Files returns the paths of the files the image reads: its own, then each
// file of its backing chain in order (relative backing names resolved
// against the directory of the image naming them). Immutable after Open.
func (im *Image) Files() []string {
	if im.backing == nil {
		return []string{im.path}
	}
	return append([]string{im.path}, im.backing.files()...)
}

// ReadOnly reports whether the image was opened read-only.
func (im *Image) ReadOnly() bool { return im.readOnly }

// Flush makes every completed write durable: with no metadata pending a
// File.Sync under mu held shared, else the metadata writeback
// (flushMetaLocked) under mu held exclusively (lockMeta: allocations in
// flight go on). It does not clear
// NEED_CHECK; Close and the idle timer do that after their own flush.
func (im *Image) Flush() error {
	im.mu.RLock()
	if im.closed {
		im.mu.RUnlock()
		return ErrClosed
	}
	if im.readOnly {
		im.mu.RUnlock()
		return nil
	}
	if !im.metaDirtyLocked() {
		defer im.mu.RUnlock()
		if err := im.f.Sync(); err != nil {
			return fileErr(im.path, "flush", err)
		}
		return nil
	}
	im.mu.RUnlock()
	// Allocations in flight have not completed: Flush need not wait for
	// them, and the writeback is safe beside them (alloc.go).
	im.mu.lockMeta()
	defer im.mu.Unlock()
	if im.closed {
		return ErrClosed
	}
	return im.flushMetaLocked()
}

// Close flushes the image, clears NEED_CHECK (after that flush, unless an
// open-time repair left corruption) and closes it and its backing chain.
func (im *Image) Close() error {
	im.mu.Lock()
	defer im.mu.Unlock()
	if im.closed {
		return ErrClosed
	}
	im.closed = true
	im.stopTimerLocked()
	var err error
	if !im.readOnly {
		err = im.clearNeedCheckLocked()
		if err == nil && im.repaired && defect(DefectCloseAfterRecoveryDropsLink) {
			err = im.defectDropLink(false)
		}
	}
	// No request can use the tables any more (every one checks closed
	// under mu): give them back to the pool.
	im.cache.drain()
	im.l1.release()
	if im.cow != nil {
		putBytes(im.cow)
		im.cow = nil
	}
	if cerr := im.f.Close(); err == nil && cerr != nil {
		err = fileErr(im.path, "close", cerr)
	}
	if berr := im.closeBacking(); err == nil && berr != nil {
		err = berr
	}
	return err
}

func (im *Image) closeBacking() error {
	if im.backing == nil {
		return nil
	}
	return im.backing.close()
}

// clearNeedCheckLocked is the one place NEED_CHECK is cleared.
//
// Ordering: the metadata writeback first (flushMetaLocked, which ends with
// a Sync), so every data cluster and table update the bit protected is
// durable; only then write the header without the bit, and Sync again so
// the clean state is durable before we report success. Clearing before
// that could leave a clean-looking image whose L2 entries point past the
// end of the file.
func (im *Image) clearNeedCheckLocked() error {
	need := im.hdr.Features&FeatureNeedCheck != 0 && !im.corrupt
	if need && defect(DefectNeedCheckClearedBeforeFlush) {
		// The seeded defect: the cleared header shares an epoch with the
		// metadata it should follow.
		nh := im.hdr
		nh.Features &^= FeatureNeedCheck
		if err := im.writeHeaderLocked(nh); err != nil {
			return err
		}
		return im.flushMetaLocked()
	}
	if err := im.flushMetaLocked(); err != nil {
		return err
	}
	if !need {
		return nil
	}
	nh := im.hdr
	nh.Features &^= FeatureNeedCheck
	if err := im.writeHeaderLocked(nh); err != nil {
		return err
	}
	if err := im.f.Sync(); err != nil {
		return fileErr(im.path, "flush after clearing NEED_CHECK", err)
	}
	return nil
}

// setNeedCheckLocked durably sets NEED_CHECK before the first unordered
// metadata update: header write, then Sync, before any L2 entry may be
// written ahead of its data.
func (im *Image) setNeedCheckLocked() error {
	if im.hdr.Features&FeatureNeedCheck != 0 || defect(DefectNeedCheckNeverSet) {
		return nil
	}
	nh := im.hdr
	nh.Features |= FeatureNeedCheck
	if err := im.writeHeaderLocked(nh); err != nil {
		return err
	}
	if err := im.f.Sync(); err != nil {
		return fileErr(im.path, "flush after setting NEED_CHECK", err)
	}
	return nil
}

// armIdleTimerLocked (re)starts the idle NEED_CHECK clear after an
// allocating write.
func (im *Image) armIdleTimerLocked() {
	im.timerGen++
	if im.idle < 0 || im.hdr.Features&FeatureNeedCheck == 0 {
		return
	}
	im.stopTimerLocked()
	gen := im.timerGen
	im.timer = im.clock.AfterFunc(im.idle, func() { im.idleClear(gen) })
}

func (im *Image) stopTimerLocked() {
	if im.timer != nil {
		im.timer.Stop()
		im.timer = nil
	}
}

// idleClear runs from the timer: if no allocating write happened since it
// was armed, flush and clear NEED_CHECK. Errors leave the bit set, which is
// always safe.
//
// It does not wait for allocations in flight: it skips while one is (its
// link re-arms the timer), so NEED_CHECK is never cleared under a write
// that set it and has not linked yet.
func (im *Image) idleClear(gen uint64) {
	im.mu.lockMeta()
	defer im.mu.Unlock()
	if im.closed || gen != im.timerGen || len(im.mu.inflight) > 0 {
		return
	}
	im.timer = nil
	_ = im.clearNeedCheckLocked()
}

// Resize grows the guest size to newSize. Shrinking is refused. The grown
// range reads zeros (hideBackingTailLocked).
//
// Ordering: the zeroing hideBackingTailLocked does (the last cluster's
// tail past the old size, zero marks over a longer backing file) is
// durable before the header write announces the new size; the header
// write is synced before Resize returns. A crash leaves the old size, or
// the new one over a grown range that reads zeros.
func (im *Image) Resize(newSize int64) error {
	im.mu.Lock()
	defer im.mu.Unlock()
	if im.closed {
		return ErrClosed
	}
	if im.readOnly {
		return ErrReadOnly
	}
	if newSize < 0 || uint64(newSize) < im.hdr.ImageSize {
		return fmt.Errorf("%w: %d is smaller than the current size %d", ErrShrink, newSize, im.hdr.ImageSize)
	}
	if !validImageSize(uint64(newSize), im.hdr.ClusterSize, im.hdr.TableSize) {
		return fmt.Errorf("%w: size %d: must be a multiple of 512 and at most %d", ErrInvalidOption, newSize, MaxImageSize(im.hdr.ClusterSize, im.hdr.TableSize))
	}
	if !defect(DefectResizeExposesBacking) {
		if err := im.hideBackingTailLocked(uint64(newSize)); err != nil {
			return err
		}
	}
	nh := im.hdr
	nh.ImageSize = uint64(newSize)
	if err := im.writeHeaderLocked(nh); err != nil {
		return err
	}
	if err := im.f.Sync(); err != nil {
		return fileErr(im.path, "flush after resize", err)
	}
	return nil
}

// hideBackingTailLocked makes the range a grow to newSize adds read as
// zeros: the new guest space never held guest data, so it must show
// neither the backing file's bytes nor bytes an allocated cluster holds
// past the old size.
//
//   - The tail of the last cluster. A cluster the image allocates that
//     straddles the old size may hold non-zero bytes past it: an
//     allocating write's copy-on-write fills the whole cluster from the
//     backing file, which may be longer than the image (QEMU 7.2 does the
//     same), and they stay when the backing file is later removed (a
//     safe `rebase none` copies the partial last cluster in with them).
//     A grow must zero them whether or not a backing file remains: they
//     are read first and zeroed in place only if some byte is non-zero.
//   - Where the backing file is longer than the old size, the clusters
//     past it get zero cluster marks (the partial first one a COW write
//     of zeros when unallocated). QEMU 7.2 refuses such a grow for QED
//     instead ("Block driver does not support requested flags"); zeroing
//     is what its generic block layer asks drivers to do.
//
// Ordering: the zeroing (in-place writes, a COW write for a partial first
// cluster, zero cluster marks for the rest) follows the backing-file
// protocol of the write paths and is made durable by a Sync before the
// header announces the new size. A crash before the header write leaves
// zeroed bytes and zero entries past the image size, which the guest
// cannot read and which are harmless; the header write is the one that
// makes the range visible, and by then it reads zeros from a durable
// state.
func (im *Image) hideBackingTailLocked(newSize uint64) error {
	g := &im.geo
	old := im.hdr.ImageSize
	var bend uint64 // end of the backing file's bytes the grow would show
	if im.backing != nil {
		bend = min(newSize, uint64(max(im.backing.length(), 0)))
	}
	head := g.offsetInCluster(old)
	if bend <= old && (head == 0 || newSize <= old) {
		return nil
	}
	changed := bend > old // the backing path always flushes
	cur := old
	if head != 0 && newSize > old {
		n := g.clusterSize - head // the whole tail: past newSize it is past the size too
		r, err := im.lookupLocked(cur, 1)
		if err != nil {
			return err
		}
		switch r.kind {
		case ExtentData:
			dirty := bend > old // as before this file zeroed it: unconditionally
			if !dirty {
				if dirty, err = im.nonZeroAt(r.host+head, n); err != nil {
					return err
				}
			}
			if dirty {
				changed = true
				err = im.zeroInPlace(r.host+head, n)
			}
		case ExtentUnallocated:
			if bend > old { // without a backing file it reads zeros
				err = im.writeLocked(make([]byte, n), cur)
			}
		}
		if err != nil {
			return err
		}
		cur += n
	}
	if bend > old {
		end := (bend + g.clusterSize - 1) &^ (g.clusterSize - 1)
		for cur < end {
			r, err := im.lookupLocked(cur, (end-cur)>>g.l2Shift)
			if err != nil {
				return err
			}
			k := r.n * g.clusterSize
			switch r.kind {
			case ExtentData: // cannot happen past the size of a grow-only image; zero anyway
				err = im.zeroInPlace(r.host, k)
			case ExtentUnallocated:
				err = im.zeroMarkLocked(cur, r.n)
			}
			if err != nil {
				return err
			}
			cur += k
		}
	}
	if !changed {
		return nil
	}
	// The zero marks (and any COW write) are written back and durable
	// before the header announces the new size.
	if err := im.flushMetaLocked(); err != nil {
		return fileErr(im.path, "flush before resize", err)
	}
	return nil
}

// nonZeroAt reports whether any of the n bytes at host offset host of the
// image file is non-zero; bytes past the end of the file read as zeros.
func (im *Image) nonZeroAt(host, n uint64) (bool, error) {
	buf := make([]byte, n)
	k, err := im.f.ReadAt(buf, int64(host))
	// Past the file's end the bytes read as zeros; a short read ends with
	// io.EOF or, on some filesystems (afero's in-memory one),
	// io.ErrUnexpectedEOF.
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		return false, fileErr(im.path, fmt.Sprintf("reading host offset %d", host), err)
	}
	return !allZero(buf[:k]), nil
}
