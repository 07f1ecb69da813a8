package campaign

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/qedtorture/qedtorture/crashsim"
	"github.com/qedtorture/qedtorture/internal/atomicfile"
	"github.com/qedtorture/qedtorture/model"
	"github.com/qedtorture/qedtorture/props/oracle"
	"github.com/qedtorture/qedtorture/props/target"
	"github.com/qedtorture/qedtorture/props/workload"
	"github.com/spf13/afero"
)

// An artifact directory holds one failing case:
//
//	meta.json           what replay needs: seeds, target, faults, stage,
//	                    state id, crash point, guest op, oracle options
//	workload.txt        the minimized workload (workload script form)
//	workload.orig.txt   the workload as generated (before minimization)
//	seed                campaign seed, workload index and workload seed
//	crash.txt           the crash identity: state id, crash point, model,
//	                    guest op in progress, unsynced operations
//	image/              the crashed files (image.qed and its backing
//	                    chain), real files qemu-img can open
//	expected-vs-read.txt  the model's expectation vs what was read
//	verdict.txt         the oracle's verdict
//	explain.txt         one paragraph saying what happened
//	trace.bin           the recorded filesystem trace (crashsim binary form)
const (
	metaFile  = "meta.json"
	traceFile = "trace.bin"
	imageDir  = "image"
)

// ArtifactMeta is meta.json.
type ArtifactMeta struct {
	Version      int            `json:"version"`
	Target       string         `json:"target"`
	CampaignSeed uint64         `json:"campaign_seed"`
	Workload     int            `json:"workload"`
	WorkloadSeed uint64         `json:"workload_seed"`
	Faults       string         `json:"faults,omitempty"`
	Stage        string         `json:"stage"`
	State        string         `json:"state,omitempty"`
	CrashPoint   int64          `json:"crash_point"`
	GuestOp      int            `json:"guest_op"`
	Message      string         `json:"message"`
	Oracle       oracle.Options `json:"oracle"`
	// The enumeration of the campaign, used when the implementation
	// changed since the artifact was written (see Replay).
	Models        []string `json:"models"`
	Bound         uint64   `json:"bound"`
	Samples       int      `json:"samples"`
	SampledPoints int      `json:"sampled_points"`
}

// WriteArtifact writes f into a new directory under out (named after the
// seed, workload and stage; "-2", "-3", ... appended when an earlier run
// left one of that name) and returns its path.
//
// The artifact appears complete or not at all: it is built in a temporary
// directory next to its final name (atomicfile.MkdirTemp), every file in
// it is synced, and only then is it renamed into place and out synced
// (atomicfile.CommitDir). On any error (a full disk, a read-only out) the
// temporary is removed and the error names the artifact and the cause, so
// replay never meets a directory with a cut trace.bin or no workload.txt.
func WriteArtifact(out string, f *Failure, meta ArtifactMeta) (string, error) {
	name := fmt.Sprintf("failure-%d-w%d-%s", meta.CampaignSeed, f.Index, f.Stage)
	if err := os.MkdirAll(out, 0o755); err != nil {
		return "", fmt.Errorf("campaign: artifact directory %s: %w", out, unwrapPathErr(err))
	}
	dir := filepath.Join(out, name)
	for i := 2; ; i++ {
		if _, err := os.Lstat(dir); errors.Is(err, os.ErrNotExist) {
			break
		}
		dir = filepath.Join(out, fmt.Sprintf("%s-%d", name, i))
	}
	tmp, err := atomicfile.MkdirTemp(dir)
	if err != nil {
		return "", fmt.Errorf("campaign: artifact %w", err)
	}
	if err := fillArtifact(tmp, f, meta); err != nil {
		_ = atomicfile.RemoveTemp(tmp)
		return "", fmt.Errorf("campaign: artifact %s: %w", dir, unwrapPathErr(err))
	}
	if err := atomicfile.CommitDir(tmp, dir); err != nil {
		return "", fmt.Errorf("campaign: artifact %w", err)
	}
	return dir, nil
}

