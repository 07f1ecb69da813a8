package campaign

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"sync"

	"github.com/qedtorture/qedtorture/crashsim"
	"github.com/qedtorture/qedtorture/faultfs"
	"github.com/qedtorture/qedtorture/model"
	"github.com/qedtorture/qedtorture/props/oracle"
	"github.com/qedtorture/qedtorture/props/target"
	"github.com/qedtorture/qedtorture/props/workload"
	"github.com/spf13/afero"
)

// A Driver runs workloads on one implementation under test and records
// every file operation the implementation issues: the seam between the
// engine and an implementation. Everything else — workload generation,
// crash points, crash states, de-duplication, judging, minimization,
// artifacts, reports — is the engine's, the same for every driver.
// InProcess wraps a target.Target (impl/qed and its broken and defect
// wrappers: a Go implementation run in this process over crashsim); a
// driver for an implementation outside the process (QEMU through qemu-io
// over its blklogwrites driver; a black-box program whose system calls are
// traced) lives with its adapter under impl/.
//
// The contract, which the engine relies on:
//
//   - Record runs w from nothing (no files before it but what the driver
//     itself sets up) and returns a Recording from which every crash state
//     of the run can be rebuilt bit for bit: Base (the files when the trace
//     began) replayed with Trace up to any index K, under Options. A driver
//     running in process may also hand over the points it captured live
//     (Recording.Syncs and End); one that records out of process leaves
//     them nil and the engine rebuilds them from Base and Trace.
//   - Recording.SetupEnd is the trace index from which crash points count:
//     the backing chain, the creation and the first open before it are a
//     setup whose crash states are not judged (a driver judging creation
//     crashes sets it before the create).
//   - Recording.Marks say which guest op a crash at index K interrupts and
//     what the guest may see: Mark{Op, K, Model} is taken just before op
//     Op's first file operation, when the next one is K, with the model
//     already holding Op's effects as pending (model first, then the I/O:
//     workload.Exec's ordering). Marks are in K order; the first is Op -1 at
//     SetupEnd. A flush counts as done only once the I/O that makes it
//     durable is in the trace before the next mark.
//   - A guest-visible failure of the crash-free run (a read that disagrees
//     with the model, an op error) is Recording.OpErr, not Record's error;
//     the error is for the harness (a tool missing, a setup the driver
//     could not do), and the engine reports it as a setup failure.
//   - Given the same workload and options, a deterministic implementation
//     issues the same trace: the minimizer re-runs workloads and Replay
//     rebuilds a state by its id. Concurrent groups (and an out-of-process
//     implementation's timing) may break this; artifacts keep the recorded
//     trace for that case.
//   - Record may be called from several workers at once (Config.Workers);
//     a driver that cannot run in parallel serializes itself. ctx is
//     cancelled when the campaign is interrupted: a long run may stop
//     early and return ctx's error.
//   - Adapt returns w changed into what the implementation can run, and
//     each change (counted per kind in reports). Generated workloads are
//     the same for every driver; only adaptation differs.
//   - Recoverer is the target.Target the engine's oracle judge recovers
//     crash states with, in process, over the crashed files (the target
//     itself for a Go implementation). nil: the engine uses
//     Config.Reference (impl/qed, wired by cmd/qedtorture), as for QEMU.
//   - Judges are the driver's own judges, run besides the oracle judge:
//     QEMU's or a program's own recovery of the crashed files (Judge).
//   - Close ends what the driver keeps running (a pool of qemu-io
//     processes); the engine calls it once, after the last Record.
//
// Later capabilities plug in without changing this interface: options of
// RecordOptions (real directory semantics to judge creation crashes),
// optional interfaces a driver may implement and the engine checks with a
// type assertion (recording its recovery's own I/O to judge crashes during
// recovery; repairing planted corruption), the workload source in Config
// (exhaustive enumeration), and judges (a black-box program's recovery).
type Driver interface {
	// Name is the --target name, written into reports and artifacts.
	Name() string
	// Adapt returns w as this implementation can run it, and each change
	// made (none: w itself and nil).
	Adapt(w *workload.Workload) (*workload.Workload, []Adaptation)
	// Record runs w (adapted) and returns its recording (see the
	// contract above).
	Record(ctx context.Context, w *workload.Workload, o RecordOptions) (*Recording, error)
	// Recoverer returns the in-process target that recovers this
	// driver's crash states, or nil for Config.Reference.
	Recoverer() target.Target
	// Judges returns the driver's own judges (nil: the oracle judge
	// only). They must be safe for concurrent use.
	Judges() []Judge
	// Close ends what the driver keeps running.
	Close() error
}

