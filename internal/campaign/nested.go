package campaign

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"path"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/qedtorture/qedtorture/crashsim"
	"github.com/qedtorture/qedtorture/model"
	"github.com/qedtorture/qedtorture/props/check"
	"github.com/qedtorture/qedtorture/props/oracle"
	"github.com/qedtorture/qedtorture/props/target"
	"github.com/qedtorture/qedtorture/props/workload"
	"github.com/spf13/afero"
)

// Crashes during recovery (nested crashes, issue 14.1).
//
// Recovery is itself a writer: the writable open of a crashed image (the
// check and repair after NEED_CHECK, cutting a partial cluster at the end
// of the file, clearing unknown autoclear bits), then the first write and
// its flush, then the clean close. A crash during any of them is a second
// crash, and the invariants do not weaken: after any sequence of crashes,
// flushed data survives, the structure is consistent or NEED_CHECK is
// set, and a recovery completes.
//
// The nested judge (NestedJudgeName) is a budgeted judge: it gets a
// seeded sample of the distinct crash states every unbudgeted judge passed
// (all of them when a workload has no more than the budget). For each, it
// records the recovery's own I/O (RecoveryRecorder, in process by default:
// the crash state is itself a recording crashsim filesystem) and judges
// the recovery's crash states with the oracle, as crash states of depth 2:
// the recovery trace's syncs, its end and sampled indices, per model the
// states the campaign's bounds enumerate, de-duplicated per point. Up to
// Config.NestedDepth, a seeded sample of those states (the budget again)
// is recovered and crashed in turn.
//
// What a crash state of depth d+1 is judged against (the marks of the
// recovery's recording): during the writable open, the model of the crash
// that the recovery recovers (the writes pending at it may or may not have
// landed); once the open returned, the recovered model (what the recovery
// read back over the uncertain ranges is durable: the crashed medium holds
// it, and nothing the recovery writes may change it), with the first
// write pending, then durable once its flush returned.
//
// A failure's verdict carries the chain of crash states in its error
// (*NestedCrash): the artifact keeps each recovery's trace and the last
// crash state's files, and replay follows the chain again.

// NestedJudgeName is the name of the nested judge (a failure's Judge).
const NestedJudgeName = "nested"

// Defaults of the nested exploration (cmd/qedtorture's --nested-depth and
// --nested-states).
const (
	DefaultNestedDepth  = 2
	DefaultNestedStates = 1
)

// The steps of a recorded recovery, as the Op of its marks.
const (
	RecoveryOpen  = 0 // the writable open: check and repair
	RecoveryWrite = 1 // the first write (the oracle's liveness sector)
	RecoveryFlush = 2 // its flush
	RecoveryClose = 3 // the clean close
)

// recoveryStepText names a recovery step.
func recoveryStepText(op int) string {
	switch op {
	case RecoveryOpen:
		return "recovery: writable open (check and repair)"
	case RecoveryWrite:
		return "recovery: first write (512 bytes at guest offset 0)"
	case RecoveryFlush:
		return "recovery: flush"
	case RecoveryClose:
		return "recovery: close"
	}
	return "recovery: done"
}

// A RecoveryRecorder records an implementation's recovery of a crash
// state: an optional interface of a Driver (the engine checks for it with
// a type assertion). Without it, the engine records the recovery in
// process with the oracle's recoverer (Driver.Recoverer, else
// Config.Reference) on the crash state as a recording crashsim filesystem.
//
// RecordRecovery returns a Recording of the recovery of st (its Base the
// crash state's files, its Trace the recovery's I/O, Marks with Op one of
// RecoveryOpen .. RecoveryClose and the model of each step, as described
// in nested.go); a recovery that failed is Recording.OpErr.
type RecoveryRecorder interface {
	RecordRecovery(ctx context.Context, st *State) (*Recording, error)
}

// NestedCrash is the error of a verdict of the nested judge: the crash
// state reached by Chain's crashes during recovery failed with Err.
type NestedCrash struct {
	Judge string // who recovered (the oracle's recoverer)
	// Recorder is who ran the recoveries Chain crashed: "" when Judge ran
	// them in process, else the driver whose own recorder ran them (QEMU,
	// a program): replay can stand in for it with Judge only when "".
	Recorder string
	Chain    []crashsim.StateID // the crash state in each recovery's trace, in order
	// Recoveries are the recordings of the recoveries Chain crashed, in
	// order: Recoveries[i].Base is the crash state before it.
	Recoveries []*Recording
	Err        error
}

