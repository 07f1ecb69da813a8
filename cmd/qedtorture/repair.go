package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/spf13/afero"
	"github.com/spf13/cobra"

	"github.com/qedtorture/qedtorture/impl/qed"
	"github.com/qedtorture/qedtorture/impl/qed/qedtarget"
	"github.com/qedtorture/qedtorture/internal/campaign"
	"github.com/qedtorture/qedtorture/internal/qemutool"
	"github.com/qedtorture/qedtorture/props/check"
)

// The repair paths and guest readers of `qedtorture repair` (issue 15):
// impl/qed's check with repair and its writable open, in process; QEMU's
// writable open (its automatic check) and qemu-img check -r all, as
// processes with qemutool's timeouts and process groups.

// qedRepair is impl/qed's check -r all (open, Check(true), close), or with
// open set its writable open and close alone.
type qedRepair struct{ open bool }

func (r qedRepair) Name() string {
	if r.open {
		return "impl/qed open"
	}
	return "impl/qed check -r all"
}
func (r qedRepair) Check() bool     { return !r.open }
func (r qedRepair) InProcess() bool { return true }

func (r qedRepair) Repair(_ context.Context, path string) ([]string, error) {
	return r.repair(afero.NewOsFs(), path)
}

// RepairFS runs the path on any filesystem (crashsim, for crashes during
// the repair); what it left unrepaired is in the image's NEED_CHECK.
func (r qedRepair) RepairFS(fs afero.Fs, path string) error {
	_, err := r.repair(fs, path)
	return err
}

// ReadGuestFS reads the guest through impl/qed on any filesystem.
func (qedRepair) ReadGuestFS(fs afero.Fs, path string) ([]byte, error) { return readGuestQED(fs, path) }

func (r qedRepair) repair(fs afero.Fs, path string) ([]string, error) {
	im, err := qed.Open(fs, path, qed.OpenOptions{IdleClearDelay: -1})
	if err != nil {
		return nil, err
	}
	var unrep []string
	if !r.open {
		rep, err := im.Check(true)
		if err != nil {
			im.Close()
			return nil, err
		}
		if left := rep.Corruptions - rep.CorruptionsFixed; left > 0 {
			unrep = append(unrep, fmt.Sprintf("%d corruptions left: %v", left, rep.Problems))
		}
	}
	return unrep, im.Close()
}

// qedReader reads the guest through impl/qed, read-only.
type qedReader struct{}

func (qedReader) Name() string { return "impl/qed" }
func (qedReader) ReadGuest(_ context.Context, path string) ([]byte, error) {
	return readGuestQED(afero.NewOsFs(), path)
}

func readGuestQED(fs afero.Fs, path string) ([]byte, error) {
	im, err := qed.Open(fs, path, qed.OpenOptions{ReadOnly: true})
	if err != nil {
		return nil, err
	}
	defer im.Close()
	b := make([]byte, im.Size())
	if _, err := im.ReadAt(b, 0); err != nil {
		return nil, err
	}
	return b, nil
}

// qemuRepair is QEMU's writable open and close (qemu-io, which runs QED's
// automatic check on an image with NEED_CHECK set) or qemu-img check -r all.
type qemuRepair struct {
	tool *qemutool.Tool
	open bool
}

func (r qemuRepair) Name() string {
	if r.open {
		return "qemu open"
	}
	return "qemu-img check -r all"
}
func (r qemuRepair) Check() bool     { return !r.open }
func (r qemuRepair) InProcess() bool { return false }

func (r qemuRepair) Repair(ctx context.Context, path string) ([]string, error) {
	t := r.tool.WithContext(ctx)
	if r.open {
		_, err := t.IOBatch(path, "qed", "flush")
		return nil, err
	}
	c, code, err := t.Check(path, "all")
	switch {
	case err != nil:
		return nil, err
	case code == 1:
		return nil, fmt.Errorf("qemu-img check -r all failed (exit 1, check-errors %d)", c.CheckErrors)
	case code == 2:
		return []string{fmt.Sprintf("%d corruptions left", c.Corruptions)}, nil
	}
	return nil, nil
}

// qemuReader reads the guest through QEMU: qemu-img convert to raw.
type qemuReader struct{ tool *qemutool.Tool }

func (qemuReader) Name() string { return "qemu" }
func (r qemuReader) ReadGuest(ctx context.Context, path string) ([]byte, error) {
	raw := path + ".raw"
	defer os.Remove(raw)
	if _, err := r.tool.WithContext(ctx).Img("convert", "-f", "qed", "-O", "raw", path, raw); err != nil {
		return nil, err
	}
	return os.ReadFile(raw)
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
	)
	cmd := &cobra.Command{
		Use:   "repair",
		Short: "Plant every corruption in consistent images and judge every repair path",
		Long: `repair makes consistent images from the campaign's workloads (the same
workloads as 'run --seed'), plants each corruption the independent checker knows
(NEED_CHECK set and clear), and drives each repair path on a copy: impl/qed's check
-r all and its writable open, QEMU's writable open (its automatic check) and
qemu-img check -r all. Judged: no abort, hang or unbounded allocation; the image
consistent afterwards or the damage left reported (and then not marked clean);
every guest cluster the corruption did not touch reading as before through
impl/qed and QEMU. Differences between the paths' repaired images are counted.
With --crashes N, impl/qed's repairs are also recorded on crashsim and every
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
			cfg := campaign.RepairConfig{
				Seed: seed, Images: images, Reference: qedtarget.Target{}, Corruptions: cs,
				Repairers: []campaign.Repairer{qedRepair{}, qedRepair{open: true}},
				Readers:   []campaign.GuestReader{qedReader{}},
				Timeout:   timeout,
			}
			if verbose {
				cfg.Log = e.stderr
			}
			if !noQEMU {
				tool, err := qemutool.Find()
				if err != nil {
					return failf("repair: %v (use --no-qemu to judge impl/qed alone)", err)
				}
				tool.Timeout = timeout
				cfg.Repairers = append(cfg.Repairers, qemuRepair{tool: tool, open: true}, qemuRepair{tool: tool})
				cfg.Readers = append(cfg.Readers, qemuReader{tool: tool})
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
					fmt.Fprintf(e.stdout, "crashes during impl/qed's repairs: %d plants recorded (%d refused), %d crash states repaired again, %d differ\n",
						cr.Plants, cr.Refused, cr.States, len(cr.Failures))
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
	f.BoolVar(&noQEMU, "no-qemu", false, "judge impl/qed's repair paths only")
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
