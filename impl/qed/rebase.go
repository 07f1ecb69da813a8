package qed

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/qedtorture/qedtorture/internal/imagelock"
	"github.com/spf13/afero"
)

// Changing the backing file: SetBacking (what `qemu-img rebase -u` does:
// the header alone) and Rebase (the safe rebase: first copy into the image
// every cluster whose guest data would change, then the header).
//
// Crash safety. The guest view of the image is the old one (old backing
// file) until the header names the new backing file, and the new one
// after; a crash at any moment must leave one of the two, whole:
//
//   - The header rewrite (setBackingLocked) never overwrites the bytes of
//     the old name. The new name is written into free bytes of the header
//     clusters and synced first; only then are the 64 header fields
//     (which point at the name) written, in one write inside sector 0,
//     and synced. A crash before the field write leaves the old fields
//     and the old name intact; after it, the new fields point at a
//     durable new name. A name that would share sector 0 with the fields
//     and overlap the old name instead goes out with the fields in one
//     write of at most 512 bytes, which a sector-atomic disk applies
//     whole. A field write that fails (a short write stores a prefix:
//     new features over the old name's offset) is undone: the bytes it
//     covered are written back and synced before the error returns.
//     QEMU 7.2 writes fields and name in one request from offset 0: a
//     longer name spans sectors, and a torn write can leave the new
//     fields with a name that is part old, part new (docs/format.md,
//     "Changing the backing file").
//   - The safe rebase's copies are ordinary allocating writes (and
//     zero-cluster marks) under the image's old backing file, so they
//     follow the write paths' ordering; every copy holds what the old
//     view reads there, so the old view never changes. They are all made
//     durable (flushMetaLocked) before the header rewrite starts, so the
//     header never names the new backing file while a copy is missing.

// SetBacking rewrites the backing file name and format of the image at
// path, as `qemu-img rebase -u` does: the guest data is not looked at, and
// neither the old nor the new backing file needs to exist. name "" removes
// the backing file. format is "", "qed" (probed by readers) or "raw" (sets
// BACKING_FORMAT_NO_PROBE). The image is locked read-write (opts.NoLock
// skips the lock); the header is validated as an open validates it, and an
// image with compat features this package does not know is refused, as
// QEMU refuses it (the bytes after the header fields may then be theirs).
// The rewrite is crash safe: see above.
func SetBacking(fs afero.Fs, path, name, format string, opts OpenOptions) error {
	if err := checkBackingArgs(name, format); err != nil {
		return fileErr(path, "", err)
	}
	if err := refuseSelfBacking(fs, path, name); err != nil {
		return err
	}
	f, err := fs.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return fileErr(path, "", err)
	}
	defer f.Close()
	if err := lockFile(f, path, imagelock.ReadWrite, opts.NoLock); err != nil {
		return fileErr(path, "", err)
	}
	h, _, err := readHeader(f)
	if err != nil {
		return fileErr(path, "", err)
	}
	if err := setBackingLocked(f, &h, name, format); err != nil {
		return fileErr(path, "changing the backing file", err)
	}
	return nil
}

func checkBackingArgs(name, format string) error {
	switch format {
	case "", "qed", "raw":
	default:
		return fmt.Errorf("%w: backing format %q: want qed or raw", ErrInvalidOption, format)
	}
	if name == "" && format != "" {
		return fmt.Errorf("%w: backing format %q without a backing file", ErrInvalidOption, format)
	}
	if len(name) > MaxBackingFilenameSize {
		return fmt.Errorf("%w: backing file name of %d bytes is longer than %d", ErrInvalidOption, len(name), MaxBackingFilenameSize)
	}
	return nil
}

