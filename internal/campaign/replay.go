package campaign

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/qedtorture/qedtorture/crashsim"
	"github.com/qedtorture/qedtorture/internal/atomicfile"
	"github.com/qedtorture/qedtorture/model"
	"github.com/qedtorture/qedtorture/props/oracle"
	"github.com/qedtorture/qedtorture/props/target"
	"github.com/qedtorture/qedtorture/props/workload"
)

// ReplayResult is what Replay found.
type ReplayResult struct {
	Meta    ArtifactMeta
	Failure *Failure // the failure as reproduced (nil when it now passes)
	Verdict *oracle.Verdict
	// Judge is the Name of the judge that judged the state again.
	Judge string
	// Notes are caveats about the rebuild (e.g. the re-run's trace differs
	// from the recorded one, so the recorded trace was used).
	Notes []string
}

// Fails reports whether the artifact still fails.
func (r *ReplayResult) Fails() bool { return r.Failure != nil }

// ErrArtifact is wrapped by errors about a malformed artifact directory.
var ErrArtifact = errors.New("campaign: bad artifact")

// A Resolver returns the driver an artifact names (meta.json's "target",
// a --target name). The engine knows no implementation: cmd/qedtorture's
// targets.go is the resolver of the command line, tests pass their own
// (InProcessResolver). Its error says why the name cannot be run
// (unknown, a seeded defect in a build without them, QEMU not installed)
// and Replay returns it when it needs the driver.
type Resolver func(name string) (Driver, error)

// InProcessResolver is the Resolver of in-process targets only.
func InProcessResolver(resolve func(name string) (target.Target, error)) Resolver {
	return func(name string) (Driver, error) {
		t, err := resolve(name)
		if err != nil {
			return nil, err
		}
		return InProcess(t), nil
	}
}

// ReplayOptions say how to replay an artifact.
type ReplayOptions struct {
	// Resolve returns the driver the artifact names (required unless On
	// is set).
	Resolve Resolver
	// Reference recovers the crash states of a driver with no in-process
	// recoverer (QEMU's): impl/qed, as in the campaign. With it, a crash
	// state judged by the reference replays even when the artifact's
	// driver is not available (QEMU not installed).
	Reference target.Target
	// On, if set, re-judges the artifact's recorded crash state on this
	// in-process target instead of the artifact's judge (replay --target
	// impl/qed of a defect or a QEMU artifact), and re-runs a crash-free
	// failure's workload on it.
	On target.Target
}