// unwrapPathErr drops an *fs.PathError's path (a temporary's name) so that
// an error names the artifact once.
func unwrapPathErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// fillArtifact writes the artifact's files into dir (a fresh directory).
func fillArtifact(dir string, f *Failure, meta ArtifactMeta) error {
	if err := os.Mkdir(filepath.Join(dir, imageDir), 0o755); err != nil {
		return err
	}
	meta.Version = 1
	meta.Workload, meta.WorkloadSeed = f.Index, f.WorkloadSeed
	meta.Stage, meta.GuestOp, meta.Message = string(f.Stage), f.GuestOp, f.Message()
	if f.HasState() {
		meta.State, meta.CrashPoint = f.State.String(), f.State.K
	}
	files := map[string][]byte{}
	mj, err := json.MarshalIndent(meta, "", "  ")
	if err != nil {
		return err
	}
	files[metaFile] = append(mj, '\n')
	files["workload.txt"] = []byte(f.W.String())
	orig := f.Original
	if orig == nil {
		orig = f.W
	}
	files["workload.orig.txt"] = []byte(orig.String())
	files["seed"] = fmt.Appendf(nil, "campaign_seed=%d\nworkload=%d\nworkload_seed=%d\n", meta.CampaignSeed, f.Index, f.WorkloadSeed)
	files["crash.txt"] = []byte(crashText(f))
	files["verdict.txt"] = []byte(verdictText(f) + "\n")
	files["expected-vs-read.txt"] = []byte(expectedVsRead(f) + "\n")
	files["explain.txt"] = []byte(Explain(f, meta.Target) + "\n")
	if f.Rec != nil {
		tb, err := f.Rec.Trace.MarshalBinary()
		if err != nil {
			return err
		}
		files[traceFile] = tb
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return fmt.Errorf("%s: %w", name, unwrapPathErr(err))
		}
	}
	// The crashed files: rebuilt from the point (the state the oracle
	// judged was modified by the recovery), or the live files at the end
	// of a run that failed without a crash.
	var st *crashsim.FS
	switch {
	case f.Point != nil:
		st, err = f.Point.State(f.State)
	case f.Rec != nil:
		p := f.Rec.End
		st, err = p.State(crashsim.StateID{K: p.K(), Model: crashsim.Model{Base: crashsim.Prefix}, Ordinal: uint64(len(p.Unsynced()))})
	}
	if err != nil {
		return err
	}
	if st != nil {
		if err := copyDir(st, Dir, filepath.Join(dir, imageDir)); err != nil {
			return err
		}
	}
	return nil
}

// copyDir copies the regular files of directory src of fs into dst.
func copyDir(fs afero.Fs, src, dst string) error {
	infos, err := afero.ReadDir(fs, src)
	if err != nil {
		return err
	}
	for _, fi := range infos {
		if fi.IsDir() {
			continue
		}
		b, err := afero.ReadFile(fs, filepath.Join(src, fi.Name()))
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dst, fi.Name()), b, 0o644); err != nil {
			return fmt.Errorf("%s: %w", filepath.Join(imageDir, fi.Name()), unwrapPathErr(err))
		}
	}
	return nil
}

func crashText(f *Failure) string {
	var b strings.Builder
	fmt.Fprintf(&b, "stage: %s\n", f.Stage)
	if !f.HasState() {
		fmt.Fprintf(&b, "no crash: the failure happened in the crash-free run, at guest op %d", f.GuestOp)
		if f.GuestOp >= 0 && f.GuestOp < len(f.W.Ops) {
			fmt.Fprintf(&b, " (%s)", f.W.Ops[f.GuestOp])
		}
		b.WriteString("\n")
		return b.String()
	}
	fmt.Fprintf(&b, "state: %s\n", f.State)
	fmt.Fprintf(&b, "crash point: k=%d (power loss just before filesystem operation %d)\n", f.State.K, f.State.K)
	fmt.Fprintf(&b, "model: %s\n", f.State.Model)
	fmt.Fprintf(&b, "guest op in progress: %s\n", guestOpText(f.W, f.GuestOp))
	if f.Point != nil {
		un := f.Point.Unsynced()
		fmt.Fprintf(&b, "unsynced operations at the crash point (%d):\n", len(un))
		for _, o := range un {
			fmt.Fprintf(&b, "  %s\n", o)
		}
	}
	return b.String()
}