func (e *NestedCrash) Error() string {
	var b strings.Builder
	for i, id := range e.Chain {
		if i > 0 {
			b.WriteString(", then ")
		}
		fmt.Fprintf(&b, "%s during the recovery (%s)", id, recoveryStepText(e.Recoveries[i].MarkAt(id.K).Op))
	}
	return fmt.Sprintf("crash %s: %v", b.String(), e.Err)
}

func (e *NestedCrash) Unwrap() error { return e.Err }

// Nested returns the chain of crashes during recovery of a failure the
// nested judge found (nil for any other failure).
func (f *Failure) Nested() *NestedCrash {
	if f == nil || f.Verdict == nil {
		return nil
	}
	var nc *NestedCrash
	if errors.As(f.Verdict.Err, &nc) {
		return nc
	}
	return nil
}

// recorderName is who runs the recoveries: "" in process with j.t, else
// the name of the driver whose RecoveryRecorder runs them.
func (j *nestedJudge) recorderName() string {
	if j.rr == nil {
		return ""
	}
	if n, ok := j.rr.(interface{ Name() string }); ok {
		return n.Name()
	}
	return fmt.Sprintf("%T", j.rr)
}

// nestedJudge is the judge of crashes during recovery (see above).
type nestedJudge struct {
	t      target.Target    // the oracle's recoverer
	rr     RecoveryRecorder // nil: in process with t
	oracle oracle.Options
	models []crashsim.Model
	enum   crashsim.EnumOptions
	depth  int // the deepest crash judged (>= 2)
	budget int // states recovered and crashed per workload, and per state at each further depth
	points int // sampled crash points per recovery trace
	// chain, when set, is followed instead of explored (replay).
	chain []crashsim.StateID
	// stored are, in replay, the artifact's recorded recoveries of the
	// chain (nested/D/trace.bin with meta.json's chain_marks; nil when it
	// has none): when a driver's own recorder (rr) records a recovery
	// whose trace differs from the stored one (an out-of-process
	// implementation's I/O timing varies), the stored one is judged, as
	// replay does at the top level. notes say when that happened.
	stored []storedRecovery
	notes  []string
	// states counts the crash states of depth 2 and more judged (may be nil).
	states *atomic.Int64
}

func (j *nestedJudge) Name() string { return NestedJudgeName }

func (j *nestedJudge) Budget() int { return j.budget }

func (j *nestedJudge) Judge(ctx context.Context, st *State) (*oracle.Verdict, error) {
	if st.Rec != nil && st.Rec.Faulted() {
		// Faults' direct effects are excused by the oracle judge against
		// the run's injections; a recovery's own crashes are not.
		return &oracle.Verdict{}, nil
	}
	return j.judgeAt(ctx, st, []crashsim.StateID{st.ID}, nil)
}

// record records the recovery of st.
func (j *nestedJudge) record(ctx context.Context, st *State) (*Recording, error) {
	if j.rr != nil {
		return j.rr.RecordRecovery(ctx, st)
	}
	return RecordRecovery(j.t, st)
}