// Replay rebuilds the case an artifact directory describes and judges it
// again with the artifact's judge:
//
//   - A failure of the crash-free run (stages workload and setup) is
//     re-run on the artifact's driver, same workload, seed and faults
//     (until it fails, up to replayRaceAttempts runs, when the workload
//     has concurrent groups: their interleaving differs from run to run).
//   - A crash state is rebuilt by its id. When the driver is available the
//     workload is re-run on it and the state taken from the re-run if its
//     trace equals the recorded one; otherwise (concurrent groups, an
//     out-of-process implementation's timing) from the recorded trace
//     replayed on base/, judged against the model as of the recorded guest
//     op. A deterministic in-process workload whose trace changed means the
//     implementation changed: every crash state of the workload is judged
//     again instead. Without the driver, a state the reference judged
//     (QEMU's, recovered by impl/qed) replays from the recorded trace, the
//     models taken from a run on the reference; any other needs the driver,
//     and the error says what (the resolver's).
//   - With ReplayOptions.On, the recorded state is judged by the oracle
//     recovering with On.
func Replay(dir string, o ReplayOptions) (*ReplayResult, error) {
	if atomicfile.IsTemp(filepath.Clean(dir)) {
		return nil, fmt.Errorf("%w: %s is the temporary of an artifact that was never completed (a campaign killed while writing it); it cannot be replayed", ErrArtifact, dir)
	}
	meta, err := ReadArtifactMeta(dir)
	if err != nil {
		return nil, err
	}
	res := &ReplayResult{Meta: meta}
	stage := oracle.Stage(meta.Stage)
	if stage == StageDiff {
		return replayDiff(dir, res, o)
	}
	hasState := stage != StageWorkload && stage != StageSetup

	// The driver that re-runs the workload, and the judge.
	var (
		d      Driver
		derr   error
		judge  Judge
		reused bool // the state comes from the recorded trace
	)
	switch {
	case o.On != nil:
		d = InProcess(o.On)
		judge = &oracleJudge{t: o.On, oracle: meta.Oracle}
		if len(meta.Chain) > 0 {
			if judge, err = nestedFor(meta, o.On); err != nil {
				return nil, fmt.Errorf("%w: %s: %w", ErrArtifact, metaFile, err)
			}
		}
		if hasState {
			reused = true
			res.Notes = append(res.Notes, fmt.Sprintf("re-judged on %s (the artifact's judge: %s); the crash state is rebuilt from the recorded trace", o.On.Name(), judgeName(meta)))
		} else {
			res.Notes = append(res.Notes, fmt.Sprintf("the workload re-run on %s (the artifact's target: %s)", o.On.Name(), meta.Target))
		}
	case o.Resolve == nil:
		return nil, errors.New("campaign: replay: no resolver")
	default:
		d, derr = o.Resolve(meta.Target)
		if derr == nil {
			defer d.Close()
			if judge, err = judgeFor(meta, d, o.Reference); err != nil {
				return nil, fmt.Errorf("campaign: replay %s: %w", dir, err)
			}
		} else if hasState && o.Reference != nil && judgeName(meta) == o.Reference.Name() && judgeName(meta) != meta.Target {
			// The reference judged the state (a driver with no recoverer
			// of its own): it replays without the driver.
			d, judge, reused = InProcess(o.Reference), &oracleJudge{t: o.Reference, oracle: meta.Oracle}, true
			res.Notes = append(res.Notes, fmt.Sprintf("target %s is not available here (%v): the recorded crash state is judged again by %s, the judge that found it; the workload is not re-run", meta.Target, derr, o.Reference.Name()))
		} else if hasState && o.Reference != nil && meta.Judge == NestedJudgeName &&
			meta.ChainJudge == o.Reference.Name() && meta.ChainRecorder == "" {
			// A crash during the reference's own in-process recovery:
			// the same. (A recovery run by the target itself, in
			// process or by its own recorder, is another question
			// than the reference's: it needs the target.)
			d, reused = InProcess(o.Reference), true
			if judge, err = nestedFor(meta, o.Reference); err != nil {
				return nil, fmt.Errorf("%w: %s: %w", ErrArtifact, metaFile, err)
			}
			res.Notes = append(res.Notes, fmt.Sprintf("target %s is not available here (%v): the recorded crash state is judged again by %s, the judge that found it; the workload is not re-run", meta.Target, derr, o.Reference.Name()))
		} else {
			return nil, fmt.Errorf("campaign: replay %s: %w%s", dir, derr, replayHint(meta, o.Reference))
		}
	}
	w, err := readArtifactWorkload(dir)
	if err != nil {
		return nil, err
	}
	if judge != nil {
		res.Judge = judge.Name()
	}
	nj, _ := judge.(*nestedJudge)
	if nj != nil && nj.rr != nil {
		if nj.stored, err = readStoredRecoveries(dir, meta); err != nil {
			return nil, err
		}
	}

	rec, err := d.Record(context.Background(), w, RecordOptions{Seed: meta.WorkloadSeed, Faults: meta.Faults, Create: meta.Create, CreateOver: meta.CreateOver, CreateFaults: meta.CreateFaults})
	if err != nil {
		res.Failure = &Failure{Index: meta.Workload, WorkloadSeed: meta.WorkloadSeed, W: w, Stage: StageSetup, GuestOp: -1, Err: err}
		return res, nil
	}
	if !hasState {
		// A crash-free failure inside a concurrent group depends on how
		// the group's writes interleave, which differs from run to run:
		// the workload is run again until it fails, up to
		// replayRaceAttempts times, and the note says how many it took.
		attempts := 1
		if hasConcurrent(w) {
			attempts = replayRaceAttempts
		}
		for try := 1; ; try++ {
			if fails, _ := rec.workloadFails(); fails {
				res.Failure = &Failure{Index: meta.Workload, WorkloadSeed: meta.WorkloadSeed, W: w, Stage: StageWorkload,
					GuestOp: rec.OpErr.Index, OpErr: rec.OpErr, Rec: rec}
				if try > 1 {
					res.Notes = append(res.Notes, fmt.Sprintf("the workload's concurrent groups interleave differently on every run: it failed on run %d of at most %d", try, attempts))
				}
				return res, nil
			}
			if try >= attempts {
				break
			}
			if rec, err = d.Record(context.Background(), w, RecordOptions{Seed: meta.WorkloadSeed, Faults: meta.Faults, Create: meta.Create, CreateOver: meta.CreateOver, CreateFaults: meta.CreateFaults}); err != nil {
				res.Failure = &Failure{Index: meta.Workload, WorkloadSeed: meta.WorkloadSeed, W: w, Stage: StageSetup, GuestOp: -1, Err: err}
				return res, nil
			}
		}
		if attempts > 1 {
			res.Notes = append(res.Notes, fmt.Sprintf("the workload's concurrent groups interleave differently on every run: it passed %d runs", attempts))
		}
		return res, nil
	}
	id, err := crashsim.ParseStateID(meta.State)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrArtifact, metaFile, err)
	}
	if err := rec.complete(); err != nil {
		return nil, err
	}
	recorded, err := readRecorded(dir, meta)
	if err != nil {
		return nil, err
	}
	var (
		st    *stateSource
		notes []string
	)
	switch {
	case reused:
		if recorded == nil {
			return nil, fmt.Errorf("%w: %s has no %s: the recorded crash state cannot be rebuilt", ErrArtifact, dir, traceFile)
		}
		st = recorded.at(rec, id.K, meta.GuestOp)
		if hasConcurrent(w) {
			res.Notes = append(res.Notes, fmt.Sprintf("the model comes from a run on %s: if %s wrote the concurrent groups as one-byte patterns (qemu-io's aio_write), a data verdict may differ", d.Name(), meta.Target))
		}
	default:
		st, notes, err = rebuildPoint(recorded, rec, id.K, meta.GuestOp)
		if errors.Is(err, errImplChanged) {
			if _, ok := judge.(*oracleJudge); ok {
				return replayChanged(res, judge.(*oracleJudge).t, w, rec, meta)
			}
			// A driver's own judge: the recorded state is judged.
			notes = []string{"the re-run's filesystem trace differs from the recorded one; the crash state is rebuilt from the recorded trace"}
			st, err = recorded.at(rec, id.K, meta.GuestOp), nil
		}
		if err != nil {
			return nil, err
		}
	}
	res.Notes = append(res.Notes, notes...)
	p, err := st.point(id.K)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrArtifact, err)
	}
	fs, err := p.State(id)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrArtifact, err)
	}
	var durable *oracle.Durable
	if oracle.DurableCost(st.model) <= maxDurableCache {
		// As judge() does, so that the explanation reads the same.
		if durable, err = oracle.NewDurable(st.model); err != nil {
			return nil, err
		}
	}
	v, err := judge.Judge(context.Background(), &State{ID: id, Point: p, FS: fs, Image: st.rec.Image, Model: st.model.Clone(),
		Durable: durable, GuestOp: st.guest, Rec: st.rec})
	if err != nil {
		return nil, err
	}
	if nj != nil {
		res.Notes = append(res.Notes, nj.notes...)
	}
	if v == excused {
		res.Notes = append(res.Notes, "the state fails only within what the injected silent faults damaged: their direct effect, not a failure")
	}
	res.Verdict = v
	if !v.OK() {
		res.Failure = &Failure{Index: meta.Workload, WorkloadSeed: meta.WorkloadSeed, W: w, Stage: v.Stage,
			State: id, Judge: judge.Name(), GuestOp: st.guest, Verdict: v, Rec: st.rec, Point: p}
	}
	return res, nil
}

