package qed

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/spf13/afero"
)

// Committing an image into its backing file: Commit, what `qemu-img
// commit` does.
//
// Crash safety. What the image (the top of the chain) reads never
// changes, at any moment:
//
//   - Every guest range some image above the base allocates (data or a
//     zero cluster) is copied into the base; the top's view of those
//     ranges comes from the images above the base, so writing the base
//     does not change it. Where nothing above the base allocates, nothing
//     is written. A crash in the middle leaves the base with some ranges
//     old and some new: the base's own view is then a mix, range by range
//     (each range old or new), as with any interrupted write to it; the
//     base's metadata follows the write paths' ordering (a QED base) and
//     is consistent after recovery.
//   - A base shorter than the image grows first (Resize, durable; for a
//     raw base a truncate and a sync), as qemu-img grows it.
//   - Emptying the top (without Drop) starts only after the base is
//     durable (Flush, or Sync of a raw base): from then on the top may read
//     through to the base wherever it loses a mapping. emptyLocked then
//     zeroes the L1 table and syncs before it truncates the file, so no
//     durable L1 entry ever points past the end of the file; a crash in
//     between leaves leaked clusters (harmless, counted by check), or L1
//     entries whose tables still hold data equal to the base's.

// CommitOptions configure Commit.
type CommitOptions struct {
	// Open configures the opens of the image and of its chain; ReadOnly
	// and ForceShare are ignored.
	Open OpenOptions
	// Base names the file to commit into: a path of a file of the image's
	// backing chain (compared by path, else by device and inode; a relative
	// path that names no file of the chain is also tried relative to the
	// image's directory, as backing names are), or ""
	// for the image's own backing file. A base below the image's own
	// backing file implies Drop: the images between stay as they are and
	// no longer read what they read before (as with qemu-img commit -b).
	Base string
	// Drop leaves the image as it is after the commit instead of
	// emptying it (qemu-img commit -d).
	Drop bool
	// Progress, when set, is called with the bytes committed so far and
	// the bytes to commit, at the start and after each chunk.
	Progress func(done, total int64)
}

// commitChunk bounds one read-and-write of Commit.
const commitChunk = 1 << 20

// Commit writes into a file of its backing chain (the base) every guest
// range that the image or an image between it and the base allocates,
// with the contents the image reads there, grows a shorter base to the
// image's size, and unless Drop (or a deeper base) empties the image, so
// that it reads everything through its backing file. The image is opened
// writable when it is emptied, else read-only; the base is opened
// writable (its lock refuses a base another process has open); the other
// files read-only. Crash safe: see the top of this file.
//
// QEMU 7.2 cannot empty a QED image (its driver has no make-empty
// operation) and leaves it as it is, as if -d had been given; Commit
// empties it, as qemu-img's documentation says commit does.
func Commit(fs afero.Fs, path string, o CommitOptions) (err error) {
	depth, err := commitDepth(fs, path, o)
	if err != nil {
		return err
	}
	drop := o.Drop || depth > 1
	opts := o.Open
	opts.ReadOnly, opts.ForceShare = drop, false
	opts.writeDepth = depth
	im, err := Open(fs, path, opts)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := im.Close(); err == nil && cerr != nil {
			err = cerr
		}
	}()
	// The images above the base, and the base.
	layers := []*Image{im}
	b := im.backing
	for len(layers) < depth {
		q, ok := b.(*qedBacking)
		if !ok {
			return fileErr(path, "commit", fmt.Errorf("%w: backing chain ends above depth %d", ErrInvalidOption, depth))
		}
		layers = append(layers, q.im)
		b = q.im.backing
	}
	var ranges []Extent
	for _, l := range layers {
		ext, err := l.Map()
		if err != nil {
			return err
		}
		for _, x := range ext {
			if x.Kind != ExtentUnallocated {
				ranges = append(ranges, Extent{Start: x.Start, Length: min(x.Length, im.Size()-x.Start)})
			}
		}
	}
	ranges = mergeRanges(ranges)
	var total int64
	for _, r := range ranges {
		total += r.Length
	}
	report := func(done int64) {
		if o.Progress != nil {
			o.Progress(done, total)
		}
	}
	report(0)

	base := newCommitBase(b)
	if err := base.grow(im.Size()); err != nil {
		return err
	}
	buf := make([]byte, commitChunk)
	var done int64
	for _, r := range ranges {
		for off := r.Start; off < r.Start+r.Length; {
			n := min(int64(len(buf)), r.Start+r.Length-off)
			p := buf[:n]
			if _, err := im.ReadAt(p, off); err != nil {
				return err
			}
			if err := base.write(p, off); err != nil {
				return err
			}
			off += n
			done += n
			report(done)
		}
	}
	if !drop && defect(DefectCommitEmptiesBeforeBaseFlush) {
		// The seeded defect: the image emptied before the base is durable.
		im.mu.Lock()
		err := im.emptyLocked()
		im.mu.Unlock()
		if err != nil {
			return err
		}
		return base.flush()
	}
	// The base durable before the image may read through to it.
	if err := base.flush(); err != nil {
		return err
	}
	if drop {
		return nil
	}
	im.mu.Lock()
	defer im.mu.Unlock()
	return im.emptyLocked()
}