// nameSlot decides where setBackingLocked writes a new backing name of n
// bytes in an image whose header is h: at an offset whose bytes the old
// name does not use (sector0 false), or with the fields in one write
// inside sector 0 (sector0 true); else an error. It also refuses an image
// with unknown compat features, as QEMU does: the bytes after the header
// fields may then hold their data.
func nameSlot(h *Header, n uint64) (at uint64, sector0 bool, err error) {
	if h.CompatFeatures&^KnownCompatFeatures != 0 {
		return 0, false, fmt.Errorf("%w: compat features %#x: the bytes after the header fields may hold data this implementation does not know", ErrUnsupportedFeature, h.CompatFeatures)
	}
	if n == 0 {
		return HeaderFieldsSize, false, nil
	}
	hdrBytes := uint64(h.HeaderSize) * uint64(h.ClusterSize)
	// The old name's bytes [oLo, oHi) must survive until the fields stop
	// pointing at them.
	var oLo, oHi uint64
	if h.Features&FeatureBackingFile != 0 {
		oLo, oHi = uint64(h.BackingFilenameOffset), uint64(h.BackingFilenameOffset)+uint64(h.BackingFilenameSize)
	}
	free := func(at uint64) bool { return at+n <= hdrBytes && (at+n <= oLo || at >= oHi) }
	switch {
	case free(HeaderFieldsSize):
		return HeaderFieldsSize, false, nil
	case free(max(oHi, HeaderFieldsSize)):
		return max(oHi, HeaderFieldsSize), false, nil
	case HeaderFieldsSize+n <= SectorSize:
		return HeaderFieldsSize, true, nil
	}
	return 0, false, fmt.Errorf("%w: no room for a %d-byte backing name beside the old one (%d bytes) in the %d-byte header: a crash-safe rewrite keeps both until the header switches; rebase to a short name first", ErrInvalidOption, n, oHi-oLo, hdrBytes)
}

// setBackingLocked writes the header of f (currently h) naming backing
// file name with format, in the crash-safe order described at the top of
// this file, and updates h. The caller holds the file exclusively.
func setBackingLocked(f afero.File, h *Header, name, format string) error {
	n := uint64(len(name))
	at, sector0, err := nameSlot(h, n)
	if err != nil {
		return err
	}
	nh := *h
	nh.Features &^= FeatureBackingFile | FeatureBackingNoProbe
	nh.BackingFilenameOffset, nh.BackingFilenameSize, nh.BackingFilename = uint32(at), uint32(n), name
	if name != "" {
		nh.Features |= FeatureBackingFile
		if format == "raw" {
			nh.Features |= FeatureBackingNoProbe
		}
	}
	var buf []byte
	if defect(DefectSetBackingOneWrite) {
		// The seeded defect: fields and name in one write from offset 0,
		// the name right after the fields, over the old one.
		nh.BackingFilenameOffset = HeaderFieldsSize
		buf = make([]byte, HeaderFieldsSize+n)
		copy(buf[HeaderFieldsSize:], name)
		encodeHeader(&nh, buf)
		if _, err := f.WriteAt(buf, 0); err != nil {
			return err
		}
		if err := f.Sync(); err != nil {
			return err
		}
		*h = nh
		return nil
	}
	switch {
	case sector0:
		// Fields and name in one write inside sector 0: atomic.
		buf = make([]byte, HeaderFieldsSize+n)
		copy(buf[HeaderFieldsSize:], name)
	case name != "":
		// 1. The new name, into free header bytes, durable before
		// anything points at it.
		if _, err := f.WriteAt([]byte(name), int64(at)); err != nil {
			return err
		}
		if err := f.Sync(); err != nil {
			return err
		}
		fallthrough
	default:
		buf = make([]byte, HeaderFieldsSize)
	}
	// 2. The fields: one 64-byte write inside sector 0 (with the name in
	// the sector-0 case), then durable. A write that fails may have stored
	// part of it (a short write stores a prefix: new features over the
	// old name's offset and size), so the bytes it covered are put back
	// first, durably, best effort: an error leaves the old header.
	old := make([]byte, len(buf))
	if _, err := f.ReadAt(old, 0); err != nil {
		return err
	}
	encodeHeader(&nh, buf)
	_, err = f.WriteAt(buf, 0)
	if err == nil {
		err = f.Sync()
	}
	if err != nil {
		if _, rerr := f.WriteAt(old, 0); rerr == nil {
			_ = f.Sync() // best effort: the write's error is the one returned
		}
		return err
	}
	*h = nh
	return nil
}

// RebaseOptions configure Rebase.
type RebaseOptions struct {
	// Open configures the opens of the image (writable) and of the old
	// and new backing chains (read-only); its ReadOnly and ForceShare are
	// ignored for the image itself.
	Open OpenOptions
	// ForceShareBacking opens the old and the new backing chains with the
	// force-share locks (qemu-img rebase -U): they are read even while
	// another process writes them, with no consistency guarantee.
	ForceShareBacking bool
	// Progress, when set, is called with the guest bytes compared so far
	// and the image size, at least once at the start and once at the end.
	Progress func(done, total int64)
}