// judgeAt records the recovery of st, the crash state reached by path
// (the depth-1 state, then the state in each recovery crashed since, the
// last being st; recs are those recoveries), and judges the crash states
// of that recovery as states of depth len(path)+1; below j.depth, a
// sample of them is recovered and crashed again.
func (j *nestedJudge) judgeAt(ctx context.Context, st *State, path []crashsim.StateID, recs []*Recording) (*oracle.Verdict, error) {
	rec, err := j.record(ctx, st)
	if err != nil {
		return nil, err
	}
	level := len(path) + 1
	if rec, err = j.preferStored(rec, level); err != nil {
		return nil, err
	}
	recs = append(recs[:len(recs):len(recs)], rec)
	wrap := func(v *oracle.Verdict, last crashsim.StateID) *oracle.Verdict {
		nv := *v
		chain := append(append([]crashsim.StateID(nil), path[1:]...), last)
		nv.Err = &NestedCrash{Judge: j.t.Name(), Recorder: j.recorderName(), Chain: chain, Recoveries: recs, Err: v.Err}
		return &nv
	}
	if rec.OpErr != nil {
		// The recovery of a state the oracle passed failed when recorded:
		// a recovery that does not complete.
		v := &oracle.Verdict{Stage: oracle.StageRecovery, Err: fmt.Errorf("recorded recovery: %w", rec.OpErr)}
		if len(path) == 1 {
			return v, nil
		}
		nv := *v
		nv.Err = &NestedCrash{Judge: j.t.Name(), Recorder: j.recorderName(), Chain: append([]crashsim.StateID(nil), path[1:]...), Recoveries: recs[:len(recs)-1], Err: v.Err}
		return &nv, nil
	}
	if err := rec.complete(); err != nil {
		return nil, err
	}
	base, format, onCommit, err := commitBaseOf(st)
	if err != nil {
		return nil, err
	}
	judge := func(id crashsim.StateID, fs afero.Fs) *oracle.Verdict {
		if j.states != nil {
			j.states.Add(1)
		}
		if onCommit {
			// A crash during a commit: as at depth 1 (oracleJudge), the
			// chain is recovered from the base up; the base may have
			// crashed again during its own recovery (the first step of
			// the recorded one). Its contents were judged at depth 1;
			// here it is recovered only, and the image judged.
			if err := oracle.RecoverCommitBase(j.t, fs, base, format); err != nil {
				return &oracle.Verdict{Stage: oracle.StageCommitBase, Err: err}
			}
		}
		return oracle.Judge(j.t, fs, rec.Image, rec.ModelAt(id.K).Clone(), j.oracle)
	}
	deeper := func(id crashsim.StateID) (*oracle.Verdict, error) {
		p, err := rec.Point(id.K)
		if err != nil {
			return nil, err
		}
		return j.judgeAt(ctx, &State{ID: id, Point: p, Image: rec.Image, Model: rec.ModelAt(id.K).Clone(), GuestOp: st.GuestOp, Rec: st.Rec},
			append(path[:len(path):len(path)], id), recs)
	}
	if j.chain != nil {
		// Replay: the chain's state at this depth only.
		if level-2 >= len(j.chain) {
			return nil, fmt.Errorf("campaign: nested chain of %d states, depth %d asked", len(j.chain), level)
		}
		id := j.chain[level-2]
		if level-1 < len(j.chain) {
			return deeper(id)
		}
		p, err := rec.Point(id.K)
		if err != nil {
			return nil, err
		}
		fs, err := p.FinalState(id)
		if err != nil {
			return nil, fmt.Errorf("campaign: nested %s: %w", id, err)
		}
		defer fs.Release()
		if v := judge(id, fs); !v.OK() {
			return wrap(v, id), nil
		}
		return &oracle.Verdict{}, nil
	}
	seed := nestedSeed(stateSeed(st), path)
	o := crashsim.ExploreOptions{Models: j.models, Bound: j.enum.Bound, Samples: j.enum.Samples, Seed: seed,
		SampledPoints: j.points, MaxFailures: -1}
	hasher := newStateHasher()
	seen := map[stateKey]struct{}{}
	var (
		found  *oracle.Verdict
		passed []crashsim.StateID
	)
	check := func(s crashsim.State) error {
		if ctx.Err() != nil {
			return crashsim.ErrStopExplore
		}
		key, keyed := hasher.keyOf(rec.dir(), s.Point, s.ID, s.FS, rec.MarkIndexAt(s.ID.K))
		if keyed {
			if _, dup := seen[key]; dup {
				return nil
			}
		}
		if v := judge(s.ID, s.FS); !v.OK() {
			found = wrap(v, s.ID)
			return crashsim.ErrStopExplore
		}
		if keyed {
			seen[key] = struct{}{}
		}
		passed = append(passed, s.ID)
		return nil
	}
	if _, err := rec.run().Explore(o, check); err != nil {
		return nil, err
	}
	if found != nil {
		return found, nil
	}
	if level >= j.depth || ctx.Err() != nil {
		return &oracle.Verdict{}, nil
	}
	n := j.budget
	if n < 0 {
		n = len(passed)
	}
	for _, id := range sampleStates(passed, n, seed, NestedJudgeName) {
		if v, err := deeper(id); err != nil || !v.OK() {
			return v, err
		}
	}
	return &oracle.Verdict{}, nil
}

