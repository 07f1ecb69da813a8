package campaign

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/qedtorture/qedtorture/crashsim"
	"github.com/qedtorture/qedtorture/faultfs"
	"github.com/qedtorture/qedtorture/props/oracle"
	"github.com/qedtorture/qedtorture/props/target"
	"github.com/qedtorture/qedtorture/props/workload"
)

// ErrConfig is wrapped by every configuration error (bad shard, model name,
// bounds): the command line maps it to a usage error.
var ErrConfig = errors.New("campaign: bad configuration")

// Shard is the part of the workload index space a run covers: the
// workloads w with w % Count == Index.
type Shard struct{ Index, Count int }

func (s Shard) String() string { return fmt.Sprintf("%d/%d", s.Index, s.Count) }

// Has reports whether workload w belongs to the shard.
func (s Shard) Has(w int) bool { return s.Count <= 1 || w%s.Count == s.Index }

// ParseShard reads "I/N" (0 <= I < N).
func ParseShard(s string) (Shard, error) {
	is, ns, ok := strings.Cut(s, "/")
	i, err1 := strconv.Atoi(is)
	n, err2 := strconv.Atoi(ns)
	if !ok || err1 != nil || err2 != nil {
		return Shard{}, fmt.Errorf("%w: shard %q: want I/N, e.g. 0/4", ErrConfig, s)
	}
	sh := Shard{Index: i, Count: n}
	return sh, sh.Validate()
}

// Validate checks 0 <= Index < Count.
func (s Shard) Validate() error {
	if s.Count < 1 || s.Index < 0 || s.Index >= s.Count {
		return fmt.Errorf("%w: shard %d/%d: want 0 <= I < N", ErrConfig, s.Index, s.Count)
	}
	return nil
}

// ShardFromEnv builds the shard from JOB_COMPLETION_INDEX (Kubernetes
// Indexed Jobs) and a shard count; ok is false when the variable is unset.
func ShardFromEnv(count int) (sh Shard, ok bool, err error) {
	v := os.Getenv("JOB_COMPLETION_INDEX")
	if v == "" {
		return Shard{}, false, nil
	}
	i, err := strconv.Atoi(v)
	if err != nil {
		return Shard{}, true, fmt.Errorf("%w: JOB_COMPLETION_INDEX=%q is not an integer", ErrConfig, v)
	}
	sh = Shard{Index: i, Count: count}
	return sh, true, sh.Validate()
}

// ParseModels reads a comma-separated list of crash models: the families
// prefix, drop, subset, torn (= torn512 and torn4k), all (= oracle.DefaultModels),
// or any crashsim model name (torn512+garbage, subset+size, ...).
// Duplicates are removed, order kept.
func ParseModels(s string) ([]crashsim.Model, error) {
	var out []crashsim.Model
	seen := map[string]bool{}
	add := func(m crashsim.Model) {
		if !seen[m.String()] {
			seen[m.String()] = true
			out = append(out, m)
		}
	}
	for _, name := range strings.Split(s, ",") {
		name = strings.TrimSpace(name)
		switch name {
		case "all":
			for _, m := range oracle.DefaultModels() {
				add(m)
			}
		case "torn":
			add(crashsim.Model{Base: crashsim.Torn, Sector: 512})
			add(crashsim.Model{Base: crashsim.Torn, Sector: 4096})
		default:
			m, err := crashsim.ParseModel(name)
			if err != nil {
				return nil, fmt.Errorf("%w: crash model %q: want prefix, drop, subset, torn, all or a crashsim model name (%v)", ErrConfig, name, err)
			}
			add(m)
		}
	}
	return out, nil
}