// readArtifactWorkload reads an artifact's workload.txt.
func readArtifactWorkload(dir string) (*workload.Workload, error) {
	wf, err := os.Open(filepath.Join(dir, "workload.txt"))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrArtifact, err)
	}
	w, err := workload.Parse(wf)
	wf.Close()
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrArtifact, filepath.Join(dir, "workload.txt"), err)
	}
	return w, nil
}

// replayDiff replays a differential failure: the workload runs again on
// the artifact's target (ReplayOptions.On, when set) and on its other side
// (meta.json's "diff"), and the outcomes are compared again.
func replayDiff(dir string, res *ReplayResult, o ReplayOptions) (*ReplayResult, error) {
	meta := res.Meta
	if o.Resolve == nil {
		return nil, errors.New("campaign: replay: no resolver")
	}
	w, err := readArtifactWorkload(dir)
	if err != nil {
		return nil, err
	}
	var a Driver
	if o.On != nil {
		a = InProcess(o.On)
		res.Notes = append(res.Notes, fmt.Sprintf("the workload re-run on %s (the artifact's target: %s) and on %s", o.On.Name(), meta.Target, meta.Diff))
	} else if a, err = o.Resolve(meta.Target); err != nil {
		return nil, fmt.Errorf("campaign: replay %s: %w", dir, err)
	}
	defer a.Close()
	b, err := o.Resolve(meta.Diff)
	if err != nil {
		return nil, fmt.Errorf("%w %q: %w", errNoDiffDriver, meta.Diff, err)
	}
	defer b.Close()
	reader := func(d Driver) target.Target {
		if r := d.Recoverer(); r != nil {
			return r
		}
		return o.Reference
	}
	r, err := RunDiff(context.Background(), a, b, reader(a), reader(b), w, meta.WorkloadSeed)
	if err != nil {
		res.Failure = &Failure{Index: meta.Workload, WorkloadSeed: meta.WorkloadSeed, W: w, Stage: StageSetup, GuestOp: -1, Err: err}
		return res, nil
	}
	if f := diffFailure(r, meta.WorkloadSeed); f != nil {
		f.Index = meta.Workload
		res.Failure = f
		if sig := f.Signature(meta.Target); meta.Signature != "" && sig != meta.Signature {
			res.Notes = append(res.Notes, fmt.Sprintf("the difference is now %s (recorded: %s)", sig, meta.Signature))
		}
	}
	return res, nil
}

