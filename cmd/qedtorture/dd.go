package main

import (
	"strings"

	"github.com/spf13/cobra"
)

func newDDCommand(e *env) *cobra.Command {
	var (
		srcFmt, dstFmt string
		share, prog    bool
	)
	cmd := &cobra.Command{
		Use:   "dd [-f raw|qed] [-O raw|qed] [-U] [-p] [bs=SIZE] [count=N] [skip=N] if=SRC of=DST",
		Short: "Copy part of an image into a new one, dd style",
		Long: `Copy COUNT blocks of BS bytes (default 512; suffixes K, M, G) of the guest
contents of SRC (raw or QED with its chain; -f, else probed), after skipping
SKIP blocks, into a new image DST (-O raw, the default, or qed), as qemu-img dd
does; without count=, up to the end of SRC. Zeros are not written (holes,
unallocated clusters).

qemu-img 7.2 counts count= from the start of SRC instead of after skip= (with
skip=1 count=2 it copies one block): qedtorture follows the documented
meaning, COUNT blocks after the skipped ones (docs/findings.md, Q3).

DST is written as convert writes it: under a temporary name, synced and
renamed into place (all or nothing); it is refused when it is SRC or a file
of SRC's backing chain, or open in another process. SRC and its chain are
locked read-only (-U: even while another process writes them). -p shows
progress in qemu-img's format (qemu-img dd has no -p).`,
		Example: `  qedtorture dd if=disk.qed of=first-mib.raw bs=1M count=1
  qedtorture dd -O qed bs=64K skip=16 if=disk.raw of=tail.qed`,
		Args: func(cmd *cobra.Command, args []string) error { return nil },
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkCopyFormats(cmd, srcFmt, dstFmt); err != nil {
				return err
			}
			ops := map[string]string{}
			for _, a := range args {
				k, v, ok := strings.Cut(a, "=")
				switch {
				case !ok || v == "":
					return usagef(cmd, "invalid operand %q: want bs=, count=, skip=, if= or of=", a)
				case k != "bs" && k != "count" && k != "skip" && k != "if" && k != "of":
					return usagef(cmd, "unrecognized operand %q: want bs=, count=, skip=, if= or of=", k)
				}
				if _, dup := ops[k]; dup {
					return usagef(cmd, "operand %s= given twice", k)
				}
				ops[k] = v
			}
			if ops["if"] == "" || ops["of"] == "" {
				return usagef(cmd, "missing if=SRC or of=DST")
			}
			bs := int64(512)
			if v, ok := ops["bs"]; ok {
				n, err := parseSize("bs", v)
				if err != nil || n == 0 {
					return usagef(cmd, "invalid block size bs=%s: want a positive size", v)
				}
				bs = n
			}
			num := func(k string) (int64, bool, error) {
				v, ok := ops[k]
				if !ok {
					return 0, false, nil
				}
				n, err := parseSize(k, v)
				if err != nil {
					return 0, false, usagef(cmd, "invalid %s=%s: want a number of blocks", k, v)
				}
				return n, true, nil
			}
			count, hasCount, err := num("count")
			if err != nil {
				return err
			}
			skip, _, err := num("skip")
			if err != nil {
				return err
			}
			const maxInt = int64(^uint64(0) >> 1)
			if skip > maxInt/bs || (hasCount && count > maxInt/bs) {
				return usagef(cmd, "skip= or count= too large for bs=%d", bs)
			}
			length := int64(-1)
			if hasCount {
				length = count * bs
			}
			src, dst := ops["if"], ops["of"]
			f := srcFmt
			if f == "" {
				if f, err = probeFormat(e.fs, src); err != nil {
					return fileError(src, err)
				}
			}
			if length < 0 {
				length = maxInt - skip*bs
			}
			return convert(e, convertJob{src: src, srcFmt: f, dst: dst, dstFmt: dstFmt,
				noSummary: true, forceShare: share, sparse: -1, progress: prog,
				offset: skip * bs, length: length})
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&srcFmt, "format", "f", "", "source format: raw or qed (default: probed)")
	fl.StringVarP(&dstFmt, "output-format", "O", "raw", "output format: raw or qed")
	fl.BoolVarP(&share, "force-share", "U", false, "read SRC even while another process writes it (no consistency guarantee)")
	fl.BoolVarP(&prog, "progress", "p", false, "show progress")
	return cmd
}