func guestOpText(w *workload.Workload, i int) string {
	switch {
	case i < 0:
		return "none (right after the setup)"
	case len(w.Ops) == 0:
		return "none (the workload has no ops)"
	case i >= len(w.Ops):
		return fmt.Sprintf("none (the crash follows the last op, %d: %s)", len(w.Ops)-1, w.Ops[len(w.Ops)-1])
	}
	return fmt.Sprintf("%d (%s)", i, w.Ops[i])
}

func verdictText(f *Failure) string {
	switch {
	case f.Verdict != nil:
		return f.Verdict.String()
	case f.OpErr != nil:
		return fmt.Sprintf("FAIL at %s: %v", f.Stage, f.OpErr)
	}
	return fmt.Sprintf("FAIL at %s: %v", f.Stage, f.Err)
}

func expectedVsRead(f *Failure) string {
	var mm *model.Mismatch
	switch {
	case f.Verdict != nil && f.Verdict.Mismatch != nil:
		mm = f.Verdict.Mismatch
	case f.OpErr != nil && f.OpErr.Mismatch != nil:
		mm = f.OpErr.Mismatch
	}
	if mm == nil {
		return "no data mismatch: the failure is structural or an error (see verdict.txt)"
	}
	return mm.Error()
}

var stageHints = map[oracle.Stage]string{
	oracle.StageStructureBefore: "The raw crashed image has NEED_CHECK clear, so it promises to be consistent without a check, yet its tables are not: a metadata update reached the disk before what it depends on, or NEED_CHECK was cleared too early.",
	oracle.StageRecovery:        "Opening the crashed image writable (which checks and repairs it) failed.",
	oracle.StageSize:            "The recovered image size is neither the size at the last flush nor one a pending resize set.",
	oracle.StageData:            "A guest sector read after recovery is not its value at the last completed guest flush with some of the writes issued since applied in order: flushed data was lost, data came from the wrong place, or a write was torn inside a sector (expected-vs-read.txt names the rule broken, the candidates and what was read).",
	oracle.StageDataAfterReopen: "The data read after recovery was right, but after the liveness write, a clean close and a reopen a guest byte changed: the close after recovery damaged data (a stale table written back, a misdirected write-back).",
	oracle.StageStructureAfter:  "After recovery, a write and a clean close, the image is still inconsistent or keeps NEED_CHECK set: the repair left damage behind.",
	oracle.StageLiveness:        "The recovered image did not accept a write, a flush, a clean close and a clean reopen.",
	StageWorkload:               "No crash was involved: a guest operation of the workload failed on the running image (a read disagreed with the model, a check found corruption, or an I/O error nothing injected).",
	StageSetup:                  "Building the backing chain, creating or opening the image failed before the workload started.",
}

