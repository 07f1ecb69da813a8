package campaign

import (
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"slices"
	"strconv"
	"time"

	"github.com/qedtorture/qedtorture/props/workload"
)

// ReportVersion is the version of the JSON report layout. Version 2 added
// the signatures (per failure and counted), the per-judge and per-kind
// adaptation counts; ReadReport reads versions 1 and 2 (a version 1
// report merges as one without them).
const ReportVersion = 2

// Report is the JSON summary of a campaign (or a merge of shards).
type Report struct {
	Version    int      `json:"version"`
	Seed       uint64   `json:"seed"`
	Shard      string   `json:"shard"`       // "I/N", or "0,2/4" after a merge
	ShardCount int      `json:"shard_count"` // N
	ShardsDone []int    `json:"shards"`      // the shard indices covered
	Target     string   `json:"target"`      // implementation under test
	Models     []string `json:"models"`      // crash models enumerated
	Faults     string   `json:"faults,omitempty"`
	// FaultShare is the share of workloads run with a drawn fault
	// (Config.FaultShare; Faulted counts those in which it fired).
	FaultShare float64 `json:"fault_share,omitempty"`
	// FaultSweep is the share of those that swept steps instead (and those
	// with a commit or a rebase; Config.FaultSweep): FaultSweeps counts the
	// workloads swept, FaultSweepRuns their runs (faultsweep.go).
	FaultSweep     float64 `json:"fault_sweep,omitempty"`
	FaultSweeps    int64   `json:"fault_sweeps,omitempty"`
	FaultSweepRuns int64   `json:"fault_sweep_runs,omitempty"`
	Iterations     int     `json:"iterations,omitempty"` // workload index space bound (0 = by duration)
	Workloads      int64   `json:"workloads"`            // workloads completed without a failure
	// FailedWorkloads counts the workloads that failed (Failures lists the
	// first of each signature, minimized, up to MaxFailures signatures).
	FailedWorkloads int64 `json:"failed_workloads"`
	Skipped         int64 `json:"skipped"` // workloads whose recording could not be judged (ErrSkip)
	// SkipReasons are the first reasons of skipped workloads.
	SkipReasons []string `json:"skip_reasons,omitempty"`
	// Diff is the other side of the differential runs (Config.Diff), and
	// DiffRuns how many ran.
	Diff     string `json:"diff,omitempty"`
	DiffRuns int64  `json:"diff_runs,omitempty"`
	Faulted  int64  `json:"faulted,omitempty"` // workloads in which a fault was injected
	// FaultEffects counts crash states (and workload reads) that failed
	// only within what a silent fault touched: the fault's direct effect,
	// not a failure (see faults.go).
	FaultEffects int64 `json:"fault_effects,omitempty"`
	CrashPoints  int64 `json:"crash_points"`
	CrashStates  int64 `json:"crash_states"`
	// NestedDepth is the deepest crash judged (Config.NestedDepth; 0: one
	// crash), NestedStates the distinct crash states of depth 2 and more
	// judged (crashes during the recovery of a sample of CrashStates,
	// nested.go); they are not counted in CrashStates.
	NestedDepth  int   `json:"nested_depth,omitempty"`
	NestedStates int64 `json:"nested_states,omitempty"`
	// CreationStates counts the crash states during the creation of the
	// image and its backing chain judged by the creation judge (create.go),
	// CreationAbsent those of them in which the image was absent; they are
	// counted in CrashStates too.
	CreationStates int64 `json:"creation_states,omitempty"`
	CreationAbsent int64 `json:"creation_absent,omitempty"`
	// CreationOld counts the creation states over an existing image
	// (create.go) that left the old image (judged intact or not).
	CreationOld int64 `json:"creation_old,omitempty"`
	// OracleRuns counts the states the oracle ran on; the rest of
	// CrashStates were byte-identical to a state of the same workload
	// judged against the same model, whose verdict they share.
	OracleRuns int64 `json:"oracle_runs"`
	// PerModel counts the crash states checked under each model.
	PerModel map[string]int64 `json:"per_model"`
	// Judged counts, per judge (its Name), the distinct crash states it
	// judged; a budgeted judge (QEMU's recovery) sees a sample.
	Judged map[string]int64 `json:"judged,omitempty"`
	// Adaptations counts, per kind, the changes the target's driver made
	// to the generated workloads to run them (QEMU's; none in process).
	Adaptations map[string]int64 `json:"adaptations,omitempty"`
	// Signatures counts the failed workloads per failure signature
	// (Failure.Signature); Failures lists the first of each, minimized.
	Signatures map[string]int64 `json:"signatures,omitempty"`
	// Known counts the failed workloads per known finding (Config.Known:
	// the name of the entry their signature matched); they are counted in
	// FailedWorkloads and Signatures too, but not listed in Failures.
	Known           map[string]int64 `json:"known,omitempty"`
	Failures        []FailureReport  `json:"failures"`
	Seconds         float64          `json:"seconds"` // wall time (max over merged shards)
	StatesPerSecond float64          `json:"states_per_second"`
	// Rate samples the run's progress over time (the states per second
	// between two samples is the rate over that interval): one sample
	// every RateEvery at first, at most MaxRateSamples, the interval
	// doubling (every other sample dropped) whenever they would be more,
	// and the last at the report's Seconds. A merged report has none
	// (shards' clocks are not one timeline).
	Rate    []RateSample `json:"rate,omitempty"`
	Workers int          `json:"workers"`
	// Digest is the XOR over completed workloads of a hash of (index,
	// seed): equal digests mean the same workloads were completed.
	Digest string `json:"digest"`
	// WorkloadDigest is the XOR over the workloads run to their end
	// (passed or failed; not those an interruption abandoned) of
	// ScriptDigest: a hash of the index and of the workload's script as
	// generated, before a target adapted it. Two campaigns, of any
	// targets, with equal digests ran the same workloads ("" in reports
	// written before it existed).
	WorkloadDigest string `json:"workload_digest,omitempty"`
	// Coverage is the statement coverage the campaign reached per
	// package (run --coverage, a coverage build: impl/qed, with its
	// seeded-defect blocks excluded, and props/check); a merge keeps none
	// (merge the shards' coverage data with go tool covdata merge).
	Coverage map[string]CoverageStat `json:"coverage,omitempty"`
	// Interrupted: the run was stopped by a signal (SIGINT, SIGTERM)
	// before its iterations or duration were done; the counts cover the
	// workloads completed until then. After a merge: some shard was.
	Interrupted bool `json:"interrupted,omitempty"`
	// Checkpoint: a report written during the run (every
	// --checkpoint-interval); the final report replaces it. After a merge:
	// some shard's report was one.
	Checkpoint bool `json:"checkpoint,omitempty"`
	// Exhaustive describes a bounded-exhaustive campaign (nil for a
	// random one): its depth, vocabulary and layouts, and how many
	// (crash point, model) pairs had more states than the bound and were
	// sampled (0: every crash state of every workload was judged).
	Exhaustive *ExhaustiveReport `json:"exhaustive,omitempty"`
	// Partial lists, after a merge, the shards whose report was a
	// checkpoint or interrupted; MissingShards the shards of ShardCount
	// that no merged report covered (merged with --allow-partial).
	Partial       []int `json:"partial_shards,omitempty"`
	MissingShards []int `json:"missing_shards,omitempty"`
}

