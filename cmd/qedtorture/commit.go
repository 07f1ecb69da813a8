package main

import (
	"errors"
	"fmt"

	"github.com/qedtorture/qedtorture/impl/qed"
	"github.com/spf13/cobra"
)

func newCommitCommand(e *env) *cobra.Command {
	var (
		format, base, cache string
		drop, prog, quiet   bool
	)
	cmd := &cobra.Command{
		Use:   "commit [-f qed] [-b BASE] [-d] [-p] [-q] IMG",
		Short: "Write a QED image's data into its backing file",
		Long: `Write every guest range that IMG allocates (data or zero clusters) into its
backing file, which grows to IMG's size if it is shorter, then empty IMG so
that it reads everything through the backing file (-d: leave IMG as it is).
With -b BASE, commit into BASE, a deeper file of IMG's backing chain (named as
a path; compared by identity), writing what IMG and every image between them
allocate; the images in between no longer read what they read before, and -b
implies -d, as with qemu-img. The backing file may be raw or QED. -p shows
progress as qemu-img does; prints "Image committed." (-q: nothing).

QEMU 7.2 cannot empty a QED image and leaves IMG untouched even without -d;
qedtorture empties it, as qemu-img's documentation says commit does.

IMG is locked read-write when it is emptied (else read-only), the base
read-write, the files between read-only: the command fails, changing nothing,
while another process has the base open (a VM running on an overlay of it
included). Crash safe: what IMG reads never changes; a crash leaves each
committed range of the base old or new (docs/format.md, "Changing the backing
file, committing, resizing").`,
		Example: `  qedtorture commit overlay.qed
  qedtorture commit -b base.qed -p top.qed`,
		Args: argsBetween(1, 1, "IMG"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkFormat(cmd, "format (-f)", format, "qed"); err != nil {
				return err
			}
			if err := checkCache(cmd, "-t", cache); err != nil {
				return err
			}
			img := args[0]
			pr := newProgress(e.stdout, prog && !quiet, 1)
			err := qed.Commit(e.fs, img, qed.CommitOptions{
				Open: qed.OpenOptions{IdleClearDelay: -1}, Base: base, Drop: drop, Progress: pr.bytes,
			})
			pr.end()
			if err != nil {
				if errors.Is(err, qed.ErrInvalidOption) {
					return fail(err)
				}
				return fileError(img, err)
			}
			if !quiet {
				fmt.Fprintln(e.stdout, "Image committed.")
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&format, "format", "f", "qed", "image format (only qed)")
	f.StringVarP(&base, "base", "b", "", "the file of the backing chain to commit into (default: the backing file)")
	f.StringVarP(&cache, "cache", "t", "", "cache mode (accepted for compatibility; the commit syncs before it returns)")
	f.BoolVarP(&drop, "drop", "d", false, "do not empty IMG after the commit")
	f.BoolVarP(&prog, "progress", "p", false, "show progress")
	f.BoolVarP(&quiet, "quiet", "q", false, "print nothing on success")
	return cmd
}
