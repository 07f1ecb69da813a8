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
	"github.com/qedtorture/qedtorture/internal/campaign"
	"github.com/qedtorture/qedtorture/props/workload"
	"github.com/spf13/cobra"
)

// campaignFlags are the flags `run` and `qemu` share: how long, the seed,
// the crash models, the workers, the workload generator's ranges, the
// crash-state enumeration, the artifacts, the report and the progress
// display. One definition keeps their names, meanings and checks the same
// in both commands.
type campaignFlags struct {
	duration        time.Duration
	iterations      int
	seed            string
	models          string
	workers         int
	maxClusters     int64
	backingChance   float64
	ops             int
	weights         string
	out             string
	report          string
	bound           uint64
	samples         int
	sampledPoints   int
	progress        string
	progressEvery   time.Duration
	minimizeTime    time.Duration
	checkpointEvery time.Duration
	workload        string
	clusterSizes    string
	tableSizes      string
	maxChain        int
	memBudget       string // --memory-budget

	d campaignDefaults // the command's defaults and limits (register)
}

// campaignDefaults is what differs between the commands' shared flags.
type campaignDefaults struct {
	workers        int
	gen            workload.GenConfig // defaults of --max-clusters, --backing-chance, --ops
	maxClusters    int64              // upper limit of --max-clusters
	maxOps         int                // upper limit of --ops
	out, outHelp   string
	bound          uint64
	samples        int
	sampledPoints  int
	pointsHelp     string // what --sampled-points samples
	weightsExample string
	minimizeTime   time.Duration
	iterationsNote string // appended to "run the workloads 0..N-1"
}

// register defines the shared flags on cmd.
func (c *campaignFlags) register(cmd *cobra.Command, d campaignDefaults) {
	c.d = d
	fl := cmd.Flags()
	fl.DurationVar(&c.duration, "duration", 0, "stop starting workloads after this long (default 60s unless --iterations)")
	fl.IntVar(&c.iterations, "iterations", 0, "run the workloads 0..N-1"+d.iterationsNote+" and stop")
	fl.StringVar(&c.seed, "seed", "", "campaign seed (default: random, printed first)")
	fl.StringVar(&c.models, "crash-model", "all", "crash models, comma-separated: prefix, drop, subset, torn, all, or crashsim names (torn512+garbage, subset+size, ...)")
	fl.IntVar(&c.workers, "workers", d.workers, "workloads run and checked in parallel")
	fl.Int64Var(&c.maxClusters, "max-clusters", d.gen.MaxClusters, "maximum image size, in clusters")
	fl.Float64Var(&c.backingChance, "backing-chance", d.gen.BackingChance, "probability that a workload has a backing chain")
	fl.IntVar(&c.ops, "ops", d.gen.Ops, "guest operations per workload")
	fl.StringVar(&c.weights, "op-weights", "", "operation weights replacing the defaults, e.g. '"+d.weightsExample+"' (0 removes a kind)")
	fl.StringVar(&c.out, "out", d.out, d.outHelp)
	fl.StringVar(&c.report, "report", "", "write the JSON report to this file ('-' for stdout, with every other line on stderr)")
	fl.DurationVar(&c.checkpointEvery, "checkpoint-interval", 60*time.Second, "rewrite the --report file (atomically, marked \"checkpoint\": true) this often during the run; 0 = only at the end")
	fl.Uint64Var(&c.bound, "bound", d.bound, "enumerate a crash point's states exhaustively up to this many per model")
	fl.IntVar(&c.samples, "samples", d.samples, "states sampled per crash point and model above the bound")
	fl.IntVar(&c.sampledPoints, "sampled-points", d.sampledPoints, d.pointsHelp)
	fl.StringVar(&c.progress, "progress", "auto", "progress display: auto (bar on a terminal, lines otherwise), bar, lines, none")
	fl.DurationVar(&c.progressEvery, "progress-interval", 10*time.Second, "interval of the plain progress lines")
	fl.DurationVar(&c.minimizeTime, "minimize-time", d.minimizeTime, "time spent minimizing one failure before its artifact is written")
	fl.StringVar(&c.clusterSizes, "cluster-sizes", sizeList(d.gen.ClusterSizes, true), "image cluster sizes to draw from")
	fl.StringVar(&c.tableSizes, "table-sizes", sizeList(d.gen.TableSizes, false), "table sizes (in clusters) to draw from")
	fl.IntVar(&c.maxChain, "max-chain", d.gen.MaxChain, "maximum backing chain length")
	fl.StringVar(&c.memBudget, "memory-budget", "1536M", "memory the workloads in flight may hold (estimated from their geometry; fewer run at once when big ones do not fit, and a geometry that cannot fit alone is refused); also the Go runtime's soft memory limit unless GOMEMLIMIT is set")
	fl.StringVar(&c.workload, "workload", "", "run this workload script (e.g. an artifact's workload.txt) instead of generated ones; with --iterations 1 by default")
}

// loadWorkload reads --workload (nil when not given); errors are usage
// errors naming the file.
func (c *campaignFlags) loadWorkload(cmd *cobra.Command) (*workload.Workload, error) {
	if c.workload == "" {
		return nil, nil
	}
	fh, err := os.Open(c.workload)
	if err != nil {
		return nil, usagef(cmd, "invalid --workload: %v", err)
	}
	defer fh.Close()
	w, err := workload.Parse(fh)
	if err != nil {
		return nil, usagef(cmd, "invalid --workload %s: %v", c.workload, err)
	}
	return w, nil
}