// Rebase changes the backing file of the image at path to name (format
// "", "qed" or "raw"; name "" removes the backing file) without changing
// what the guest reads, as `qemu-img rebase` without -u does: every
// cluster the image does not allocate itself (it reads through to the
// backing file) whose contents differ between the old backing file and
// the new one (zeros past a backing file's end, and without one) first
// gets the old contents copied into the image (a zero cluster where they
// are zeros), then the header is rewritten (SetBacking's rewrite). The old
// and the new backing chains must open. Crash safe: a crash leaves the
// old header (with some copies, which change nothing the guest reads) or
// the new one with every copy; see the top of this file.
func Rebase(fs afero.Fs, path, name, format string, o RebaseOptions) (err error) {
	if err := checkBackingArgs(name, format); err != nil {
		return fileErr(path, "", err)
	}
	if err := refuseSelfBacking(fs, path, name); err != nil {
		return err
	}
	opts := o.Open
	opts.ReadOnly, opts.ForceShare = false, false
	opts.shareChain = o.ForceShareBacking
	im, err := Open(fs, path, opts)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := im.Close(); err == nil && cerr != nil {
			err = cerr
		}
	}()
	var nb backingFile
	if name != "" {
		h := Header{Features: FeatureBackingFile, BackingFilename: name}
		if format == "raw" {
			h.Features |= FeatureBackingNoProbe
		}
		// The new chain may share files with the old one (rebasing onto
		// a deeper file of it): both are read-only opens, which coexist.
		// It must not contain the image itself.
		ch := &chain{visited: map[string]bool{filepath.Clean(path): true}, maxDepth: DefaultMaxBackingDepth}
		if opts.MaxBackingDepth > 0 {
			ch.maxDepth = opts.MaxBackingDepth
		}
		bo := opts
		bo.ReadOnly, bo.ForceShare = true, o.ForceShareBacking
		nb, err = openBacking(fs, path, &h, ch, bo)
		if err != nil {
			return err
		}
		defer nb.close()
	}
	im.mu.Lock()
	defer im.mu.Unlock()
	if err := im.checkWriteLocked(0, 0); err != nil {
		return err
	}
	// Refuse what the header rewrite would refuse before copying anything.
	if _, _, err := nameSlot(&im.hdr, uint64(len(name))); err != nil {
		return fileErr(path, "changing the backing file", err)
	}
	if defect(DefectRebaseHeaderBeforeCopies) {
		// The seeded defect: the header first, the copies after.
		h := im.hdr
		if err := setBackingLocked(im.f, &h, name, format); err != nil {
			return fileErr(path, "changing the backing file", err)
		}
		im.hdr = h
	}
	if err := im.rebaseCopyLocked(nb, o.Progress); err != nil {
		return err
	}
	if defect(DefectRebaseHeaderBeforeCopies) {
		return im.flushMetaLocked()
	}
	// Every copy and its mapping durable before the header names the new
	// backing file.
	if err := im.flushMetaLocked(); err != nil {
		return err
	}
	h := im.hdr
	if err := setBackingLocked(im.f, &h, name, format); err != nil {
		return fileErr(path, "changing the backing file", err)
	}
	im.hdr = h
	return nil
}

// rebaseCopyLocked copies into the image, cluster by cluster, what the
// old view reads wherever the image does not allocate the cluster and the
// old and new backing files (nb, nil for none) differ. mu is held
// exclusively.
func (im *Image) rebaseCopyLocked(nb backingFile, progress func(done, total int64)) error {
	g := &im.geo
	size := im.hdr.ImageSize
	report := func(done uint64) {
		if progress != nil {
			progress(int64(done), int64(size))
		}
	}
	report(0)
	oldBuf := make([]byte, g.clusterSize)
	newBuf := make([]byte, g.clusterSize)
	for cur := uint64(0); cur < size; {
		r, err := im.lookupLocked(cur, g.clustersSpanned(cur, size-cur))
		if err != nil {
			return err
		}
		k := min(r.n*g.clusterSize, size-cur)
		if r.kind == ExtentUnallocated {
			for c := cur; c < cur+k; c += g.clusterSize {
				n := min(g.clusterSize, size-c)
				ob, nbuf := oldBuf[:n], newBuf[:n]
				if err := im.readBacking(ob, c); err != nil {
					return err
				}
				if nb == nil {
					clear(nbuf)
				} else if err := nb.readAt(nbuf, int64(c)); err != nil {
					return err
				}
				if string(ob) == string(nbuf) {
					continue
				}
				if allZero(ob) {
					err = im.zeroMarkLocked(c, 1)
				} else {
					err = im.writeLocked(ob, c)
				}
				if err != nil {
					return err
				}
			}
		}
		cur += k
		report(cur)
	}
	return nil
}