// An OverlappedDriver is a Driver whose workloads spend most of their wall
// time waiting on other processes (QEMU's: every command of a recording
// or of a recovery is a round trip to a qemu-io process): each worker of
// a campaign keeps InFlight() workloads in flight, so that one records or
// waits for its driver's judges while another is checked. Config.Workers
// still bounds the engine's own checks: at most Workers workloads at a
// time enumerate and judge their states in process (the crash points
// rebuilt, the states enumerated and judged by the unbudgeted judges and
// the budgeted judges that are not PreparedJudges); recording and
// PreparedJudges' judging run outside that bound. Every workload is
// recorded, checked and reported as it would be with one in flight: only
// the order in which workloads finish changes, which a campaign with more
// than one worker leaves open anyway.
type OverlappedDriver interface {
	Driver
	InFlight() int
}

// RepairDriver is the optional capability of a Driver whose implementation
// has repair paths: qedtorture repair (RunRepair, repair.go) takes its
// repair paths and its guest reader from the drivers of its --target list,
// so that every implementation's repair is judged, and compared, alike.
// Both work on real files in a scratch directory (an out-of-process
// implementation needs them). InProcess implements it for every
// target.Target (its check with repair and its writable open; its paths
// are also FSRepairers, so that crashes during them are judged on
// crashsim); impl/qemu for QEMU (its writable open, which runs QED's
// automatic check, and qemu-img check -r all); impl/blackbox for a
// program's writable open.
type RepairDriver interface {
	// Repairers returns the implementation's repair paths, checks first.
	Repairers() []Repairer
	// GuestReader returns the reader of an image's guest contents through
	// the implementation without changing the file, or nil when it has
	// none that leaves the file alone.
	GuestReader() GuestReader
}

// An ImageCommander is the optional capability of a Driver whose
// implementation runs the image commands (workload.ImageCommandKinds:
// rebase, rebase-unsafe, commit; target.ImageOps in process). A campaign
// whose driver (or --diff driver) lacks it, or says false, draws none of
// those ops (workload.GenConfig.NoImageCommands): InProcess has it when
// its target implements target.ImageOps, impl/qemu's driver has it
// (qemu-img), impl/blackbox's has not (qemu-io's language has no rebase
// or commit).
type ImageCommander interface {
	ImageCommands() bool
}

// RunsImageCommands reports whether d runs the image commands
// (ImageCommander).
func RunsImageCommands(d Driver) bool {
	ic, ok := d.(ImageCommander)
	return ok && ic.ImageCommands()
}

// RecordOptions say how to run one workload.
type RecordOptions struct {
	// Seed is the workload seed: it seeds the fault layer's choices.
	Seed uint64
	// Faults are faultfs rules applied to the run proper (after the
	// setup); "" for none. A driver that cannot inject faults fails
	// Record when they are set.
	Faults string
	// Create asks for the creation of the image and its backing chain to
	// be recorded with real directory semantics and judged (create.go):
	// the driver sets Recording.CreateEnd. A driver that cannot record
	// the creation ignores it (CreateEnd stays 0); so does a faulted run.
	Create bool
	// CreateOver (with Create) asks for the creation over an existing
	// image: the driver first makes OverImageFor(the workload's geometry)
	// durably under the image's name, then creates the workload's image
	// over it, and sets Recording.Over (create.go).
	CreateOver bool
	// CreateFaults are faultfs rules applied to the setup: the creation
	// of the backing chain and the image and the first open, recorded
	// and judged as with Create (which they imply; not with Faults). An
	// injected error that fails the setup ends the run there (OpErr at
	// index -1), every crash state of it judged by the creation judge
	// (faultsetup.go). In process only.
	CreateFaults string
	// Setup, if set, keeps the bytes of the workload's setup (backing
	// files, the image commands' files) between recordings of the same
	// workload (a fault sweep's runs): a driver that builds the setup
	// in process writes the same files without generating them again
	// (workload.SetupCache); others ignore it.
	Setup *workload.SetupCache
}

