package qed

import (
	"errors"
	"fmt"
	"io"
	"runtime"
	"syscall"
)

// table holds the entries of one QED table (the L1 table or an L2 table)
// in memory (issue 19 goal 5: memory and time per open bounded by what a
// table holds, not by its size).
//
// Small tables (at most maxWholeTable bytes, 64 KiB) are one page
// holding the whole table, read with one read and written as before. Big
// tables (geometry.sparseTables: QEMU's default 256 KiB tables, up to 1
// GiB for 64 MiB clusters and 16-cluster tables) are pages of
// pageEntries entries (4 KiB), and a page that is nil holds zeros: a
// read asks the file where its data is (SEEK_DATA, where the file has
// it: see Image.seekData) and reads only those pages, and a page that
// reads all zeros is dropped again; an entry set to a non-zero value
// gets its page then. A new big L2 table costs no memory but its page
// index until entries are set.
//
// Invariants: the table has n entries; page k holds entries
// [k<<shift, min(n, (k+1)<<shift)); a nil page reads as zeros. Its
// contents are exactly those of a []uint64 of n entries, which is what
// the file holds unless the Image records the entries as dirty (the
// write-back rules of cache.go and image.go are unchanged). A table is
// changed only under Image.mu held exclusively, read under Image.mu held
// in either mode, like the []uint64 it replaces.
type table struct {
	n     uint64
	shift uint
	pages []*[]uint64 // pooled storage (getEntries); nil: zeros
}

const (
	pageShift   = 9 // entries per page of a big table: 512, 4 KiB
	pageEntries = 1 << pageShift
	pageBytes   = pageEntries * entrySize
)

// zeroPage is what a nil page reads as, for writes (never changed).
var zeroPage [pageEntries]uint64

// newTable returns a table of n entries, all zero: paged (sparse) when
// paged is set, else one page of n entries (pooled).
func newTable(n uint64, paged bool) table {
	if !paged || n <= pageEntries {
		p := getEntries(int(n))
		clear(*p)
		return table{n: n, shift: 63, pages: []*[]uint64{p}}
	}
	return table{n: n, shift: pageShift, pages: make([]*[]uint64, (n+pageEntries-1)/pageEntries)}
}

// wholeTable reports whether t is one page (read and written whole).
func (t *table) whole() bool { return len(t.pages) == 1 }

// len returns the number of entries.
func (t *table) len() uint64 { return t.n }

// pageLen is the number of entries page k holds.
func (t *table) pageLen(k uint64) uint64 { return min(t.n-k<<t.shift, 1<<t.shift) }

// get returns entry i.
func (t *table) get(i uint64) uint64 {
	p := t.pages[i>>t.shift]
	if p == nil {
		return 0
	}
	return (*p)[i&(1<<t.shift-1)]
}

// set sets entry i to v, giving its page storage if it had none.
func (t *table) set(i, v uint64) {
	k := i >> t.shift
	p := t.pages[k]
	if p == nil {
		if v == 0 {
			return
		}
		p = getEntries(int(t.pageLen(k)))
		clear(*p)
		t.pages[k] = p
	}
	(*p)[i&(1<<t.shift-1)] = v
}

// nextNonZero returns the index of the first non-zero entry at or after
// i, or t.len() if there is none. Pages without storage are skipped
// whole, zero runs inside a page eight entries at a time (nonZero).
func (t *table) nextNonZero(i uint64) uint64 {
	for i < t.n {
		k := i >> t.shift
		p := t.pages[k]
		base := k << t.shift
		if p != nil {
			if j := nonZero(*p, int(i-base)); j < len(*p) {
				return base + uint64(j)
			}
		}
		i = base + t.pageLen(k)
	}
	return t.n
}

// zero sets every entry to zero; a big table gives its pages back.
func (t *table) zero() {
	if t.whole() {
		clear(*t.pages[0])
		return
	}
	for k, p := range t.pages {
		if p != nil {
			putEntries(p)
			t.pages[k] = nil
		}
	}
}

// release gives the table's storage back to the pools; t is unusable
// afterwards. The caller guarantees that nothing reads t any more.
func (t *table) release() {
	for _, p := range t.pages {
		if p != nil {
			putEntries(p)
		}
	}
	t.pages = nil
}

// nonZeroPages calls fn for every page with storage, in order, with the
// index of its first entry (big tables: the pages a repair may change).
func (t *table) nonZeroPages(fn func(base uint64, p []uint64)) {
	for k, p := range t.pages {
		if p != nil {
			fn(uint64(k)<<t.shift, *p)
		}
	}
}

