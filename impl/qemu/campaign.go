package qemu

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/qedtorture/qedtorture/crashsim"
	"github.com/qedtorture/qedtorture/internal/atomicfile"
	"github.com/qedtorture/qedtorture/internal/campaign"
	"github.com/qedtorture/qedtorture/internal/qemuio"
	"github.com/qedtorture/qedtorture/internal/qemutool"
	"github.com/qedtorture/qedtorture/props/check"
	"github.com/qedtorture/qedtorture/props/oracle"
	"github.com/qedtorture/qedtorture/props/target"
	"github.com/qedtorture/qedtorture/props/workload"
)

// Config is one QEMU campaign (`qedtorture qemu`).
type Config struct {
	Tool *qemutool.Tool
	// Workload, if set, is run instead of generated ones (every iteration
	// runs it; Seed still drives the crash-point and state sampling).
	Workload   *workload.Workload
	Seed       uint64
	Iterations int           // workloads to run (0 = until Duration)
	Duration   time.Duration // stop starting workloads after this long
	Workers    int           // parallel workloads (0 = 1)
	Models     []crashsim.Model
	Gen        workload.GenConfig
	Enum       crashsim.EnumOptions
	// SampledPoints: crash points drawn per workload besides the syncs.
	SampledPoints int
	// QEMUStates: crash states per workload recovered and read back by
	// QEMU (2 qemu-img processes each); <0 = all distinct states.
	QEMUStates int
	// Ends: how runs end, rotated over the workloads (nil = close, abort, kill).
	Ends []End
	// Diff also runs every workload through QEMU and impl/qed without
	// crashes and compares them.
	Diff bool
	// MinimizeCandidates bounds the workloads tried per minimization (0 = 60; <0 = none).
	MinimizeCandidates int
	// MinimizeTimeout bounds the time spent minimizing one failure (0 = 1
	// minute): each candidate is a QEMU run and its crash checks.
	MinimizeTimeout time.Duration
	Out             string // artifact directory ("" = none)
	Progress        func(Stats)
	ProgressEvery   time.Duration
	// Checkpoint, if set, is called every CheckpointEvery during the run
	// with a report of what was done so far (Report.Checkpoint set; its
	// failures not yet minimized, without artifacts), from one goroutine,
	// never after Run returns.
	Checkpoint      func(*Report)
	CheckpointEvery time.Duration
	// Reference is the in-process implementation that recovers every
	// distinct crash state and runs the other side of Diff (side
	// "impl/qed"): impl/qed's adapter, passed by cmd/qedtorture (this
	// package imports no other implementation). Required.
	Reference target.Target
}

// Stats are the running counters of a campaign.
type Stats struct {
	Workloads, CrashPoints, CrashStates, Distinct, QEDChecked, QEMUChecked, DiffRuns, Failures int64
	// Skipped counts workloads whose log did not replay to QEMU's file
	// (ErrLogMismatch): their crash states are not checked.
	Skipped int64
	Elapsed time.Duration
}

