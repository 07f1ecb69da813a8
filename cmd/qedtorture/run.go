package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/qedtorture/qedtorture/impl/blackbox"
	"github.com/qedtorture/qedtorture/impl/qemu"
	"github.com/qedtorture/qedtorture/internal/atomicfile"
	"github.com/qedtorture/qedtorture/internal/campaign"
	"github.com/qedtorture/qedtorture/internal/campaign/html"
	"github.com/qedtorture/qedtorture/props/workload"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

// runFlags are the flags of `qedtorture run`.
type runFlags struct {
	campaignFlags
	faults      string
	faultShare  float64 // --fault-share: share of workloads run with a drawn fault
	faultSweep  float64 // --fault-sweep: share of those that sweep steps instead
	shard       string
	shards      int
	maxFailures int
	noDedup     bool
	target      string
	known       string
	qemuStates  int    // --qemu-states: QEMU's recovery judge's budget (target qemu)
	execStates  int    // --exec-states: the program's recovery judge's budget (exec targets)
	ends        string // --ends: how QEMU's runs end (target qemu)
	exhaustive  int
	diff        string // --diff TARGET: the other side of differential runs
	// minimizeCandidates bounds the workloads tried per minimization (0:
	// the engine's default; -1 none): qemu's --minimize.
	minimizeCandidates int
	html               string  // --html FILE: the report as a self-contained page
	coverage           string  // --coverage DIR: statement coverage (a coverage build)
	cpuProfile         string  // --cpuprofile (hidden): a Go CPU profile of the whole campaign
	memProfile         string  // --memprofile (hidden): a Go heap profile taken at the heap's peak
	nestedDepth        int     // --nested-depth: crashes during recovery, to this depth
	nestedN            int     // --nested-states: the sample recovered and crashed again
	createShare        float64 // --create-crashes: share of workloads whose creation is judged
}

// runDefaults are run's values of the shared campaign flags.
func runDefaults() campaignDefaults {
	return campaignDefaults{
		workers: runtime.GOMAXPROCS(0), gen: campaign.DefaultGenConfig(), maxClusters: 1 << 20, maxOps: 10000,
		out: "qedtorture-failures", outHelp: "directory for failure artifacts",
		bound: campaign.DefaultBound, samples: campaign.DefaultSamples, sampledPoints: campaign.DefaultSampledPoints,
		pointsHelp: "non-sync crash points sampled per workload", weightsExample: "concurrent=0,flush=6",
		minimizeTime: 2 * time.Minute, iterationsNote: " (those of this shard, with --shard)",
	}
}