// parse checks the shared flags against the command's limits. It returns
// the campaign seed (random when --seed is not given), the crash models,
// and the command's default generator with the generator flags applied;
// errors are usage errors.
func (c *campaignFlags) parse(cmd *cobra.Command) (uint64, []crashsim.Model, workload.GenConfig, error) {
	d, gen := c.d, c.d.gen
	bad := func(format string, a ...any) (uint64, []crashsim.Model, workload.GenConfig, error) {
		return 0, nil, gen, usagef(cmd, format, a...)
	}
	seed := rand.Uint64()
	if c.seed != "" {
		s, err := strconv.ParseUint(c.seed, 0, 64)
		if err != nil {
			return bad("invalid --seed %q: want an unsigned 64-bit integer", c.seed)
		}
		seed = s
	}
	if c.duration < 0 || (c.duration == 0 && cmd.Flags().Changed("duration")) {
		return bad("invalid --duration %s: must be positive", c.duration)
	}
	if c.checkpointEvery < 0 {
		return bad("invalid --checkpoint-interval %s: must not be negative (0 = only at the end)", c.checkpointEvery)
	}
	if c.iterations < 0 {
		return bad("invalid --iterations %d: must not be negative", c.iterations)
	}
	if c.workers < 1 {
		return bad("invalid --workers %d: want at least 1", c.workers)
	}
	models, err := campaign.ParseModels(c.models)
	if err != nil {
		return bad("invalid --crash-model: %v", err)
	}
	if c.maxClusters < 1 || c.maxClusters > d.maxClusters {
		return bad("invalid --max-clusters %d: want 1..%d", c.maxClusters, d.maxClusters)
	}
	if c.backingChance < 0 || c.backingChance > 1 {
		return bad("invalid --backing-chance %g: want 0..1", c.backingChance)
	}
	if c.ops < 1 || c.ops > d.maxOps {
		return bad("invalid --ops %d: want 1..%d", c.ops, d.maxOps)
	}
	gen.MaxClusters, gen.BackingChance, gen.Ops = c.maxClusters, c.backingChance, c.ops
	gen.ClusterSizes = nil
	for _, s := range strings.Split(c.clusterSizes, ",") {
		n, err := parseSize("cluster size", strings.TrimSpace(s))
		if err != nil || n < 4096 || n > 64<<20 || n&(n-1) != 0 {
			return bad("invalid --cluster-sizes entry %q: want powers of two from 4K to 64M", s)
		}
		gen.ClusterSizes = append(gen.ClusterSizes, uint32(n))
	}
	gen.TableSizes = nil
	for _, s := range strings.Split(c.tableSizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 || n > 16 || n&(n-1) != 0 {
			return bad("invalid --table-sizes entry %q: want powers of two from 1 to 16", s)
		}
		gen.TableSizes = append(gen.TableSizes, uint32(n))
	}
	if c.maxChain < 0 || c.maxChain > 8 {
		return bad("invalid --max-chain %d: want 0..8", c.maxChain)
	}
	gen.MaxChain = c.maxChain
	if gen.Weights, err = campaign.ParseWeights(c.weights, gen.Weights); err != nil {
		return bad("invalid --op-weights: %v", err)
	}
	if c.bound < 1 || c.samples < 1 || c.sampledPoints < 0 {
		return bad("--bound and --samples must be at least 1, --sampled-points at least 0")
	}
	switch c.progress {
	case "auto", "bar", "lines", "none":
	default:
		return bad("invalid --progress %q: want auto, bar, lines or none", c.progress)
	}
	if c.progressEvery <= 0 {
		return bad("invalid --progress-interval %s: must be positive", c.progressEvery)
	}
	if c.minimizeTime <= 0 {
		return bad("invalid --minimize-time %s: must be positive", c.minimizeTime)
	}
	return seed, models, gen, nil
}

// sizeList is the flag text of a list of sizes: in K when kib (cluster
// sizes: 4K,16K,64K), else plain numbers.
func sizeList(ns []uint32, kib bool) string {
	var parts []string
	for _, n := range ns {
		switch {
		case kib && n%(1<<20) == 0:
			parts = append(parts, fmt.Sprintf("%dM", n>>20))
		case kib && n%1024 == 0:
			parts = append(parts, fmt.Sprintf("%dK", n>>10))
		default:
			parts = append(parts, strconv.FormatUint(uint64(n), 10))
		}
	}
	return strings.Join(parts, ",")
}

// humanOut is where the human lines go: stdout, or stderr when the JSON
// report goes to stdout (--report -), so that stdout parses as JSON.
func (c *campaignFlags) humanOut(e *env) io.Writer {
	if c.report == "-" {
		return e.stderr
	}
	return e.stdout
}

// checkpointer returns the function that rewrites the --report file with
// a checkpoint (nil when there is no report file). A checkpoint that
// cannot be written is reported once on stderr; the campaign goes on, and
// the final report is written (or its error reported) at the end.
func checkpointer[R any](c *campaignFlags, e *env, conv func(R) jsonReport) func(R) {
	if c.report == "" || c.report == "-" || c.checkpointEvery <= 0 {
		return nil
	}
	warned := false
	return func(r R) {
		if err := writeReport(e, c.report, conv(r)); err != nil && !warned {
			warned = true
			fmt.Fprintf(e.stderr, "qedtorture: checkpoint not written (the campaign goes on): %v\n", err)
		}
	}
}

// progressMode resolves --progress auto: a bar on a terminal, lines
// otherwise.
func (c *campaignFlags) progressMode(stderr io.Writer) string {
	if c.progress != "auto" {
		return c.progress
	}
	if isTerminal(stderr) {
		return "bar"
	}
	return "lines"
}
