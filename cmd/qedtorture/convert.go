package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/qedtorture/qedtorture/impl/qed"
	"github.com/qedtorture/qedtorture/internal/atomicfile"
	"github.com/qedtorture/qedtorture/internal/imagelock"
	"github.com/spf13/cobra"
)

// convertChunk is how much of the source one read covers.
const convertChunk = 1 << 20

// rawGranule is the zero-detection unit for raw output: a block of zeros
// this large is left as a hole.
const rawGranule = 4096

func newConvertCommand(e *env) *cobra.Command {
	var (
		srcFmt, dstFmt, backing, backingFmt string
		cache, srcCache, sparseArg          string
		opts                                []string
		quiet, share, prog, noCreate, tzero bool
	)
	cmd := &cobra.Command{
		Use:   "convert [-f raw|qed] [-O raw|qed] [-o cluster_size=N,table_size=N] [-B BACKING [-F raw|qed]] [-S SIZE] [-n [--target-is-zero]] [-p] [-q] [-U] SRC DST",
		Short: "Copy a disk image to raw or QED, skipping zeros",
		Long: `Copy the guest contents of SRC (raw or QED, with its whole backing chain) into
a new image DST (raw by default, or QED with -O qed). Ranges that read as zeros
are not written: they stay holes in a raw file and unallocated clusters in a
QED image (-S SIZE: only zero runs of at least SIZE bytes, a multiple of 512,
are skipped; default 4K for raw and a cluster for QED; -S 0 writes every
byte). The source format is probed unless -f is given. A raw source whose
length is not a multiple of 512 makes a QED image rounded up to 512 bytes (the
tail reads as zeros). With -B BACKING (-O qed), DST gets BACKING as its
backing file (relative to DST's directory; -F its format) and only the ranges
whose contents differ from BACKING's are written (zeros as zero clusters).
-p shows progress as qemu-img does. -t and -T (cache modes) are accepted for
compatibility; DST is always synced before the command returns.

DST is written under a temporary name in its directory, synced and renamed
into place, so it appears only complete; on any error the temporary is
removed and an existing DST is left as it was (a symlink DST keeps the link
and replaces its target). With -n DST must exist (raw or QED, as -O says, at
least as large as SRC) and is written in place, as qemu-img does: an error
or a crash can leave it partly written. Zeros are written over it, unless
--target-is-zero says it reads zeros already. DST is refused when it is SRC,
any file of SRC's backing chain or BACKING, however named, and when another
process (QEMU included) has it open. SRC and its chain are locked read-only
while they are read; -U (--force-share) reads them even while a writer has
them open.`,
		Example: `  qedtorture convert -O raw disk.qed disk.raw
  qedtorture convert -f raw -O qed -o cluster_size=4K disk.raw disk.qed
  qedtorture convert -O qed -B base.qed -p vm.raw overlay.qed`,
		Args: argsBetween(2, 2, "SRC DST"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkCopyFormats(cmd, srcFmt, dstFmt); err != nil {
				return err
			}
			for _, c := range []struct{ flag, v string }{{"-t", cache}, {"-T", srcCache}} {
				if err := checkCache(cmd, c.flag, c.v); err != nil {
					return err
				}
			}
			o, err := parseOptions(cmd, opts, "cluster_size", "table_size", "backing_file", "backing_fmt")
			if err != nil {
				return err
			}
			cluster, table, err := geometryOptions(cmd, o)
			if err != nil {
				return err
			}
			if err := backingOptions(cmd, o, "-B", &backing, &backingFmt); err != nil {
				return err
			}
			if dstFmt == "raw" && (len(o) > 0 || backing != "") {
				return usagef(cmd, "-o and -B apply only to -O qed")
			}
			if err := checkBackingFormat(cmd, backingFmt, backing, "-B"); err != nil {
				return err
			}
			if tzero && !noCreate {
				return usagef(cmd, "--target-is-zero requires use of -n flag")
			}
			if noCreate && (len(o) > 0 || backing != "") {
				return usagef(cmd, "-n writes into an existing DST: -o and -B do not apply")
			}
			sparse := int64(-1)
			if sparseArg != "" {
				n, err := parseSize("sparse size (-S)", sparseArg)
				if err != nil {
					return &usageError{cmd: cmd.CommandPath(), err: err}
				}
				if n%512 != 0 {
					return usagef(cmd, "invalid sparse size (-S) %q: must be a multiple of 512", sparseArg)
				}
				sparse = n
			}
			src, dst := args[0], args[1]
			if srcFmt == "" {
				if srcFmt, err = probeFormat(e.fs, src); err != nil {
					return fileError(src, err)
				}
			}
			return convert(e, convertJob{src: src, srcFmt: srcFmt, dst: dst, dstFmt: dstFmt,
				cluster: cluster, table: table, quiet: quiet, forceShare: share,
				backing: backing, backingFmt: backingFmt, sparse: sparse, noCreate: noCreate, targetZero: tzero,
				progress: prog, length: -1})
		},
	}
	f := cmd.Flags()
	f.StringVarP(&srcFmt, "format", "f", "", "source format: raw or qed (default: probed)")
	f.StringVarP(&dstFmt, "output-format", "O", "raw", "output format: raw or qed")
	f.StringArrayVarP(&opts, "options", "o", nil, "output options for -O qed: cluster_size, table_size, backing_file, backing_fmt")
	f.StringVarP(&backing, "backing", "B", "", "backing file of the output (-O qed)")
	f.StringVarP(&backingFmt, "backing-format", "F", "", "format of the output's backing file: raw or qed")
	f.StringVarP(&sparseArg, "sparse-size", "S", "", "smallest run of zeros left unwritten (multiple of 512; 0: write everything)")
	f.StringVarP(&cache, "cache", "t", "", "cache mode of DST (accepted for compatibility)")
	f.StringVarP(&srcCache, "source-cache", "T", "", "cache mode of SRC (accepted for compatibility)")
	f.BoolVarP(&noCreate, "no-create", "n", false, "write into the existing DST instead of creating it")
	f.BoolVar(&tzero, "target-is-zero", false, "with -n: DST reads zeros already, do not write zeros")
	f.BoolVarP(&prog, "progress", "p", false, "show progress")
	f.BoolVarP(&quiet, "quiet", "q", false, "print nothing on success")
	f.BoolVarP(&share, "force-share", "U", false, "read SRC even while another process writes it (no consistency guarantee)")
	return cmd
}