// Report is the JSON summary of a campaign; field names follow
// `qedtorture run`'s report where they mean the same thing.
type Report struct {
	Version        int              `json:"version"`
	Target         string           `json:"target"`
	QEMUVersion    string           `json:"qemu_version"`
	Seed           uint64           `json:"seed"`
	Models         []string         `json:"models"`
	Iterations     int              `json:"iterations,omitempty"`
	Workloads      int64            `json:"workloads"`
	Skipped        int64            `json:"skipped"` // recordings whose log did not replay to QEMU's file
	SkipReasons    []string         `json:"skip_reasons,omitempty"`
	Ends           map[string]int64 `json:"ends"`
	CrashPoints    int64            `json:"crash_points"`
	CrashStates    int64            `json:"crash_states"`
	DistinctStates int64            `json:"distinct_states"`
	// QEDChecked states were recovered and read back by impl/qed, QEMUChecked
	// ones by QEMU; every state got the structural checker on its raw bytes.
	QEDChecked  int64            `json:"qed_checked"`
	QEMUChecked int64            `json:"qemu_checked"`
	PerModel    map[string]int64 `json:"per_model"`
	DiffRuns    int64            `json:"diff_runs"`
	Adaptations map[string]int64 `json:"adaptations"`
	// WorkloadDigest is the run report's (campaign.Report.WorkloadDigest):
	// equal for campaigns of any targets that ran the same workloads.
	WorkloadDigest  string          `json:"workload_digest"`
	Failures        []FailureReport `json:"failures"`
	Seconds         float64         `json:"seconds"`
	StatesPerSecond float64         `json:"states_per_second"`
	QEMUPerSecond   float64         `json:"qemu_states_per_second"`
	Workers         int             `json:"workers"`
	// Interrupted: a signal stopped the campaign before its iterations or
	// duration were done (the counts cover the workloads completed).
	Interrupted bool `json:"interrupted,omitempty"`
	// Checkpoint: written during the run; the final report replaces it.
	Checkpoint bool `json:"checkpoint,omitempty"`
}

// FailureReport is one distinct failure (by signature) in a Report.
type FailureReport struct {
	Signature    string `json:"signature"`
	Count        int64  `json:"count"`     // occurrences over the campaign (states or runs)
	InWorkloads  []int  `json:"workloads"` // workloads it occurred in (the first 50)
	Workload     int    `json:"workload"`
	WorkloadSeed uint64 `json:"workload_seed"`
	End          string `json:"end"`
	Side         string `json:"side"`
	Stage        string `json:"stage"`
	State        string `json:"state,omitempty"`
	GuestOp      int    `json:"guest_op"`
	Ops          int    `json:"ops"`
	OriginalOps  int    `json:"original_ops"`
	Artifact     string `json:"artifact,omitempty"`
	// ArtifactError says why the artifact could not be written: the
	// failure has no artifact.
	ArtifactError string `json:"artifact_error,omitempty"`
	Message       string `json:"message"`
}

// WriteJSON writes the report, indented.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// ErrWriteArtifact is wrapped by Run's error when an artifact could not be
// written (the report is returned with it).
var ErrWriteArtifact = errors.New("qemu: an artifact could not be written")

// GenerateWorkload returns workload i of a campaign seed and its seed:
// campaign.GenerateWorkload, the same workloads as every other target's
// campaign with the same seed and generator configuration (Adapt then
// changes what QEMU cannot run, counted per kind in the report).
func GenerateWorkload(seed uint64, i int, gen workload.GenConfig) (*workload.Workload, uint64) {
	return campaign.GenerateWorkload(seed, i, gen)
}

// finding is one failure occurrence before minimization.
type finding struct {
	sig     string
	side    string
	stage   string
	msg     string
	state   *StateFailure // crash failures
	diff    *Difference   // differential failures
	runErr  error         // failures during the recorded run
	rec     *Recording
	w       *workload.Workload
	end     End
	wi      int
	wseed   uint64
	guestOp int
}

// KnownNeedCheck is the signature of finding F1 (docs/findings.md): a
// crash state with NEED_CHECK clear and an L2 entry past the end of the
// file.
const KnownNeedCheck = "raw/structure-before-recovery/data-past-eof+need-check-clear-but-inconsistent"

// Signature classifies a crash failure: side, stage and, for structure
// failures, the violation kinds of the raw image.
func Signature(f *StateFailure) string {
	s := string(f.Side) + "/" + f.Stage
	if f.Stage == string(oracle.StageStructureBefore) {
		var ks []string
		for _, k := range check.Structure(f.Image).Kinds() {
			ks = append(ks, k.String())
		}
		s += "/" + strings.Join(ks, "+")
	}
	return s
}

func runSignature(err error) string {
	if errors.Is(err, workload.ErrDataMismatch) {
		return "qemu/run/data"
	}
	var ce *qemuio.CommandError
	if errors.As(err, &ce) {
		return "qemu/run/command:" + strings.Fields(ce.Cmd)[0]
	}
	return "qemu/run/other"
}