// Config is one campaign.
type Config struct {
	Seed  uint64
	Shard Shard // zero value: unsharded
	// Iterations bounds the workload index space: the campaign runs the
	// workloads w < Iterations of its shard. 0 = unbounded (use Duration).
	Iterations int
	// Duration stops starting new workloads after this long (0 = no limit;
	// at least one of Iterations and Duration must be set).
	Duration time.Duration
	Workers  int // parallel workloads; 0 = 1
	Models   []crashsim.Model
	// Gen draws the workloads; the image commands are left out of it
	// when the driver or the diff driver cannot run them
	// (ImageCommander).
	Gen workload.GenConfig
	// Workload, if set, is run instead of generated ones: every workload
	// index runs it (its workload seed still drives the sampled crash
	// points and states, and the faults).
	Workload *workload.Workload
	// Exhaustive, if set, is the workload source instead of the random
	// generator (bounded-exhaustive campaigns): workload index w is
	// Exhaustive.Workload(w), Iterations defaults to Exhaustive.Len(),
	// every op index after the workloads' prefix is a crash point, and
	// Bound defaults to ExhaustiveBound (a point and model with more
	// states than Bound is sampled, and counted in Report.Exhaustive).
	Exhaustive *workload.Exhaustive
	// MemoryBudget bounds the estimated memory (WorkloadMemory) of the
	// workloads in flight: a worker waits before a workload that does not
	// fit beside the others, and Run refuses a configuration whose largest
	// workload does not fit alone (memory.go). 0 = DefaultMemoryBudget.
	MemoryBudget int64
	// Faults are faultfs rules applied to the run of every workload.
	Faults string
	// FaultShare (0 to 1) runs a share of the workloads whose creation is
	// not recorded with one fault rule each, drawn from the workload seed
	// and judged as Faults are (faultshare.go); 0: none. Not with Faults
	// (which fault every workload), Diff or Exhaustive; the driver must
	// inject faults (in process).
	FaultShare float64
	// FaultSweep (0 to 1) sweeps a share of the workloads drawn for a
	// fault: one step of the workload, each of its operations failed in
	// turn, one run each (faultsweep.go); 0: none.
	FaultSweep float64
	// Bound, Samples: per crash point and model, states are enumerated when
	// at most Bound, else Samples are drawn. SampledPoints: operation
	// indices drawn per workload on top of the syncs and the end.
	Bound         uint64
	Samples       int
	SampledPoints int
	// NoDedup runs the oracle on every crash state, even on one whose
	// bytes (and model) equal a state of the same workload that passed.
	NoDedup bool
	// Known are known findings (--known): failures whose signature they
	// match are counted in Report.Known, not minimized nor written, and
	// do not count towards MaxFailures.
	Known *Known
	// MaxFailures stops the campaign after failures of this many distinct
	// signatures (0 = 1).
	MaxFailures int
	// MinimizeCandidates bounds the workloads tried by Minimize (0 = 300),
	// MinimizeTimeout its time (0 = 2 minutes).
	MinimizeCandidates int
	MinimizeTimeout    time.Duration
	// Out is where artifacts go ("" = none written).
	Out string
	// Driver runs and records the workloads on the implementation under
	// test; nil: InProcess(Target). One of Driver and Target is required:
	// the engine knows no implementation (cmd/qedtorture's targets.go maps
	// --target names to them). Run closes the driver when it is done.
	Driver Driver
	// Target is the in-process implementation under test, when Driver is
	// nil.
	Target target.Target
	// Reference recovers the crash states of a driver that has no
	// in-process recoverer of its own (Driver.Recoverer nil): impl/qed.
	// A recoverer that is a target.ReadLimiter sets Oracle.FullReadLimit.
	Reference target.Target
	// Judges are judges added for every target, run besides the oracle
	// judge and the driver's own (see Judge).
	Judges []Judge
	// Diff, if set, is the other side of differential runs (diff.go):
	// every workload also runs without crashes on the target and on Diff,
	// and a difference the format does not allow is a failure (stage
	// diff). Run closes it when it is done.
	Diff Driver
	// NestedDepth is the deepest crash judged: 2 and more record the
	// recovery of a sample of crash states and judge the crash states of
	// that recovery (crashes during recovery, nested.go), to this depth;
	// 0 and 1 judge one crash followed by a clean recovery.
	// NestedStates is the sample: the crash states per workload whose
	// recovery is recorded, and at each further depth the states per
	// recovery crashed again (0 = DefaultNestedStates).
	NestedDepth  int
	NestedStates int
	// CreateShare is the share of workloads (0 to 1, drawn from each
	// workload seed) whose creation of the image and its backing chain is
	// recorded with real directory semantics and judged (create.go); 0:
	// none. Not with Faults or Exhaustive.
	CreateShare float64
	// TargetName names the target in reports and artifacts ("" =
	// Driver.Name()); Replay hands it to its resolver.
	TargetName string
	Oracle     oracle.Options
	// Progress, if set, is called about every ProgressEvery (and at the
	// end) with a snapshot of the counters.
	Progress      func(Stats)
	ProgressEvery time.Duration
	// Checkpoint, if set, is called every CheckpointEvery during the run
	// with a report of what was done so far (Report.Checkpoint set), from
	// one goroutine, never after Run returns. The command line rewrites
	// the report file with it, so a run killed without warning (a
	// preempted machine) leaves its last checkpoint.
	Checkpoint      func(*Report)
	CheckpointEvery time.Duration
}