// source is an opened convert source: guest reads plus, for a QED image
// without a backing file, the extents that need no reading at all.
type source struct {
	r      io.ReaderAt
	size   int64
	skip   []qed.Extent // unallocated/zero extents known to read as zeros
	files  []string     // the source and its backing chain
	closer func() error
}

func openSource(e *env, path, format string, forceShare bool) (*source, error) {
	if format == "raw" {
		f, err := openRaw(e, path, false, forceShare)
		if err != nil {
			return nil, err
		}
		st, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, err
		}
		return &source{r: f, size: st.Size(), files: []string{path}, closer: f.Close}, nil
	}
	im, err := qed.Open(e.fs, path, qed.OpenOptions{ReadOnly: true, ForceShare: forceShare, IdleClearDelay: -1})
	if err != nil {
		return nil, err
	}
	s := &source{r: im, size: im.Size(), files: im.Files(), closer: im.Close}
	if im.Header().Features&qed.FeatureBackingFile == 0 {
		ext, err := im.Map()
		if err != nil {
			im.Close()
			return nil, fmt.Errorf("map: %w", err)
		}
		for _, x := range ext {
			if x.Kind != qed.ExtentData {
				s.skip = append(s.skip, x)
			}
		}
	}
	return s, nil
}

// skipped reports whether [off, off+n) lies inside one known-zero extent.
func (s *source) skipped(off, n int64) bool {
	for _, x := range s.skip {
		if off >= x.Start && off+n <= x.Start+x.Length {
			return true
		}
	}
	return false
}

// convertJob is one convert (or dd): SRC, DST and the output options.
type convertJob struct {
	src, srcFmt, dst, dstFmt string
	cluster, table           uint32
	quiet, forceShare        bool
	backing, backingFmt      string // -B, -F: the output's backing file
	sparse                   int64  // -S: -1 default, 0 write everything
	noCreate, targetZero     bool   // -n, --target-is-zero
	progress                 bool   // -p
	noSummary                bool   // print no "Converted" line (dd)
	offset, length           int64  // the source window (dd); length -1: all
}

