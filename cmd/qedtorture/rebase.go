package main

import (
	"errors"

	"github.com/qedtorture/qedtorture/impl/qed"
	"github.com/spf13/cobra"
)

func newRebaseCommand(e *env) *cobra.Command {
	var (
		format, backing, backingFmt, cache, srcCache string
		unsafe, prog, quiet, share                   bool
	)
	cmd := &cobra.Command{
		Use:   "rebase [-f qed] [-u] [-p] [-q] [-U] -b BACKING [-F raw|qed] IMG",
		Short: "Change the backing file of a QED image",
		Long: `Make BACKING the backing file of IMG (a path relative to IMG's directory, or
absolute; -b "" removes the backing file). -F raw marks it raw (never probed);
-F qed or no -F lets readers probe it (qemu-img 7.2 refuses a rebase without
-F, "backing format must be specified"; QED itself allows probing).

Safe mode (the default) keeps what the guest reads: every cluster IMG does not
allocate whose contents differ between the old and the new backing file gets
the old contents copied into IMG first; both backing chains must open. -u
(unsafe) only rewrites the header: neither backing file is read, and it works
when the old one is gone (after moving it); the new one must hold the same
data or the guest sees different contents. -p shows progress as qemu-img does.

IMG is locked read-write (the command fails, changing nothing, while any other
process has IMG open); the backing chains read-only (-U: even while another
process writes them). BACKING may not be IMG itself. Both modes are crash
safe: a crash leaves IMG naming the old backing file or the new one, whole,
never a mix of the two names (docs/format.md, "Changing the backing file,
committing, resizing"). A new name that does not fit beside the old one in
the header clusters is refused (rebase to a short name first).`,
		Example: `  qedtorture rebase -b new-base.qed overlay.qed
  qedtorture rebase -u -b /moved/base.raw -F raw overlay.qed`,
		Args: argsBetween(1, 1, "IMG"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkFormat(cmd, "format (-f)", format, "qed"); err != nil {
				return err
			}
			if !cmd.Flags().Changed("backing") {
				return usagef(cmd, "missing -b BACKING (use -b \"\" to remove the backing file)")
			}
			if err := checkBackingFormat(cmd, backingFmt, backing, "-b"); err != nil {
				return err
			}
			for _, c := range []struct{ flag, v string }{{"-t", cache}, {"-T", srcCache}} {
				if err := checkCache(cmd, c.flag, c.v); err != nil {
					return err
				}
			}
			img := args[0]
			var err error
			pr := newProgress(e.stdout, prog && !quiet, 2) // qemu-img rebase's step
			if unsafe {
				if err = qed.SetBacking(e.fs, img, backing, backingFmt, qed.OpenOptions{}); err == nil {
					pr.set(100)
				}
			} else {
				err = qed.Rebase(e.fs, img, backing, backingFmt, qed.RebaseOptions{
					Open:              qed.OpenOptions{IdleClearDelay: -1},
					ForceShareBacking: share,
					Progress:          pr.bytes,
				})
			}
			pr.end()
			if err != nil {
				if errors.Is(err, qed.ErrInvalidOption) || errors.Is(err, qed.ErrBackingLoop) || errors.Is(err, qed.ErrUnsupportedFeature) {
					return fail(err)
				}
				return fileError(img, err)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&format, "format", "f", "qed", "image format (only qed)")
	f.StringVarP(&backing, "backing", "b", "", "the new backing file (\"\": none)")
	f.StringVarP(&backingFmt, "backing-format", "F", "", "format of the new backing file: raw or qed")
	f.StringVarP(&cache, "cache", "t", "", "cache mode of IMG (accepted for compatibility; the rebase syncs before it returns)")
	f.StringVarP(&srcCache, "source-cache", "T", "", "cache mode of the backing files (accepted for compatibility)")
	f.BoolVarP(&unsafe, "unsafe", "u", false, "only rewrite the header; read no backing file")
	f.BoolVarP(&prog, "progress", "p", false, "show progress")
	f.BoolVarP(&quiet, "quiet", "q", false, "print nothing")
	f.BoolVarP(&share, "force-share", "U", false, "read the backing chains even while another process writes them (no consistency guarantee)")
	return cmd
}