// A storedRecovery is an artifact's recorded recovery at one depth of
// its chain: the trace as written and its marks.
type storedRecovery struct {
	trace []byte // nested/D/trace.bin
	marks [][2]int64
}

// preferStored returns the recording to judge at this depth in replay:
// rec, or, when rec was recorded by the driver's own recorder and its
// trace differs from the artifact's recorded recovery at this depth, the
// recorded one (rec's base, options and models, the recorded trace and
// the recorded marks' positions). In-process recoveries are deterministic:
// a differing trace means the implementation changed, and rec is judged.
func (j *nestedJudge) preferStored(rec *Recording, level int) (*Recording, error) {
	i := level - 2
	if j.rr == nil || i < 0 || i >= len(j.stored) {
		return rec, nil
	}
	s := j.stored[i]
	mine, err := rec.Trace.MarshalBinary()
	if err != nil {
		return nil, err
	}
	if bytes.Equal(mine, s.trace) {
		return rec, nil
	}
	t, err := crashsim.DecodeTrace(s.trace)
	if err != nil {
		return nil, fmt.Errorf("%w: nested/%d/%s: %w", ErrArtifact, level, traceFile, err)
	}
	if len(s.marks) != len(rec.Marks) {
		j.notes = append(j.notes, fmt.Sprintf("the re-recorded recovery at depth %d differs from nested/%d/%s and took other steps (%d marks, %d recorded): the re-recorded one is judged", level, level, traceFile, len(rec.Marks), len(s.marks)))
		return rec, nil
	}
	nr := &Recording{W: rec.W, Seed: rec.Seed, Dir: rec.Dir, Image: rec.Image, Base: rec.Base, Options: rec.Options,
		Trace: t, EndModel: rec.EndModel, OpErr: rec.OpErr, Recorder: rec.Recorder, Recovery: true}
	for k, m := range rec.Marks {
		if int64(m.Op) != s.marks[k][0] || s.marks[k][1] < 0 || s.marks[k][1] > int64(len(t.Ops)) {
			j.notes = append(j.notes, fmt.Sprintf("the re-recorded recovery at depth %d differs from nested/%d/%s and its steps do not match the recorded marks: the re-recorded one is judged", level, level, traceFile))
			return rec, nil
		}
		m.K = s.marks[k][1]
		nr.Marks = append(nr.Marks, m)
	}
	j.notes = append(j.notes, fmt.Sprintf("the re-recorded recovery at depth %d differs from nested/%d/%s (the implementation runs out of process: its I/O timing varies); the recorded recovery is judged", level, level, traceFile))
	return nr, nil
}

// stateSeed is the workload seed of st's recording (0 without one).
func stateSeed(st *State) uint64 {
	if st.Rec == nil {
		return 0
	}
	return st.Rec.Seed
}

// nestedSeed is the seed of a recovery's exploration: the workload seed
// and the chain of crash states that led to it.
func nestedSeed(seed uint64, path []crashsim.StateID) uint64 {
	h := fnv.New64a()
	for _, id := range path {
		h.Write([]byte(id.String()))
		h.Write([]byte{0})
	}
	return rand.New(rand.NewPCG(seed, h.Sum64())).Uint64()
}