func newRunCommand(e *env) *cobra.Command {
	f := &runFlags{}
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run a crash-torture campaign against impl/qed",
		Long: `run generates workloads from a seed, runs each on impl/qed over a recording
in-memory filesystem, and checks the crash states a power loss could leave at every
sync point and at sampled operation indices, under each crash model, with the full
oracle (structure before and after recovery, data against the model, liveness).

The campaign seed is printed first; the same seed replays the same workloads. A
failure is minimized and written as an artifact directory under --out; replay it
with 'qedtorture replay DIR'. --report FILE is rewritten atomically every
--checkpoint-interval during the run; --out and --report are checked before the
start. SIGINT or SIGTERM stops the campaign within seconds: the artifacts of the
failures found are written and the report is marked interrupted; a second signal
exits at once. Shards (--shard, --shards) need --seed.

Exit status: 0 no failure; 1 a failure was found, or the campaign could not run,
completed no workload, or could not write its report or an artifact; 2 usage
error; 130 interrupted by SIGINT, 143 by SIGTERM.`,
		Example: `  qedtorture run                         # 60 s on all cores, all crash models
  qedtorture run --duration 30s --crash-model subset,torn
  qedtorture run --iterations 200 --seed 42 --report r.json
  qedtorture run --seed 42 --shard 3/8 --duration 1h --out /artifacts
  qedtorture run --fault 'write:eio@p=0.01'`,
		Args: argsBetween(0, 0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error { return runCampaign(cmd, e, f) },
	}
	f.register(cmd, runDefaults())
	fl := cmd.Flags()
	fl.StringVar(&f.faults, "fault", "", "faultfs rules injected into every workload run, e.g. 'write:enospc@nth=17'")
	fl.Float64Var(&f.faultShare, "fault-share", campaign.DefaultFaultShare, "share of workloads (0 to 1; of those whose creation is not crashed) run with one fault rule drawn from the workload seed (an EIO, ENOSPC or lost write, sync, truncate, read or open at a drawn operation), judged as --fault runs are; in-process targets without --fault, --diff, --exhaustive or --workload (0 = none)")
	fl.Float64Var(&f.faultSweep, "fault-sweep", campaign.DefaultFaultSweep, "share of the workloads drawn by --fault-share (0 to 1) that sweep instead (and every one with a commit or a rebase before its first concurrent group, when above 0): up to four steps of the workload drawn by weighted op kind, each of their operations failed with EIO in turn, one run each, every run judged as a faulted run; the same share of the workloads not drawn, with a commit or a rebase before their first group, run as usual and then sweep that step's writes, syncs and truncates (0 = none)")
	fl.IntVar(&f.maxFailures, "max-failures", 1, "stop after failures of this many distinct signatures (the first of each is minimized, the others counted)")
	fl.StringVar(&f.target, "target", "impl/qed", targetHelp())
	fl.IntVar(&f.qemuStates, "qemu-states", qemu.DefaultQEMUStates, "with --target qemu: distinct crash states per workload recovered and read back by QEMU itself (-1 = all, 0 = none)")
	fl.IntVar(&f.execStates, "exec-states", blackbox.DefaultJudgeBudget, "with --target exec:COMMAND: distinct crash states per workload recovered and read back by the program itself (-1 = all, 0 = none)")
	fl.StringVar(&f.ends, "ends", "close,abort,kill", "with --target qemu: how runs end (close, abort, kill), chosen per workload by its seed")
	fl.StringVar(&f.known, "known", "", "file of known failure signatures (one pattern and name a line; testdata/known/qemu-7.2.txt): counted in the report, not minimized, do not fail the run")
	fl.StringVar(&f.diff, "diff", "", "differential runs: also run every workload without crashes on this target (impl/qed, qemu, broken:..., exec:COMMAND) and compare guest data and check results with --target's (a difference the format does not allow is a failure)")
	f.registerEngine(cmd)
	return cmd
}

// registerEngine defines the run flags that apply to every target, QEMU
// included: `run` and its alias `qedtorture qemu` both register them, so
// that the alias carries every capability of the engine (shards, crashes
// during recovery and creation, the exhaustive campaign, the HTML report,
// coverage) under the same names and defaults.
func (f *runFlags) registerEngine(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.shard, "shard", "", "run shard I of N of the workload space (I/N)")
	fl.IntVar(&f.shards, "shards", 0, "shard count N when the index comes from JOB_COMPLETION_INDEX")
	fl.BoolVar(&f.noDedup, "no-dedup", false, "run the oracle on every crash state, even one byte-identical to a state already judged against the same model")
	fl.StringVar(&f.html, "html", "", "also write the report as a self-contained HTML page to FILE: summary, states per second over time, each failure's workload, write timeline, cluster map and hexdump diff")
	fl.StringVar(&f.coverage, "coverage", "", "write the statement coverage of impl/qed and props/check reached by the campaign into this directory and print it (needs a coverage build: "+coverBuild+")")
	fl.StringVar(&f.cpuProfile, "cpuprofile", "", "write a Go CPU profile of the campaign to FILE (go tool pprof; for speed work)")
	_ = fl.MarkHidden("cpuprofile")
	fl.StringVar(&f.memProfile, "memprofile", "", "write a Go heap profile taken when the heap was largest to FILE (go tool pprof -sample_index=inuse_space; for memory work)")
	_ = fl.MarkHidden("memprofile")
	fl.IntVar(&f.nestedDepth, "nested-depth", campaign.DefaultNestedDepth, "crashes during recovery: record the recovery of a sample of crash states and judge its own crash states, to this depth (0 or 1: one crash and a clean recovery)")
	fl.IntVar(&f.nestedN, "nested-states", campaign.DefaultNestedStates, "with --nested-depth 2 or more: crash states per workload whose recovery is crashed (and per recovery at each further depth)")
	fl.Float64Var(&f.createShare, "create-crashes", campaign.DefaultCreateShare, "share of workloads (0 to 1) whose creation of the image and its backing chain is crashed, with real directory semantics, half of them over an existing image (in-process targets and qemu, whose qemu-img create is recorded with strace; exec: programs have no create; 0 = none)")
	fl.IntVar(&f.exhaustive, "exhaustive", 0, "bounded-exhaustive campaign: every workload of 1 to K ops over the canonical vocabulary and layouts (docs/campaigns.md), every crash state after the prefix under every model (--bound default 65536)")
}