// An Adaptation is one change Driver.Adapt made to a workload.
type Adaptation struct {
	Kind string // a stable keyword ("table-size-1", ...), counted per kind
	What string // the change, for a human
}

// A Judge decides whether a crash state is acceptable. The engine's
// oracle judge (oracle.Judge, recovery by the driver's
// Recoverer) judges every distinct state; a driver adds its own judges
// (QEMU's recovery) and Config adds judges for every target.
//
// Judge gets a State of its own: files it may change (recovery writes)
// and a model it may change. A failing state is a verdict that is not OK;
// the error is for the harness (a tool that could not run) and stops the
// workload. Judges are called from several workers at once.
type Judge interface {
	// Name is the judge's side in failure reports: who recovered ("impl/qed"
	// for the oracle judge recovering with impl/qed, "qemu", ...).
	Name() string
	// Budget bounds the distinct states of a workload this judge sees:
	// negative for every one (in enumeration order, during the
	// enumeration), else at most Budget of the states every unbudgeted
	// judge passed, drawn after the enumeration with a generator seeded by
	// the workload seed and the judge's name.
	Budget() int
	Judge(ctx context.Context, st *State) (*oracle.Verdict, error)
}

// A PreparedJudge is a budgeted Judge whose sampled states the engine
// judges up to Concurrency() at a time within one workload. Prepare takes
// what the judging needs from the State in the engine's goroutine (a
// State's FS and Point are not for concurrent use; the FS is released
// when Prepare returns) and returns the judging itself, which runs beside
// the others of its window (a sliding window: the next state starts as
// soon as one finishes). The verdicts are taken in the sample's order,
// so the failure reported, the states counted and the workload's outcome
// are those of judging one state at a time (the states after a failing
// one in its window are judged and discarded). It is for a judge whose
// time is spent waiting on another process (QEMU's recovery): the window
// overlaps those waits. With a negative budget it is judged as a Judge,
// one state at a time during the enumeration.
type PreparedJudge interface {
	Judge
	Concurrency() int
	Prepare(ctx context.Context, st *State) (func() (*oracle.Verdict, error), error)
}

// A State is one crash state handed to a judge.
type State struct {
	ID    crashsim.StateID
	Point *crashsim.Point // the crash point (read-only)
	FS    afero.Fs        // the crashed files, the judge's own
	Image string          // the image's path in FS
	Model *model.Disk     // the model as of the crash, the judge's own
	// Durable is Model's durable contents (oracle.NewDurable of it before
	// any change), shared and read-only; nil when too big to keep.
	Durable *oracle.Durable
	// Memo is the judging worker's memo of the sector rule's answers
	// (oracle.Options.Memo); nil: none.
	Memo    *model.JudgeMemo
	GuestOp int // the guest op in progress (-1 before the first, len(ops) after the last)
	Rec     *Recording
}

// InProcess returns the driver of a Go implementation run in this process:
// each workload runs on t over a fresh crashsim filesystem (Record), the
// crash points of its syncs and end are captured live, and t itself
// recovers crash states. It adapts nothing and adds no judge.
func InProcess(t target.Target) Driver { return inProcess{t} }

type inProcess struct{ t target.Target }

func (d inProcess) Name() string { return d.t.Name() }

func (inProcess) Adapt(w *workload.Workload) (*workload.Workload, []Adaptation) { return w, nil }

func (d inProcess) Record(_ context.Context, w *workload.Workload, o RecordOptions) (*Recording, error) {
	return RecordWith(d.t, w, o)
}

func (d inProcess) Recoverer() target.Target { return d.t }

func (inProcess) Judges() []Judge { return nil }

// ImageCommands: the target implements target.ImageOps.
func (d inProcess) ImageCommands() bool {
	_, ok := d.t.(target.ImageOps)
	return ok
}

func (inProcess) Close() error { return nil }

// Repairers implements RepairDriver: the target's check with repair and
// its writable open (inprocess_repair.go).
func (d inProcess) Repairers() []Repairer {
	return []Repairer{TargetRepairer{T: d.t}, TargetRepairer{T: d.t, Open: true}}
}

// GuestReader implements RepairDriver: a read-only open of the target.
func (d inProcess) GuestReader() GuestReader { return TargetReader{T: d.t} }