// read fills t (of the right length, contents replaced) with the table at
// file offset off of f. A whole table is one read. A big table is read
// page by page where the file has data: with seekData (the file answers
// lseek's SEEK_DATA) pages that lie in holes are not read at all, and a
// page that reads all zeros keeps no storage. Reads never go past the
// table, and a valid table lies inside the file (validateHeader,
// validTableOffset), so the read is bounded by the file's real size. On
// error t's contents are unspecified (callers drop it or read again).
func (t *table) read(f io.ReaderAt, off uint64, seekData bool) error {
	if t.whole() {
		return readEntries(f, off, *t.pages[0])
	}
	sk, _ := f.(io.Seeker)
	if !seekData {
		sk = nil
	}
	var spare *[]uint64
	defer func() {
		if spare != nil {
			putEntries(spare)
		}
	}()
	for k := uint64(0); k < uint64(len(t.pages)); k++ {
		base := off + k*pageBytes
		if sk != nil {
			next, ok := dataFrom(sk, base)
			if ok && next >= base+t.pageLen(k)*entrySize {
				// A hole up to next: no data in the pages before it.
				skip := max(k+1, min((next-off)/pageBytes, uint64(len(t.pages))))
				for ; k < skip; k++ {
					if p := t.pages[k]; p != nil {
						putEntries(p)
						t.pages[k] = nil
					}
				}
				k-- // the loop's k++ brings it to skip
				continue
			}
		}
		p := t.pages[k]
		if p == nil {
			if spare != nil {
				p, spare = spare, nil
			} else {
				p = getEntries(int(t.pageLen(k)))
			}
		}
		if err := readEntries(f, base, *p); err != nil {
			t.pages[k] = p
			return err
		}
		if nonZero(*p, 0) == len(*p) {
			t.pages[k], spare = nil, p // all zeros: keep no storage
			continue
		}
		t.pages[k] = p
	}
	return nil
}

// write writes entries [first, first+n) of t to the table at file offset
// off of f, rounded out to whole 512-byte sectors, in one write request
// (as the []uint64 it replaces: the same I/O, so the same crash states).
// A range within one page (every write of a small table, and the sectors
// of a few entries of a big one) writes the page's own memory; a longer
// one is assembled into a pooled buffer.
// It does not sync. Pages without storage are written as zeros. at is
// the file offset of the write (for errors).
func (t *table) write(f io.WriterAt, off, first, n uint64) (at uint64, err error) {
	lo := first * entrySize / SectorSize * SectorSize
	hi := min(((first+n)*entrySize+SectorSize-1)/SectorSize*SectorSize, t.n*entrySize)
	if lo >= hi {
		return off + lo, nil
	}
	e0, e1 := lo/entrySize, hi/entrySize
	k := e0 >> t.shift
	if (e1-1)>>t.shift == k {
		// Within one page: its own memory (on little-endian hosts).
		base := k << t.shift
		var src []uint64
		if p := t.pages[k]; p != nil {
			src = (*p)[e0-base : e1-base]
		} else {
			src = zeroPage[e0-base : e1-base]
		}
		return off + lo, writeEntries(f, off+lo, src)
	}
	bp := getBytes(int(hi - lo))
	defer putBytes(bp)
	buf := *bp
	for i := e0; i < e1; {
		k := i >> t.shift
		base := k << t.shift
		end := min(e1, base+t.pageLen(k))
		dst := buf[(i-e0)*entrySize : (end-e0)*entrySize]
		if p := t.pages[k]; p != nil {
			encodeTable(dst, (*p)[i-base:end-base])
		} else {
			clear(dst)
		}
		i = end
	}
	_, err = f.WriteAt(buf, int64(off+lo))
	return off + lo, err
}

// readEntries reads len(dst) entries at file offset off into dst.
func readEntries(f io.ReaderAt, off uint64, dst []uint64) error {
	buf := entryBytes(dst)
	if !hostLittleEndian {
		bp := getBytes(len(buf))
		defer putBytes(bp)
		buf = *bp
	}
	if n, err := f.ReadAt(buf, int64(off)); n < len(buf) {
		if err == nil {
			err = io.ErrUnexpectedEOF
		}
		return fmt.Errorf("reading table at %d: %w", off, err)
	}
	if !hostLittleEndian {
		decodeTable(dst, buf)
	}
	return nil
}

// writeEntries writes src at file offset off: on little-endian hosts the
// entries' own memory (WriteAt must not retain it, io.WriterAt).
func writeEntries(f io.WriterAt, off uint64, src []uint64) error {
	buf := entryBytes(src)
	if !hostLittleEndian {
		bp := getBytes(len(buf))
		defer putBytes(bp)
		buf = *bp
		encodeTable(buf, src)
	}
	_, err := f.WriteAt(buf, int64(off))
	return err
}

// Whence values of lseek(2) on Linux (SEEK_DATA, SEEK_HOLE), which
// crashsim's in-memory files accept too.
const seekWhenceData = 3

// probeSeekData reports whether f answers SEEK_DATA as Linux's lseek does
// (an os.File on Linux, crashsim's files; a wrapper that passes Seek
// through). size is the file's length. Seek with an unknown whence is not
// always an error (afero's in-memory files return their position), and
// other systems number the values differently (macOS: 3 is SEEK_HOLE),
// so only Linux is trusted, and only a file whose answer for its last
// byte is that byte (data) or ENXIO (a hole up to the end): a file that
// ignored the whence would answer its position, which the probe first
// sets to 0. The probe moves f's offset; the image reads and writes only
// at explicit offsets.
func probeSeekData(f io.Seeker, size uint64) bool {
	if runtime.GOOS != "linux" || size < 2 || size > 1<<62 {
		return false
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return false
	}
	got, err := f.Seek(int64(size-1), seekWhenceData)
	if errors.Is(err, syscall.ENXIO) {
		return true
	}
	return err == nil && got == int64(size-1)
}

// dataFrom returns the first offset at or after off that may hold data
// (ok), or ok=false when the file cannot tell (then the caller reads).
// ENXIO (no data after off, or off at the end) means zeros to the end.
func dataFrom(sk io.Seeker, off uint64) (uint64, bool) {
	next, err := sk.Seek(int64(off), seekWhenceData)
	if errors.Is(err, syscall.ENXIO) {
		return ^uint64(0), true
	}
	if err != nil || next < int64(off) {
		return 0, false
	}
	return uint64(next), true
}