// campaignConfig turns the flags into a campaign configuration; errors are
// usage errors.
func campaignConfig(cmd *cobra.Command, f *runFlags) (campaign.Config, error) {
	cfg := campaign.Config{Shard: campaign.Shard{Index: 0, Count: 1}}
	bad := func(format string, a ...any) (campaign.Config, error) { return cfg, usagef(cmd, format, a...) }
	seed, models, gen, err := f.parse(cmd)
	if err != nil {
		return cfg, err
	}
	cfg.Seed, cfg.Models = seed, models
	cfg.Duration, cfg.Iterations, cfg.Workers = f.duration, f.iterations, f.workers
	if cfg.Workload, err = f.loadWorkload(cmd); err != nil {
		return cfg, err
	}
	if cfg.Workload != nil && f.duration == 0 && f.iterations == 0 {
		cfg.Iterations = 1 // the one workload given, once
	}
	cfg.Gen = gen
	if f.faults != "" {
		if _, err := campaign.ValidateFaults(f.faults); err != nil {
			return bad("invalid --fault: %v", err)
		}
	}
	cfg.Faults = f.faults
	switch {
	case f.shard != "" && f.shards != 0:
		return bad("--shard and --shards are exclusive (--shards takes the index from JOB_COMPLETION_INDEX)")
	case f.shard != "":
		sh, err := campaign.ParseShard(f.shard)
		if err != nil {
			return bad("invalid --shard: %v", err)
		}
		cfg.Shard = sh
	case f.shards != 0:
		sh, ok, err := campaign.ShardFromEnv(f.shards)
		if err != nil {
			return bad("invalid shard from the environment: %v", err)
		}
		if !ok {
			return bad("--shards %d needs JOB_COMPLETION_INDEX in the environment (or use --shard I/N)", f.shards)
		}
		cfg.Shard = sh
	}
	if (f.shard != "" || f.shards != 0) && f.seed == "" {
		return bad("--shard and --shards need --seed: every shard must run the same campaign seed, or their workloads overlap and 'report merge' adds up unrelated runs")
	}
	if f.maxFailures < 1 {
		return bad("invalid --max-failures %d: want at least 1", f.maxFailures)
	}
	cfg.Bound, cfg.Samples, cfg.SampledPoints, cfg.MaxFailures = f.bound, f.samples, f.sampledPoints, f.maxFailures
	if cfg.MemoryBudget, err = parseSize("memory budget", f.memBudget); err != nil || cfg.MemoryBudget < 64<<20 {
		return cfg, usagef(cmd, "invalid --memory-budget %q: want a size of at least 64M, e.g. 1536M or 8G", f.memBudget)
	}
	if command, ok := strings.CutPrefix(f.target, "exec:"); ok {
		d, err := execDriver(command)
		if err != nil {
			return bad("invalid --target: %v", err)
		}
		if f.faults != "" {
			return bad("--fault injects faults in process: target %s runs out of process", f.target)
		}
		if f.execStates < -1 {
			return bad("invalid --exec-states %d: want -1 (all) or more", f.execStates)
		}
		d.JudgeBudget = f.execStates
		cfg.Driver, cfg.Reference, cfg.TargetName = d, referenceTarget(), f.target
	} else if d, err := resolveDriver(f.target); err != nil {
		return bad("invalid --target: %v", err)
	} else if d != nil {
		if f.faults != "" {
			return bad("--fault injects faults in process: target %s runs out of process", f.target)
		}
		if qd, ok := d.(*qemu.Driver); ok {
			if f.qemuStates < -1 {
				return bad("invalid --qemu-states %d: want -1 (all) or more", f.qemuStates)
			}
			qd.QEMUStates = f.qemuStates
			for _, s := range strings.Split(f.ends, ",") {
				end, err := qemu.ParseEnd(strings.TrimSpace(s))
				if err != nil {
					return bad("invalid --ends: %v", err)
				}
				qd.Ends = append(qd.Ends, end)
			}
		}
		// Crash states are recovered in process by the reference (impl/qed)
		// and, on a budget, by the driver's own judge.
		cfg.Driver, cfg.Reference, cfg.TargetName = d, referenceTarget(), f.target
	} else {
		t, err := resolveTarget(f.target)
		if err != nil {
			return bad("invalid --target: %v", err)
		}
		cfg.Target, cfg.TargetName = t, f.target
	}
	if cfg.TargetName != "qemu" && (cmd.Flags().Changed("qemu-states") || cmd.Flags().Changed("ends")) {
		return bad("--qemu-states and --ends are for --target qemu")
	}
	if !strings.HasPrefix(cfg.TargetName, "exec:") && cmd.Flags().Changed("exec-states") {
		return bad("--exec-states is for --target exec:COMMAND")
	}
	if f.diff != "" {
		d, err := resolveAny(f.diff)
		if err != nil {
			return bad("invalid --diff: %v", err)
		}
		if f.faults != "" {
			return bad("--diff compares runs without faults: it cannot go with --fault")
		}
		// impl/qed reads back the files of a diff target that runs out
		// of process and has no reader of its own (exec:COMMAND).
		cfg.Diff, cfg.Reference = d, referenceTarget()
	}
	cfg.Out, cfg.NoDedup, cfg.MinimizeTimeout = f.out, f.noDedup, f.minimizeTime
	cfg.MinimizeCandidates = f.minimizeCandidates
	if f.nestedDepth < 0 || f.nestedDepth > 8 {
		return bad("invalid --nested-depth %d: want 0 or 1 (one crash) to 8", f.nestedDepth)
	}
	if f.nestedN < 0 || f.nestedN == 0 && cmd.Flags().Changed("nested-states") {
		return bad("invalid --nested-states %d: want at least 1", f.nestedN)
	}
	cfg.NestedDepth, cfg.NestedStates = f.nestedDepth, f.nestedN
	if f.createShare < 0 || f.createShare > 1 {
		return bad("invalid --create-crashes %g: want a share from 0 to 1", f.createShare)
	}
	cfg.CreateShare = f.createShare
	if f.known != "" {
		fh, err := os.Open(f.known)
		if err != nil {
			return bad("invalid --known: %v", err)
		}
		cfg.Known, err = campaign.ParseKnown(fh, f.known)
		fh.Close()
		if err != nil {
			return bad("invalid --known: %v", err)
		}
	}
	if f.exhaustive != 0 {
		if f.exhaustive < 1 || f.exhaustive > 4 {
			return bad("invalid --exhaustive %d: want a depth in 1..4", f.exhaustive)
		}
		if cfg.Workload != nil {
			return bad("--exhaustive and --workload are exclusive")
		}
		cfg.Exhaustive = workload.NewExhaustive(f.exhaustive)
		if !cmd.Flags().Changed("bound") {
			cfg.Bound = 0 // campaign.ExhaustiveBound
		}
		if !cmd.Flags().Changed("iterations") {
			cfg.Iterations = cfg.Exhaustive.Len()
		}
		if !cmd.Flags().Changed("duration") {
			cfg.Duration = 0
		}
	}
	if err := f.setFaultShare(cmd, &cfg); err != nil {
		return cfg, err
	}
	if err := cfg.CheckMemory(); err != nil {
		return bad("%v", strings.TrimPrefix(err.Error(), campaign.ErrConfig.Error()+": "))
	}
	return cfg, nil
}

