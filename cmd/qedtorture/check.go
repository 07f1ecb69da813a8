package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/qedtorture/qedtorture/impl/qed"
	"github.com/qedtorture/qedtorture/internal/imagelock"
	"github.com/spf13/cobra"
)

// Exit codes of check, as qemu-img's.
const (
	exitCheckCorrupt = 2
	exitCheckLeaks   = 3
)

// checkJSON mirrors qemu-img check --output=json (QAPI ImageCheck): counts
// that are zero are left out, the *-fixed counts included (qemu-img 7.2
// prints them only when non-zero, which needs -r).
type checkJSON struct {
	Filename           string   `json:"filename"`
	Format             string   `json:"format"`
	CheckErrors        int64    `json:"check-errors"`
	ImageEndOffset     int64    `json:"image-end-offset,omitempty"`
	Corruptions        int64    `json:"corruptions,omitempty"`
	Leaks              int64    `json:"leaks,omitempty"`
	CorruptionsFixed   int64    `json:"corruptions-fixed,omitempty"`
	LeaksFixed         int64    `json:"leaks-fixed,omitempty"`
	TotalClusters      int64    `json:"total-clusters,omitempty"`
	AllocatedClusters  int64    `json:"allocated-clusters,omitempty"`
	FragmentedClusters int64    `json:"fragmented-clusters,omitempty"`
	problems           []string // each finding in words, for the human output
}

func newCheckCommand(e *env) *cobra.Command {
	var (
		output outputFormat
		repair string
		format string
		share  bool
		quiet  bool
	)
	cmd := &cobra.Command{
		Use:   "check [-r leaks|all] [--output human|json] [-q] [-U] IMG",
		Short: "Check a QED image for consistency (qemu-img's exit codes)",
		Long: `Check the tables of a QED image: invalid offsets and clusters referenced twice
(corruptions), unreferenced clusters (leaks). Without -r the image is opened
read-only and not changed. -r all clears invalid offsets and, when no
corruption remains, the NEED_CHECK bit; double references cannot be repaired.
-r leaks repairs nothing: QED never reclaims leaked clusters.

IMG and its backing chain are locked as QEMU locks them: read-only without
-r (check fails while another process writes IMG, unless -U, --force-share,
is given), and IMG read-write with -r (check -r fails, changing nothing,
while any other process has IMG open; -U is refused with -r).

-q prints nothing (errors still go to stderr).

Exit status: 0 clean, 2 corruptions, 3 leaks only, 1 the check failed.`,
		Example: `  qedtorture check disk.qed
  qedtorture check -r all --output json disk.qed`,
		Args: argsBetween(1, 1, "IMG"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkFormat(cmd, "format (-f)", format, "qed"); err != nil {
				return err
			}
			if repair != "" {
				if err := checkFormat(cmd, "repair mode (-r)", repair, "leaks", "all"); err != nil {
					return err
				}
			}
			if share && repair != "" {
				return usagef(cmd, "--force-share (-U) reads a changing image; it cannot be combined with -r")
			}
			img := args[0]
			res, err := runCheck(e, img, repair, share)
			if err != nil {
				return checkFailed(img, err)
			}
			switch {
			case quiet:
			case output.json():
				if err := writeJSON(e, res); err != nil {
					return err
				}
			default:
				printCheck(e, res, repair != "")
			}
			switch {
			case res.CheckErrors > 0:
				return failf("%s: check failed: %d I/O errors while checking", img, res.CheckErrors)
			case res.Corruptions > 0:
				return &exitError{code: exitCheckCorrupt}
			case res.Leaks > 0:
				return &exitError{code: exitCheckLeaks}
			}
			return nil
		},
	}
	cmd.Flags().Var(&output, "output", "output format: human or json")
	cmd.Flags().StringVarP(&repair, "repair", "r", "", "repair mode: leaks (nothing to do for QED) or all")
	cmd.Flags().StringVarP(&format, "format", "f", "qed", "image format (only qed)")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print nothing: the exit status tells the result")
	cmd.Flags().BoolVarP(&share, "force-share", "U", false, "check IMG even while another process writes it (no consistency guarantee; not with -r)")
	return cmd
}