// Run runs a campaign and returns its report; artifacts of the first
// occurrence of each failure signature are minimized and written to
// cfg.Out.
//
// Cancelling ctx is an interruption (a signal): no workload starts after
// it; the QEMU processes in flight are killed (their process groups, by
// the tool's context) and their workloads abandoned (not counted, their
// findings dropped: a killed qemu-io proves nothing); minimization is
// skipped; the artifacts of the failures found so far are written and the
// report is marked Interrupted. Run then returns within the time it takes
// to reap the killed processes and write the artifacts.
//
// An error of the tools or the machine (not a failure QEMU showed) ends
// the campaign: Run returns the report of what was done, with the
// artifacts of the failures found so far, together with the error. An
// artifact that cannot be written is recorded in its FailureReport
// (ArtifactError) and does not stop the campaign.
//
// Write ordering: artifacts are committed (synced, renamed into place,
// their directory synced) before the final report is built; checkpoints
// list failures without artifacts, so no report names an artifact that is
// not durably complete.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if cfg.Tool == nil {
		return nil, errors.New("qemu: campaign needs the QEMU tools")
	}
	if cfg.Iterations <= 0 && cfg.Duration <= 0 {
		return nil, errors.New("qemu: campaign needs iterations or a duration")
	}
	if cfg.Reference == nil {
		return nil, errors.New("qemu: campaign needs the in-process reference implementation (Config.Reference)")
	}
	if cfg.Models == nil {
		cfg.Models = oracle.DefaultModels()
	}
	ends := cfg.Ends
	if len(ends) == 0 {
		ends = []End{EndClose, EndAbort, EndKill}
	}
	workers := max(cfg.Workers, 1)
	start := time.Now()
	base := Report{Version: 1, Target: "qemu", Seed: cfg.Seed, Iterations: cfg.Iterations, Workers: workers}
	if res, err := cfg.Tool.RunIO("--version"); err == nil {
		base.QEMUVersion = strings.TrimSpace(strings.SplitN(string(res.Stdout), "\n", 2)[0])
	}
	for _, m := range cfg.Models {
		base.Models = append(base.Models, m.String())
	}
	// Every tool run and qemu-io process of the campaign is killed when
	// ctx is cancelled.
	cfg.Tool = cfg.Tool.WithContext(ctx)
	tmp, removeTmp, err := tempDir("qedtorture-qemu-")
	if err != nil {
		return nil, err
	}
	defer removeTmp()

	var mu sync.Mutex // guards the counters below, stats, first, next, runErr
	var stats Stats
	var wdigest uint64 // Report.WorkloadDigest
	var skipReasons []string
	endsRun, perModel, adaptations := map[string]int64{}, map[string]int64{}, map[string]int64{}
	first := map[string]*finding{}
	counts := map[string]int64{}
	where := map[string][]int{}
	next := 0
	var runErr error
	take := func() (int, bool) {
		mu.Lock()
		defer mu.Unlock()
		if runErr != nil || ctx.Err() != nil || (cfg.Iterations > 0 && next >= cfg.Iterations) || (cfg.Duration > 0 && time.Since(start) >= cfg.Duration) {
			return 0, false
		}
		next++
		return next - 1, true
	}
	record := func(f *finding) {
		counts[f.sig]++
		if ws := where[f.sig]; len(ws) < 50 && (len(ws) == 0 || ws[len(ws)-1] != f.wi) {
			where[f.sig] = append(ws, f.wi)
		}
		if _, ok := first[f.sig]; !ok {
			first[f.sig] = f
			stats.Failures++
		}
	}
	// build makes a report of the counters and, unless final, the failures
	// as first found (the final report's are minimized, with artifacts).
	// mu must be held.
	build := func(final bool) *Report {
		rep := base
		rep.Ends, rep.PerModel, rep.Adaptations = maps.Clone(endsRun), maps.Clone(perModel), maps.Clone(adaptations)
		rep.SkipReasons = slices.Clone(skipReasons)
		rep.WorkloadDigest = campaign.FormatDigest(wdigest)
		rep.Workloads, rep.Skipped, rep.CrashPoints, rep.CrashStates = stats.Workloads, stats.Skipped, stats.CrashPoints, stats.CrashStates
		rep.DistinctStates, rep.QEDChecked, rep.QEMUChecked, rep.DiffRuns = stats.Distinct, stats.QEDChecked, stats.QEMUChecked, stats.DiffRuns
		rep.Seconds = time.Since(start).Seconds()
		if rep.Seconds > 0 {
			rep.StatesPerSecond = float64(rep.CrashStates) / rep.Seconds
			rep.QEMUPerSecond = float64(rep.QEMUChecked) / rep.Seconds
		}
		if !final {
			for _, sig := range slices.Sorted(maps.Keys(first)) {
				rep.Failures = append(rep.Failures, failureReport(first[sig], counts[sig], where[sig]))
			}
		}
		return &rep
	}
	bgDone := make(chan struct{})
	var bgWG sync.WaitGroup
	if cfg.Progress != nil {
		every := cfg.ProgressEvery
		if every <= 0 {
			every = 2 * time.Second
		}
		bgWG.Go(func() {
			t := time.NewTicker(every)
			defer t.Stop()
			for {
				select {
				case <-bgDone:
					return
				case <-t.C:
					mu.Lock()
					s := stats
					mu.Unlock()
					s.Elapsed = time.Since(start)
					cfg.Progress(s)
				}
			}
		})
	}
	if cfg.Checkpoint != nil && cfg.CheckpointEvery > 0 {
		bgWG.Go(func() {
			t := time.NewTicker(cfg.CheckpointEvery)
			defer t.Stop()
			for {
				select {
				case <-bgDone:
					return
				case <-t.C:
					mu.Lock()
					rep := build(false)
					mu.Unlock()
					rep.Checkpoint = true
					cfg.Checkpoint(rep)
				}
			}
		})
	}
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				i, ok := take()
				if !ok {
					return
				}
				w, ws := GenerateWorkload(cfg.Seed, i, cfg.Gen)
				if cfg.Workload != nil {
					w, ws = cfg.Workload.Clone(), campaign.WorkloadSeed(cfg.Seed, i)
				}
				share := campaign.ScriptDigest(i, w) // of the workload as generated
				end := ends[i%len(ends)]
				fs, res, dres, ad, err := runOne(cfg, w, ws, end, filepath.Join(tmp, fmt.Sprintf("w%d", i)))
				if ctx.Err() != nil {
					return // interrupted: its processes were killed, the workload is abandoned
				}
				mu.Lock()
				if err == nil || errors.Is(err, ErrLogMismatch) {
					wdigest ^= share
				}
				if errors.Is(err, ErrLogMismatch) {
					stats.Skipped++
					if len(skipReasons) < 10 {
						skipReasons = append(skipReasons, fmt.Sprintf("workload %d (seed %d, end %s): %v", i, ws, end, err))
					}
					mu.Unlock()
					continue
				}
				if err != nil {
					if runErr == nil {
						runErr = fmt.Errorf("workload %d (seed %d): %w", i, ws, err)
					}
					mu.Unlock()
					return
				}
				stats.Workloads++
				endsRun[string(end)]++
				for _, a := range ad {
					adaptations[string(a.Quirk)]++
				}
				if res != nil {
					stats.CrashPoints += int64(res.Points)
					stats.CrashStates += int64(res.States)
					stats.Distinct += int64(res.Distinct)
					stats.QEDChecked += int64(res.QEDChecked)
					stats.QEMUChecked += int64(res.QEMUChecked)
					for m, n := range res.PerModel {
						perModel[m] += int64(n)
					}
				}
				if dres != nil {
					stats.DiffRuns++
				}
				for _, f := range fs {
					f.wi, f.wseed, f.end = i, ws, end
					record(f)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(bgDone)
	bgWG.Wait()
	interrupted := ctx.Err() != nil
	var artErr error
	var failures []FailureReport
	for _, sig := range slices.Sorted(maps.Keys(first)) {
		f := first[sig]
		fr := failureReport(f, counts[sig], where[sig])
		if cfg.MinimizeCandidates >= 0 && !interrupted && runErr == nil {
			if mf := minimize(cfg, f, filepath.Join(tmp, "min")); mf != nil {
				f = mf
				fr.Ops, fr.GuestOp, fr.Message = len(f.w.Ops), f.guestOp, f.msg
				if f.state != nil {
					fr.State = f.state.ID.String()
				}
			}
		}
		if cfg.Out != "" {
			dir, err := writeArtifact(cfg, f)
			if err != nil {
				fr.ArtifactError = err.Error()
				if artErr == nil {
					artErr = err
				}
			}
			fr.Artifact = dir
		}
		failures = append(failures, fr)
	}
	stats.Elapsed = time.Since(start)
	if cfg.Progress != nil {
		cfg.Progress(stats)
	}
	rep := build(true)
	rep.Failures, rep.Interrupted = failures, interrupted
	if runErr != nil {
		return rep, runErr
	}
	if artErr != nil {
		return rep, fmt.Errorf("%w: %w", ErrWriteArtifact, artErr)
	}
	return rep, nil
}