// RecordRecovery records t's recovery of crash state st in process: the
// state rebuilt as a recording crashsim filesystem (its Base), then a
// writable open (check and repair), the read-back of the model's
// uncertain ranges (which collapses the model, as the oracle does), one
// sector written at guest offset 0, a flush and a close. The marks say
// what a crash at each moment is judged against (see nested.go). When st
// crashed during a commit, the recovery starts with the base's own
// (oracle.RecoverCommitBase, as the depth-1 judge does: the chain is
// recovered from the base up), recorded under the open's mark.
func RecordRecovery(t target.Target, st *State) (*Recording, error) {
	base, format, onCommit, err := commitBaseOf(st)
	if err != nil {
		return nil, err
	}
	fs, err := st.Point.State(st.ID)
	if err != nil {
		return nil, fmt.Errorf("campaign: recovery of %s: %w", st.ID, err)
	}
	rec := &Recording{Dir: Dir, Image: st.Image, Base: fs.Start(), Syncs: map[int64]*crashsim.Point{}, Recovery: true}
	if st.Rec != nil {
		rec.W, rec.Seed, rec.Dir, rec.Options = st.Rec.W, st.Rec.Seed, st.Rec.dir(), st.Rec.Options
	}
	m := st.Model.Clone()
	mark := func(op int) {
		rec.Marks = append(rec.Marks, Mark{Op: op, K: fs.Ops(), Model: m.Clone()})
	}
	fs.OnSync(func(p *crashsim.Point) bool {
		rec.Syncs[p.K()] = p
		return false
	})
	if onCommit {
		mark(RecoveryOpen)
		if err := oracle.RecoverCommitBase(t, fs, base, format); err != nil {
			rec.OpErr = &workload.OpError{Index: RecoveryOpen, Err: fmt.Errorf("%s: %w", recoveryStepText(RecoveryOpen), err)}
		}
	}
	if rec.OpErr == nil {
		rec.OpErr = RunRecovery(t, fs, st.Image, m, func(op int) {
			if op != RecoveryOpen || !onCommit { // the open's mark is set
				mark(op)
			}
		})
	}
	fs.OnSync(nil)
	rec.Trace = fs.Trace()
	if rec.End, err = fs.Point(); err != nil {
		return nil, fmt.Errorf("campaign: recovery of %s: end point: %w", st.ID, err)
	}
	rec.EndModel = m.Clone()
	return rec, nil
}

// RunRecovery is the recovery RecordRecovery records (and a driver's
// RecoveryRecorder runs through its own recorder), over m (the model of
// the crash, collapsed in place once the open returned): a writable open,
// the read-back of m's uncertain ranges, one sector written at guest
// offset 0, a flush and a close. mark is called before each step's I/O
// with its step (RecoveryOpen ...); the Mark's model is m at that moment.
func RunRecovery(t target.Target, fs afero.Fs, image string, m *model.Disk, mark func(op int)) *workload.OpError {
	fail := func(op int, err error) *workload.OpError {
		return &workload.OpError{Index: op, Err: fmt.Errorf("%s: %w", recoveryStepText(op), err)}
	}
	mark(RecoveryOpen)
	d, err := t.Open(fs, image, target.OpenOptions{})
	if err != nil {
		return fail(RecoveryOpen, err)
	}
	defer func() {
		if d != nil {
			d.Close()
		}
	}()
	size := d.Size()
	if err := m.Recover(size, func(p []byte, off int64) error {
		_, err := d.ReadAt(p, off)
		return err
	}); err != nil {
		return fail(RecoveryOpen, err)
	}
	if size > 0 {
		p := make([]byte, min(size, 512))
		model.Fill(p, oracle.LivenessPatternID, 0)
		if err := m.WriteBytes(0, p); err != nil {
			return fail(RecoveryWrite, err)
		}
		mark(RecoveryWrite)
		if _, err := d.WriteAt(p, 0); err != nil {
			return fail(RecoveryWrite, err)
		}
		mark(RecoveryFlush)
		if err := d.Flush(); err != nil {
			return fail(RecoveryFlush, err)
		}
		m.Flush()
	}
	mark(RecoveryClose)
	err = d.Close()
	d = nil
	if err != nil {
		return fail(RecoveryClose, err)
	}
	return nil
}