// runCheck checks img and, for repair "all", repairs it, then reports like
// qemu-img: the counts of a final read-only pass plus what the repair fixed.
func runCheck(e *env, img, repair string, share bool) (checkJSON, error) {
	// A read-only open never repairs, so this first pass sees the image as
	// it is, even with NEED_CHECK set.
	before, err := checkOnce(e, img, true, false, share)
	if err != nil {
		return checkJSON{}, err
	}
	if repair != "all" {
		out := toCheckJSON(img, before)
		out.problems = before.Problems
		return out, nil
	}
	// A writable open of an image with NEED_CHECK set repairs it at once
	// (the impl/qed contract has no open-for-check mode that defers it), so
	// the repaired count is also derived from the difference to the
	// read-only pass.
	fixedRep, err := checkOnce(e, img, false, true, false)
	if err != nil {
		return checkJSON{}, err
	}
	after, err := checkOnce(e, img, true, false, false)
	if err != nil {
		return checkJSON{}, err
	}
	fixed := fixedRep.CorruptionsFixed
	if d := before.Corruptions - after.Corruptions; d > fixed {
		fixed = d
	}
	out := toCheckJSON(img, after)
	out.CorruptionsFixed = fixed
	out.problems = before.Problems // what was found; the counts are after the repair
	return out, nil
}

func checkOnce(e *env, img string, readOnly, repair, share bool) (qed.CheckReport, error) {
	im, err := qed.Open(e.fs, img, qed.OpenOptions{ReadOnly: readOnly, ForceShare: share, IdleClearDelay: -1})
	if err != nil {
		return qed.CheckReport{}, err
	}
	rep, cerr := im.Check(repair)
	if err := im.Close(); err != nil && cerr == nil {
		cerr = err
	}
	if cerr != nil {
		return rep, &checkFailure{cerr}
	}
	return rep, nil
}

// checkFailed is the one line of a check that could not run: "IMG: check
// failed: cause", naming IMG once; a lock conflict is QEMU's message.
func checkFailed(img string, err error) error {
	var ce *imagelock.ConflictError
	if errors.As(err, &ce) {
		return fail(err)
	}
	msg := fileError(img, err).Error()
	msg = strings.TrimPrefix(strings.TrimPrefix(msg, img+": "), "check: ")
	return failf("%s: check failed: %s", img, msg)
}

// checkFailure is an error of the check itself (the image opened).
type checkFailure struct{ err error }

func (c *checkFailure) Error() string { return c.err.Error() }
func (c *checkFailure) Unwrap() error { return c.err }

func toCheckJSON(img string, r qed.CheckReport) checkJSON {
	return checkJSON{
		Filename: img, Format: "qed",
		CheckErrors: r.CheckErrors, ImageEndOffset: r.ImageEndOffset,
		Corruptions: r.Corruptions, Leaks: r.Leaks,
		TotalClusters: r.TotalClusters, AllocatedClusters: r.Allocated, FragmentedClusters: r.Fragmented,
	}
}

func printCheck(e *env, r checkJSON, repaired bool) {
	w := e.stdout
	for _, p := range r.problems {
		fmt.Fprintf(w, "ERROR %s\n", p)
	}
	if repaired && (r.CorruptionsFixed > 0 || r.LeaksFixed > 0) {
		fmt.Fprintf(w, "The following inconsistencies were found and repaired:\n\n"+
			"    %d leaked clusters\n    %d corruptions\n\nDouble checking the fixed image now...\n",
			r.LeaksFixed, r.CorruptionsFixed)
	}
	if r.Corruptions == 0 && r.Leaks == 0 && r.CheckErrors == 0 {
		fmt.Fprintf(w, "No errors were found on the image.\n")
	}
	if r.Corruptions > 0 {
		fmt.Fprintf(w, "\n%d errors were found on the image.\n"+
			"Data may be corrupted, or further writes to the image may corrupt it.\n", r.Corruptions)
	}
	if r.Leaks > 0 {
		fmt.Fprintf(w, "\n%d leaked clusters were found on the image.\n"+
			"This means waste of disk space, but no harm to data.\n", r.Leaks)
	}
	if r.CheckErrors > 0 {
		fmt.Fprintf(w, "\n%d internal errors have occurred during the check.\n", r.CheckErrors)
	}
	if r.TotalClusters > 0 {
		frag := 0.0
		if r.AllocatedClusters > 0 {
			frag = 100 * float64(r.FragmentedClusters) / float64(r.AllocatedClusters)
		}
		fmt.Fprintf(w, "%d/%d = %.2f%% allocated, %.2f%% fragmented, 0.00%% compressed clusters\n",
			r.AllocatedClusters, r.TotalClusters,
			100*float64(r.AllocatedClusters)/float64(r.TotalClusters), frag)
	}
	if r.ImageEndOffset > 0 {
		fmt.Fprintf(w, "Image end offset: %d\n", r.ImageEndOffset)
	}
}
