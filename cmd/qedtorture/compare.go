package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/qedtorture/qedtorture/impl/qed"
	"github.com/spf13/cobra"
)

// Exit codes of compare, as qemu-img's.
const (
	exitCompareDiffer = 1
	exitCompareError  = 2
)

// compareChunk bounds one read of each image.
const compareChunk = 1 << 20

func newCompareCommand(e *env) *cobra.Command {
	var (
		fmt1, fmt2, srcCache    string
		prog, quiet, strict, fs bool
	)
	cmd := &cobra.Command{
		Use:   "compare [-f FMT] [-F FMT] [-p] [-q] [-s] [-U] IMG1 IMG2",
		Short: "Compare the guest contents of two images (qemu-img's exit codes)",
		Long: `Compare what a guest reads from IMG1 and IMG2 (raw or QED, each with its whole
backing chain; formats probed unless -f/-F give them). Images of different
sizes are identical when the longer one reads zeros past the shorter one's end
("Warning: Image size mismatch!"). -s (strict) also fails on a size mismatch
and where the block status differs (what map --output json shows: present
anywhere in the chain, zero, data, mapped to an offset; a raw file's holes are
present zeros), as qemu-img does. The first difference is reported as the offset
of its 512-byte sector, as qemu-img does. -p shows progress as qemu-img does;
-q prints nothing. Both images and their chains are locked read-only while
they are read (-U: even while another process writes them).

Exit status: 0 identical, 1 different, 2 an error.`,
		Example: `  qedtorture compare disk.qed disk.raw
  qedtorture compare -s -q a.qed b.qed && echo same`,
		Args: argsBetween(2, 2, "IMG1 IMG2"),
		RunE: func(cmd *cobra.Command, args []string) error {
			for _, f := range []struct{ flag, v string }{{"format (-f)", fmt1}, {"format (-F)", fmt2}} {
				if f.v != "" {
					if err := checkFormat(cmd, f.flag, f.v, "raw", "qed"); err != nil {
						return err
					}
				}
			}
			if err := checkCache(cmd, "-T", srcCache); err != nil {
				return err
			}
			code, err := compareImages(e, args[0], fmt1, args[1], fmt2, strict, quiet, prog, fs)
			if err != nil {
				return withCode(exitCompareError, err)
			}
			if code != exitOK {
				return &exitError{code: code}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&fmt1, "format", "f", "", "format of IMG1: raw or qed (default: probed)")
	f.StringVarP(&fmt2, "second-format", "F", "", "format of IMG2: raw or qed (default: probed)")
	f.StringVarP(&srcCache, "source-cache", "T", "", "cache mode of the images (accepted for compatibility; reads always go through the page cache)")
	f.BoolVarP(&prog, "progress", "p", false, "show progress")
	f.BoolVarP(&quiet, "quiet", "q", false, "print nothing")
	f.BoolVarP(&strict, "strict", "s", false, "also fail on a size or allocation mismatch")
	f.BoolVarP(&fs, "force-share", "U", false, "read the images even while another process writes them (no consistency guarantee)")
	return cmd
}

// imageView is an opened image for reading as a guest would, with the
// block status of its ranges as qemu-img's strict compare sees it.
type imageView struct {
	*source
	format string       // "raw" or "qed"
	status []statusSpan // sorted, contiguous from 0: the block status
}

// statusSpan is the block status of the guest bytes [start, end): the
// flags of qemu-img map's JSON (present, zero, data, and whether an offset
// is given). Strict compare requires equal flags; a range not present
// anywhere in the chain reads zeros.
type statusSpan struct {
	start, end int64
	st         blockStatus
}

type blockStatus struct{ present, zero, data, offset bool }

// openView opens path (format probed when "") with its chain, read-only.
// A raw image's size is rounded up to 512 bytes, as QEMU sees it (the
// tail reads zeros).
func openView(e *env, path, format string, share bool) (*imageView, error) {
	if format == "" {
		var err error
		if format, err = probeFormat(e.fs, path); err != nil {
			return nil, fileError(path, err)
		}
	}
	src, err := openSource(e, path, format, share)
	if err != nil {
		return nil, fileError(path, err)
	}
	v := &imageView{source: src, format: format}
	add := func(start, end int64, st blockStatus) {
		if n := len(v.status); n > 0 && v.status[n-1].end == start && v.status[n-1].st == st {
			v.status[n-1].end = end
			return
		}
		v.status = append(v.status, statusSpan{start, end, st})
	}
	if format == "raw" {
		size, ext, err := rawExtents(e, path, share)
		if err != nil {
			src.closer()
			return nil, fileError(path, err)
		}
		for _, x := range ext {
			add(x.Start, x.Start+x.Length, blockStatus{present: true, data: x.Kind == qed.ExtentData, zero: x.Kind != qed.ExtentData, offset: true})
		}
		src.size = round512(size)
		if size < src.size {
			add(size, src.size, blockStatus{present: true, zero: true, offset: true})
		}
		return v, nil
	}
	chain, err := openChain(e, path, share)
	if err != nil {
		src.closer()
		return nil, fail(err)
	}
	resolveRange(chain, 0, 0, src.size, func(m mapEntry) {
		add(m.Start, m.Start+m.Length, blockStatus{m.Present, m.Zero, m.Data, m.Offset != nil})
	})
	return v, nil
}

// statusAt returns the block status at off and where it ends (at most
// limit).
func (v *imageView) statusAt(off, limit int64) (blockStatus, int64) {
	for _, s := range v.status {
		if off < s.end && off >= s.start {
			return s.st, min(s.end, limit)
		}
	}
	return blockStatus{zero: true}, limit
}

// compareImages compares two images as qemu-img compare does and returns
// exitOK or exitCompareDiffer (printing the verdict), or an error.
func compareImages(e *env, p1, f1, p2, f2 string, strict, quiet, prog, share bool) (int, error) {
	a, err := openView(e, p1, f1, share)
	if err != nil {
		return 0, err
	}
	defer a.closer()
	b, err := openView(e, p2, f2, share)
	if err != nil {
		return 0, err
	}
	defer b.closer()
	say := func(format string, args ...any) {
		if !quiet {
			fmt.Fprintf(e.stdout, format, args...)
		}
	}
	pr := newProgress(e.stdout, prog && !quiet, 2)
	defer pr.end()
	if strict && a.size != b.size {
		say("Strict mode: Image size mismatch!\n")
		return exitCompareDiffer, nil
	}
	common, total := min(a.size, b.size), max(a.size, b.size)
	buf1, buf2 := make([]byte, compareChunk), make([]byte, compareChunk)
	for off := int64(0); off < common; {
		st1, end1 := a.statusAt(off, common)
		st2, end2 := b.statusAt(off, common)
		end := min(end1, end2)
		if strict && st1 != st2 {
			say("Strict mode: Offset %d block status mismatch!\n", off)
			return exitCompareDiffer, nil
		}
		if st1.present || st2.present {
			for o := off; o < end; {
				n := min(int64(compareChunk), end-o)
				if err := readFull(a, p1, buf1[:n], o); err != nil {
					return 0, err
				}
				if err := readFull(b, p2, buf2[:n], o); err != nil {
					return 0, err
				}
				if d := firstDiffSector(buf1[:n], buf2[:n]); d >= 0 {
					say("Content mismatch at offset %d!\n", o+d)
					return exitCompareDiffer, nil
				}
				o += n
				pr.bytes(o, total)
			}
		}
		off = end
		pr.bytes(off, total)
	}
	if a.size != b.size {
		say("Warning: Image size mismatch!\n")
		long, name := a, p1
		if b.size > a.size {
			long, name = b, p2
		}
		for off := common; off < total; {
			st, end := long.statusAt(off, total)
			if st.present {
				for o := off; o < end; {
					n := min(int64(compareChunk), end-o)
					if err := readFull(long, name, buf1[:n], o); err != nil {
						return 0, err
					}
					if d := firstDiffSector(buf1[:n], nil); d >= 0 {
						say("Content mismatch at offset %d!\n", o+d)
						return exitCompareDiffer, nil
					}
					o += n
					pr.bytes(o, total)
				}
			}
			off = end
			pr.bytes(off, total)
		}
	}
	pr.set(100)
	say("Images are identical.\n")
	return exitOK, nil
}

// readFull reads len(p) guest bytes at off (a raw file's short tail reads
// as zeros).
func readFull(v *imageView, name string, p []byte, off int64) error {
	n, err := v.r.ReadAt(p, off)
	if err != nil && !errors.Is(err, io.EOF) {
		return fileError(name, fmt.Errorf("read at %d: %w", off, unwrapPath(err)))
	}
	clear(p[n:])
	return nil
}

// firstDiffSector returns the offset of the first 512-byte sector (from
// the start of a) in which a and b differ (b nil: zeros), or -1.
func firstDiffSector(a, b []byte) int64 {
	for s := 0; s < len(a); s += 512 {
		end := min(s+512, len(a))
		if b == nil {
			if !isZero(a[s:end]) {
				return int64(s)
			}
		} else if string(a[s:end]) != string(b[s:end]) {
			return int64(s)
		}
	}
	return -1
}

// checkCache validates a qemu-img cache mode (-t, -T); "" is the default.
func checkCache(cmd *cobra.Command, flag, v string) error {
	switch v {
	case "", "none", "writeback", "writethrough", "directsync", "unsafe":
		return nil
	}
	return usagef(cmd, "invalid cache mode %s %q: want none, writeback, writethrough, directsync or unsafe", flag, v)
}

// withCode returns err as a failure with exit code code, keeping its one
// line.
func withCode(code int, err error) error {
	var ee *exitError
	if errors.As(err, &ee) {
		return &exitError{code: code, err: ee.err}
	}
	return &exitError{code: code, err: err}
}