// NestedTimeline is the timeline of recovery i of the artifact's chain of
// crashes during recovery (Nested[i], depth i+2): every operation of the
// recovery with what the chain's crash state in it did to it (GuestOp is
// -2: the recorded recovery keeps no marks).
func (a *Artifact) NestedTimeline(i int) (*Timeline, error) {
	n := a.Nested[i]
	ops := n.Run.Trace.Ops
	endFS, err := n.Run.Start.Replay(n.Run.Trace, int64(len(ops)), n.Run.Options)
	if err != nil {
		return nil, err
	}
	tl := &Timeline{GuestOp: -2, State: n.State, HasState: true}
	tl.End, _ = afero.ReadFile(endFS, a.Image)
	tl.Layout = check.NewLayout(tl.End)
	p, err := n.Run.Point(n.State.K)
	if err != nil {
		return nil, fmt.Errorf("state %s: %w", n.State, err)
	}
	st, err := p.State(n.State)
	if err != nil {
		return nil, fmt.Errorf("state %s: %w", n.State, err)
	}
	unsync := map[int64]bool{}
	for _, o := range p.Unsynced() {
		unsync[o.Index] = true
	}
	tl.Unsynced = len(unsync)
	if tl.Crashed, err = afero.ReadFile(st, a.Image); err != nil {
		tl.Crashed = []byte{}
	}
	ep := Epoch{Barrier: -1}
	for _, o := range ops {
		e := TimelineEntry{Op: o, GuestOp: -2, Status: "durable"}
		switch {
		case o.Index >= n.State.K:
			e.Status = "not issued"
		case unsync[o.Index]:
			e.Status = keptLostTorn(st, o)
		}
		if o.Kind == crashsim.OpWrite && path.Clean(o.Path) == path.Clean(a.Image) {
			e.Label = labelWrite(tl.Layout, o)
			if strings.HasPrefix(e.Label, "header") && o.Off < headerFieldsSize {
				e.Label = "header, " + headerChange(n.Run, a.Image, o)
			}
		}
		ep.Entries = append(ep.Entries, e)
		if o.Kind == crashsim.OpSync || o.Kind == crashsim.OpDirSync {
			ep.Barrier = o.Index
			tl.Epochs = append(tl.Epochs, ep)
			ep = Epoch{Barrier: -1}
		}
	}
	tl.Epochs = append(tl.Epochs, ep)
	return tl, nil
}

// commitBaseOf returns the path and format of the base of the commit st
// crashed during; ok is false when st did not crash during a commit.
func commitBaseOf(st *State) (basePath, format string, ok bool, err error) {
	if st.Rec == nil || st.Rec.W == nil {
		return "", "", false, nil
	}
	w, i := st.Rec.W, st.GuestOp
	if i < 0 || i >= len(w.Ops) || w.Ops[i].Kind != workload.Commit {
		return "", "", false, nil
	}
	name, format, ok, err := commitBases.of(w, i)
	if err != nil || !ok {
		return "", "", false, err
	}
	return path.Join(path.Dir(st.Image), name), format, true, nil
}

// commitBases remembers Workload.CommitBase's name and format per
// workload and commit op (perf, issue 19 goal 5: CommitBase also walks
// the base's old contents, the whole backing model read into a buffer,
// which commitBaseOf does not use; asked for every crash state of a
// faulted workload's commit, it was 7 % of a 4 MiB-cluster campaign's
// CPU). A recorded workload is not changed while its states are judged,
// so the answer for (w, op) is fixed; the map holds w, so its address
// is not reused while it is a key. Bounded: it starts over at
// maxCommitBases entries (the workloads in flight: a few).
var commitBases commitBaseMemo

type commitBaseMemo struct {
	mu sync.Mutex
	m  map[commitBaseKey]commitBaseAnswer
}

type commitBaseKey struct {
	w  *workload.Workload
	op int
}

type commitBaseAnswer struct {
	name, format string
	ok           bool
	err          error
}

const maxCommitBases = 32

func (c *commitBaseMemo) of(w *workload.Workload, op int) (name, format string, ok bool, err error) {
	k := commitBaseKey{w, op}
	c.mu.Lock()
	a, hit := c.m[k]
	c.mu.Unlock()
	if !hit {
		a.name, a.format, _, a.ok, _, a.err = w.CommitBase(op)
		c.mu.Lock()
		if c.m == nil || len(c.m) >= maxCommitBases {
			c.m = map[commitBaseKey]commitBaseAnswer{}
		}
		c.m[k] = a
		c.mu.Unlock()
	}
	return a.name, a.format, a.ok, a.err
}