// failureReport is f's entry in a report, before minimization.
func failureReport(f *finding, count int64, in []int) FailureReport {
	fr := FailureReport{Signature: f.sig, Count: count, InWorkloads: slices.Clone(in), Workload: f.wi, WorkloadSeed: f.wseed, End: string(f.end),
		Side: f.side, Stage: f.stage, GuestOp: f.guestOp, OriginalOps: len(f.w.Ops), Ops: len(f.w.Ops), Message: f.msg}
	if f.state != nil {
		fr.State = f.state.ID.String()
	}
	return fr
}

// runOne records one workload, checks its crash states and diffs it.
func runOne(cfg Config, w *workload.Workload, ws uint64, end End, dir string) ([]*finding, *CrashResult, *DiffResult, []Adaptation, error) {
	defer os.RemoveAll(dir)
	var out []*finding
	rec, err := Record(cfg.Tool, w, filepath.Join(dir, "rec"), end)
	var re *RunError
	if err != nil && !errors.As(err, &re) {
		return nil, nil, nil, nil, err
	}
	if re != nil {
		out = append(out, &finding{sig: runSignature(re), side: "qemu", stage: "run", msg: re.Error(), runErr: re, rec: rec, w: rec.W, guestOp: re.Op})
	}
	res, err := CheckCrashes(rec, CrashOptions{Models: cfg.Models, Enum: cfg.Enum, SamplePoints: cfg.SampledPoints, Seed: ws,
		QEMUBudget: cfg.QEMUStates, Tool: cfg.Tool, WorkDir: filepath.Join(dir, "states"), Reference: cfg.Reference})
	if err != nil {
		return nil, nil, nil, nil, err
	}
	for _, sf := range res.Failures {
		out = append(out, &finding{sig: Signature(sf), side: string(sf.Side), stage: sf.Stage, msg: sf.String(), state: sf, rec: rec, w: rec.W, guestOp: sf.Op})
	}
	var dres *DiffResult
	if cfg.Diff {
		if dres, err = Diff(cfg.Tool, cfg.Reference, w, filepath.Join(dir, "diff")); err != nil {
			return nil, nil, nil, nil, err
		}
		for _, d := range dres.Differences {
			if d.Follows == "both" {
				continue
			}
			out = append(out, &finding{sig: "diff/" + d.What + "/follows:" + d.Follows, side: "diff", stage: d.What, msg: d.String(), diff: &d, w: dres.W, rec: rec})
		}
	}
	return out, res, dres, rec.Adaptations, nil
}

