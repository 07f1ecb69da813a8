package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/qedtorture/qedtorture/impl/qed"
	"github.com/spf13/cobra"
)

// measureJSON mirrors qemu-img measure --output=json.
type measureJSON struct {
	Required       int64 `json:"required"`
	FullyAllocated int64 `json:"fully-allocated"`
}

func newMeasureCommand(e *env) *cobra.Command {
	var (
		output         outputFormat
		outFmt, srcFmt string
		sizeArg        string
		opts           []string
		share          bool
	)
	cmd := &cobra.Command{
		Use:   "measure [--output human|json] [-O raw|qed] [-o cluster_size=N,table_size=N] (--size N | [-f FMT] [-U] IMG)",
		Short: "Show the file size a new image needs",
		Long: `Show how many bytes a new image of format -O (raw by default, or qed) needs:
"required size" for the guest contents of IMG (as convert -O FMT would write
them: only clusters that hold a non-zero byte are allocated, with the L2
tables they need), or for an empty image of --size N; "fully allocated size"
when every cluster and table is allocated. -o sets the QED geometry. QEMU 7.2
cannot measure QED ("Block driver 'qed' does not support size measurement");
for raw the numbers are qemu-img's (the size rounded up to 512 bytes). IMG
and its chain are locked read-only while they are read (-U: even while
another process writes them).`,
		Example: `  qedtorture measure -O qed --size 10G
  qedtorture measure -O qed --output json disk.raw`,
		Args: argsBetween(0, 1, "IMG"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkFormat(cmd, "output format (-O)", outFmt, "raw", "qed"); err != nil {
				return err
			}
			if srcFmt != "" {
				if err := checkFormat(cmd, "format (-f)", srcFmt, "raw", "qed"); err != nil {
					return err
				}
			}
			o, err := parseOptions(cmd, opts, "cluster_size", "table_size")
			if err != nil {
				return err
			}
			cluster, table, err := geometryOptions(cmd, o)
			if err != nil {
				return err
			}
			if outFmt == "raw" && len(o) > 0 {
				return usagef(cmd, "-o cluster_size/table_size apply only to -O qed")
			}
			switch {
			case sizeArg != "" && len(args) > 0:
				return usagef(cmd, "--size N cannot be used together with a filename")
			case sizeArg == "" && len(args) == 0:
				return usagef(cmd, "either --size N or one filename must be specified")
			}
			if cluster == 0 {
				cluster = qed.DefaultClusterSize
			}
			if table == 0 {
				table = qed.DefaultTableSize
			}
			var m measureJSON
			if sizeArg != "" {
				size, err := parseSize("size", sizeArg)
				if err != nil {
					return &usageError{cmd: cmd.CommandPath(), err: err}
				}
				m = measureEmpty(outFmt, size, cluster, table)
			} else if m, err = measureImage(e, args[0], srcFmt, outFmt, cluster, table, share); err != nil {
				return err
			}
			if output.json() {
				return writeJSON(e, m)
			}
			fmt.Fprintf(e.stdout, "required size: %d\nfully allocated size: %d\n", m.Required, m.FullyAllocated)
			return nil
		},
	}
	f := cmd.Flags()
	f.Var(&output, "output", "output format: human or json")
	f.StringVarP(&outFmt, "output-format", "O", "raw", "format of the image to measure for: raw or qed")
	f.StringVarP(&srcFmt, "format", "f", "", "format of IMG: raw or qed (default: probed)")
	f.StringArrayVarP(&opts, "options", "o", nil, "options for -O qed: cluster_size, table_size")
	f.StringVar(&sizeArg, "size", "", "measure an empty image of this size instead of IMG")
	f.BoolVarP(&share, "force-share", "U", false, "read IMG even while another process writes it (no consistency guarantee)")
	return cmd
}

// round512 rounds n up to a multiple of 512, as an image size.
func round512(n int64) int64 { return (n + 511) &^ 511 }

// qedOverhead returns the bytes of the header cluster and L1 table, and of
// one L2 table, of a new QED image with cluster size cs and table size ts.
func qedOverhead(cs, ts uint32) (fixed, l2 int64) {
	return int64(cs) + int64(ts)*int64(cs), int64(ts) * int64(cs)
}

// measureEmpty measures a new, empty image of size bytes.
func measureEmpty(outFmt string, size int64, cs, ts uint32) measureJSON {
	size = round512(size)
	if outFmt == "raw" {
		return measureJSON{size, size}
	}
	fixed, l2 := qedOverhead(cs, ts)
	clusters := (size + int64(cs) - 1) / int64(cs)
	perL2 := int64(ts) * int64(cs) / 8
	tables := (clusters + perL2 - 1) / perL2
	return measureJSON{Required: fixed, FullyAllocated: fixed + tables*l2 + clusters*int64(cs)}
}

// measureImage measures a new image holding the guest contents of img:
// for QED, the clusters convert -O qed would allocate (those holding a
// non-zero byte) and the L2 tables mapping them.
func measureImage(e *env, img, srcFmt, outFmt string, cs, ts uint32, share bool) (measureJSON, error) {
	if srcFmt == "" {
		var err error
		if srcFmt, err = probeFormat(e.fs, img); err != nil {
			return measureJSON{}, fileError(img, err)
		}
	}
	src, err := openSource(e, img, srcFmt, share)
	if err != nil {
		return measureJSON{}, fileError(img, err)
	}
	defer src.closer()
	m := measureEmpty(outFmt, src.size, cs, ts)
	if outFmt == "raw" {
		return m, nil
	}
	size := round512(src.size)
	if uint64(size) > qed.MaxImageSize(cs, ts) {
		return measureJSON{}, failf("%s: %d bytes do not fit a QED image with cluster_size %d and table_size %d (at most %d)", img, size, cs, ts, qed.MaxImageSize(cs, ts))
	}
	_, l2 := qedOverhead(cs, ts)
	l1Span := int64(ts) * int64(cs) / 8 * int64(cs)
	buf := make([]byte, cs)
	lastTable := int64(-1)
	for off := int64(0); off < src.size; off += int64(cs) {
		n := min(int64(cs), src.size-off)
		if src.skipped(off, n) {
			continue
		}
		b := buf[:n]
		if _, err := src.r.ReadAt(b, off); err != nil && !(errors.Is(err, io.EOF) && srcFmt == "raw") {
			return measureJSON{}, fileError(img, err)
		}
		if isZero(b) {
			continue
		}
		m.Required += int64(cs)
		if t := off / l1Span; t != lastTable {
			m.Required += l2
			lastTable = t
		}
	}
	return m, nil
}