// ReadArtifactMeta reads an artifact's meta.json (versions 1 and 2).
func ReadArtifactMeta(dir string) (ArtifactMeta, error) {
	var meta ArtifactMeta
	mb, err := os.ReadFile(filepath.Join(dir, metaFile))
	if err != nil {
		return meta, fmt.Errorf("%w: %w", ErrArtifact, err)
	}
	dec := json.NewDecoder(bytes.NewReader(mb))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&meta); err != nil {
		return meta, fmt.Errorf("%w: %s: %w", ErrArtifact, filepath.Join(dir, metaFile), err)
	}
	if meta.Version < 1 || meta.Version > ArtifactVersion {
		return meta, fmt.Errorf("%w: %s: version %d, want 1 to %d", ErrArtifact, filepath.Join(dir, metaFile), meta.Version, ArtifactVersion)
	}
	return meta, nil
}

// judgeName is the artifact's judge (the oracle judge of its target
// before version 2).
func judgeName(meta ArtifactMeta) string {
	if meta.Judge == "" {
		return meta.Target
	}
	return meta.Judge
}

// judgeFor returns the judge of d named by the artifact: one of d's own
// judges by name, else the oracle judge (recovering with d's recoverer,
// else the reference), whose name is its recoverer's and so follows the
// target (an artifact pointed at a fixed target is judged by it).
func judgeFor(meta ArtifactMeta, d Driver, ref target.Target) (Judge, error) {
	if meta.Judge == CreateJudgeName {
		rt := d.Recoverer()
		if rt == nil {
			rt = ref
		}
		if rt == nil {
			return nil, fmt.Errorf("target %s has no in-process recoverer and no reference is set", d.Name())
		}
		return &createJudge{t: rt, oracle: tuneOracle(rt, meta.Oracle)}, nil
	}
	if meta.Judge == NestedJudgeName {
		rt := d.Recoverer()
		if rt == nil {
			rt = ref
		}
		if rt == nil {
			return nil, fmt.Errorf("target %s has no in-process recoverer and no reference is set", d.Name())
		}
		j, err := nestedFor(meta, rt)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrArtifact, metaFile, err)
		}
		if rr, ok := d.(RecoveryRecorder); ok {
			j.rr = rr
		}
		return j, nil
	}
	for _, j := range d.Judges() {
		if j.Name() == meta.Judge {
			return j, nil
		}
	}
	rt := d.Recoverer()
	if rt == nil {
		rt = ref
	}
	if rt == nil {
		return nil, fmt.Errorf("target %s has no in-process recoverer and no reference is set", d.Name())
	}
	return &oracleJudge{t: rt, oracle: tuneOracle(rt, meta.Oracle)}, nil
}

