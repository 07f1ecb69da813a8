package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/qedtorture/qedtorture/impl/qed"
	"github.com/spf13/cobra"
)

func newResizeCommand(e *env) *cobra.Command {
	var (
		format, prealloc string
		quiet, shrink    bool
	)
	cmd := &cobra.Command{
		Use:   "resize [-f qed|raw] [--shrink] [-q] IMG [+|-]SIZE",
		Short: "Grow a QED image (or resize a raw one)",
		Long: `Set the guest size of IMG to SIZE, or grow (+SIZE) or shrink (-SIZE) it by that
much (suffixes K, M, G, T). A QED image only grows: a smaller size is refused,
as QEMU refuses it ("Use the --shrink option", and with --shrink "Shrinking
images is currently not supported"). The grown part reads zeros, also over a
backing file longer than the old size (the specification's rule; QEMU 7.2
refuses that grow instead: docs/findings.md, Q2). A raw file is truncated to
SIZE (a shrink needs --shrink). Prints "Image resized." (-q: nothing).

IMG is locked read-write (the command fails, changing nothing, while any
other process has IMG open). The grow is crash safe (docs/format.md,
"Changing the backing file, committing, resizing").`,
		Example: `  qedtorture resize disk.qed 20G
  qedtorture resize disk.qed +1G`,
		Args: argsBetween(2, 2, "IMG [+|-]SIZE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if format != "" {
				if err := checkFormat(cmd, "format (-f)", format, "qed", "raw"); err != nil {
					return err
				}
			}
			if prealloc != "" && prealloc != "off" {
				return usagef(cmd, "preallocation mode %q is not supported (only off)", prealloc)
			}
			img, arg := args[0], args[1]
			rel := 0
			switch {
			case strings.HasPrefix(arg, "+"):
				rel, arg = 1, arg[1:]
			case strings.HasPrefix(arg, "-"):
				rel, arg = -1, arg[1:]
			}
			n, err := parseSize("size", arg)
			if err != nil {
				return &usageError{cmd: cmd.CommandPath(), err: err}
			}
			if format == "" {
				if format, err = probeFormat(e.fs, img); err != nil {
					return fileError(img, err)
				}
			}
			if format == "raw" {
				err = resizeRaw(e, img, rel, n, shrink)
			} else {
				err = resizeQED(e, img, rel, n, shrink)
			}
			if err != nil {
				return err
			}
			if !quiet {
				fmt.Fprintln(e.stdout, "Image resized.")
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.SetInterspersed(false) // "IMG -1G" is a size, not a flag
	f.StringVarP(&format, "format", "f", "", "image format: qed or raw (default: probed)")
	f.StringVar(&prealloc, "preallocation", "", "preallocation mode (only off)")
	f.BoolVarP(&quiet, "quiet", "q", false, "print nothing on success")
	f.BoolVar(&shrink, "shrink", false, "allow shrinking (raw images only: QED cannot shrink)")
	return cmd
}

// newSize applies a relative or absolute size to cur.
func newSize(cur int64, rel int, n int64) int64 {
	switch rel {
	case 1:
		return cur + n
	case -1:
		return cur - n
	}
	return n
}

func resizeQED(e *env, img string, rel int, n int64, shrink bool) error {
	im, err := qed.Open(e.fs, img, qed.OpenOptions{IdleClearDelay: -1})
	if err != nil {
		return fileError(img, err)
	}
	size := newSize(im.Size(), rel, n)
	switch {
	case size < 0:
		err = failf("%s: Invalid image size specified: %d bytes", img, size)
	case size < im.Size() && !shrink:
		err = failf("%s: Use the --shrink option to perform a shrink operation", img)
	case size < im.Size():
		err = failf("%s: Shrinking images is currently not supported (QED cannot shrink)", img)
	default:
		if rerr := im.Resize(size); rerr != nil {
			if errors.Is(rerr, qed.ErrInvalidOption) {
				err = failf("%s: Invalid image size specified: %v", img, strings.TrimPrefix(rerr.Error(), "qed: invalid option: "))
			} else {
				err = fileError(img, rerr)
			}
		}
	}
	if cerr := im.Close(); err == nil && cerr != nil {
		err = fileError(img, cerr)
	}
	return err
}

func resizeRaw(e *env, img string, rel int, n int64, shrink bool) error {
	f, err := openRaw(e, img, true, false)
	if err != nil {
		return fileError(img, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fileError(img, err)
	}
	size := newSize(st.Size(), rel, n)
	switch {
	case size < 0:
		return failf("%s: Invalid image size specified: %d bytes", img, size)
	case size < st.Size() && !shrink:
		return failf("%s: Use the --shrink option to perform a shrink operation", img)
	}
	if err := f.Truncate(size); err != nil {
		return fileError(img, err)
	}
	return fileError(img, f.Sync())
}