// Explain returns the one-paragraph explanation of a failure.
func Explain(f *Failure, target string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Workload %d (seed %d", f.Index, f.WorkloadSeed)
	if f.Original != nil && len(f.Original.Ops) != len(f.W.Ops) {
		fmt.Fprintf(&b, "; minimized from %d to %d ops", len(f.Original.Ops), len(f.W.Ops))
	} else {
		fmt.Fprintf(&b, "; %d ops", len(f.W.Ops))
	}
	fmt.Fprintf(&b, ", %d-byte clusters, %d-cluster tables, %d-byte image, %d backing file(s)) ran on %s over a recording filesystem.",
		f.W.Geometry.ClusterSize, f.W.Geometry.TableSize, f.W.Geometry.Size, len(f.W.Geometry.Backing), target)
	if f.HasState() {
		fmt.Fprintf(&b, " A power loss just before filesystem operation %d, while guest op %s was in progress, left the files in image/ under the %s crash model (state %s).",
			f.State.K, guestOpText(f.W, f.GuestOp), f.State.Model, f.State)
		fmt.Fprintf(&b, " The oracle then failed at stage %s: %v.", f.Stage, firstLine(f.Verdict.Err))
	} else {
		fmt.Fprintf(&b, " It failed at stage %s: %v.", f.Stage, firstLine(errOf(f)))
	}
	if h := stageHints[f.Stage]; h != "" {
		b.WriteString(" " + h)
	}
	b.WriteString(" Replay with: qedtorture replay DIR.")
	return b.String()
}

func errOf(f *Failure) error {
	if f.OpErr != nil {
		return f.OpErr
	}
	return f.Err
}

func firstLine(err error) string {
	if err == nil {
		return "<nil>"
	}
	s, _, _ := strings.Cut(err.Error(), "\n")
	return s
}

// ReplayResult is what Replay found.
type ReplayResult struct {
	Meta    ArtifactMeta
	Failure *Failure // the failure as reproduced (nil when it now passes)
	Verdict *oracle.Verdict
	// Notes are caveats about the rebuild (e.g. the re-run's trace differs
	// from the recorded one, so the recorded trace was used).
	Notes []string
}

// Fails reports whether the artifact still fails.
func (r *ReplayResult) Fails() bool { return r.Failure != nil }

// ErrArtifact is wrapped by errors about a malformed artifact directory.
var ErrArtifact = errors.New("campaign: bad artifact")

// A Resolver returns the target an artifact names (meta.json's "target",
// a --target name). The engine knows no implementation: cmd/qedtorture's
// targets.go is the resolver of the command line, tests pass their own.
// Its error says why the name cannot be run (unknown, or a seeded defect
// in a build without them) and is returned by Replay as it is.
type Resolver func(name string) (target.Target, error)

// Replay rebuilds the case an artifact directory describes and judges it
// again: the workload is re-run on the target resolve returns for the
// artifact's target name (with the same faults and seed) and, for a crash
// state, the state is rebuilt from its id, from the re-run's trace if
// equal to the recorded one, else from the recorded trace.
func Replay(dir string, resolve Resolver) (*ReplayResult, error) {
	if atomicfile.IsTemp(filepath.Clean(dir)) {
		return nil, fmt.Errorf("%w: %s is the temporary of an artifact that was never completed (a campaign killed while writing it); it cannot be replayed", ErrArtifact, dir)
	}
	mb, err := os.ReadFile(filepath.Join(dir, metaFile))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrArtifact, err)
	}
	res := &ReplayResult{}
	dec := json.NewDecoder(bytes.NewReader(mb))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&res.Meta); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrArtifact, filepath.Join(dir, metaFile), err)
	}
	meta := res.Meta
	tgt, err := resolve(meta.Target)
	if err != nil {
		return nil, fmt.Errorf("campaign: replay %s: %w", dir, err)
	}
	wf, err := os.Open(filepath.Join(dir, "workload.txt"))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrArtifact, err)
	}
	w, err := workload.Parse(wf)
	wf.Close()
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrArtifact, filepath.Join(dir, "workload.txt"), err)
	}
	rec, err := InProcess(tgt).Record(context.Background(), w, RecordOptions{Seed: meta.WorkloadSeed, Faults: meta.Faults})
	if err != nil {
		res.Failure = &Failure{Index: meta.Workload, WorkloadSeed: meta.WorkloadSeed, W: w, Stage: StageSetup, GuestOp: -1, Err: err}
		return res, nil
	}
	stage := oracle.Stage(meta.Stage)
	if stage == StageWorkload || stage == StageSetup {
		if fails, _ := rec.workloadFails(); fails {
			res.Failure = &Failure{Index: meta.Workload, WorkloadSeed: meta.WorkloadSeed, W: w, Stage: StageWorkload,
				GuestOp: rec.OpErr.Index, OpErr: rec.OpErr, Rec: rec}
		}
		return res, nil
	}
	id, err := crashsim.ParseStateID(meta.State)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrArtifact, metaFile, err)
	}
	p, m, guest, notes, err := rebuildPoint(dir, rec, id.K, meta.GuestOp)
	if errors.Is(err, errImplChanged) {
		return replayChanged(res, tgt, w, rec, meta)
	}
	if err != nil {
		return nil, err
	}
	res.Notes = notes
	st, err := p.State(id)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrArtifact, err)
	}
	var durable *oracle.Durable
	if oracle.DurableCost(m) <= maxDurableCache {
		// As judge() does, so that the explanation reads the same.
		if durable, err = oracle.NewDurable(m); err != nil {
			return nil, err
		}
	}
	j := &oracleJudge{t: tgt, oracle: meta.Oracle}
	v, err := j.Judge(context.Background(), &State{ID: id, Point: p, FS: st, Image: rec.Image, Model: m.Clone(), Durable: durable, GuestOp: guest, Rec: rec})
	if err != nil {
		return nil, err
	}
	if v == excused {
		res.Notes = append(res.Notes, "the state fails only within what the injected silent faults damaged: their direct effect, not a failure")
	}
	res.Verdict = v
	if !v.OK() {
		res.Failure = &Failure{Index: meta.Workload, WorkloadSeed: meta.WorkloadSeed, W: w, Stage: v.Stage,
			State: id, Judge: j.Name(), GuestOp: guest, Verdict: v, Rec: rec, Point: p}
	}
	return res, nil
}