// readStoredRecoveries reads an artifact's recorded recoveries of its
// chain (nested/D/trace.bin) with their marks (meta.json's chain_marks);
// none for an artifact written before chain_marks.
func readStoredRecoveries(dir string, meta ArtifactMeta) ([]storedRecovery, error) {
	var out []storedRecovery
	for i, ms := range meta.ChainMarks {
		b, err := os.ReadFile(filepath.Join(dir, "nested", strconv.Itoa(i+2), traceFile))
		if errors.Is(err, os.ErrNotExist) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrArtifact, err)
		}
		out = append(out, storedRecovery{trace: b, marks: ms})
	}
	return out, nil
}

// nestedFor returns the nested judge that follows the artifact's chain
// of crashes during recovery, recovering with rt.
func nestedFor(meta ArtifactMeta, rt target.Target) (*nestedJudge, error) {
	if len(meta.Chain) == 0 {
		return nil, errors.New("judge nested without a chain of crash states")
	}
	j := &nestedJudge{t: rt, oracle: tuneOracle(rt, meta.Oracle), depth: len(meta.Chain) + 1}
	for _, s := range meta.Chain {
		id, err := crashsim.ParseStateID(s)
		if err != nil {
			return nil, fmt.Errorf("chain: %w", err)
		}
		j.chain = append(j.chain, id)
	}
	return j, nil
}

// replayHint says how an artifact whose driver is unavailable can still
// be looked at.
func replayHint(meta ArtifactMeta, ref target.Target) string {
	if meta.Stage == string(StageWorkload) || meta.Stage == string(StageSetup) || ref == nil {
		return ""
	}
	return fmt.Sprintf(" (replay --target %s re-judges the recorded crash state on %s)", ref.Name(), ref.Name())
}

// recordedRun is an artifact's recorded trace with the files it began
// from (base/) and where the image is.
type recordedRun struct {
	run   *crashsim.Run
	trace []byte // trace.bin as written
	meta  ArtifactMeta
}

// readRecorded reads trace.bin and base/ (nil, nil when there is no
// trace.bin).
func readRecorded(dir string, meta ArtifactMeta) (*recordedRun, error) {
	tb, err := os.ReadFile(filepath.Join(dir, traceFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrArtifact, err)
	}
	var t crashsim.Trace
	if err := t.UnmarshalBinary(tb); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrArtifact, traceFile, err)
	}
	rdir := meta.Dir
	if rdir == "" {
		rdir = Dir
	}
	start := crashsim.EmptyImage()
	ents, err := os.ReadDir(filepath.Join(dir, baseDir))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: %w", ErrArtifact, err)
	}
	if len(ents) > 0 {
		files := map[string][]byte{}
		for _, e := range ents {
			if e.IsDir() {
				continue
			}
			b, err := os.ReadFile(filepath.Join(dir, baseDir, e.Name()))
			if err != nil {
				return nil, fmt.Errorf("%w: %w", ErrArtifact, err)
			}
			files[path.Join(rdir, e.Name())] = b
		}
		if start, err = crashsim.NewImage(files); err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrArtifact, baseDir, err)
		}
	}
	opts := crashsim.Options{ImplicitDirSync: !meta.StrictDirSync}
	end, err := start.Replay(&t, int64(len(t.Ops)), opts)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrArtifact, traceFile, err)
	}
	ep, err := end.Point()
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrArtifact, traceFile, err)
	}
	return &recordedRun{run: &crashsim.Run{Start: start, Options: opts, Trace: &t, End: ep}, trace: tb, meta: meta}, nil
}

