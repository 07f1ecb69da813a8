package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/qedtorture/qedtorture/impl/qed"
	"github.com/spf13/afero"
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
		quiet          bool
	)
	cmd := &cobra.Command{
		Use:   "convert [-f raw|qed] [-O raw|qed] [-o cluster_size=N,table_size=N] SRC DST",
		Short: "Copy a disk image to raw or QED, skipping zeros",
		Long: `Copy the guest contents of SRC (raw or QED, with its whole backing chain) into
a new image DST (raw by default, or QED with -O qed). Ranges that read as zeros
are not written: they stay holes in a raw file and unallocated clusters in a
QED image. The source format is probed unless -f is given; an existing DST is
overwritten. A raw source whose length is not a multiple of 512 makes a QED
image rounded up to 512 bytes (the tail reads as zeros).`,
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
			if sameFile(e, src, dst) {
				return failf("%s: source and destination are the same file", dst)
			}
			if srcFmt == "" {
				if srcFmt, err = probeFormat(e.fs, src); err != nil {
					return failf("%s: %w", src, err)
				}
			}
			return fail(convert(e, src, srcFmt, dst, dstFmt, cluster, table, quiet))
		},
	}
	f := cmd.Flags()
	f.StringVarP(&srcFmt, "format", "f", "", "source format: raw or qed (default: probed)")
	f.StringVarP(&dstFmt, "output-format", "O", "raw", "output format: raw or qed")
	f.StringArrayVarP(&opts, "options", "o", nil, "output options for -O qed: cluster_size, table_size")
	f.BoolVarP(&quiet, "quiet", "q", false, "print nothing on success")
	return cmd
}

func sameFile(e *env, a, b string) bool {
	if filepath.Clean(a) == filepath.Clean(b) {
		return true
	}
	sa, err1 := e.fs.Stat(a)
	sb, err2 := e.fs.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(sa, sb)
}

// source is an opened convert source: guest reads plus, for a QED image
// without a backing file, the extents that need no reading at all.
type source struct {
	r      io.ReaderAt
	size   int64
	skip   []qed.Extent // unallocated/zero extents known to read as zeros
	closer func() error
}

func openSource(e *env, path, format string) (*source, error) {
	if format == "raw" {
		f, err := e.fs.Open(path)
		if err != nil {
			return nil, err
		}
		st, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, err
		}
		return &source{r: f, size: st.Size(), closer: f.Close}, nil
	}
	im, err := qed.Open(e.fs, path, qed.OpenOptions{ReadOnly: true, IdleClearDelay: -1})
	if err != nil {
		return nil, err
	}
	s := &source{r: im, size: im.Size(), closer: im.Close}
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

// sink is a convert destination.
type sink interface {
	io.WriterAt
	Close() error
}

func convert(e *env, src, srcFmt, dst, dstFmt string, cluster, table uint32, quiet bool) (err error) {
	in, err := openSource(e, src, srcFmt)
	if err != nil {
		return fmt.Errorf("%s: %w", src, err)
	}
	defer in.closer()
	size := in.size
	granule := int64(rawGranule)
	var out sink
	if dstFmt == "raw" {
		f, err := e.fs.OpenFile(dst, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
		if err != nil {
			return fmt.Errorf("%s: %w", dst, err)
		}
		if err := f.Truncate(size); err != nil {
			f.Close()
			return fmt.Errorf("%s: %w", dst, err)
		}
		out = syncCloser{f}
	} else {
		qsize := (size + 511) &^ 511
		if err := qed.Create(e.fs, dst, qed.CreateOptions{Size: uint64(qsize), ClusterSize: cluster, TableSize: table}); err != nil {
			return fmt.Errorf("%s: %w", dst, err)
		}
		im, err := qed.Open(e.fs, dst, qed.OpenOptions{})
		if err != nil {
			return fmt.Errorf("%s: %w", dst, err)
		}
		out = im
		granule = int64(im.Header().ClusterSize)
	}
	defer func() {
		if cerr := out.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("%s: %w", dst, cerr)
		}
	}()
	chunk := max(int64(convertChunk), granule)
	buf := make([]byte, chunk)
	var written int64
	for off := int64(0); off < size; off += chunk {
		n := min(chunk, size-off)
		if in.skipped(off, n) {
			continue
		}
		b := buf[:n]
		if _, err := in.r.ReadAt(b, off); err != nil && !(errors.Is(err, io.EOF) && srcFmt == "raw") {
			return fmt.Errorf("%s: read at %d: %w", src, off, err)
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
				return fmt.Errorf("%s: write at %d: %w", dst, off+g, err)
			}
			written += runEnd - g
			g = runEnd
		}
	}
	if !quiet {
		fmt.Fprintf(e.stdout, "Converted '%s' (%s) to '%s' (%s): %d bytes, %d written\n", src, srcFmt, dst, dstFmt, size, written)
	}
	return nil
}

func isZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// syncCloser flushes a raw output file to stable storage before closing.
type syncCloser struct{ afero.File }

func (s syncCloser) Close() error {
	if err := s.File.Sync(); err != nil {
		s.File.Close()
		return err
	}
	return s.File.Close()
}