// reproduce reruns f's check on workload w and returns the finding with
// the same signature, or nil.
func reproduce(cfg Config, f *finding, w *workload.Workload, dir string) *finding {
	defer os.RemoveAll(dir)
	switch {
	case f.diff != nil:
		d, err := Diff(cfg.Tool, cfg.Reference, w, filepath.Join(dir, "diff"))
		if err != nil {
			return nil
		}
		for _, x := range d.Differences {
			if "diff/"+x.What+"/follows:"+x.Follows == f.sig {
				return &finding{sig: f.sig, side: f.side, stage: f.stage, msg: x.String(), diff: &x, w: d.W, end: f.end, wi: f.wi, wseed: f.wseed}
			}
		}
		return nil
	}
	rec, err := Record(cfg.Tool, w, filepath.Join(dir, "rec"), f.end)
	var re *RunError
	if err != nil && !errors.As(err, &re) {
		return nil
	}
	if f.runErr != nil {
		if re != nil && runSignature(re) == f.sig {
			return &finding{sig: f.sig, side: f.side, stage: f.stage, msg: re.Error(), runErr: re, rec: rec, w: rec.W, end: f.end, wi: f.wi, wseed: f.wseed, guestOp: re.Op}
		}
		return nil
	}
	models := []crashsim.Model{f.state.ID.Model}
	budget := 0
	if f.state.Side == SideQEMU {
		budget = -1
	}
	res, err := CheckCrashes(rec, CrashOptions{Models: models, Enum: cfg.Enum, Seed: f.wseed, QEMUBudget: budget, Tool: cfg.Tool,
		WorkDir: filepath.Join(dir, "states"), SkipQED: f.state.Side != SideQED, Reference: cfg.Reference})
	if err != nil {
		return nil
	}
	for _, sf := range res.Failures {
		if Signature(sf) == f.sig {
			return &finding{sig: f.sig, side: f.side, stage: f.stage, msg: sf.String(), state: sf, rec: rec, w: rec.W, end: f.end, wi: f.wi, wseed: f.wseed, guestOp: sf.Op}
		}
	}
	return nil
}

