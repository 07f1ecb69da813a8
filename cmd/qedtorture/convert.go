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
		srcFmt, dstFmt string
		opts           []string
		quiet, share   bool
	)
	cmd := &cobra.Command{
		Use:   "convert [-f raw|qed] [-O raw|qed] [-o cluster_size=N,table_size=N] [-U] SRC DST",
		Short: "Copy a disk image to raw or QED, skipping zeros",
		Long: `Copy the guest contents of SRC (raw or QED, with its whole backing chain) into
a new image DST (raw by default, or QED with -O qed). Ranges that read as zeros
are not written: they stay holes in a raw file and unallocated clusters in a
QED image. The source format is probed unless -f is given. A raw source whose
length is not a multiple of 512 makes a QED image rounded up to 512 bytes (the
tail reads as zeros).

DST is written under a temporary name in its directory, synced and renamed
into place, so it appears only complete; on any error the temporary is
removed and an existing DST is left as it was (a symlink DST keeps the link
and replaces its target). DST is refused when it is SRC or any file of SRC's
backing chain, however named, and when another process (QEMU included) has
it open. SRC and its chain are locked read-only while they are read; -U
(--force-share) reads them even while a writer has them open.`,
		Example: `  qedtorture convert -O raw disk.qed disk.raw
  qedtorture convert -f raw -O qed -o cluster_size=4K disk.raw disk.qed`,
		Args: argsBetween(2, 2, "SRC DST"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if srcFmt != "" {
				if err := checkFormat(cmd, "source format (-f)", srcFmt, "raw", "qed"); err != nil {
					return err
				}
			}
			if err := checkFormat(cmd, "output format (-O)", dstFmt, "raw", "qed"); err != nil {
				return err
			}
			o, err := parseOptions(cmd, opts, "cluster_size", "table_size")
			if err != nil {
				return err
			}
			cluster, table, err := geometryOptions(cmd, o)
			if err != nil {
				return err
			}
			if dstFmt == "raw" && len(o) > 0 {
				return usagef(cmd, "-o cluster_size/table_size apply only to -O qed")
			}
			src, dst := args[0], args[1]
			if srcFmt == "" {
				if srcFmt, err = probeFormat(e.fs, src); err != nil {
					return fileError(src, err)
				}
			}
			return convert(e, convertJob{src: src, srcFmt: srcFmt, dst: dst, dstFmt: dstFmt,
				cluster: cluster, table: table, quiet: quiet, forceShare: share})
		},
	}
	f := cmd.Flags()
	f.StringVarP(&srcFmt, "format", "f", "", "source format: raw or qed (default: probed)")
	f.StringVarP(&dstFmt, "output-format", "O", "raw", "output format: raw or qed")
	f.StringArrayVarP(&opts, "options", "o", nil, "output options for -O qed: cluster_size, table_size")
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

// convertJob is one convert: SRC, DST and the output options.
type convertJob struct {
	src, srcFmt, dst, dstFmt string
	cluster, table           uint32
	quiet, forceShare        bool
}

// convert copies the guest contents of j.src into j.dst.
//
// Safety, in order: the source and its backing chain are opened (and
// locked read-only) first; j.dst is refused when it is any of their files
// (device and inode, through symlinks, hard links and "..") so that no
// byte of what is read can be overwritten; an existing destination is
// locked as a writer would lock it (refused while anyone has it open) and
// stays untouched until the end. The output is written to a temporary file
// in the destination's directory, which on success is synced and renamed
// over the destination (then the directory is synced: internal/atomicfile),
// and on any error removed. So the destination name holds either what it
// held before or the complete output, never a partial one.
func convert(e *env, j convertJob) (err error) {
	in, err := openSource(e, j.src, j.srcFmt, j.forceShare)
	if err != nil {
		return fileError(j.src, err)
	}
	defer in.closer()
	if err := refuseChainFile(e, j.dst, in.files, "source"); err != nil {
		return err
	}
	final, perm, err := destination(j.dst)
	if err != nil {
		return fileError(j.dst, err)
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
	var written int64
	if j.dstFmt == "raw" {
		written, err = convertToRaw(in, j, final, perm)
	} else {
		written, err = convertToQED(e, in, j, final, perm)
	}
	if err != nil {
		return err
	}
	if !j.quiet {
		fmt.Fprintf(e.stdout, "Converted '%s' (%s) to '%s' (%s): %d bytes, %d written\n", j.src, j.srcFmt, j.dst, j.dstFmt, in.size, written)
	}
	return nil
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
func convertToRaw(in *source, j convertJob, final string, perm os.FileMode) (int64, error) {
	out, err := atomicfile.Create(final, perm)
	if err != nil {
		return 0, outputError(j.dst, final, err)
	}
	if err := out.Truncate(in.size); err != nil {
		out.Abort()
		return 0, failf("%s: %v", j.dst, unwrapPath(err))
	}
	written, err := copyGuest(in, j, out.File, rawGranule)
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
// a temporary name, then publishes it with atomicfile.CommitPath.
func convertToQED(e *env, in *source, j convertJob, final string, perm os.FileMode) (written int64, err error) {
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
	if err := qed.Create(e.fs, tmp, qed.CreateOptions{Size: uint64(qsize), ClusterSize: j.cluster, TableSize: j.table}); err != nil {
		return 0, outputError(j.dst, tmp, err)
	}
	if err := os.Chmod(tmp, perm); err != nil {
		return 0, outputError(j.dst, tmp, err)
	}
	im, err := qed.Open(e.fs, tmp, qed.OpenOptions{IdleClearDelay: -1})
	if err != nil {
		return 0, outputError(j.dst, tmp, err)
	}
	written, err = copyGuest(in, j, im, int64(im.Header().ClusterSize))
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

// copyGuest copies the source's guest bytes to out, skipping zero granules,
// and returns how many bytes it wrote.
func copyGuest(in *source, j convertJob, out io.WriterAt, granule int64) (int64, error) {
	size := in.size
	chunk := max(int64(convertChunk), granule)
	buf := make([]byte, chunk)
	var written int64
	for off := int64(0); off < size; off += chunk {
		n := min(chunk, size-off)
		if in.skipped(off, n) {
			continue
		}
		b := buf[:n]
		if _, err := in.r.ReadAt(b, off); err != nil && !(errors.Is(err, io.EOF) && j.srcFmt == "raw") {
			var fe *qed.FileError
			if errors.As(err, &fe) {
				return written, &readError{fail(err)}
			}
			return written, &readError{failf("%s: read at %d: %v", j.src, off, unwrapPath(err))}
		}
		// Write maximal runs of granules that hold a non-zero byte.
		for g := int64(0); g < n; {
			if isZero(b[g:min(g+granule, n)]) {
				g += granule
				continue
			}
			runEnd := g + granule
			for runEnd < n && !isZero(b[runEnd:min(runEnd+granule, n)]) {
				runEnd += granule
			}
			runEnd = min(runEnd, n)
			if _, err := out.WriteAt(b[g:runEnd], off+g); err != nil {
				return written, fmt.Errorf("write at %d: %w", off+g, unwrapPath(err))
			}
			written += runEnd - g
			g = runEnd
		}
	}
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

// unwrapPath drops an *fs.PathError's or *os.LinkError's own path, for
// messages that name the file already.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	var le *os.LinkError
	if errors.As(err, &le) {
		return le.Err
	}
	return err
}

func isZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
