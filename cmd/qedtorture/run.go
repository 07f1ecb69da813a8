package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/qedtorture/qedtorture/internal/campaign"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

// runFlags are the flags of `qedtorture run`.
type runFlags struct {
	duration      time.Duration
	iterations    int
	seed          string
	models        string
	workers       int
	clusterSizes  string
	tableSizes    string
	maxClusters   int64
	backingChance float64
	maxChain      int
	ops           int
	weights       string
	faults        string
	out           string
	report        string
	shard         string
	shards        int
	bound         uint64
	samples       int
	sampledPoints int
	maxFailures   int
	noDedup       bool
	target        string
	progress      string
	progressEvery time.Duration
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
with 'qedtorture replay DIR'. Exit status: 0 no failure, 1 a failure was found (or
the campaign could not run), 2 usage error.`,
		Example: `  qedtorture run                         # 60 s on all cores, all crash models
  qedtorture run --duration 30s --crash-model subset,torn
  qedtorture run --iterations 200 --seed 42 --report r.json
  qedtorture run --shard 3/8 --duration 1h --out /artifacts
  qedtorture run --fault 'write:eio@p=0.01'`,
		Args: argsBetween(0, 0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error { return runCampaign(cmd, e, f) },
	}
	fl := cmd.Flags()
	fl.DurationVar(&f.duration, "duration", 0, "stop starting workloads after this long (default 60s unless --iterations)")
	fl.IntVar(&f.iterations, "iterations", 0, "run the workloads 0..N-1 (of this shard) and stop")
	fl.StringVar(&f.seed, "seed", "", "campaign seed (default: random, printed first)")
	fl.StringVar(&f.models, "crash-model", "all", "crash models, comma-separated: prefix, drop, subset, torn, all, or crashsim names (torn512+garbage, subset+size, ...)")
	fl.IntVar(&f.workers, "workers", runtime.GOMAXPROCS(0), "workloads checked in parallel")
	fl.StringVar(&f.clusterSizes, "cluster-sizes", "4K,16K,64K", "image cluster sizes to draw from")
	fl.StringVar(&f.tableSizes, "table-sizes", "1,2,4,16", "table sizes (in clusters) to draw from")
	fl.Int64Var(&f.maxClusters, "max-clusters", campaign.DefaultGenConfig().MaxClusters, "maximum image size, in clusters")
	fl.Float64Var(&f.backingChance, "backing-chance", campaign.DefaultGenConfig().BackingChance, "probability that a workload has a backing chain")
	fl.IntVar(&f.maxChain, "max-chain", campaign.DefaultGenConfig().MaxChain, "maximum backing chain length")
	fl.IntVar(&f.ops, "ops", campaign.DefaultGenConfig().Ops, "guest operations per workload")
	fl.StringVar(&f.weights, "op-weights", "", "operation weights replacing the defaults, e.g. 'concurrent=0,flush=6' (0 removes a kind)")
	fl.StringVar(&f.faults, "fault", "", "faultfs rules injected into every workload run, e.g. 'write:enospc@nth=17'")
	fl.StringVar(&f.out, "out", "qedtorture-failures", "directory for failure artifacts")
	fl.StringVar(&f.report, "report", "", "write the JSON report to this file ('-' for stdout)")
	fl.StringVar(&f.shard, "shard", "", "run shard I of N of the workload space (I/N)")
	fl.IntVar(&f.shards, "shards", 0, "shard count N when the index comes from JOB_COMPLETION_INDEX")
	fl.Uint64Var(&f.bound, "bound", campaign.DefaultBound, "enumerate a crash point's states exhaustively up to this many per model")
	fl.IntVar(&f.samples, "samples", campaign.DefaultSamples, "states sampled per crash point and model above the bound")
	fl.IntVar(&f.sampledPoints, "sampled-points", campaign.DefaultSampledPoints, "non-sync crash points sampled per workload")
	fl.IntVar(&f.maxFailures, "max-failures", 1, "stop after this many failures")
	fl.BoolVar(&f.noDedup, "no-dedup", false, "run the oracle on every crash state, even one byte-identical to a state already judged against the same model")
	fl.StringVar(&f.target, "target", "impl/qed", "implementation under test ("+strings.Join(campaign.TargetNames(), ", ")+")")
	fl.StringVar(&f.progress, "progress", "auto", "progress display: auto (bar on a terminal, lines otherwise), bar, lines, none")
	fl.DurationVar(&f.progressEvery, "progress-interval", 10*time.Second, "interval of the plain progress lines")
	return cmd
}

// campaignConfig turns the flags into a campaign configuration; errors are
// usage errors.
func campaignConfig(cmd *cobra.Command, f *runFlags) (campaign.Config, error) {
	cfg := campaign.Config{Shard: campaign.Shard{Index: 0, Count: 1}}
	bad := func(format string, a ...any) (campaign.Config, error) { return cfg, usagef(cmd, format, a...) }
	if f.seed == "" {
		cfg.Seed = rand.Uint64()
	} else {
		s, err := strconv.ParseUint(f.seed, 0, 64)
		if err != nil {
			return bad("invalid --seed %q: want an unsigned 64-bit integer", f.seed)
		}
		cfg.Seed = s
	}
	if f.duration < 0 {
		return bad("invalid --duration %s: must not be negative", f.duration)
	}
	if f.iterations < 0 {
		return bad("invalid --iterations %d: must not be negative", f.iterations)
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
	gen := campaign.DefaultGenConfig()
	gen.ClusterSizes = nil
	for _, s := range strings.Split(f.clusterSizes, ",") {
		n, err := parseSize("cluster size", strings.TrimSpace(s))
		if err != nil || n < 4096 || n > 64<<20 || n&(n-1) != 0 {
			return bad("invalid --cluster-sizes entry %q: want powers of two from 4K to 64M", s)
		}
		gen.ClusterSizes = append(gen.ClusterSizes, uint32(n))
	}
	gen.TableSizes = nil
	for _, s := range strings.Split(f.tableSizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 || n > 16 || n&(n-1) != 0 {
			return bad("invalid --table-sizes entry %q: want powers of two from 1 to 16", s)
		}
		gen.TableSizes = append(gen.TableSizes, uint32(n))
	}
	if f.maxClusters < 1 || f.maxClusters > 1<<20 {
		return bad("invalid --max-clusters %d: want 1..1048576", f.maxClusters)
	}
	if f.backingChance < 0 || f.backingChance > 1 {
		return bad("invalid --backing-chance %g: want 0..1", f.backingChance)
	}
	if f.maxChain < 0 || f.maxChain > 8 {
		return bad("invalid --max-chain %d: want 0..8", f.maxChain)
	}
	if f.ops < 1 || f.ops > 10000 {
		return bad("invalid --ops %d: want 1..10000", f.ops)
	}
	gen.MaxClusters, gen.BackingChance, gen.MaxChain, gen.Ops = f.maxClusters, f.backingChance, f.maxChain, f.ops
	if gen.Weights, err = campaign.ParseWeights(f.weights, gen.Weights); err != nil {
		return bad("invalid --op-weights: %v", err)
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
	if f.bound < 1 || f.samples < 1 || f.sampledPoints < 0 || f.maxFailures < 1 {
		return bad("--bound, --samples and --max-failures must be at least 1, --sampled-points at least 0")
	}
	cfg.Bound, cfg.Samples, cfg.SampledPoints, cfg.MaxFailures = f.bound, f.samples, f.sampledPoints, f.maxFailures
	t, err := campaign.TargetByName(f.target)
	if err != nil {
		return bad("invalid --target: %v", err)
	}
	cfg.Target, cfg.TargetName = t, f.target
	switch f.progress {
	case "auto", "bar", "lines", "none":
	default:
		return bad("invalid --progress %q: want auto, bar, lines or none", f.progress)
	}
	if f.progressEvery <= 0 {
		return bad("invalid --progress-interval %s: must be positive", f.progressEvery)
	}
	cfg.Out, cfg.NoDedup = f.out, f.noDedup
	return cfg, nil
}

func runCampaign(cmd *cobra.Command, e *env, f *runFlags) error {
	cfg, err := campaignConfig(cmd, f)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "seed: %d\n", cfg.Seed)
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
	fmt.Fprintf(e.stdout, "campaign: target %s, shard %s, %d workers, %s, models %s\n",
		cfg.TargetName, cfg.Shard, cfg.Workers, limit, strings.Join(names, ","))
	if cfg.Faults != "" {
		fmt.Fprintf(e.stdout, "faults: %s\n", cfg.Faults)
	}

	mode := f.progress
	if mode == "auto" {
		mode = "lines"
		if isTerminal(e.stderr) {
			mode = "bar"
		}
	}
	var bar *progressbar.ProgressBar
	switch mode {
	case "bar":
		bar = newCampaignBar(e.stderr, cfg)
		cfg.ProgressEvery = 200 * time.Millisecond
		cfg.Progress = func(s campaign.Stats) { updateBar(bar, s) }
	case "lines":
		cfg.ProgressEvery = f.progressEvery
		last := ""
		cfg.Progress = func(s campaign.Stats) {
			if l := progressLine(s); l != last { // the final call may repeat the last tick
				fmt.Fprintln(e.stderr, l)
				last = l
			}
		}
	}

	if os.Getenv("GOGC") == "" {
		// A campaign allocates short-lived table buffers at a high rate
		// with a small live heap: collecting half as often buys CPU for
		// about twice the heap (100-200 MB RSS with 2 workers).
		old := debug.SetGCPercent(200)
		defer debug.SetGCPercent(old)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	rep, err := campaign.Run(ctx, cfg)
	if bar != nil {
		bar.Finish()
		fmt.Fprintln(e.stderr)
	}
	if err != nil {
		if errors.Is(err, campaign.ErrConfig) {
			return usagef(cmd, "%v", err)
		}
		if rep == nil {
			return fail(err)
		}
	}
	fmt.Fprintf(e.stdout, "done: %d workloads, %d crash points, %d crash states in %.1fs (%.0f states/s), %d failure(s)\n",
		rep.Workloads, rep.CrashPoints, rep.CrashStates, rep.Seconds, rep.StatesPerSecond, len(rep.Failures))
	for _, fr := range rep.Failures {
		fmt.Fprintf(e.stdout, "FAILURE workload %d (seed %d), minimized from %d to %d ops: %s\n",
			fr.Workload, fr.WorkloadSeed, fr.OriginalOps, fr.Ops, firstLineOf(fr.Message))
		if fr.Artifact != "" {
			fmt.Fprintf(e.stdout, "  artifact: %s\n  replay:   qedtorture replay %s\n", fr.Artifact, fr.Artifact)
		}
	}
	if f.report != "" {
		if err := writeReport(e, f.report, rep); err != nil {
			return fail(err)
		}
	}
	if len(rep.Failures) > 0 {
		return failf("%d failure(s) found (seed %d); replay with 'qedtorture replay ARTIFACT'", len(rep.Failures), cfg.Seed)
	}
	if err != nil {
		return fail(err)
	}
	return nil
}

// jsonReport is a campaign report of run or qemu.
type jsonReport interface{ WriteJSON(io.Writer) error }

// writeReport writes rep as JSON to the file name ('-': stdout).
func writeReport(e *env, name string, rep jsonReport) error {
	if name == "-" {
		return rep.WriteJSON(e.stdout)
	}
	if dir := filepath.Dir(name); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	fh, err := os.Create(name)
	if err != nil {
		return err
	}
	if err := rep.WriteJSON(fh); err != nil {
		fh.Close()
		return err
	}
	return fh.Close()
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
	return fmt.Sprintf("[%s] workloads %d, crash points %d, crash states %d (%.0f/s), failures %d",
		s.Elapsed.Round(time.Second), s.Workloads, s.Points, s.States, s.StatesPerSecond, s.Failures)
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
	bar.Describe(fmt.Sprintf("workloads %d  states %d  %.0f states/s  failures %d", s.Workloads, s.States, s.StatesPerSecond, s.Failures))
	if s.Iterations > 0 {
		bar.Set64(s.Workloads)
	} else {
		bar.Set64(min(int64(s.Elapsed.Seconds()), bar.GetMax64()))
	}
}