// A stateSource is where a replayed crash state comes from: a point
// source, the model to judge it against, the guest op in progress and the
// recording the judge sees.
type stateSource struct {
	point func(k int64) (*crashsim.Point, error)
	model *model.Disk
	guest int
	rec   *Recording
}

// at is crash point k of the recorded trace, judged against the model of
// rec (a re-run, or a run on another target) as of guest op guestOp.
func (r *recordedRun) at(rec *Recording, k int64, guestOp int) *stateSource {
	rr := *rec
	rr.Base, rr.Trace, rr.Options = r.run.Start, r.run.Trace, r.run.Options
	rr.Dir, rr.Image = r.meta.Dir, r.meta.Image
	if rr.Dir == "" {
		rr.Dir, rr.Image = Dir, ImagePath
	}
	rr.Syncs, rr.End = nil, r.run.End
	return &stateSource{point: r.run.Point, model: modelAtOp(rec, guestOp), guest: guestOp, rec: &rr}
}

// modelAtOp is the model of rec as of guest op op's last mark (the end
// model after the last op, or when rec stopped before op).
func modelAtOp(rec *Recording, op int) *model.Disk {
	m := rec.EndModel
	for _, s := range rec.Marks {
		if s.Op == op {
			m = s.Model
		}
	}
	return m
}

// rebuildPoint returns the source of crash point k: the re-run rec when
// its trace equals the recorded one (or none was recorded), else the
// recorded trace when the difference is expected (concurrent groups, an
// out-of-process driver), else errImplChanged.
func rebuildPoint(recorded *recordedRun, rec *Recording, k int64, guestOp int) (*stateSource, []string, error) {
	mine, err := rec.Trace.MarshalBinary()
	if err != nil {
		return nil, nil, err
	}
	if recorded == nil || bytes.Equal(recorded.trace, mine) {
		if k < rec.SetupEnd || k > rec.End.K() {
			return nil, nil, fmt.Errorf("%w: crash point k=%d outside the run's [%d, %d]", ErrArtifact, k, rec.SetupEnd, rec.End.K())
		}
		return &stateSource{point: rec.Point, model: rec.ModelAt(k), guest: rec.GuestOpAt(k), rec: rec}, nil, nil
	}
	if !hasConcurrent(rec.W) && rec.Base == nil {
		return nil, nil, errImplChanged
	}
	why := "concurrent groups interleave differently"
	if rec.Base != nil {
		why = "the implementation runs out of process: its I/O timing varies"
	}
	notes := []string{"the re-run's filesystem trace differs from the recorded one (" + why + "); the crash state is rebuilt from the recorded trace and judged against the model as of the recorded guest op"}
	return recorded.at(rec, k, guestOp), notes, nil
}

// replayRaceAttempts bounds the runs of a crash-free failure whose
// workload has concurrent groups (see Replay).
const replayRaceAttempts = 64

var errImplChanged = errors.New("campaign: the implementation's I/O changed")

func hasConcurrent(w *workload.Workload) bool {
	return slices.ContainsFunc(w.Ops, func(op workload.Op) bool { return op.Kind == workload.Concurrent })
}

// replayChanged handles an artifact whose deterministic workload now
// issues different I/O: the implementation changed, so the recorded crash
// state no longer exists as such. Every crash state of the workload (every
// operation index, the artifact's models and bounds) is checked instead;
// the first failure of any stage is reported.
func replayChanged(res *ReplayResult, tgt target.Target, w *workload.Workload, rec *Recording, meta ArtifactMeta) (*ReplayResult, error) {
	var models []crashsim.Model
	for _, name := range meta.Models {
		m, err := crashsim.ParseModel(name)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrArtifact, metaFile, err)
		}
		models = append(models, m)
	}
	which := "the artifact's crash models"
	if len(models) == 0 {
		models, which = oracle.DefaultModels(), "the default crash models (the artifact names none)"
	}
	names := make([]string, len(models))
	for i, m := range models {
		names[i] = m.String()
	}
	res.Notes = append(res.Notes, fmt.Sprintf("the implementation's I/O changed since the artifact was written (the workload's filesystem trace differs): every crash state of the workload was checked again instead of the recorded one, under %s: %s", which, strings.Join(names, ",")))
	ck := inProcessChecker(tgt, meta.Oracle, models)
	ck.sampledPoints, ck.allPoints, ck.enum = meta.SampledPoints, true, crashsim.EnumOptions{Bound: meta.Bound, Samples: meta.Samples}
	f, err := ck.judge(rec, "")
	if err != nil {
		return nil, err
	}
	if f != nil {
		f.Index = meta.Workload
		res.Failure, res.Verdict = f, f.Verdict
	}
	return res, nil
}