// A RateSample is the campaign's counters at one moment of its run.
type RateSample struct {
	Seconds   float64 `json:"seconds"` // since the start
	States    int64   `json:"states"`  // crash states checked by then
	Workloads int64   `json:"workloads"`
}

// RateEvery is the first interval between rate samples, and
// MaxRateSamples the most a report keeps.
const (
	RateEvery      = time.Second
	MaxRateSamples = 128
)

// Complete reports whether the report covers every shard of its campaign.
func (r *Report) Complete() bool { return len(r.MissingShards) == 0 }

// FailureReport is one failure in a Report.
type FailureReport struct {
	Workload     int    `json:"workload"`
	WorkloadSeed uint64 `json:"workload_seed"`
	Stage        string `json:"stage"`
	State        string `json:"state,omitempty"` // crashsim StateID
	CrashPoint   int64  `json:"crash_point,omitempty"`
	GuestOp      int    `json:"guest_op"`
	Ops          int    `json:"ops"`             // minimized workload length
	OriginalOps  int    `json:"original_ops"`    // before minimization
	Model        string `json:"model,omitempty"` // crash model of the (minimized) state
	Artifact     string `json:"artifact,omitempty"`
	// ArtifactError says why the artifact could not be written (a full
	// disk, a read-only --out): the failure has no artifact.
	ArtifactError string `json:"artifact_error,omitempty"`
	// FoundSeconds is the campaign time at which the failure was found;
	// MinimizeSeconds how long minimizing it took.
	FoundSeconds    float64 `json:"found_seconds"`
	MinimizeSeconds float64 `json:"minimize_seconds"`
	Message         string  `json:"message"`
	// Signature is the failure's signature (Failure.Signature); Judge
	// the judge that rejected the state ("" for a crash-free failure).
	Signature string `json:"signature,omitempty"`
	Judge     string `json:"judge,omitempty"`
}

func workloadDigest(w int, seed uint64) uint64 {
	h := fnv.New64a()
	fmt.Fprintf(h, "%d/%d", w, seed)
	return h.Sum64()
}

func formatDigest(d uint64) string { return fmt.Sprintf("%016x", d) }