// Defaults for the bounds.
const (
	DefaultBound         = 256
	DefaultSamples       = 32
	DefaultSampledPoints = 4
	DefaultDuration      = 60 * time.Second
	// ExhaustiveBound is the default Bound of exhaustive campaigns.
	ExhaustiveBound = 1 << 16
)

// DefaultGenConfig is the campaign's default workload shape: small images
// (4 to 64 KiB clusters, at most 64 clusters) so that a crash state costs
// little, with backing chains half of the time.
func DefaultGenConfig() workload.GenConfig {
	g := workload.DefaultGenConfig()
	g.ClusterSizes = []uint32{4096, 16384, 65536}
	g.MaxClusters = 64
	return g
}

func (c *Config) setDefaults() error {
	if c.Workers <= 0 {
		c.Workers = 1
	}
	if c.Shard.Count == 0 {
		c.Shard = Shard{0, 1}
	}
	if err := c.Shard.Validate(); err != nil {
		return err
	}
	if c.Iterations < 0 || c.Duration < 0 {
		return fmt.Errorf("%w: negative iterations or duration", ErrConfig)
	}
	if c.CheckpointEvery < 0 {
		return fmt.Errorf("%w: negative checkpoint interval", ErrConfig)
	}
	if x := c.Exhaustive; x != nil {
		if c.Workload != nil {
			return fmt.Errorf("%w: an exhaustive campaign generates its workloads (no workload file)", ErrConfig)
		}
		if x.Depth < 1 || x.Len() < 1 {
			return fmt.Errorf("%w: exhaustive depth %d: want at least 1", ErrConfig, x.Depth)
		}
		if c.Iterations == 0 || c.Iterations > x.Len() {
			c.Iterations = x.Len()
		}
		if c.Bound == 0 {
			c.Bound = ExhaustiveBound
		}
	}
	if c.Iterations == 0 && c.Duration == 0 {
		c.Duration = DefaultDuration
	}
	if len(c.Models) == 0 {
		c.Models = oracle.DefaultModels()
	}
	for _, m := range c.Models {
		if err := m.Validate(); err != nil {
			return fmt.Errorf("%w: %w", ErrConfig, err)
		}
	}
	if c.Gen.Ops == 0 && len(c.Gen.ClusterSizes) == 0 {
		c.Gen = DefaultGenConfig()
	}
	if len(c.Gen.ClusterSizes) == 0 || len(c.Gen.TableSizes) == 0 || c.Gen.MaxClusters < 1 {
		return fmt.Errorf("%w: geometry needs cluster sizes, table sizes and max clusters >= 1", ErrConfig)
	}
	for _, cs := range c.Gen.ClusterSizes {
		if cs < 4096 || cs > 64<<20 || cs&(cs-1) != 0 {
			return fmt.Errorf("%w: cluster size %d is not a power of two in 4096..64M", ErrConfig, cs)
		}
	}
	for _, ts := range c.Gen.TableSizes {
		if ts < 1 || ts > 16 || ts&(ts-1) != 0 {
			return fmt.Errorf("%w: table size %d is not a power of two in 1..16", ErrConfig, ts)
		}
	}
	if c.Gen.BackingChance < 0 || c.Gen.BackingChance > 1 {
		return fmt.Errorf("%w: backing chance %g not in [0,1]", ErrConfig, c.Gen.BackingChance)
	}
	if c.Bound == 0 {
		c.Bound = DefaultBound
	}
	if c.Samples == 0 {
		c.Samples = DefaultSamples
	}
	if c.Samples < 0 {
		return fmt.Errorf("%w: negative samples (%d)", ErrConfig, c.Samples)
	}
	if c.SampledPoints < 0 {
		c.SampledPoints = 0
	}
	if c.MaxFailures <= 0 {
		c.MaxFailures = 1
	}
	if c.MinimizeCandidates == 0 {
		c.MinimizeCandidates = 300
	}
	if err := c.CheckMemory(); err != nil {
		return err
	}
	if c.MinimizeTimeout == 0 {
		c.MinimizeTimeout = 2 * time.Minute
	}
	if c.Driver == nil {
		if c.Target == nil {
			return fmt.Errorf("%w: no target (the implementation under test)", ErrConfig)
		}
		c.Driver = InProcess(c.Target)
	}
	if c.Driver.Recoverer() == nil && c.Reference == nil {
		return fmt.Errorf("%w: target %s has no in-process recoverer and no Reference is set", ErrConfig, c.Driver.Name())
	}
	if c.Diff != nil {
		if _, ok := c.Diff.(Runner); !ok && c.Diff.Recoverer() == nil && c.Reference == nil {
			return fmt.Errorf("%w: diff target %s has no in-process reader and no Reference is set", ErrConfig, c.Diff.Name())
		}
		if c.Faults != "" {
			return fmt.Errorf("%w: differential runs compare runs without faults (no --fault with --diff)", ErrConfig)
		}
	}
	if c.TargetName == "" {
		c.TargetName = c.Driver.Name()
	}
	if !RunsImageCommands(c.Driver) || (c.Diff != nil && !RunsImageCommands(c.Diff)) {
		// Drawn only for targets that can run them: a black-box program
		// speaks qemu-io's commands, which have no rebase or commit.
		c.Gen.NoImageCommands()
	}
	if c.NestedDepth < 0 || c.NestedStates < 0 {
		return fmt.Errorf("%w: nested depth %d and states %d: want 0 or more", ErrConfig, c.NestedDepth, c.NestedStates)
	}
	if c.CreateShare < 0 || c.CreateShare > 1 {
		return fmt.Errorf("%w: creation share %g not in [0,1]", ErrConfig, c.CreateShare)
	}
	if c.FaultShare < 0 || c.FaultShare > 1 {
		return fmt.Errorf("%w: fault share %g not in [0,1]", ErrConfig, c.FaultShare)
	}
	if c.FaultSweep < 0 || c.FaultSweep > 1 {
		return fmt.Errorf("%w: fault sweep share %g not in [0,1]", ErrConfig, c.FaultSweep)
	}
	if c.FaultShare > 0 {
		switch {
		case c.Faults != "":
			return fmt.Errorf("%w: a fault share with faults for every workload (--fault-share with --fault)", ErrConfig)
		case c.Diff != nil:
			return fmt.Errorf("%w: differential runs compare runs without faults (no --fault-share with --diff)", ErrConfig)
		case c.Exhaustive != nil:
			return fmt.Errorf("%w: an exhaustive campaign runs its workloads without faults (no --fault-share with --exhaustive)", ErrConfig)
		}
	}
	if c.NestedStates == 0 {
		c.NestedStates = DefaultNestedStates
	}
	c.Oracle = tuneOracle(c.recoverer(), c.Oracle)
	if c.ProgressEvery == 0 {
		c.ProgressEvery = 10 * time.Second
	}
	return nil
}