// minimize drops workload ops (whole groups, then single ops, from the
// end) and backing files while the failure signature still reproduces.
func minimize(cfg Config, f *finding, dir string) *finding {
	budget := cfg.MinimizeCandidates
	if budget == 0 {
		budget = 60
	}
	timeout := cfg.MinimizeTimeout
	if timeout == 0 {
		timeout = time.Minute
	}
	start := time.Now()
	best := f
	tries := 0
	try := func(w *workload.Workload) bool {
		if tries >= budget || time.Since(start) > timeout || w.Validate() != nil {
			return false
		}
		tries++
		if g := reproduce(cfg, best, w, filepath.Join(dir, fmt.Sprint(tries))); g != nil {
			best = g
			return true
		}
		return false
	}
	// Drop the backing chain first: the smallest setup.
	if len(best.w.Geometry.Backing) > 0 {
		w := best.w.Clone()
		w.Geometry.Backing = nil
		try(w)
	}
	for changed := true; changed && tries < budget; {
		changed = false
		for i := len(best.w.Ops) - 1; i >= 0 && tries < budget; i-- {
			if i >= len(best.w.Ops) {
				continue
			}
			w := best.w.Clone()
			w.Ops = append(w.Ops[:i:i], w.Ops[i+1:]...)
			if try(w) {
				changed = true
			}
		}
	}
	if best == f {
		return nil
	}
	return best
}

