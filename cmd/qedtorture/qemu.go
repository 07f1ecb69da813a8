package main

import (
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/qedtorture/qedtorture/crashsim"
	"github.com/qedtorture/qedtorture/impl/qemu"
	"github.com/qedtorture/qedtorture/internal/campaign"
	"github.com/qedtorture/qedtorture/internal/qemutool"
	"github.com/qedtorture/qedtorture/internal/workload"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
)

// qemuFlags are the flags of `qedtorture qemu`.
type qemuFlags struct {
	duration      time.Duration
	iterations    int
	seed          string
	models        string
	workers       int
	maxClusters   int64
	backingChance float64
	ops           int
	out           string
	report        string
	bound         uint64
	samples       int
	sampledPoints int
	qemuStates    int
	ends          string
	diff          bool
	minimize      int
	progress      string
	progressEvery time.Duration
	workload      string
	replay        string
	weights       string
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
QEMU itself (qemu-img check -r all, qemu-img convert). With --diff each workload also
runs through QEMU and impl/qed without crashes and the results are compared.

Runs end in turn with a clean close, qemu-io 'abort' and SIGKILL (--ends). The first
occurrence of each distinct failure is minimized and written under --out with the
workload, the crashed image, the backing files, the log and the qemu-io script.
Exit status: 0 no failure, 1 a failure was found (or the campaign could not run),
2 usage error.`,
		Example: `  qedtorture qemu --iterations 20
  qedtorture qemu --duration 5m --crash-model subset,torn --qemu-states 64 --report q.json
  qedtorture qemu --iterations 50 --ends kill --diff=false
  qedtorture qemu --workload ARTIFACT/workload.txt --ends close --crash-model subset`,
		Args: argsBetween(0, 0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error { return runQEMU(cmd, e, f) },
	}
	fl := cmd.Flags()
	gen := qemu.GenConfig()
	fl.DurationVar(&f.duration, "duration", 0, "stop starting workloads after this long (default 60s unless --iterations)")
	fl.IntVar(&f.iterations, "iterations", 0, "run workloads 0..N-1 and stop")
	fl.StringVar(&f.seed, "seed", "", "campaign seed (default: random, printed first)")
	fl.StringVar(&f.models, "crash-model", "all", "crash models, comma-separated: prefix, drop, subset, torn, all, or crashsim names")
	fl.IntVar(&f.workers, "workers", 1, "workloads run in parallel")
	fl.Int64Var(&f.maxClusters, "max-clusters", gen.MaxClusters, "maximum image size, in clusters")
	fl.Float64Var(&f.backingChance, "backing-chance", gen.BackingChance, "probability that a workload has a backing chain")
	fl.IntVar(&f.ops, "ops", gen.Ops, "guest operations per workload")
	fl.StringVar(&f.weights, "op-weights", "", "operation weights replacing the defaults, e.g. 'concurrent=0,zero=0' (0 removes a kind)")
	fl.StringVar(&f.out, "out", "qedtorture-qemu-failures", "directory for failure artifacts ('' for none)")
	fl.StringVar(&f.report, "report", "", "write the JSON report to this file ('-' for stdout)")
	fl.Uint64Var(&f.bound, "bound", 256, "enumerate a crash point's states exhaustively up to this many per model")
	fl.IntVar(&f.samples, "samples", 32, "states sampled per crash point and model above the bound")
	fl.IntVar(&f.sampledPoints, "sampled-points", 8, "non-flush crash points (log entries) sampled per workload")
	fl.IntVar(&f.qemuStates, "qemu-states", 24, "distinct crash states per workload recovered and read back by QEMU (-1 = all)")
	fl.StringVar(&f.ends, "ends", "close,abort,kill", "how runs end, rotated over workloads: close, abort, kill")
	fl.BoolVar(&f.diff, "diff", true, "also compare QEMU and impl/qed without crashes (--diff=false to skip)")
	fl.IntVar(&f.minimize, "minimize", 60, "workloads tried when minimizing a failure (-1 = no minimization)")
	fl.StringVar(&f.workload, "workload", "", "run this workload script (e.g. an artifact's workload.txt) instead of generated ones; with --iterations 1 by default")
	fl.StringVar(&f.replay, "replay", "", "re-check the artifact in this directory (rebuild its crash state from snapshot and log, rerun its workload through QEMU) and exit")
	fl.StringVar(&f.progress, "progress", "auto", "progress display: auto (bar on a terminal, lines otherwise), bar, lines, none")
	fl.DurationVar(&f.progressEvery, "progress-interval", 10*time.Second, "interval of the progress lines")
	return cmd
}

func qemuConfig(cmd *cobra.Command, f *qemuFlags) (qemu.Config, error) {
	var cfg qemu.Config
	bad := func(format string, a ...any) (qemu.Config, error) { return cfg, usagef(cmd, format, a...) }
	if f.seed == "" {
		cfg.Seed = rand.Uint64()
	} else {
		s, err := strconv.ParseUint(f.seed, 0, 64)
		if err != nil {
			return bad("invalid --seed %q: want an unsigned 64-bit integer", f.seed)
		}
		cfg.Seed = s
	}
	if f.duration < 0 || f.iterations < 0 {
		return bad("--duration and --iterations must not be negative")
	}
	if f.duration == 0 && f.iterations == 0 {
		f.duration = 60 * time.Second
	}
	if f.workers < 1 {
		return bad("invalid --workers %d: want at least 1", f.workers)
	}
	cfg.Duration, cfg.Iterations, cfg.Workers = f.duration, f.iterations, f.workers
	models, err := campaign.ParseModels(f.models)
	if err != nil {
		return bad("invalid --crash-model: %v", err)
	}
	cfg.Models = models
	gen := qemu.GenConfig()
	if f.maxClusters < 1 || f.maxClusters > 1<<16 {
		return bad("invalid --max-clusters %d: want 1..65536", f.maxClusters)
	}
	if f.backingChance < 0 || f.backingChance > 1 {
		return bad("invalid --backing-chance %g: want 0..1", f.backingChance)
	}
	if f.ops < 1 || f.ops > 1000 {
		return bad("invalid --ops %d: want 1..1000", f.ops)
	}
	gen.MaxClusters, gen.BackingChance, gen.Ops = f.maxClusters, f.backingChance, f.ops
	if gen.Weights, err = campaign.ParseWeights(f.weights, gen.Weights); err != nil {
		return bad("invalid --op-weights: %v", err)
	}
	cfg.Gen = gen
	if f.bound < 1 || f.samples < 1 || f.sampledPoints < 0 || f.qemuStates < -1 {
		return bad("--bound and --samples must be at least 1, --sampled-points at least 0, --qemu-states at least -1")
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
	cfg.MinimizeCandidates = f.minimize
	if f.minimize < 0 {
		cfg.MinimizeCandidates = -1
	}
	switch f.progress {
	case "auto", "bar", "lines", "none":
	default:
		return bad("invalid --progress %q: want auto, bar, lines or none", f.progress)
	}
	cfg.Out = f.out
	if f.workload != "" {
		fh, err := os.Open(f.workload)
		if err != nil {
			return bad("invalid --workload: %v", err)
		}
		defer fh.Close()
		if cfg.Workload, err = workload.Parse(fh); err != nil {
			return bad("invalid --workload %s: %v", f.workload, err)
		}
		if f.iterations == 0 && f.duration == 60*time.Second {
			cfg.Iterations, cfg.Duration = 1, 0
		}
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
	cfg.Tool = tool
	if f.replay != "" {
		return replayQEMU(e, cfg, f.replay)
	}
	fmt.Fprintf(e.stderr, "qedtorture qemu: seed %d\n", cfg.Seed)
	mode := f.progress
	if mode == "auto" {
		mode = "lines"
		if isTerminal(e.stderr) {
			mode = "bar"
		}
	}
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
				bar.Set64(s.Workloads)
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
	rep, err := qemu.Run(cfg)
	if bar != nil {
		bar.Finish()
		fmt.Fprintln(e.stderr)
	}
	if err != nil {
		return fail(err)
	}
	for _, fr := range rep.Failures {
		fmt.Fprintf(e.stdout, "FAILURE %s (x%d): workload %d seed %d, %d ops (from %d); %s\n", fr.Signature, fr.Count, fr.Workload, fr.WorkloadSeed, fr.Ops, fr.OriginalOps, firstLineOf(fr.Message))
		if fr.Artifact != "" {
			fmt.Fprintf(e.stdout, "  artifact: %s\n", fr.Artifact)
		}
	}
	fmt.Fprintf(e.stdout, "qemu campaign: seed %d, %d workloads, %d crash states (%d distinct, %d via QEMU), %d diff runs, %d distinct failures, %.1fs\n",
		rep.Seed, rep.Workloads, rep.CrashStates, rep.DistinctStates, rep.QEMUChecked, rep.DiffRuns, len(rep.Failures), rep.Seconds)
	if f.report != "" {
		if err := writeReport(e, f.report, rep); err != nil {
			return fail(err)
		}
	}
	if len(rep.Failures) > 0 {
		return &exitError{code: exitRuntime}
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