// WriteJSON writes the report, indented.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// ReadReport decodes a JSON report.
func ReadReport(rd io.Reader) (*Report, error) {
	var r Report
	dec := json.NewDecoder(rd)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("campaign: report: %w", err)
	}
	if r.Version < 1 || r.Version > ReportVersion {
		return nil, fmt.Errorf("campaign: report: version %d, want 1 to %d", r.Version, ReportVersion)
	}
	return &r, nil
}

// ErrMerge is wrapped by Merge errors: reports of different campaigns, or
// overlapping shards.
var ErrMerge = errors.New("campaign: reports cannot be merged")

// CoverageStat is one package's statement coverage in a report.
type CoverageStat struct {
	Statements int     `json:"statements"`         // counted (seeded-defect blocks excluded)
	Covered    int     `json:"covered"`            // reached at least once
	Excluded   int     `json:"excluded,omitempty"` // seeded-defect statements left out
	Percent    float64 `json:"percent"`
}

// Merge combines the reports of shards of one campaign (same seed, shard
// count, target, models, faults and iterations; disjoint shards) into one.
// Counts add up, digests XOR, failures concatenate, seconds is the longest
// shard (shards run in parallel) and states_per_second is recomputed.
// Checkpointed and interrupted reports merge like final ones (their counts
// cover what they completed); the result is marked Checkpoint/Interrupted
// and lists them in Partial. Shards no report covers are listed in
// MissingShards (Complete is false): the command line refuses such a
// merge unless asked for a partial one.
func Merge(reps ...*Report) (*Report, error) {
	if len(reps) == 0 {
		return nil, fmt.Errorf("%w: no reports", ErrMerge)
	}
	first := reps[0]
	out := &Report{Version: ReportVersion, Seed: first.Seed, ShardCount: first.ShardCount, Target: first.Target,
		Models: first.Models, Faults: first.Faults, FaultShare: first.FaultShare, FaultSweep: first.FaultSweep, Iterations: first.Iterations, PerModel: map[string]int64{},
		Failures: []FailureReport{}, Diff: first.Diff}
	var digest, wdigest uint64
	for i, r := range reps {
		what := ""
		switch {
		case r.Seed != first.Seed:
			what = "seed " + strconv.FormatUint(r.Seed, 10)
		case r.ShardCount != first.ShardCount:
			what = "shard count " + strconv.Itoa(r.ShardCount)
		case r.Target != first.Target:
			what = "target " + r.Target
		case !slices.Equal(r.Models, first.Models):
			what = fmt.Sprintf("models %v", r.Models)
		case r.Diff != first.Diff:
			what = "diff target " + strconv.Quote(r.Diff)
		case r.Faults != first.Faults:
			what = "faults " + strconv.Quote(r.Faults)
		case r.FaultShare != first.FaultShare:
			what = "fault share " + strconv.FormatFloat(r.FaultShare, 'g', -1, 64)
		case r.FaultSweep != first.FaultSweep:
			what = "fault sweep share " + strconv.FormatFloat(r.FaultSweep, 'g', -1, 64)
		case r.Iterations != first.Iterations:
			what = "iterations " + strconv.Itoa(r.Iterations)
		}
		if what != "" {
			return nil, fmt.Errorf("%w: report %d has %s, report 0 differs", ErrMerge, i, what)
		}
		for _, s := range r.ShardsDone {
			if slices.Contains(out.ShardsDone, s) {
				return nil, fmt.Errorf("%w: shard %d/%d appears twice (report %d)", ErrMerge, s, r.ShardCount, i)
			}
			out.ShardsDone = append(out.ShardsDone, s)
		}
		d, err := strconv.ParseUint(r.Digest, 16, 64)
		if err != nil {
			return nil, fmt.Errorf("%w: report %d: digest %q is not hex", ErrMerge, i, r.Digest)
		}
		digest ^= d
		if r.WorkloadDigest != "" {
			d, err := strconv.ParseUint(r.WorkloadDigest, 16, 64)
			if err != nil {
				return nil, fmt.Errorf("%w: report %d: workload_digest %q is not hex", ErrMerge, i, r.WorkloadDigest)
			}
			wdigest ^= d
		}
		out.Workloads += r.Workloads
		out.Skipped += r.Skipped
		out.DiffRuns += r.DiffRuns
		for _, why := range r.SkipReasons {
			if len(out.SkipReasons) < maxSkipReasons {
				out.SkipReasons = append(out.SkipReasons, why)
			}
		}
		out.Faulted += r.Faulted
		out.FaultEffects += r.FaultEffects
		out.FaultSweeps += r.FaultSweeps
		out.FaultSweepRuns += r.FaultSweepRuns
		if r.Exhaustive != nil {
			if out.Exhaustive == nil {
				x := *r.Exhaustive
				x.OverBound = 0
				out.Exhaustive = &x
			}
			out.Exhaustive.OverBound += r.Exhaustive.OverBound
		}
		out.CrashPoints += r.CrashPoints
		out.CrashStates += r.CrashStates
		out.OracleRuns += r.OracleRuns
		out.NestedDepth = max(out.NestedDepth, r.NestedDepth)
		out.NestedStates += r.NestedStates
		out.CreationStates += r.CreationStates
		out.CreationAbsent += r.CreationAbsent
		out.CreationOld += r.CreationOld
		for m, n := range r.PerModel {
			out.PerModel[m] += n
		}
		out.Judged = addCounts(out.Judged, r.Judged)
		out.Adaptations = addCounts(out.Adaptations, r.Adaptations)
		out.Signatures = addCounts(out.Signatures, r.Signatures)
		out.Known = addCounts(out.Known, r.Known)
		out.FailedWorkloads += r.FailedWorkloads
		out.Failures = append(out.Failures, r.Failures...)
		out.Interrupted = out.Interrupted || r.Interrupted
		out.Checkpoint = out.Checkpoint || r.Checkpoint
		if r.Interrupted || r.Checkpoint {
			out.Partial = append(out.Partial, r.ShardsDone...)
		}
		out.Seconds = max(out.Seconds, r.Seconds)
		out.Workers += r.Workers
	}
	slices.Sort(out.ShardsDone)
	slices.Sort(out.Partial)
	for s := range max(out.ShardCount, 1) {
		if !slices.Contains(out.ShardsDone, s) {
			out.MissingShards = append(out.MissingShards, s)
		}
	}
	out.Shard = shardLabel(out.ShardsDone, out.ShardCount)
	out.Digest = formatDigest(digest)
	out.WorkloadDigest = formatDigest(wdigest)
	if out.Seconds > 0 {
		out.StatesPerSecond = float64(out.CrashStates) / out.Seconds
	}
	return out, nil
}