// convert copies the guest contents of j.src into j.dst.
//
// Safety, in order: the source and its backing chain are opened (and
// locked read-only) first; j.dst is refused when it is any of their files
// or the output's backing file (device and inode, through symlinks, hard
// links and "..") so that no byte of what is read can be overwritten; an
// existing destination is locked as a writer would lock it (refused while
// anyone has it open) and stays untouched until the end. The output is
// written to a temporary file in the destination's directory, which on
// success is synced and renamed over the destination (then the directory
// is synced: internal/atomicfile), and on any error removed. So the
// destination name holds either what it held before or the complete
// output, never a partial one. With -n (noCreate) the existing
// destination is written in place, as qemu-img does, and synced at the
// end; it is not atomic.
func convert(e *env, j convertJob) (err error) {
	in, err := openSource(e, j.src, j.srcFmt, j.forceShare)
	if err != nil {
		return fileError(j.src, err)
	}
	defer in.closer()
	if j.length >= 0 {
		in.window(j.offset, j.length)
	}
	if err := refuseChainFile(e, j.dst, in.files, "source"); err != nil {
		return err
	}
	var bview *imageView
	if j.backing != "" {
		bpath := resolveBacking(j.dst, j.backing)
		if sameFile(e, j.dst, bpath) {
			return failf("%s: is its own backing file (%s); refusing", j.dst, j.backing)
		}
		if bview, err = openView(e, bpath, j.backingFmt, false); err != nil {
			return failf("%s: backing file %s: %s", j.dst, j.backing, strings.TrimPrefix(err.Error(), bpath+": "))
		}
		defer bview.closer()
		if err := refuseChainFile(e, j.dst, bview.files, "output's backing file"); err != nil {
			return err
		}
	}
	pr := newProgress(e.stdout, j.progress && !j.quiet, 1)
	if j.noSummary {
		j.quiet = true
	}
	defer pr.end()
	var written int64
	if j.noCreate {
		written, err = convertInto(e, in, j, pr)
	} else {
		final, perm, derr := destination(j.dst)
		if derr != nil {
			return fileError(j.dst, derr)
		}
		if _, err := os.Stat(final); err == nil {
			// Held until the output replaced it: no other user loses it
			// under them, and no one opens it meanwhile. Opened for writing,
			// as qemu-img would open it: a file we may not write is refused
			// (permission denied), not replaced.
			old, err := e.fs.OpenFile(final, os.O_RDWR, 0)
			if err != nil {
				return fileError(j.dst, err)
			}
			defer old.Close()
			if err := qed.LockFile(old, j.dst, imagelock.ReadWrite); err != nil {
				return fail(err)
			}
		}
		if j.dstFmt == "raw" {
			written, err = convertToRaw(in, j, final, perm, pr)
		} else {
			written, err = convertToQED(e, in, j, final, perm, bview, pr)
		}
	}
	if err != nil {
		return err
	}
	pr.set(100)
	if !j.quiet && !j.progress {
		fmt.Fprintf(e.stdout, "Converted '%s' (%s) to '%s' (%s): %d bytes, %d written\n", j.src, j.srcFmt, j.dst, j.dstFmt, in.size, written)
	}
	return nil
}

// window restricts the source to its bytes [off, off+n) (clipped to its
// size), read from offset 0 on.
func (s *source) window(off, n int64) {
	off = min(off, s.size)
	n = min(n, s.size-off)
	s.r = io.NewSectionReader(s.r, off, n)
	s.size = n
	var skip []qed.Extent
	for _, x := range s.skip {
		if st, en := max(x.Start, off), min(x.Start+x.Length, off+n); st < en {
			skip = append(skip, qed.Extent{Start: st - off, Length: en - st, Kind: x.Kind})
		}
	}
	s.skip = skip
}

// convertInto is convert -n: it writes into the existing DST in place.
func convertInto(e *env, in *source, j convertJob, pr *progress) (int64, error) {
	if j.dstFmt == "raw" {
		f, err := openRaw(e, j.dst, true, false)
		if err != nil {
			return 0, fileError(j.dst, err)
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil {
			return 0, fileError(j.dst, err)
		}
		if st.Size() < in.size {
			return 0, failf("%s: target is %d bytes, smaller than the source (%d)", j.dst, st.Size(), in.size)
		}
		written, err := copyGuest(in, j, guestWriter{w: f}, rawGranule, nil, pr)
		if err != nil {
			return 0, outputError(j.dst, j.dst, err)
		}
		return written, fileError(j.dst, f.Sync())
	}
	im, err := qed.Open(e.fs, j.dst, qed.OpenOptions{IdleClearDelay: -1})
	if err != nil {
		return 0, fileError(j.dst, err)
	}
	if im.Size() < in.size {
		im.Close()
		return 0, failf("%s: target is %d bytes, smaller than the source (%d)", j.dst, im.Size(), in.size)
	}
	written, err := copyGuest(in, j, guestWriter{w: im, zero: im.WriteZeroes}, int64(im.Header().ClusterSize), nil, pr)
	if cerr := im.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return 0, outputError(j.dst, j.dst, err)
	}
	return written, nil
}