// setFaultShare sets cfg.FaultShare from --fault-share, once the target,
// --fault, --diff, --exhaustive and --workload are known: its default
// applies to a generated campaign on an in-process target (cfg.Target)
// without those; asked for explicitly where it cannot apply, it is a
// usage error.
func (f *runFlags) setFaultShare(cmd *cobra.Command, cfg *campaign.Config) error {
	if f.faultShare < 0 || f.faultShare > 1 {
		return usagef(cmd, "invalid --fault-share %g: want a share from 0 to 1", f.faultShare)
	}
	if f.faultSweep < 0 || f.faultSweep > 1 {
		return usagef(cmd, "invalid --fault-sweep %g: want a share from 0 to 1", f.faultSweep)
	}
	why := ""
	switch {
	case f.faultShare == 0:
	case cfg.Target == nil:
		why = "--fault-share injects faults in process: target " + f.target + " runs out of process"
	case f.faults != "":
		why = "--fault-share and --fault are exclusive (--fault injects its rules into every workload)"
	case f.diff != "":
		why = "--diff compares runs without faults: it cannot go with --fault-share"
	case f.exhaustive != 0:
		why = "an exhaustive campaign runs without faults: --exhaustive cannot go with --fault-share"
	case cfg.Workload != nil:
		why = "--workload runs the script given: --fault-share would draw faults into it (use --fault)"
	}
	if why == "" {
		cfg.FaultShare, cfg.FaultSweep = f.faultShare, f.faultSweep
	} else if cmd.Flags().Changed("fault-share") {
		return usagef(cmd, "%s", why)
	}
	return nil
}