// writeArtifact writes a failure's artifact directory and returns it.
//
// The artifact appears complete or not at all: it is filled in a
// temporary directory next to its final name, every file synced, then
// renamed into place and its parent synced (atomicfile.CommitDir). On any
// error the temporary is removed and the error names the artifact and the
// cause. A name an earlier run left gets "-2", "-3", ... appended.
func writeArtifact(cfg Config, f *finding) (string, error) {
	name := fmt.Sprintf("qemu-%d-w%d-%s", cfg.Seed, f.wi, sanitize(f.sig))
	if err := os.MkdirAll(cfg.Out, 0o755); err != nil {
		return "", fmt.Errorf("qemu: artifact directory %s: %w", cfg.Out, unwrapPathErr(err))
	}
	final := filepath.Join(cfg.Out, name)
	for i := 2; ; i++ {
		if _, err := os.Lstat(final); errors.Is(err, os.ErrNotExist) {
			break
		}
		final = filepath.Join(cfg.Out, fmt.Sprintf("%s-%d", name, i))
	}
	tmp, err := atomicfile.MkdirTemp(final)
	if err != nil {
		return "", fmt.Errorf("qemu: artifact %w", err)
	}
	if err := fillArtifact(cfg, f, tmp); err != nil {
		_ = atomicfile.RemoveTemp(tmp)
		return "", fmt.Errorf("qemu: artifact %s: %w", final, unwrapPathErr(err))
	}
	if err := atomicfile.CommitDir(tmp, final); err != nil {
		return "", fmt.Errorf("qemu: artifact %w", err)
	}
	return final, nil
}

// unwrapPathErr drops an *fs.PathError's path (a temporary's name).
func unwrapPathErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// fillArtifact writes the artifact's files into dir (a fresh directory).
func fillArtifact(cfg Config, f *finding, dir string) error {
	if err := os.Mkdir(filepath.Join(dir, "snapshot"), 0o755); err != nil {
		return err
	}
	write := func(n string, b []byte) error {
		if err := os.WriteFile(filepath.Join(dir, n), b, 0o644); err != nil {
			return fmt.Errorf("%s: %w", n, unwrapPathErr(err))
		}
		return nil
	}
	if err := write("workload.txt", []byte(f.w.String())); err != nil {
		return err
	}
	var expl strings.Builder
	fmt.Fprintf(&expl, "target: qemu\nsignature: %s\ncampaign seed: %d\nworkload: %d (seed %d)\nend: %s\nside: %s\nstage: %s\n",
		f.sig, cfg.Seed, f.wi, f.wseed, f.end, f.side, f.stage)
	if f.state != nil {
		fmt.Fprintf(&expl, "crash state: %s (crash at trace index %d, during guest op %d: %s)\n", f.state.ID, f.state.ID.K, f.state.Op, f.state.What)
	}
	fmt.Fprintf(&expl, "\n%s\n", f.msg)
	if f.rec != nil {
		fmt.Fprintf(&expl, "\nFiles: workload.txt (the workload), snapshot/ (image and backing files before the run),\n"+
			"%s (the blklogwrites log), trace.txt (the log as crashsim operations), repro.sh (the qemu-io session)", LogName)
		if f.state != nil {
			expl.WriteString(", crashed.qed (the crash state; backing files beside it)")
		}
		expl.WriteString(".\n")
		for n, b := range f.rec.Files {
			base := filepath.Base(n)
			if err := write(filepath.Join("snapshot", base), b); err != nil {
				return err
			}
			if n != imageInTree {
				if err := write(base, b); err != nil {
					return err
				}
			}
		}
		if err := write("repro.sh", []byte(f.rec.ScriptText())); err != nil {
			return err
		}
		if err := write(LogName, f.rec.Log); err != nil {
			return err
		}
		if err := WritePatterns(f.rec.W, dir); err != nil {
			return err
		}
		var tr strings.Builder
		for _, o := range f.rec.Trace.Ops {
			ph := f.rec.Phases[phaseIndex(f.rec, o.Index)]
			fmt.Fprintf(&tr, "%s\t# guest op %d: %s\n", o, ph.Op, ph.What)
		}
		if err := write("trace.txt", []byte(tr.String())); err != nil {
			return err
		}
	}
	if f.state != nil {
		if err := write("crashed.qed", f.state.Image); err != nil {
			return err
		}
		rep := check.Structure(f.state.Image)
		fmt.Fprintf(&expl, "\nStructural checker on crashed.qed:\n%s\n", rep)
	}
	return write("explanation.txt", []byte(expl.String()))
}

func sanitize(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			b[i] = '_'
		}
	}
	if len(b) > 80 {
		b = b[:80]
	}
	return string(b)
}