// oracleJudge is the engine's judge of every target: oracle.Judge
// with recovery by an in-process target. With faults injected, a failing
// verdict that lies within what the silent faults damaged is the fault's
// direct effect (faults.go): the verdict is excused (the state passes, and
// the engine counts a fault effect); judged again with that damage
// excused, what remains is the failure.
type oracleJudge struct {
	t      target.Target
	oracle oracle.Options
	bases  baseCache
}

func (j *oracleJudge) Name() string { return j.t.Name() }

func (j *oracleJudge) Budget() int { return -1 }

func (j *oracleJudge) Judge(_ context.Context, st *State) (*oracle.Verdict, error) {
	o := j.oracle
	if o.Durable == nil {
		o.Durable = st.Durable
	}
	if o.Memo == nil {
		o.Memo = st.Memo
	}
	if st.Rec != nil && st.Rec.W != nil {
		o.BackingNames = st.Rec.W.BackingNames(st.GuestOp)
	}
	if !st.Rec.Faulted() {
		// A commit's base is judged against the image's view as of the
		// crash, taken before the oracle recovers the model in place.
		base, err := j.bases.rule(st)
		if err != nil {
			return nil, err
		}
		if base != nil {
			if err := oracle.RecoverCommitBase(j.t, st.FS, base.path, base.format); err != nil {
				return &oracle.Verdict{Stage: oracle.StageCommitBase, Err: err}, nil
			}
		}
		v := oracle.Judge(j.t, st.FS, st.Image, st.Model, o)
		if v.OK() && base != nil && base.m != nil {
			if err := oracle.JudgeCommitBaseViews(j.t, st.FS, base.path, base.format, base.m, base.durable, base.view); err != nil {
				v = &oracle.Verdict{Stage: oracle.StageCommitBase, Err: err, Before: v.Before, After: v.After}
				errors.As(err, &v.Mismatch)
			}
		}
		return v, nil
	}
	// A crash during a commit: the base is recovered first, as without
	// faults (it may need its own recovery, which the image's read-only
	// open of it does not do); a base its recovery refuses after a silent
	// fault in a file other than the image is that fault's effect (the
	// judgement of its contents is left to the runs without faults).
	if base, format, ok, err := commitBaseOf(st); err != nil {
		return nil, err
	} else if ok {
		if err := oracle.RecoverCommitBase(j.t, st.FS, base, format); err != nil {
			if injs, _ := st.Rec.silentUpTo(st.ID.K); slices.ContainsFunc(injs, func(in faultfs.Injection) bool {
				return silentFault(in) && path.Clean(in.Path) != path.Clean(st.Image)
			}) {
				return excused, nil
			}
			return &oracle.Verdict{Stage: oracle.StageCommitBase, Err: err}, nil
		}
	}
	// The fault check below needs the model as of the crash: recover a copy.
	v := oracle.Judge(j.t, st.FS, st.Image, st.Model.Clone(), o)
	if v.OK() {
		return v, nil
	}
	if injs, _ := st.Rec.silentUpTo(st.ID.K); injs != nil && committed(st) && slices.ContainsFunc(injs, func(in faultfs.Injection) bool {
		return silentFault(in) && path.Clean(in.Path) != path.Clean(st.Image)
	}) {
		// A silent fault in a file other than the image (a lost write or
		// sync of a commit's base) damages what the image reads through
		// it; the damage map locates faults in the image file only, so
		// the verdict is the fault's effect.
		return excused, nil
	}
	if v.Stage == oracle.StageBackingName {
		// The backing name is header metadata: a silent fault before the
		// crash (a lost write of the name, a lost sync between the name
		// and the fields) can leave any name, and no implementation can
		// notice it. Like a structural stage failing over metadata a
		// fault touched, it is the fault's effect.
		if injs, _ := st.Rec.silentUpTo(st.ID.K); injs != nil {
			return excused, nil
		}
	}
	direct, v, err := j.directEffect(st, o, v)
	if err != nil {
		return nil, err
	}
	if direct {
		return excused, nil
	}
	return v, nil
}

// A baseRule is what a crash state during a commit holds the base file
// to: recovered first (oracle.RecoverCommitBase), then, when m is set,
// judged (oracle.JudgeCommitBase).
type baseRule struct {
	path, format string
	m            *model.Disk
	// durable, view: the two contents m allows each sector
	// (oracle.JudgeCommitBaseViews), built with m.
	durable, view []byte
}