func runCampaign(cmd *cobra.Command, e *env, f *runFlags) error {
	cfg, err := campaignConfig(cmd, f)
	if err != nil {
		return err
	}
	// Unwritable outputs fail now, not after an hour of campaign.
	if err := checkOutputs(f.out, f.report); err != nil {
		return fail(err)
	}
	if f.html == "-" {
		return usagef(cmd, "--html needs a file name (the page is not written to stdout)")
	}
	if err := checkOutputFile("--html", f.html); err != nil {
		return fail(err)
	}
	if f.coverage != "" {
		if err := startCoverage(f.coverage); err != nil {
			return usagef(cmd, "%v", err)
		}
	}
	if f.cpuProfile != "" {
		stop, err := startCPUProfile(f.cpuProfile)
		if err != nil {
			return fail(err)
		}
		defer stop()
	}
	if f.memProfile != "" {
		stop, err := startMemProfile(f.memProfile)
		if err != nil {
			return fail(err)
		}
		defer func() { _ = stop() }()
	}
	// With the report on stdout, every human line goes to stderr.
	hum := f.humanOut(e)
	fmt.Fprintf(hum, "seed: %d\n", cfg.Seed)
	if cfg.Iterations == 0 && cfg.Duration == 0 {
		cfg.Duration = campaign.DefaultDuration
	}
	limit := fmt.Sprintf("%d workloads", cfg.Shard.ShardWorkloads(cfg.Iterations))
	if cfg.Iterations == 0 {
		limit = cfg.Duration.String()
	} else if cfg.Duration > 0 {
		limit += " or " + cfg.Duration.String()
	}
	names := make([]string, len(cfg.Models))
	for i, m := range cfg.Models {
		names[i] = m.String()
	}
	fmt.Fprintf(hum, "campaign: target %s, shard %s, %d workers, %s, models %s, memory budget %s\n",
		cfg.TargetName, cfg.Shard, cfg.Workers, limit, strings.Join(names, ","), campaign.FormatBytes(cfg.MemoryBudget))
	if cfg.Faults != "" {
		fmt.Fprintf(hum, "faults: %s\n", cfg.Faults)
	}
	if cfg.FaultShare > 0 {
		fmt.Fprintf(hum, "faults: one drawn rule in %g of the workloads not crashed during creation (--fault-share)\n", cfg.FaultShare)
		if cfg.FaultSweep > 0 {
			fmt.Fprintf(hum, "faults: %g of those (and those with a commit or a rebase) sweep steps instead, each operation failed in turn, and %g of the others with a commit or a rebase sweep its writes after their run (--fault-sweep)\n", cfg.FaultSweep, cfg.FaultSweep)
		}
	}
	if cfg.Diff != nil {
		fmt.Fprintf(hum, "diff: every workload also runs without crashes on %s and on %s, compared\n", cfg.TargetName, cfg.Diff.Name())
	}

	var bar *progressbar.ProgressBar
	switch f.progressMode(e.stderr) {
	case "bar":
		bar = newCampaignBar(e.stderr, cfg)
		cfg.ProgressEvery = 200 * time.Millisecond
		cfg.Progress = func(s campaign.Stats) { updateBar(bar, s) }
	case "lines":
		cfg.ProgressEvery = f.progressEvery
		type counts struct{ workloads, points, states, failures int64 }
		last := counts{-1, -1, -1, -1}
		cfg.Progress = func(s campaign.Stats) {
			// The final call may repeat the last tick's counts (with a
			// rate a hair lower): print a line only when they moved.
			if c := (counts{s.Workloads, s.Points, s.States, s.Failures}); c != last {
				fmt.Fprintln(e.stderr, progressLine(s))
				last = c
			}
		}
	}
	cfg.CheckpointEvery = f.checkpointEvery
	cfg.Checkpoint = checkpointer(&f.campaignFlags, e, func(r *campaign.Report) jsonReport { return r })

	if os.Getenv("GOMEMLIMIT") == "" {
		// The budget is also the collector's soft limit: big geometries
		// allocate table buffers of up to 1 GiB that die young, and
		// collecting them before the heap doubles keeps the process
		// near the budget (campaign.WorkloadMemory is an estimate).
		old := debug.SetMemoryLimit(cfg.MemoryBudget)
		defer debug.SetMemoryLimit(old)
	}
	if os.Getenv("GOGC") == "" {
		// A campaign allocates short-lived table buffers at a high rate
		// with a small live heap: collecting half as often buys CPU for
		// about twice the heap (100-200 MB RSS with 2 workers).
		old := debug.SetGCPercent(200)
		defer debug.SetGCPercent(old)
	}
	in := watchSignals(e.stderr)
	defer in.stop()
	rep, err := campaign.Run(in.ctx, cfg)
	if err != nil && rep == nil {
		endBar(e.stderr, bar, false)
		if errors.Is(err, campaign.ErrConfig) {
			return usagef(cmd, "%v", err)
		}
		return fail(err)
	}
	sig := in.signal()
	// The bar is full only when the campaign ran to its end (iterations
	// or duration), not when a signal or the failure quota stopped it.
	endBar(e.stderr, bar, sig == nil && len(rep.Failures) < cfg.MaxFailures)
	what := "done"
	if sig != nil {
		what = "interrupted by " + signalName(sig)
	}
	diffNote := ""
	if rep.Diff != "" {
		diffNote = fmt.Sprintf(", %d diff runs against %s", rep.DiffRuns, rep.Diff)
	}
	fmt.Fprintf(hum, "%s: %d workload(s) checked in %.1fs (%d passed, %d failed, %d skipped), %d crash points, %d crash states (%.0f states/s)%s\n",
		what, rep.Workloads+rep.FailedWorkloads+rep.Skipped, rep.Seconds, rep.Workloads, rep.FailedWorkloads, rep.Skipped,
		rep.CrashPoints, rep.CrashStates, rep.StatesPerSecond, diffNote)
	if rep.Faulted > 0 {
		fmt.Fprintf(hum, "faulted: %d workload(s) ran with an injected fault, %d crash state(s) or read(s) failed only within a silent fault's damage (its direct effect)\n",
			rep.Faulted, rep.FaultEffects)
	}
	if rep.FaultSweeps > 0 {
		fmt.Fprintf(hum, "fault sweeps: %d workload(s) swept steps in %d faulted runs\n", rep.FaultSweeps, rep.FaultSweepRuns)
	}
	noArtifact := 0
	for _, fr := range rep.Failures {
		fmt.Fprintf(hum, "FAILURE workload %d (seed %d), minimized from %d to %d ops: %s\n  signature: %s\n",
			fr.Workload, fr.WorkloadSeed, fr.OriginalOps, fr.Ops, firstLineOf(fr.Message), fr.Signature)
		if n := rep.Signatures[fr.Signature]; n > 1 {
			fmt.Fprintf(hum, "  %d failing workload(s) with this signature; this is the first\n", n)
		}
		switch {
		case fr.Artifact != "":
			fmt.Fprintf(hum, "  artifact: %s\n  replay:   qedtorture replay %s\n", fr.Artifact, fr.Artifact)
		case fr.ArtifactError != "":
			noArtifact++
			fmt.Fprintf(hum, "  artifact: none, it could not be written (see the report's artifact_error)\n")
			fmt.Fprintf(e.stderr, "qedtorture: the failure of workload %d has no artifact: %s\n", fr.Workload, oneLine(fr.ArtifactError))
		}
	}
	if x := rep.ExhaustiveSummary(); x != "" {
		fmt.Fprintln(hum, x)
		fmt.Fprintf(hum, "  vocabulary: %s\n  layouts: %s\n", strings.Join(rep.Exhaustive.Vocabulary, ", "), strings.Join(rep.Exhaustive.Layouts, "; "))
	}
	newSigs := 0
	for s := range rep.Signatures {
		if _, ok := cfg.Known.Match(s); !ok {
			newSigs++
		}
	}
	if n := newSigs - len(rep.Failures); n > 0 {
		fmt.Fprintf(hum, "(%d more failure signature(s) found after the --max-failures quota were not minimized)\n", n)
	}
	for _, name := range slices.Sorted(maps.Keys(rep.Known)) {
		fmt.Fprintf(hum, "known: %s: %d failing workload(s) (--known; not minimized)\n", name, rep.Known[name])
	}
	if f.coverage != "" {
		cov, err := finishCoverage(f.coverage)
		if err != nil {
			fmt.Fprintf(e.stderr, "qedtorture: %v\n", err)
		}
		printCoverage(hum, cov, f.coverage)
		if cov != nil {
			rep.Coverage = cov
		}
	}
	if f.report != "" {
		// The final report replaces the last checkpoint (atomically).
		if err := writeReport(e, f.report, rep); err != nil {
			return failf("writing the report: %v", err)
		}
	}
	if f.html != "" {
		// After the artifacts (the page reads them), atomically.
		if err := html.ForReport(rep, "", "qedtorture run: "+cfg.TargetName).WriteFile(f.html); err != nil {
			return failf("writing the HTML report: %v", err)
		}
		fmt.Fprintf(hum, "html: %s\n", f.html)
	}
	switch {
	case sig != nil:
		return interruptedError(sig, fmt.Sprintf("%d workload(s) completed; %s", rep.Workloads, failuresNote(len(rep.Failures), noArtifact)))
	case len(rep.Failures) > 0:
		return failf("%s (seed %d); replay with 'qedtorture replay ARTIFACT'", failuresNote(len(rep.Failures), noArtifact), cfg.Seed)
	case rep.Workloads == 0:
		return noWorkloadError(rep.FailedWorkloads, rep.Skipped, "their recordings could not be judged: see the report's skip_reasons", cfg.Duration, rep.Seconds)
	}
	return nil
}