// destination returns the file convert replaces for dst (the target of a
// symlink, so the link is kept) and the mode the output gets (an existing
// file's, else 0644).
func destination(dst string) (string, os.FileMode, error) {
	final := dst
	if st, err := os.Lstat(dst); err == nil && st.Mode()&os.ModeSymlink != 0 {
		t, err := filepath.EvalSymlinks(dst)
		if err != nil {
			return "", 0, fmt.Errorf("symlink to a missing file: %w", unwrapPath(err))
		}
		final = t
	}
	st, err := os.Stat(final)
	switch {
	case err == nil && st.IsDir():
		return "", 0, errors.New("is a directory")
	case err == nil:
		return final, st.Mode().Perm(), nil
	case errors.Is(err, fs.ErrNotExist):
		return final, 0o644, nil
	}
	return "", 0, unwrapPath(err)
}

// convertToRaw writes the output as a raw file through atomicfile.
func convertToRaw(in *source, j convertJob, final string, perm os.FileMode, pr *progress) (int64, error) {
	out, err := atomicfile.Create(final, perm)
	if err != nil {
		return 0, outputError(j.dst, final, err)
	}
	if err := out.Truncate(in.size); err != nil {
		out.Abort()
		return 0, failf("%s: %v", j.dst, unwrapPath(err))
	}
	j.targetZero = true
	written, err := copyGuest(in, j, guestWriter{w: out.File}, rawGranule, nil, pr)
	if err != nil {
		out.Abort()
		return 0, outputError(j.dst, out.TempName(), err)
	}
	if err := out.Commit(); err != nil {
		return 0, outputError(j.dst, final, err)
	}
	return written, nil
}

// convertToQED writes the output as a QED image created by impl/qed under
// a temporary name, then publishes it with atomicfile.CommitPath. With a
// backing file (bview open) the output names it and only what differs
// from it is written.
func convertToQED(e *env, in *source, j convertJob, final string, perm os.FileMode, bview *imageView, pr *progress) (written int64, err error) {
	tmp, err := atomicfile.TempPath(final)
	if err != nil {
		return 0, outputError(j.dst, final, err)
	}
	defer func() {
		if err != nil {
			_ = e.fs.Remove(tmp)
		}
	}()
	qsize := (in.size + 511) &^ 511
	co := qed.CreateOptions{Size: uint64(qsize), ClusterSize: j.cluster, TableSize: j.table, BackingFile: j.backing}
	if j.backing != "" {
		// The format as opened (probed or given); "raw" sets NO_PROBE.
		co.BackingFormat = j.backingFmt
		if co.BackingFormat == "" && bview.format == "raw" {
			co.BackingFormat = "raw"
		}
	}
	if err := qed.Create(e.fs, tmp, co); err != nil {
		return 0, outputError(j.dst, tmp, err)
	}
	if err := os.Chmod(tmp, perm); err != nil {
		return 0, outputError(j.dst, tmp, err)
	}
	im, err := qed.Open(e.fs, tmp, qed.OpenOptions{IdleClearDelay: -1})
	if err != nil {
		return 0, outputError(j.dst, tmp, err)
	}
	j.targetZero = true
	written, err = copyGuest(in, j, guestWriter{w: im, zero: im.WriteZeroes}, int64(im.Header().ClusterSize), bview, pr)
	// Close writes the metadata back and syncs; its error counts too.
	if cerr := im.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return 0, outputError(j.dst, tmp, err)
	}
	if err := atomicfile.CommitPath(tmp, final); err != nil {
		return 0, outputError(j.dst, final, err)
	}
	return written, nil
}

// guestWriter is an output: guest writes, and a write-zeroes where the
// format has one (QED: zero clusters) or nil (zeros are written).
type guestWriter struct {
	w    io.WriterAt
	zero func(off, n int64) error
}