func shardLabel(done []int, n int) string {
	if len(done) == 1 {
		return fmt.Sprintf("%d/%d", done[0], n)
	}
	if len(done) == n {
		return fmt.Sprintf("all/%d", n)
	}
	s := ""
	for i, d := range done {
		if i > 0 {
			s += ","
		}
		s += strconv.Itoa(d)
	}
	return s + "/" + strconv.Itoa(n)
}

// addCounts adds b's counts to a (allocated when needed; nil stays nil
// when both are empty).
func addCounts(a, b map[string]int64) map[string]int64 {
	if len(b) == 0 {
		return a
	}
	if a == nil {
		a = map[string]int64{}
	}
	for k, n := range b {
		a[k] += n
	}
	return a
}

// ExhaustiveReport is Report.Exhaustive.
type ExhaustiveReport struct {
	Depth      int      `json:"depth"`
	Workloads  int      `json:"workloads"` // in the whole index space (all shards)
	Vocabulary []string `json:"vocabulary"`
	Layouts    []string `json:"layouts"`
	Bound      uint64   `json:"bound"`
	// OverBound counts the (crash point, model) pairs with more states
	// than Bound, whose states were sampled.
	OverBound int64 `json:"over_bound"`
}

func exhaustiveReport(x *workload.Exhaustive, bound uint64, over int64) *ExhaustiveReport {
	r := &ExhaustiveReport{Depth: x.Depth, Workloads: x.Len(), Bound: bound, OverBound: over}
	for _, s := range x.Shapes {
		r.Vocabulary = append(r.Vocabulary, s.Name)
	}
	for _, l := range x.Layouts {
		g := l.Geometry
		d := fmt.Sprintf("%s (cluster_size=%d table_size=%d size=%d", l.Name, g.ClusterSize, g.TableSize, g.Size)
		for _, b := range g.Backing {
			d += fmt.Sprintf(", %s backing size=%d", b.Format, b.Size)
		}
		r.Layouts = append(r.Layouts, d+")")
	}
	return r
}

// ExhaustiveSummary is the report's one-line statement of an exhaustive
// campaign: "exhaustive to depth K: N workloads, M crash states, F
// failures" ("" for a random campaign).
func (r *Report) ExhaustiveSummary() string {
	x := r.Exhaustive
	if x == nil {
		return ""
	}
	s := fmt.Sprintf("exhaustive to depth %d: %d workloads, %d crash states, %d failures", x.Depth, r.Workloads+r.FailedWorkloads, r.CrashStates, r.FailedWorkloads)
	if n := int64(x.Workloads); r.Workloads+r.FailedWorkloads+r.Skipped < n {
		s += fmt.Sprintf(" (of %d workloads in all shards)", n)
	}
	if x.OverBound > 0 {
		s += fmt.Sprintf("; %d (point, model) pairs over the bound %d were sampled", x.OverBound, x.Bound)
	}
	return s
}
