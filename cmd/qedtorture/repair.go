package main

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/qedtorture/qedtorture/impl/blackbox"
	"github.com/qedtorture/qedtorture/impl/qemu"
	"github.com/qedtorture/qedtorture/internal/campaign"
	"github.com/qedtorture/qedtorture/internal/qemutool"
	"github.com/qedtorture/qedtorture/props/check"
)

// The repair paths and guest readers of `qedtorture repair` (issue 15)
// come from the drivers of its --target list (campaign.RepairDriver):
// every in-process target's check with repair and writable open, QEMU's
// writable open and qemu-img check -r all (impl/qemu), a black-box
// program's writable open (impl/blackbox).

// repairDrivers resolves repair's --target list into repair drivers.
func repairDrivers(names []string, timeout time.Duration) ([]campaign.RepairDriver, error) {
	var out []campaign.RepairDriver
	seen := map[string]bool{}
	for _, name := range names {
		name = strings.TrimSpace(name)
		if name == "" || seen[name] {
			continue
		}
		seen[name] = true
		var d campaign.Driver
		if command, ok := strings.CutPrefix(name, "exec:"); ok {
			bd, err := blackbox.New(command, referenceTarget())
			if err != nil {
				return nil, err
			}
			d = bd
		} else if qd, err := resolveDriver(name); err != nil {
			return nil, err
		} else if qd != nil {
			if q, ok := qd.(*qemu.Driver); ok {
				q.Tool.Timeout = timeout
			}
			d = qd
		} else {
			t, err := resolveTarget(name)
			if err != nil {
				return nil, err
			}
			d = campaign.InProcess(t)
		}
		rd, ok := d.(campaign.RepairDriver)
		if !ok {
			return nil, fmt.Errorf("target %q has no repair path", name)
		}
		out = append(out, rd)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no target")
	}
	return out, nil
}