// noWorkloadError says why a campaign that completed no workload verified
// nothing (it must not exit 0): every workload failed with a known finding
// (knownFailed of them; they are not listed as failures), all skipped
// (skipWhy says why a workload is skipped), the duration too short, or no
// reason known.
func noWorkloadError(knownFailed, skipped int64, skipWhy string, duration time.Duration, seconds float64) error {
	why := "nothing was verified"
	if knownFailed > 0 {
		why = fmt.Sprintf("each of the %d that ran failed with a known finding (the report's \"known\" counts them), so nothing else was verified; leave out what triggers them", knownFailed)
		if skipped > 0 {
			why += fmt.Sprintf("; %d more were skipped (%s)", skipped, skipWhy)
		}
	} else if skipped > 0 {
		why = fmt.Sprintf("all %d were skipped (%s)", skipped, skipWhy)
	} else if duration > 0 && seconds >= duration.Seconds() {
		why = fmt.Sprintf("--duration %s ended before the first one finished; give a longer --duration", duration)
	}
	return failf("no workload completed: %s", why)
}

// failuresNote is "N failure(s) found", saying how many have no artifact.
func failuresNote(n, noArtifact int) string {
	s := fmt.Sprintf("%d failure(s) found", n)
	if noArtifact > 0 {
		s += fmt.Sprintf(", %d of them without an artifact (it could not be written)", noArtifact)
	}
	return s
}