// commitDepth returns the depth in path's backing chain of the base
// o.Base names (1 without one), opening the chain read-only once to list
// it.
func commitDepth(fs afero.Fs, path string, o CommitOptions) (int, error) {
	ro := o.Open
	ro.ReadOnly, ro.ForceShare = true, false
	im, err := Open(fs, path, ro)
	if err != nil {
		return 0, err
	}
	files := im.Files()
	im.Close()
	if len(files) < 2 {
		return 0, fileErr(path, "commit", fmt.Errorf("%w: the image has no backing file", ErrInvalidOption))
	}
	if o.Base == "" {
		return 1, nil
	}
	// The base as named (from the working directory), else as a backing
	// name would name it (relative to the image's directory).
	names := []string{o.Base}
	if !filepath.IsAbs(o.Base) {
		names = append(names, resolveBacking(path, o.Base))
	}
	for _, b := range names {
		for i, f := range files[1:] {
			if filepath.Clean(f) == filepath.Clean(b) {
				return i + 1, nil
			}
		}
		if sb, err := fs.Stat(b); err == nil {
			for i, f := range files[1:] {
				if sf, err := fs.Stat(f); err == nil && os.SameFile(sb, sf) {
					return i + 1, nil
				}
			}
		}
	}
	return 0, fileErr(path, "commit", fmt.Errorf("%w: %s is not in the backing chain (%v)", ErrInvalidOption, o.Base, files[1:]))
}

// mergeRanges sorts extents by start and merges overlapping or adjacent
// ones (their kinds are dropped).
func mergeRanges(xs []Extent) []Extent {
	slices.SortFunc(xs, func(a, b Extent) int {
		switch {
		case a.Start < b.Start:
			return -1
		case a.Start > b.Start:
			return 1
		}
		return 0
	})
	var out []Extent
	for _, x := range xs {
		if x.Length <= 0 {
			continue
		}
		if n := len(out); n > 0 && x.Start <= out[n-1].Start+out[n-1].Length {
			out[n-1].Length = max(out[n-1].Length, x.Start+x.Length-out[n-1].Start)
			continue
		}
		out = append(out, Extent{Start: x.Start, Length: x.Length})
	}
	return out
}

// commitBase is the base Commit writes: a QED image opened writable or a
// raw file opened read-write.
type commitBase struct {
	im  *Image
	raw *rawBacking
}

func newCommitBase(b backingFile) commitBase {
	if q, ok := b.(*qedBacking); ok {
		return commitBase{im: q.im}
	}
	return commitBase{raw: b.(*rawBacking)} // the only other kind
}

