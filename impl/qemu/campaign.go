package qemu

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/qedtorture/qedtorture/crashsim"
	"github.com/qedtorture/qedtorture/internal/qemutool"
	"github.com/qedtorture/qedtorture/internal/workload"
	"github.com/qedtorture/qedtorture/props"
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
	QEDChecked      int64            `json:"qed_checked"`
	QEMUChecked     int64            `json:"qemu_checked"`
	PerModel        map[string]int64 `json:"per_model"`
	DiffRuns        int64            `json:"diff_runs"`
	Adaptations     map[string]int64 `json:"adaptations"`
	Failures        []FailureReport  `json:"failures"`
	Seconds         float64          `json:"seconds"`
	StatesPerSecond float64          `json:"states_per_second"`
	QEMUPerSecond   float64          `json:"qemu_states_per_second"`
	Workers         int              `json:"workers"`
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
	Message      string `json:"message"`
}

// WriteJSON writes the report, indented.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// workloadSeed derives workload i's seed (splitmix64).
func workloadSeed(seed uint64, i int) uint64 {
	z := seed + uint64(i+1)*0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// GenerateWorkload returns workload i of a campaign seed.
func GenerateWorkload(seed uint64, i int, gen workload.GenConfig) (*workload.Workload, uint64) {
	ws := workloadSeed(seed, i)
	return workload.Generate(rand.New(rand.NewPCG(ws, 0)), gen), ws
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
	if f.Stage == string(props.StageStructureBefore) {
		var ks []string
		for _, k := range props.CheckStructure(f.Image).Kinds() {
			ks = append(ks, k.String())
		}
		s += "/" + strings.Join(ks, "+")
	}
	return s
}

func runSignature(err error) string {
	if errors.Is(err, props.ErrDataMismatch) {
		return "qemu/run/data"
	}
	var ce *CommandError
	if errors.As(err, &ce) {
		return "qemu/run/command:" + strings.Fields(ce.Cmd)[0]
	}
	return "qemu/run/other"
}

// Run runs a campaign and returns its report; artifacts of the first
// occurrence of each failure signature are minimized and written to
// cfg.Out.
func Run(cfg Config) (*Report, error) {
	if cfg.Tool == nil {
		return nil, errors.New("qemu: campaign needs the QEMU tools")
	}
	if cfg.Iterations <= 0 && cfg.Duration <= 0 {
		return nil, errors.New("qemu: campaign needs iterations or a duration")
	}
	if cfg.Models == nil {
		cfg.Models = DefaultModels()
	}
	ends := cfg.Ends
	if len(ends) == 0 {
		ends = []End{EndClose, EndAbort, EndKill}
	}
	workers := max(cfg.Workers, 1)
	start := time.Now()
	rep := &Report{Version: 1, Target: "qemu", Seed: cfg.Seed, Iterations: cfg.Iterations, Workers: workers,
		Ends: map[string]int64{}, PerModel: map[string]int64{}, Adaptations: map[string]int64{}}
	if res, err := cfg.Tool.RunIO("--version"); err == nil {
		rep.QEMUVersion = strings.TrimSpace(strings.SplitN(string(res.Stdout), "\n", 2)[0])
	}
	for _, m := range cfg.Models {
		rep.Models = append(rep.Models, m.String())
	}
	tmp, err := os.MkdirTemp("", "qedtorture-qemu-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)

	var mu sync.Mutex // guards rep, stats, first, next
	var stats Stats
	first := map[string]*finding{}
	counts := map[string]int64{}
	where := map[string][]int{}
	next := 0
	var runErr error
	take := func() (int, bool) {
		mu.Lock()
		defer mu.Unlock()
		if runErr != nil || (cfg.Iterations > 0 && next >= cfg.Iterations) || (cfg.Duration > 0 && time.Since(start) >= cfg.Duration) {
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
	stopProgress := make(chan struct{})
	var progressDone sync.WaitGroup
	if cfg.Progress != nil {
		every := cfg.ProgressEvery
		if every <= 0 {
			every = 2 * time.Second
		}
		progressDone.Go(func() {
			t := time.NewTicker(every)
			defer t.Stop()
			for {
				select {
				case <-stopProgress:
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
					w, ws = cfg.Workload.Clone(), workloadSeed(cfg.Seed, i)
				}
				end := ends[i%len(ends)]
				fs, res, dres, ad, err := runOne(cfg, w, ws, end, filepath.Join(tmp, fmt.Sprintf("w%d", i)))
				mu.Lock()
				if errors.Is(err, ErrLogMismatch) {
					stats.Skipped++
					if len(rep.SkipReasons) < 10 {
						rep.SkipReasons = append(rep.SkipReasons, fmt.Sprintf("workload %d (seed %d, end %s): %v", i, ws, end, err))
					}
					mu.Unlock()
					continue
				}
				if err != nil {
					runErr = fmt.Errorf("workload %d (seed %d): %w", i, ws, err)
					mu.Unlock()
					return
				}
				stats.Workloads++
				rep.Ends[string(end)]++
				for _, a := range ad {
					rep.Adaptations[string(a.Quirk)]++
				}
				if res != nil {
					stats.CrashPoints += int64(res.Points)
					stats.CrashStates += int64(res.States)
					stats.Distinct += int64(res.Distinct)
					stats.QEDChecked += int64(res.QEDChecked)
					stats.QEMUChecked += int64(res.QEMUChecked)
					for m, n := range res.PerModel {
						rep.PerModel[m] += int64(n)
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
	close(stopProgress)
	progressDone.Wait()
	if runErr != nil {
		return nil, runErr
	}
	sigs := slices.Sorted(func(yield func(string) bool) {
		for s := range first {
			if !yield(s) {
				return
			}
		}
	})
	for _, sig := range sigs {
		f := first[sig]
		fr := FailureReport{Signature: sig, Count: counts[sig], InWorkloads: where[sig], Workload: f.wi, WorkloadSeed: f.wseed, End: string(f.end),
			Side: f.side, Stage: f.stage, GuestOp: f.guestOp, OriginalOps: len(f.w.Ops), Ops: len(f.w.Ops), Message: f.msg}
		if f.state != nil {
			fr.State = f.state.ID.String()
		}
		if cfg.MinimizeCandidates >= 0 {
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
				return nil, err
			}
			fr.Artifact = dir
		}
		rep.Failures = append(rep.Failures, fr)
	}
	stats.Elapsed = time.Since(start)
	if cfg.Progress != nil {
		cfg.Progress(stats)
	}
	rep.Workloads, rep.Skipped, rep.CrashPoints, rep.CrashStates = stats.Workloads, stats.Skipped, stats.CrashPoints, stats.CrashStates
	rep.DistinctStates, rep.QEDChecked, rep.QEMUChecked, rep.DiffRuns = stats.Distinct, stats.QEDChecked, stats.QEMUChecked, stats.DiffRuns
	rep.Seconds = stats.Elapsed.Seconds()
	if rep.Seconds > 0 {
		rep.StatesPerSecond = float64(rep.CrashStates) / rep.Seconds
		rep.QEMUPerSecond = float64(rep.QEMUChecked) / rep.Seconds
	}
	return rep, nil
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
		QEMUBudget: cfg.QEMUStates, Tool: cfg.Tool, WorkDir: filepath.Join(dir, "states")})
	if err != nil {
		return nil, nil, nil, nil, err
	}
	for _, sf := range res.Failures {
		out = append(out, &finding{sig: Signature(sf), side: string(sf.Side), stage: sf.Stage, msg: sf.String(), state: sf, rec: rec, w: rec.W, guestOp: sf.Op})
	}
	var dres *DiffResult
	if cfg.Diff {
		if dres, err = Diff(cfg.Tool, w, filepath.Join(dir, "diff")); err != nil {
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
		d, err := Diff(cfg.Tool, w, filepath.Join(dir, "diff"))
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
		WorkDir: filepath.Join(dir, "states"), SkipQED: f.state.Side != SideQED})
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
func writeArtifact(cfg Config, f *finding) (string, error) {
	name := fmt.Sprintf("qemu-%d-w%d-%s", cfg.Seed, f.wi, sanitize(f.sig))
	dir := filepath.Join(cfg.Out, name)
	if err := os.MkdirAll(filepath.Join(dir, "snapshot"), 0o755); err != nil {
		return "", err
	}
	write := func(n string, b []byte) error { return os.WriteFile(filepath.Join(dir, n), b, 0o644) }
	if err := write("workload.txt", []byte(f.w.String())); err != nil {
		return "", err
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
				return "", err
			}
			if n != imageInTree {
				if err := write(base, b); err != nil {
					return "", err
				}
			}
		}
		if err := write("repro.sh", []byte(f.rec.ScriptText())); err != nil {
			return "", err
		}
		if err := write(LogName, f.rec.Log); err != nil {
			return "", err
		}
		if err := WritePatterns(f.rec.W, dir); err != nil {
			return "", err
		}
		var tr strings.Builder
		for _, o := range f.rec.Trace.Ops {
			ph := f.rec.Phases[phaseIndex(f.rec, o.Index)]
			fmt.Fprintf(&tr, "%s\t# guest op %d: %s\n", o, ph.Op, ph.What)
		}
		if err := write("trace.txt", []byte(tr.String())); err != nil {
			return "", err
		}
	}
	if f.state != nil {
		if err := write("crashed.qed", f.state.Image); err != nil {
			return "", err
		}
		rep := props.CheckStructure(f.state.Image)
		fmt.Fprintf(&expl, "\nStructural checker on crashed.qed:\n%s\n", rep)
	}
	if err := write("explanation.txt", []byte(expl.String())); err != nil {
		return "", err
	}
	return dir, nil
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