// checkOutputs checks --out and --report before a campaign starts.
func checkOutputs(out, report string) error {
	if out != "" {
		if err := checkOutputDir("--out", out); err != nil {
			return err
		}
	}
	return checkOutputFile("--report", report)
}

// endBar leaves the progress bar (drawn on w): full when the campaign ran
// to its end, else as it stands; the next line starts below it.
func endBar(w io.Writer, bar *progressbar.ProgressBar, full bool) {
	if bar == nil {
		return
	}
	if full {
		bar.Finish()
	} else {
		bar.Exit()
	}
	fmt.Fprintln(w)
}

// jsonReport is a campaign report.
type jsonReport interface{ WriteJSON(io.Writer) error }

// writeReport writes rep as JSON to the file name ('-': stdout). A file is
// replaced atomically (atomicfile: written under a temporary name in its
// directory, synced, renamed, the directory synced): a reader, a merge or
// a crash sees the previous complete report or the new one, never a cut
// one. Errors name the file and the cause.
func writeReport(e *env, name string, rep jsonReport) error {
	var b bytes.Buffer
	if err := rep.WriteJSON(&b); err != nil {
		return err
	}
	if name == "-" {
		_, err := e.stdout.Write(b.Bytes())
		return err
	}
	if dir := filepath.Dir(name); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("%s: %w", name, unwrapPath(err))
		}
	}
	return atomicfile.WriteFile(name, b.Bytes(), 0o644)
}

