package main

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/qedtorture/qedtorture/crashsim"
	"github.com/qedtorture/qedtorture/impl/qemu"
	"github.com/qedtorture/qedtorture/internal/campaign"
	"github.com/qedtorture/qedtorture/internal/qemutool"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
)

// qemuFlags are the flags of `qedtorture qemu`.
type qemuFlags struct {
	campaignFlags
	qemuStates int
	ends       string
	diff       bool
	minimize   int
	replay     string
}

// qemuDefaults are qemu's values of the shared campaign flags: one worker
// (each runs a qemu-io process), a larger exhaustive bound (a QEMU run
// costs far more than judging a state). The generator is run's, so that
// the same seed draws the same workloads as `run` (qemu.Adapt then
// changes what QEMU 7.2 cannot run, counted in the report).
func qemuDefaults() campaignDefaults {
	return campaignDefaults{
		workers: 1, gen: campaign.DefaultGenConfig(), maxClusters: 1 << 16, maxOps: 1000,
		out: "qedtorture-qemu-failures", outHelp: "directory for failure artifacts ('' for none)",
		bound: 256, samples: 32, sampledPoints: 8,
		pointsHelp: "non-flush crash points (log entries) sampled per workload", weightsExample: "concurrent=0,zero=0",
		minimizeTime: time.Minute,
	}
}