func newRepairCommand(e *env) *cobra.Command {
	var (
		seed    uint64
		images  int
		kinds   []string
		noQEMU  bool
		timeout time.Duration
		dir     string
		verbose bool
		crashes int
		targets []string
		cover   string
	)
	cmd := &cobra.Command{
		Use:   "repair",
		Short: "Plant every corruption in consistent images and judge every repair path",
		Long: `repair makes consistent images from the campaign's workloads (the same
workloads as 'run --seed'), plants each corruption the independent checker knows
(NEED_CHECK set and clear), and drives each repair path of each --target on a copy:
an in-process target's check -r all and its writable open, QEMU's writable open
(its automatic check) and qemu-img check -r all, a program's writable open
(exec:COMMAND). Judged: no abort, hang or unbounded allocation; the image
consistent afterwards or the damage left reported (and then not marked clean);
every guest cluster the corruption did not touch reading as before through
impl/qed and every target that can read without writing (QEMU). The repaired
images of every pair of paths of the same kind (checks, writable opens) are
compared and their differences counted. With --crashes N, the repairs are also
recorded (in-process targets on crashsim, QEMU through blklogwrites) and every
crash state (syncs, N sampled points, the end; subset and torn models) is
repaired again: it must reach what one uninterrupted repair reaches.

Exit status: 1 if a rule was broken, 0 otherwise, 2 usage error.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var cs []check.Corruption
			for _, k := range kinds {
				c, err := check.ParseCorruption(k)
				if err != nil {
					return usagef(cmd, "--kind: %v", err)
				}
				cs = append(cs, c)
			}
			if images < 1 {
				return usagef(cmd, "--images must be at least 1, got %d", images)
			}
			if noQEMU && cmd.Flags().Changed("target") {
				return usagef(cmd, "--no-qemu and --target: give the targets with --target alone")
			}
			names := targets
			if noQEMU {
				names = []string{"impl/qed"}
			}
			drivers, err := repairDrivers(names, timeout)
			if err != nil {
				if errors.Is(err, qemutool.ErrNotFound) {
					return failf("repair: %v (use --target impl/qed to judge impl/qed alone)", err)
				}
				return usagef(cmd, "invalid --target: %v", err)
			}
			cfg := campaign.RepairConfig{
				Seed: seed, Images: images, Reference: referenceTarget(), Corruptions: cs,
				// Readers[0] reads the consistent images: the reference.
				Readers: []campaign.GuestReader{campaign.TargetReader{T: referenceTarget()}},
				Timeout: timeout,
			}
			readers := map[string]bool{cfg.Readers[0].Name(): true}
			for _, d := range drivers {
				cfg.Repairers = append(cfg.Repairers, d.Repairers()...)
				if r := d.GuestReader(); r != nil && !readers[r.Name()] {
					readers[r.Name()] = true
					cfg.Readers = append(cfg.Readers, r)
				}
			}
			if verbose {
				cfg.Log = e.stderr
			}
			if dir == "" {
				d, err := os.MkdirTemp("", "qedtorture-repair-")
				if err != nil {
					return fail(err)
				}
				defer os.RemoveAll(d)
				dir = d
			}
			// The scratch images live in a directory of their own, made
			// fresh under dir: the mode empties its subdirectories between
			// images and must never touch a file the user keeps in dir.
			scratch, err := os.MkdirTemp(dir, "scratch-")
			if err != nil {
				return fail(err)
			}
			defer os.RemoveAll(scratch)
			cfg.Dir = scratch
			if cover != "" {
				if err := startCoverage(cover); err != nil {
					return usagef(cmd, "%v", err)
				}
				defer func() {
					cov, err := finishCoverage(cover)
					if err != nil {
						fmt.Fprintf(e.stderr, "qedtorture: %v\n", err)
					}
					printCoverage(e.stdout, cov, cover)
				}()
			}
			fmt.Fprintf(e.stdout, "repair: seed %d, %d images\n", seed, images)
			rep, err := campaign.RunRepair(cmd.Context(), cfg)
			if rep != nil {
				writeRepairReport(e, rep, len(cfg.Repairers))
			}
			if err != nil {
				return fail(err)
			}
			broken := len(rep.Failures)
			if crashes > 0 {
				cr, err := campaign.RepairCrashes(cmd.Context(), cfg, crashes, 0)
				if cr != nil {
					fmt.Fprintf(e.stdout, "crashes during repairs: %d plant runs recorded (%d refused, %d by paths that cannot be recorded), %d crash states repaired again, %d differ\n",
						cr.Plants, cr.Refused, cr.Unrecorded, cr.States, len(cr.Failures))
					for _, name := range slices.Sorted(maps.Keys(cr.PathStates)) {
						fmt.Fprintf(e.stdout, "  %s: %d crash states repaired again\n", name, cr.PathStates[name])
					}
					for _, f := range cr.Failures {
						fmt.Fprintf(e.stdout, "FAIL crash during repair: %s\n", f)
					}
					broken += len(cr.Failures)
				}
				if err != nil {
					return fail(err)
				}
			}
			if broken > 0 {
				return failf("repair: %d rule(s) broken", broken)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.Uint64Var(&seed, "seed", 1, "campaign seed (the workloads of run --seed and the plants)")
	f.IntVar(&images, "images", 4, "consistent images (workloads) to corrupt")
	f.StringSliceVar(&kinds, "kind", nil, "corruption kinds to plant (default all)")
	f.StringSliceVar(&targets, "target", []string{"impl/qed", "qemu"}, "implementations whose repair paths are judged and compared, comma-separated: impl/qed, qemu, exec:COMMAND (a program's writable open), broken:*, defect:*")
	f.BoolVar(&noQEMU, "no-qemu", false, "the same as --target impl/qed")
	f.StringVar(&cover, "coverage", "", "write the statement coverage of impl/qed and props/check reached into this directory and print it, as run --coverage (a coverage build; runs into one directory add up)")
	f.DurationVar(&timeout, "timeout", 60*time.Second, "per repair run: a run still going is a hang")
	f.StringVar(&dir, "dir", "", "scratch directory (default a temporary one, removed)")
	f.BoolVarP(&verbose, "verbose", "v", false, "log each image and failure")
	f.IntVar(&crashes, "crashes", 0, "also crash impl/qed's repairs: record each on crashsim with this many sampled crash points (besides its syncs and end) and repair every crash state again")
	return cmd
}

func writeRepairReport(e *env, r *campaign.RepairReport, paths int) {
	w := e.stdout
	fmt.Fprintf(w, "images %d, plants %d (%d not applicable), repair paths %d, runs %d, images a reader skipped %d\n", r.Images, r.Plants, r.NotApplicable, paths, r.Runs, r.ReaderSkips)
	for name, n := range r.Consistent {
		fmt.Fprintf(w, "  %s: %d consistent, %d unrepaired and reported\n", name, n, r.Unrepaired[name])
	}
	for _, d := range r.Differences {
		fmt.Fprintf(w, "  differ: %s need-check=%v: %s vs %s: %s (%d)\n", d.Corruption, d.NeedCheck, d.A, d.B, d.What, d.Count)
	}
	for _, f := range r.Failures {
		fmt.Fprintf(w, "FAIL %s\n", f)
	}
}