func firstLineOf(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

func progressLine(s campaign.Stats) string {
	return fmt.Sprintf("[%s] workloads %d, crash points %d, crash states %d (%.0f/s), failures %d%s",
		s.Elapsed.Round(time.Second), s.Workloads, s.Points, s.States, s.StatesPerSecond, s.Failures, minimizingNote(s))
}

// minimizingNote says that failures are being minimized, and since when
// ("" when none is).
func minimizingNote(s campaign.Stats) string {
	if s.Minimizing == 0 {
		return ""
	}
	return fmt.Sprintf(", minimizing %d failure(s) for %s", s.Minimizing, s.MinimizingFor.Round(time.Second))
}

// newCampaignBar is a bar over the duration (in seconds) or over the
// workloads when only iterations bound the run.
func newCampaignBar(w io.Writer, cfg campaign.Config) *progressbar.ProgressBar {
	max := int64(cfg.Duration.Seconds())
	if cfg.Iterations > 0 {
		max = int64(cfg.Shard.ShardWorkloads(cfg.Iterations))
	}
	return newBar(w, max)
}

// newBar is the progress bar of the campaign commands: max steps (seconds
// of the duration, or workloads), elapsed time, a description at the end.
func newBar(w io.Writer, max int64) *progressbar.ProgressBar {
	return progressbar.NewOptions64(max,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetWidth(24),
		progressbar.OptionSetElapsedTime(true),
		progressbar.OptionSetPredictTime(false),
		progressbar.OptionShowDescriptionAtLineEnd(),
		progressbar.OptionThrottle(200*time.Millisecond),
		progressbar.OptionSetRenderBlankState(true),
	)
}

func updateBar(bar *progressbar.ProgressBar, s campaign.Stats) {
	bar.Describe(fmt.Sprintf("workloads %d  states %d  %.0f states/s  failures %d%s", s.Workloads, s.States, s.StatesPerSecond, s.Failures, minimizingNote(s)))
	if s.Iterations > 0 {
		bar.Set64(s.Workloads + s.Failures + s.Skipped)
	} else {
		bar.Set64(min(int64(s.Elapsed.Seconds()), bar.GetMax64()))
	}
}