// recoverer is the target the oracle judge recovers crash states with.
func (c *Config) recoverer() target.Target {
	if r := c.Driver.Recoverer(); r != nil {
		return r
	}
	return c.Reference
}

// diffReader is the target that reads back the files of the diff
// driver's runs when it is not a Runner.
func (c *Config) diffReader() target.Target {
	if r := c.Diff.Recoverer(); r != nil {
		return r
	}
	return c.Reference
}

// judges returns the campaign's judges: the oracle judge (recovery by the
// recoverer), then the driver's, then Config.Judges, then the nested
// judge when NestedDepth is 2 or more (its depth-2+ states counted in
// nested, which may be nil).
func (c *Config) judges(nested *atomic.Int64) []Judge {
	js := []Judge{&oracleJudge{t: c.recoverer(), oracle: c.Oracle}}
	js = append(js, c.Driver.Judges()...)
	js = append(js, c.Judges...)
	if c.NestedDepth >= 2 {
		js = append(js, c.nestedJudge(nested))
	}
	return js
}

// nestedJudge is the campaign's judge of crashes during recovery.
func (c *Config) nestedJudge(states *atomic.Int64) *nestedJudge {
	j := &nestedJudge{t: c.recoverer(), oracle: c.Oracle, models: c.Models, enum: crashsim.EnumOptions{Bound: c.Bound, Samples: c.Samples},
		depth: max(c.NestedDepth, 2), budget: c.NestedStates, points: c.SampledPoints, states: states}
	if rr, ok := c.Driver.(RecoveryRecorder); ok {
		j.rr = rr
	}
	return j
}