// commitBase returns the rule for st's commit base: nil unless st crashed
// during a commit; m only when the workload fixes the base's old contents
// (workload.Workload.CommitBase). Without faults only (the fault check
// excuses damage in the image alone).
func commitBase(st *State) (*baseRule, error) {
	if st.Rec == nil || st.Rec.W == nil {
		return nil, nil
	}
	name, format, old, ok, fixed, err := st.Rec.W.CommitBase(st.GuestOp)
	if err != nil || !ok {
		return nil, err
	}
	r := &baseRule{path: path.Join(path.Dir(st.Image), name), format: format}
	if fixed {
		if r.m, err = oracle.CommitBaseModel(old, st.Model); err != nil {
			return nil, fmt.Errorf("campaign: the commit base's model: %w", err)
		}
		r.view = make([]byte, st.Model.Size())
		if err := st.Model.ReadAt(r.view, 0); err != nil {
			return nil, fmt.Errorf("campaign: the commit base's model: %w", err)
		}
		r.durable = make([]byte, max(len(old), len(r.view)))
		copy(r.durable, old[:len(old)/model.SectorSize*model.SectorSize])
	}
	return r, nil
}

// baseCache keeps the commit-base rules of the last recordings judged:
// the rule of a commit's states is the same for every state of the op
// (the base's old contents, and the image's view, which the op does not
// change: its two marks, before and after the clean close, read alike),
// and building it (the old contents walked from the setup, a model of
// the whole base) cost as much as judging the state (issue 18's speed
// gate). A rule is read-only once built (JudgeCommitBase only reads it).
type baseCache struct {
	mu sync.Mutex
	m  map[baseKey]*baseRule
}

type baseKey struct {
	rec *Recording
	op  int
}

// rule returns commitBase(st), built once per recording and op.
func (c *baseCache) rule(st *State) (*baseRule, error) {
	if st.Rec == nil || st.Rec.W == nil || st.GuestOp < 0 || st.GuestOp >= len(st.Rec.W.Ops) || st.Rec.W.Ops[st.GuestOp].Kind != workload.Commit {
		return nil, nil
	}
	k := baseKey{st.Rec, st.GuestOp}
	c.mu.Lock()
	defer c.mu.Unlock()
	if r, ok := c.m[k]; ok {
		return r, nil
	}
	r, err := commitBase(st)
	if err != nil {
		return nil, err
	}
	if c.m == nil || len(c.m) >= 16 { // the workloads in flight: a few
		c.m = map[baseKey]*baseRule{}
	}
	c.m[k] = r
	return r, nil
}

// committed reports whether a commit ran at or before st's guest op.
func committed(st *State) bool {
	w := st.Rec.W
	return w != nil && slices.ContainsFunc(w.Ops[:max(min(st.GuestOp+1, len(w.Ops)), 0)], func(op workload.Op) bool { return op.Kind == workload.Commit })
}

// excused is the verdict of a state that failed only as a fault's direct
// effect: it passes, but its byte-identical repeats are judged again (and
// counted as fault effects too) rather than sharing it.
var excused = &oracle.Verdict{}

// directEffect reports whether failing verdict v of st lies within the
// damage of the silent faults injected up to its crash point; if not, it
// returns the verdict of the state judged with that damage excused (the
// failure outside it).
func (j *oracleJudge) directEffect(st *State, o oracle.Options, v *oracle.Verdict) (bool, *oracle.Verdict, error) {
	rec, k := st.Rec, st.ID.K
	injs, ops := rec.silentUpTo(k)
	if injs == nil {
		return false, v, nil
	}
	d := damageOf(injs, ops, rec.W, st.Model.Size(), rec.EndMap, v.Before)
	if d.foundBy(v) {
		return true, v, nil
	}
	if len(d.ranges) == 0 {
		return false, v, nil
	}
	fs, err := st.Point.FinalState(st.ID)
	if err != nil {
		return false, v, fmt.Errorf("campaign: %s: %w", st.ID, err)
	}
	m := st.Model.Clone()
	for _, r := range d.ranges {
		m.Excuse(r.Off, r.Len)
	}
	v2 := oracle.Judge(j.t, fs, st.Image, m, o)
	fs.Release()
	if v2.OK() || d.foundBy(v2) {
		return true, v, nil
	}
	return false, v2, nil
}