// grow makes the base at least size guest bytes, durably.
func (c commitBase) grow(size int64) error {
	if c.im != nil {
		if c.im.Size() >= size {
			return nil
		}
		return c.im.Resize(size)
	}
	if c.raw.size >= size {
		return nil
	}
	if err := c.raw.f.Truncate(size); err != nil {
		return fileErr(c.raw.path, "growing the base", err)
	}
	if err := c.raw.f.Sync(); err != nil {
		return fileErr(c.raw.path, "growing the base", err)
	}
	c.raw.size = size
	return nil
}

// write writes guest bytes p at off into the base: zero ranges of a QED
// base as write-zeroes (no data clusters for them).
func (c commitBase) write(p []byte, off int64) error {
	if c.im != nil {
		if allZero(p) {
			return c.im.WriteZeroes(off, int64(len(p)))
		}
		_, err := c.im.WriteAt(p, off)
		return err
	}
	if defect(DefectCommitSplitSectorWrite) && len(p) > 256 {
		// The seeded defect: the first 256 bytes, then the rest.
		if _, err := c.raw.f.WriteAt(p[:256], off); err != nil {
			return fileErr(c.raw.path, fmt.Sprintf("writing at %d", off), err)
		}
		p, off = p[256:], off+256
	}
	if _, err := c.raw.f.WriteAt(p, off); err != nil {
		return fileErr(c.raw.path, fmt.Sprintf("writing at %d", off), err)
	}
	return nil
}

func (c commitBase) flush() error {
	if c.im != nil {
		return c.im.Flush()
	}
	if err := c.raw.f.Sync(); err != nil {
		return fileErr(c.raw.path, "flush", err)
	}
	return nil
}

// emptyLocked drops every mapping of the image: afterwards it reads all
// of its guest bytes through its backing file. mu is held exclusively.
//
// Ordering: pending metadata is written back first; then the whole L1
// table is written as zeros and synced, and only then is the file cut
// back to the end of the L1 table (and synced), dropping every L2 table
// and data cluster. A crash before the truncate leaves leaks; a truncate
// that became durable before the zeroed L1 would leave L1 entries past
// the end of the file.
func (im *Image) emptyLocked() error {
	if err := im.flushMetaLocked(); err != nil {
		return err
	}
	// A whole L1 table is written whole, as zeros. Of a big one (paged,
	// table.go) only the pages that held entries are: the others are
	// zeros in memory, and the writeback above made the file's L1 equal
	// to the in-memory one, so they are zeros in the file too. Either
	// way the file's L1 is all zeros before the Sync below, and a crash
	// in between leaves some entries dropped and the rest pointing at
	// tables and clusters the truncate has not dropped yet.
	var written []uint64
	if !im.l1.whole() {
		im.l1.nonZeroPages(func(base uint64, _ []uint64) { written = append(written, base) })
	}
	im.l1.zero()
	if im.l1.whole() {
		written = append(written, 0)
	}
	for _, base := range written {
		// A page's entries: the whole table when it is one page (up to
		// 8192 entries, not pageEntries).
		if err := im.writeTableLocked(im.hdr.L1TableOffset, &im.l1, base, im.l1.pageLen(base>>im.l1.shift)); err != nil {
			return err
		}
	}
	if err := im.f.Sync(); err != nil {
		return fileErr(im.path, "flush after emptying the L1 table", err)
	}
	im.cache.drain()
	end := max(im.hdr.L1TableOffset+im.geo.tableBytes, im.geo.headerBytes)
	if end < im.fileSize {
		if err := im.f.Truncate(int64(end)); err != nil {
			return fileErr(im.path, "dropping the emptied clusters", err)
		}
		if err := im.f.Sync(); err != nil {
			return fileErr(im.path, "flush after dropping the emptied clusters", err)
		}
		im.fileSize = end
		im.openLen = min(im.openLen, end)
	}
	return nil
}