// tuneOracle applies what a target asks of the oracle (target.ReadLimiter).
func tuneOracle(t target.Target, o oracle.Options) oracle.Options {
	if rl, ok := t.(target.ReadLimiter); ok {
		if l := rl.FullReadLimit(); l > 0 {
			o.FullReadLimit = l
		}
	}
	return o
}

// WorkloadSeed is the seed of workload w of a campaign (splitmix64 of the
// pair): it alone regenerates the workload and its sampled crash points.
func WorkloadSeed(campaign uint64, w int) uint64 {
	z := campaign ^ (uint64(w)+1)*0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// ValidateFaults parses faultfs rules as Record will use them.
func ValidateFaults(rules string) (faultfs.RuleSet, error) {
	rs, err := faultfs.Parse(rules)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	return rs, nil
}

// ParseWeights reads operation weights "write=10,flush=3,...": the kinds
// named (by their script keyword) replace the defaults; a weight of 0
// removes a kind. Concurrent groups make a workload's I/O order depend on
// the scheduler: concurrent=0 makes runs repeat exactly.
func ParseWeights(s string, base map[workload.Kind]int) (map[workload.Kind]int, error) {
	out := map[workload.Kind]int{}
	for k, v := range base {
		out[k] = v
	}
	for _, kv := range strings.Split(s, ",") {
		if strings.TrimSpace(kv) == "" {
			continue
		}
		name, val, ok := strings.Cut(strings.TrimSpace(kv), "=")
		k, known := workload.KindByName(name)
		n, err := strconv.Atoi(val)
		if !ok || !known || err != nil || n < 0 || n > 1000 {
			return nil, fmt.Errorf("%w: op weight %q: want KIND=N with KIND one of %s and N in 0..1000", ErrConfig, kv, strings.Join(workload.KindNames(), ", "))
		}
		if n == 0 {
			delete(out, k)
		} else {
			out[k] = n
		}
	}
	total := 0
	for _, v := range out {
		total += v
	}
	if total == 0 {
		return nil, fmt.Errorf("%w: op weights %q leave no operation kind", ErrConfig, s)
	}
	return out, nil
}
