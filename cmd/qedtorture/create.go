package main

import (
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/qedtorture/qedtorture/impl/qed"
	"github.com/spf13/cobra"
)

func newCreateCommand(e *env) *cobra.Command {
	var (
		format, backing, backingFmt string
		opts                        []string
		quiet, unsafe               bool
	)
	cmd := &cobra.Command{
		Use:   "create [-o cluster_size=N,table_size=N] [-b BACKING [-F raw|qed]] IMG [SIZE]",
		Short: "Create a QED image",
		Long: `Create a new QED image IMG of SIZE bytes (suffixes K, M, G, T; a multiple of 512).
With -b the image gets a backing file (a path relative to IMG's directory, or
absolute); -F raw marks it raw (never probed), -F qed or no -F lets readers
probe it. SIZE defaults to the backing file's size. -o takes the same options
as key=value pairs (-o help lists them, as qemu-img does).

An existing IMG is overwritten, but only after taking QEMU's write lock on it:
create fails, changing nothing, while another process (a VM, qemu-io, an
image whose backing file IMG is) has IMG open. IMG may not be its own backing
file, nor a file of the backing file's chain (refused, by any name).`,
		Example: `  qedtorture create disk.qed 10G
  qedtorture create -o cluster_size=4K,table_size=16 small.qed 64M
  qedtorture create -b base.raw -F raw overlay.qed`,
		Args: argsBetween(0, 2, "IMG [SIZE]"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkFormat(cmd, "format (-f)", format, "qed"); err != nil {
				return err
			}
			for _, v := range opts {
				if v == "help" || v == "?" {
					fmt.Fprint(e.stdout, createOptionsHelp)
					return nil
				}
			}
			if len(args) == 0 {
				return usagef(cmd, "%s: missing argument: expected IMG [SIZE]", cmd.Name())
			}
			o, err := parseOptions(cmd, opts, "cluster_size", "table_size", "backing_file", "backing_fmt", "size")
			if err != nil {
				return err
			}
			cluster, table, err := geometryOptions(cmd, o)
			if err != nil {
				return err
			}
			if err := backingOptions(cmd, o, "-b", &backing, &backingFmt); err != nil {
				return err
			}
			if err := checkBackingFormat(cmd, backingFmt, backing, "-b"); err != nil {
				return err
			}
			img := args[0]
			sizeArg := ""
			if len(args) == 2 {
				sizeArg = args[1]
			}
			if v, ok := o["size"]; ok {
				if sizeArg != "" && sizeArg != v {
					return usagef(cmd, "SIZE %q and -o size=%q disagree", sizeArg, v)
				}
				sizeArg = v
			}
			var size int64 = -1
			if sizeArg != "" {
				if size, err = parseImageSize(sizeArg); err != nil {
					return &usageError{cmd: cmd.CommandPath(), err: err}
				}
			} else if backing == "" {
				return usagef(cmd, "missing SIZE (needed without a backing file)")
			}
			if backing != "" && (!unsafe || size < 0) {
				bsize, bfmt, err := backingSize(e, img, backing, backingFmt)
				if err != nil {
					return err
				}
				if size < 0 {
					size = (bsize + 511) &^ 511
				}
				if backingFmt == "" && bfmt == "raw" && !quiet {
					fmt.Fprintf(e.stderr, "qedtorture: warning: backing file %q is probed as raw; use -F raw to make that safe\n", backing)
				}
			}
			co := qed.CreateOptions{
				Size: uint64(size), ClusterSize: cluster, TableSize: table,
				BackingFile: backing, BackingFormat: backingFmt,
			}
			if err := qed.Create(e.fs, img, co); err != nil {
				if errors.Is(err, qed.ErrInvalidOption) {
					return &usageError{cmd: cmd.CommandPath(), err: err}
				}
				return fileError(img, err)
			}
			if !quiet {
				fmt.Fprintf(e.stdout, "Formatting '%s', fmt=qed size=%d%s cluster_size=%s table_size=%s\n",
					img, size, backingDesc(backing, backingFmt), orDefault(cluster, qed.DefaultClusterSize), orDefault(table, qed.DefaultTableSize))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&format, "format", "f", "qed", "image format (only qed)")
	f.StringArrayVarP(&opts, "options", "o", nil, "format options: cluster_size, table_size, backing_file, backing_fmt, size")
	f.StringVarP(&backing, "backing", "b", "", "backing file")
	f.StringVarP(&backingFmt, "backing-format", "F", "", "backing file format: raw or qed")
	f.BoolVarP(&quiet, "quiet", "q", false, "print nothing on success")
	f.BoolVarP(&unsafe, "unsafe", "u", false, "do not open the backing file (SIZE then required)")
	return cmd
}

// backingSize opens the backing file named by img's header-to-be (a QED
// backing file with its whole chain, read-only and locked as QEMU would)
// and returns its guest size and format (given, or probed). It refuses an
// img that is the backing file or any file of its chain: overwriting it
// would destroy data the new image reads.
func backingSize(e *env, img, backing, backingFmt string) (int64, string, error) {
	path := resolveBacking(img, backing)
	bad := func(err error) error {
		return failf("%s: backing file %s: %s", img, backing, strings.TrimPrefix(fileError(path, err).Error(), path+": "))
	}
	fmtName := backingFmt
	if fmtName == "" {
		p, err := probeFormat(e.fs, path)
		if err != nil {
			return 0, "", bad(err)
		}
		fmtName = p
	}
	if fmtName == "qed" {
		im, err := qed.Open(e.fs, path, qed.OpenOptions{ReadOnly: true, IdleClearDelay: -1})
		if err != nil {
			return 0, "", bad(err)
		}
		files, size := im.Files(), im.Size()
		im.Close()
		for i, f := range files {
			if sameFile(e, img, f) {
				if i == 0 {
					return 0, "", failf("%s: is its own backing file (%s); refusing", img, backing)
				}
				as := ""
				if filepath.Clean(f) != filepath.Clean(img) {
					as = " as " + f
				}
				return 0, "", failf("%s: is in the backing chain of %s%s; refusing to overwrite it", img, backing, as)
			}
		}
		return size, "qed", nil
	}
	if sameFile(e, img, path) {
		return 0, "", failf("%s: is its own backing file (%s); refusing", img, backing)
	}
	st, err := e.fs.Stat(path)
	if err != nil {
		return 0, "", bad(err)
	}
	return st.Size(), "raw", nil
}

// createOptionsHelp is what create -o help prints: qemu-img create -f qed
// -o help's list of options, word for word.
const createOptionsHelp = `Supported qed options:
  backing_file=<str>     - File name of a base image
  backing_fmt=<str>      - Image format of the base image
  cluster_size=<size>    - Cluster size (in bytes)
  size=<size>            - Virtual disk size
  table_size=<size>      - L1/L2 table size (in clusters)
`

func backingDesc(backing, backingFmt string) string {
	if backing == "" {
		return ""
	}
	s := " backing_file=" + backing
	if backingFmt != "" {
		s += " backing_fmt=" + backingFmt
	}
	return s
}

func orDefault(v uint32, def int) string {
	if v == 0 {
		return strconv.Itoa(def)
	}
	return strconv.FormatUint(uint64(v), 10)
}