func (g guestWriter) zeroes(off, n int64) error {
	if g.zero != nil {
		return g.zero(off, n)
	}
	zeros := make([]byte, min(n, convertChunk))
	for done := int64(0); done < n; {
		k := min(int64(len(zeros)), n-done)
		if _, err := g.w.WriteAt(zeros[:k], off+done); err != nil {
			return err
		}
		done += k
	}
	return nil
}

// Granule actions of copyGuest.
const (
	actSkip = iota // the output reads these bytes already
	actZero        // write zeros (a write-zeroes where the output has one)
	actData        // write the bytes
)

// copyGuest copies the source's guest bytes to out and returns how many
// bytes it wrote. Per granule (-S, else granule): bytes the output reads
// already are skipped (zeros of a fresh or --target-is-zero output, or
// the backing view's bytes with -B); other zeros are written as
// write-zeroes; everything else as data. With -S 0 every byte is written
// as data. Adjacent granules with the same action go out as one request.
func copyGuest(in *source, j convertJob, out guestWriter, granule int64, bview *imageView, pr *progress) (int64, error) {
	size := in.size
	all := j.sparse == 0
	if j.sparse > 0 {
		granule = j.sparse
	}
	chunk := max(int64(convertChunk), granule)
	chunk -= chunk % granule
	buf := make([]byte, chunk)
	var bbuf []byte
	if bview != nil {
		bbuf = make([]byte, chunk)
	}
	var written int64
	for off := int64(0); off < size; off += chunk {
		n := min(chunk, size-off)
		pr.bytes(off, size)
		if !all && j.targetZero && bview == nil && in.skipped(off, n) {
			continue
		}
		b := buf[:n]
		if _, err := in.r.ReadAt(b, off); err != nil && !errors.Is(err, io.EOF) {
			var fe *qed.FileError
			if errors.As(err, &fe) {
				return written, &readError{fail(err)}
			}
			return written, &readError{failf("%s: read at %d: %v", j.src, off, unwrapPath(err))}
		}
		if bview != nil {
			if err := readFull(bview, j.backing, bbuf[:n], off); err != nil {
				return written, &readError{err}
			}
		}
		action := func(g int64) int {
			s := b[g:min(g+granule, n)]
			switch {
			case all:
				return actData
			case bview != nil && string(s) == string(bbuf[g:min(g+granule, n)]):
				return actSkip
			case isZero(s) && bview == nil && j.targetZero:
				return actSkip
			case isZero(s):
				return actZero
			}
			return actData
		}
		for g := int64(0); g < n; {
			a := action(g)
			runEnd := g + granule
			for runEnd < n && action(runEnd) == a {
				runEnd += granule
			}
			runEnd = min(runEnd, n)
			var err error
			switch a {
			case actZero:
				err = out.zeroes(off+g, runEnd-g)
			case actData:
				_, err = out.w.WriteAt(b[g:runEnd], off+g)
				written += runEnd - g
			}
			if err != nil {
				return written, fmt.Errorf("write at %d: %w", off+g, unwrapPath(err))
			}
			g = runEnd
		}
	}
	pr.bytes(size, size)
	return written, nil
}

// readError marks an error of the source, already naming it.
type readError struct{ err error }

func (r *readError) Error() string { return r.err.Error() }
func (r *readError) Unwrap() error { return r.err }

// outputError names the destination dst once in an error about the output,
// which may name the temporary file tmp instead: impl/qed's errors about tmp
// are renamed to dst, OS errors lose their path.
func outputError(dst, tmp string, err error) error {
	var re *readError
	if errors.As(err, &re) {
		return re.err
	}
	var fe *qed.FileError
	if errors.As(err, &fe) && fe.Path == tmp {
		fe.Path = dst
		return fail(err)
	}
	if errors.As(err, &fe) || atomicfileNamed(err, dst) {
		return fail(err)
	}
	return failf("%s: %v", dst, unwrapPath(err))
}

// atomicfileNamed reports whether err (from internal/atomicfile, which
// names the final path) already starts with the destination.
func atomicfileNamed(err error, dst string) bool {
	return strings.HasPrefix(err.Error(), dst+": ")
}

// unwrapPath drops an error's own path, for messages that name the file
// already.
var unwrapPath = atomicfile.UnwrapPath

func isZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