// An Artifact is an artifact directory as read back: its meta.json, its
// workload and its recorded run (trace.bin replayed on base/), for
// tools that look at it without judging (qedtorture show).
type Artifact struct {
	Dir  string
	Meta ArtifactMeta
	W    *workload.Workload
	Run  *crashsim.Run // nil when the artifact has no trace.bin
	// Image is the image's path in the run's filesystems.
	Image string
	// Nested are, for a crash during recovery (meta.json's chain), the
	// recorded recoveries (nested/D/trace.bin, each starting from the
	// crash state before it) and the crash state in each.
	Nested []NestedRun
}

// A NestedRun is one recorded recovery of an artifact's chain of crashes
// during recovery, and the crash state of the chain in it.
type NestedRun struct {
	Run   *crashsim.Run
	State crashsim.StateID
}

// LoadArtifact reads an artifact directory.
func LoadArtifact(dir string) (*Artifact, error) {
	meta, err := ReadArtifactMeta(dir)
	if err != nil {
		return nil, err
	}
	w, err := readArtifactWorkload(dir)
	if err != nil {
		return nil, err
	}
	rr, err := readRecorded(dir, meta)
	if err != nil {
		return nil, err
	}
	a := &Artifact{Dir: dir, Meta: meta, W: w, Image: meta.Image}
	if a.Image == "" {
		a.Image = ImagePath
	}
	if rr != nil {
		a.Run = rr.run
	}
	if len(meta.Chain) > 0 && a.Run != nil {
		id, err := crashsim.ParseStateID(meta.State)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrArtifact, metaFile, err)
		}
		run := a.Run
		for i, s := range meta.Chain {
			p, err := run.Point(id.K)
			if err != nil {
				return nil, fmt.Errorf("%w: %s: %w", ErrArtifact, id, err)
			}
			st, err := p.State(id)
			if err != nil {
				return nil, fmt.Errorf("%w: %s: %w", ErrArtifact, id, err)
			}
			name := filepath.Join(dir, "nested", strconv.Itoa(i+2), traceFile)
			b, err := os.ReadFile(name)
			if err != nil {
				return nil, fmt.Errorf("%w: %w", ErrArtifact, err)
			}
			t, err := crashsim.DecodeTrace(b)
			if err != nil {
				return nil, fmt.Errorf("%w: %s: %w", ErrArtifact, name, err)
			}
			if id, err = crashsim.ParseStateID(s); err != nil {
				return nil, fmt.Errorf("%w: %s: chain: %w", ErrArtifact, metaFile, err)
			}
			run = &crashsim.Run{Start: st.Start(), Options: a.Run.Options, Trace: t}
			end, err := run.Start.Replay(t, int64(len(t.Ops)), run.Options)
			if err != nil {
				return nil, fmt.Errorf("%w: %s: %w", ErrArtifact, name, err)
			}
			if run.End, err = end.Point(); err != nil {
				return nil, fmt.Errorf("%w: %s: %w", ErrArtifact, name, err)
			}
			a.Nested = append(a.Nested, NestedRun{Run: run, State: id})
		}
	}
	return a, nil
}

// GuestOpAt is the guest op whose I/O trace index k belongs to (the
// 0-based workload line; -1 the setup), from meta.json's marks (-2 when
// the artifact has none).
func (a *Artifact) GuestOpAt(k int64) int {
	op := -2
	for _, m := range a.Meta.Marks {
		if m[1] <= k {
			op = int(m[0])
		}
	}
	if len(a.Meta.Marks) > 0 && k < a.Meta.Marks[0][1] {
		return -1
	}
	return op
}