func newQEMUCommand(e *env) *cobra.Command {
	f := &qemuFlags{}
	cmd := &cobra.Command{
		Use:   "qemu",
		Short: "Run a crash-torture and differential campaign against QEMU's QED driver",
		Long: `qemu generates workloads from a seed and runs each through one qemu-io process
on a QED image layered over QEMU's blklogwrites driver, so that every write and flush
QEMU issues is logged. The log is replayed with crashsim over a snapshot taken before
the run; the crash states at every flush and at sampled log entries, under each crash
model, get the structural checker on their raw bytes and a recovery plus read-back
with impl/qed, and a budgeted sample (--qemu-states) is recovered and read back by
QEMU itself (a writable open in qemu-io, qemu-img convert, then a write, a clean
close and a read-back in a fresh qemu-io). With --diff each workload also
runs through QEMU and impl/qed without crashes and the results are compared.

Runs end in turn with a clean close, qemu-io 'abort' and SIGKILL (--ends). The first
occurrence of each distinct failure is minimized and written under --out with the
workload, the crashed image, the backing files, the log and the qemu-io script.
SIGINT or SIGTERM kills the QEMU processes in flight, writes the artifacts of the
failures found so far (not minimized) and the report marked interrupted, and
removes the scratch directories; a second signal exits at once.

Exit status: 0 no failure; 1 a failure was found, or the campaign could not run,
completed no workload, or could not write its report or an artifact; 2 usage
error; 130 interrupted by SIGINT, 143 by SIGTERM.`,
		Example: `  qedtorture qemu --iterations 20
  qedtorture qemu --duration 5m --crash-model subset,torn --qemu-states 64 --report q.json
  qedtorture qemu --iterations 50 --ends kill --diff=false
  qedtorture qemu --workload ARTIFACT/workload.txt --ends close --crash-model subset`,
		Args: argsBetween(0, 0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error { return runQEMU(cmd, e, f) },
	}
	f.register(cmd, qemuDefaults())
	fl := cmd.Flags()
	fl.IntVar(&f.qemuStates, "qemu-states", 24, "distinct crash states per workload recovered and read back by QEMU (-1 = all)")
	fl.StringVar(&f.ends, "ends", "close,abort,kill", "how runs end, rotated over workloads: close, abort, kill")
	fl.BoolVar(&f.diff, "diff", true, "also compare QEMU and impl/qed without crashes (--diff=false to skip)")
	fl.IntVar(&f.minimize, "minimize", 60, "workloads tried when minimizing a failure (-1 = no minimization)")
	fl.StringVar(&f.replay, "replay", "", "re-check the artifact in this directory (rebuild its crash state from snapshot and log, rerun its workload through QEMU) and exit")
	return cmd
}

func qemuConfig(cmd *cobra.Command, f *qemuFlags) (qemu.Config, error) {
	var cfg qemu.Config
	bad := func(format string, a ...any) (qemu.Config, error) { return cfg, usagef(cmd, format, a...) }
	seed, models, gen, err := f.parse(cmd)
	if err != nil {
		return cfg, err
	}
	cfg.Seed, cfg.Models, cfg.Gen = seed, models, gen
	cfg.Duration, cfg.Iterations, cfg.Workers = f.duration, f.iterations, f.workers
	if f.duration == 0 && f.iterations == 0 {
		// One workload when it is given (--workload), else a minute.
		cfg.Duration = 60 * time.Second
		if f.workload != "" {
			cfg.Iterations, cfg.Duration = 1, 0
		}
	}
	if f.qemuStates < -1 {
		return bad("invalid --qemu-states %d: want -1 (all) or more", f.qemuStates)
	}
	cfg.Enum = crashsim.EnumOptions{Bound: f.bound, Samples: f.samples}
	cfg.SampledPoints, cfg.QEMUStates = f.sampledPoints, f.qemuStates
	for _, s := range strings.Split(f.ends, ",") {
		end, err := qemu.ParseEnd(strings.TrimSpace(s))
		if err != nil {
			return bad("invalid --ends: %v", err)
		}
		cfg.Ends = append(cfg.Ends, end)
	}
	cfg.Diff = f.diff
	cfg.MinimizeCandidates, cfg.MinimizeTimeout = f.minimize, f.minimizeTime
	if f.minimize < 0 {
		cfg.MinimizeCandidates = -1
	}
	cfg.Out = f.out
	if cfg.Workload, err = f.loadWorkload(cmd); err != nil {
		return cfg, err
	}
	return cfg, nil
}

func runQEMU(cmd *cobra.Command, e *env, f *qemuFlags) error {
	cfg, err := qemuConfig(cmd, f)
	if err != nil {
		return err
	}
	tool, err := qemutool.Find()
	if err != nil {
		return fail(err)
	}
	cfg.Tool, cfg.Reference = tool, referenceTarget()
	if f.replay != "" {
		return replayQEMU(e, cfg, f.replay)
	}
	// Unwritable outputs fail now, not after the campaign.
	if err := checkOutputs(f.out, f.report); err != nil {
		return fail(err)
	}
	hum := f.humanOut(e)
	fmt.Fprintf(e.stderr, "qedtorture qemu: seed %d\n", cfg.Seed)
	mode := f.progressMode(e.stderr)
	var bar *progressbar.ProgressBar
	if mode == "bar" {
		bar = newQEMUBar(e.stderr, cfg)
		cfg.ProgressEvery = 200 * time.Millisecond
		cfg.Progress = func(s qemu.Stats) {
			rate := 0.0
			if s.Elapsed > 0 {
				rate = float64(s.CrashStates) / s.Elapsed.Seconds()
			}
			bar.Describe(fmt.Sprintf("workloads %d  states %d (%d via QEMU)  %.0f states/s  failures %d", s.Workloads, s.CrashStates, s.QEMUChecked, rate, s.Failures))
			if cfg.Iterations > 0 {
				bar.Set64(s.Workloads + s.Skipped)
			} else {
				bar.Set64(min(int64(s.Elapsed.Seconds()), bar.GetMax64()))
			}
		}
	}
	if mode == "lines" {
		cfg.ProgressEvery = f.progressEvery
		cfg.Progress = func(s qemu.Stats) {
			rate := 0.0
			if s.Elapsed > 0 {
				rate = float64(s.CrashStates) / s.Elapsed.Seconds()
			}
			fmt.Fprintf(e.stderr, "qemu: %s workloads %d, crash states %d (%d distinct; %d via impl/qed, %d via QEMU), diff runs %d, %.0f states/s, distinct failures %d\n",
				s.Elapsed.Round(time.Second), s.Workloads, s.CrashStates, s.Distinct, s.QEDChecked, s.QEMUChecked, s.DiffRuns, rate, s.Failures)
		}
	}
	cfg.CheckpointEvery = f.checkpointEvery
	cfg.Checkpoint = checkpointer(&f.campaignFlags, e, func(r *qemu.Report) jsonReport { return r })
	in := watchSignals(e.stderr)
	defer in.stop()
	rep, runErr := qemu.Run(in.ctx, cfg)
	sig := in.signal()
	if rep == nil {
		endBar(e.stderr, bar, false)
		return fail(runErr)
	}
	endBar(e.stderr, bar, sig == nil && runErr == nil)
	noArtifact := 0
	for _, fr := range rep.Failures {
		fmt.Fprintf(hum, "FAILURE %s (x%d): workload %d seed %d, %d ops (from %d); %s\n", fr.Signature, fr.Count, fr.Workload, fr.WorkloadSeed, fr.Ops, fr.OriginalOps, firstLineOf(fr.Message))
		switch {
		case fr.Artifact != "":
			fmt.Fprintf(hum, "  artifact: %s\n", fr.Artifact)
		case fr.ArtifactError != "":
			noArtifact++
			fmt.Fprintf(hum, "  artifact: none, it could not be written (see the report's artifact_error)\n")
			fmt.Fprintf(e.stderr, "qedtorture: the failure %s has no artifact: %s\n", fr.Signature, oneLine(fr.ArtifactError))
		}
	}
	what := "qemu campaign"
	if sig != nil {
		what += " interrupted by " + signalName(sig)
	}
	fmt.Fprintf(hum, "%s: seed %d, %d workloads completed (%d skipped), %d crash states (%d distinct, %d via QEMU), %d diff runs, %d distinct failures, %.1fs\n",
		what, rep.Seed, rep.Workloads, rep.Skipped, rep.CrashStates, rep.DistinctStates, rep.QEMUChecked, rep.DiffRuns, len(rep.Failures), rep.Seconds)
	if f.report != "" {
		// The final report replaces the last checkpoint (atomically).
		if err := writeReport(e, f.report, rep); err != nil {
			return failf("writing the report: %v", err)
		}
	}
	switch {
	case sig != nil:
		return interruptedError(sig, fmt.Sprintf("%d workload(s) completed; %s", rep.Workloads, failuresNote(len(rep.Failures), noArtifact)))
	case runErr != nil && !errors.Is(runErr, qemu.ErrWriteArtifact):
		// The tools or the machine failed: the campaign stopped there.
		return fail(runErr)
	case len(rep.Failures) > 0:
		return failf("%s (seed %d)", failuresNote(len(rep.Failures), noArtifact), rep.Seed)
	case rep.Workloads == 0:
		return noWorkloadError(rep.Skipped, "their log did not replay to QEMU's file: see the report's skip_reasons", cfg.Duration, rep.Seconds)
	}
	return nil
}

// replayQEMU re-checks an artifact of `qedtorture qemu`.
func replayQEMU(e *env, cfg qemu.Config, dir string) error {
	res, err := qemu.ReplayArtifact(cfg, dir)
	if err != nil {
		return fail(err)
	}
	fmt.Fprintf(e.stdout, "artifact: %s\nsignature: %s\n", dir, res.Signature)
	if res.State != "" {
		fmt.Fprintf(e.stdout, "crash state %s rebuilt from snapshot and log: identical to crashed.qed: %v\n", res.State, res.Rebuilt)
		fmt.Fprintf(e.stdout, "structural checker on the rebuilt state:\n%s\n", res.Raw)
	}
	if !res.Reproduced {
		fmt.Fprintln(e.stdout, "PASS: running the workload through QEMU again no longer shows this failure")
		if res.State != "" && !res.Rebuilt {
			return failf("the crash state could not be rebuilt bit for bit")
		}
		return nil
	}
	fmt.Fprintf(e.stdout, "FAIL: reproduced: %s\n", res.Message)
	return failf("the case still fails (%s)", res.Signature)
}

// newQEMUBar is the progress bar of `qedtorture qemu` on a terminal: over
// the duration in seconds, or over the workloads when iterations bound the
// run (the same shape as run's).
func newQEMUBar(w io.Writer, cfg qemu.Config) *progressbar.ProgressBar {
	max := int64(cfg.Duration.Seconds())
	if cfg.Iterations > 0 {
		max = int64(cfg.Iterations)
	}
	return newBar(w, max)
}