// rebuildPoint returns crash point k and the model to judge it against.
func rebuildPoint(dir string, rec *Recording, k int64, guestOp int) (*crashsim.Point, *model.Disk, int, []string, error) {
	tb, err := os.ReadFile(filepath.Join(dir, traceFile))
	if errors.Is(err, os.ErrNotExist) {
		tb = nil
	} else if err != nil {
		return nil, nil, 0, nil, fmt.Errorf("%w: %w", ErrArtifact, err)
	}
	mine, err := rec.Trace.MarshalBinary()
	if err != nil {
		return nil, nil, 0, nil, err
	}
	if tb == nil || bytes.Equal(tb, mine) {
		if k < rec.SetupEnd || k > rec.End.K() {
			return nil, nil, 0, nil, fmt.Errorf("%w: crash point k=%d outside the run's [%d, %d]", ErrArtifact, k, rec.SetupEnd, rec.End.K())
		}
		p, err := rec.Point(k)
		return p, rec.ModelAt(k), rec.GuestOpAt(k), nil, err
	}
	var t crashsim.Trace
	if err := t.UnmarshalBinary(tb); err != nil {
		return nil, nil, 0, nil, fmt.Errorf("%w: %s: %w", ErrArtifact, traceFile, err)
	}
	if !hasConcurrent(rec.W) {
		return nil, nil, 0, nil, errImplChanged
	}
	notes := []string{"the re-run's filesystem trace differs from the recorded one (concurrent groups interleave differently); the crash state is rebuilt from the recorded trace and judged against the model as of the recorded guest op"}
	p, err := PointFromTrace(&t, k)
	if err != nil {
		return nil, nil, 0, nil, fmt.Errorf("%w: %w", ErrArtifact, err)
	}
	// The model as of the recorded guest op's last snapshot.
	m := rec.EndModel
	for _, s := range rec.Marks {
		if s.Op == guestOp {
			m = s.Model
		}
	}
	return p, m, guestOp, notes, nil
}

var errImplChanged = errors.New("campaign: the implementation's I/O changed")

func hasConcurrent(w *workload.Workload) bool {
	for _, op := range w.Ops {
		if op.Kind == workload.Concurrent {
			return true
		}
	}
	return false
}

// replayChanged handles an artifact whose deterministic workload now
// issues different I/O: the implementation changed, so the recorded crash
// state no longer exists as such. Every crash state of the workload (every
// operation index, the artifact's models and bounds) is checked instead;
// the first failure of any stage is reported.
func replayChanged(res *ReplayResult, tgt target.Target, w *workload.Workload, rec *Recording, meta ArtifactMeta) (*ReplayResult, error) {
	res.Notes = append(res.Notes, "the implementation's I/O changed since the artifact was written (the workload's filesystem trace differs): every crash state of the workload was checked again instead of the recorded one")
	var models []crashsim.Model
	for _, name := range meta.Models {
		m, err := crashsim.ParseModel(name)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrArtifact, metaFile, err)
		}
		models = append(models, m)
	}
	if len(models) == 0 {
		models = oracle.DefaultModels()
	}
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

// WriteText writes the human form of a replay (or run) verdict.
func WriteText(w io.Writer, f *Failure, target string) {
	fmt.Fprintln(w, verdictText(f))
	fmt.Fprintln(w, expectedVsRead(f))
	fmt.Fprintln(w, Explain(f, target))
}
