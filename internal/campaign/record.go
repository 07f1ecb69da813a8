package campaign

import (
	"errors"
	"fmt"
	"path"
	"slices"
	"sort"

	"github.com/qedtorture/qedtorture/crashsim"
	"github.com/qedtorture/qedtorture/faultfs"
	"github.com/qedtorture/qedtorture/model"
	"github.com/qedtorture/qedtorture/props/check"
	"github.com/qedtorture/qedtorture/props/target"
	"github.com/qedtorture/qedtorture/props/workload"
	"github.com/spf13/afero"
)

// Dir is the directory of the image under test inside the recording
// filesystem and every crash state built from it.
const Dir = "/w"

// ImagePath is the image under test inside a crash state.
var ImagePath = path.Join(Dir, workload.ImageName)

// fsOptions are the options of every recording filesystem (and, through
// the points, of every crash state).
var fsOptions = crashsim.Options{ImplicitDirSync: true}

// A Mark is the model a crash is judged against from trace index K on:
// the driver took it just before guest op Op's I/O, when the next file
// operation was K, with Op's own effects pending in the model.
type Mark struct {
	Op    int   // guest op index (the workload line); -1 for the state right after the setup
	K     int64 // index of the next file operation at that moment
	Model *model.Disk
	// Injected counts the faults injected before the mark: later ones
	// happened during this op or after it (in process only).
	Injected int
	// Matched counts the operations the first fault rule matched before
	// the mark, fired or not (in process, with faults only: drawFault's
	// dry run places its fault by op).
	Matched uint64
	// Matched2 counts the same for the second fault rule (drawSweep's
	// dry run counts a step's writes, syncs and truncates with it).
	Matched2 uint64
}

// Recording is one run of a workload, recorded: the hand-over from a
// Driver to the engine (see Driver for the contract). It holds enough to
// rebuild every crash state of the run bit for bit, and to judge it.
type Recording struct {
	W           *workload.Workload // as run (adapted)
	Adaptations []Adaptation       // what Driver.Adapt changed
	Seed        uint64             // the workload seed: drives the sampled crash points and states
	// Dir holds the image and its backing chain in every crash state's
	// filesystem; Image is the image's path there.
	Dir, Image string
	// Base holds the files when the trace began (nil: an empty
	// filesystem, as in process); Base.Replay(Trace, k, Options) rebuilds
	// crash point k.
	Base    *crashsim.Image
	Options crashsim.Options
	Trace   *crashsim.Trace
	// SetupEnd is the first trace index judged: the setup before it
	// (backing chain, creation, first open) is not.
	SetupEnd int64
	// CreateEnd, when set, is where the creation of the image and its
	// backing chain (and the first open) ended: it was recorded from
	// SetupEnd on, and the crash states before CreateEnd are judged by the
	// creation judge (create.go). 0: the creation is part of the setup.
	CreateEnd int64
	// Over is the old image the creation replaced (RecordOptions.CreateOver;
	// nil: the image did not exist before its creation).
	Over  *OverImage
	Marks []Mark // in K order
	// CommandEnds mark where each image command itself returned
	// (workload.Exec.CommandDone), before the checks and the reopen
	// after it: Op, K, Matched and Matched2 (no Model; in process only).
	CommandEnds []Mark
	// Syncs are the crash points at every sync after the setup, and End
	// the point after the last op ran (or the op that failed): captured
	// live in process; a driver recording out of process leaves them nil
	// and the engine rebuilds them from Base and Trace (complete).
	Syncs    map[int64]*crashsim.Point
	End      *crashsim.Point
	EndModel *model.Disk
	// OpErr is the first guest op error; Injected the faults injected.
	OpErr    *workload.OpError
	Injected []faultfs.Injection
	// FaultMatches counts, per fault rule, the operations of the run its
	// filter matched (whether it fired or not): a rule that never fires
	// counts a run's operations of a kind (drawFault's dry run).
	FaultMatches []uint64
	// EndMap is the structure of the image at the end of a faulted run
	// (with the checker's map): where silent faults landed (faults.go).
	EndMap *check.Report
	// Evidence are a driver's own files for the artifact (a block-layer
	// log, a reproduction script), by file name.
	Evidence map[string][]byte
	// Recorder says how the trace was recorded, for explain.txt ("":
	// in process, over crashsim's recording filesystem; a driver
	// recording out of process names its means: QEMU's blklogwrites log,
	// strace).
	Recorder string
	// Recovery: this is the recording of a recovery of a crash state
	// (RecoveryRecorder): its marks' Op are recovery steps (RecoveryOpen
	// ...), not workload lines.
	Recovery bool
}

// complete rebuilds the crash points of a recording handed over as Base
// and Trace only (a driver recording out of process): the end and every
// sync at or after SetupEnd, one replay of the trace each.
func (r *Recording) complete() error {
	if r.End != nil {
		return nil
	}
	if r.Trace == nil {
		return errors.New("campaign: a recording without a trace nor live crash points")
	}
	start := r.Base
	if start == nil {
		start = crashsim.EmptyImage()
	}
	point := func(k int64) (*crashsim.Point, error) {
		fs, err := start.Replay(r.Trace, k, r.Options)
		if err != nil {
			return nil, fmt.Errorf("campaign: crash point k=%d: %w", k, err)
		}
		return fs.Point()
	}
	syncs := map[int64]*crashsim.Point{}
	for _, k := range r.Trace.SyncPoints() {
		if k < r.SetupEnd {
			continue
		}
		p, err := point(k)
		if err != nil {
			return err
		}
		syncs[k] = p
	}
	end, err := point(int64(len(r.Trace.Ops)))
	if err != nil {
		return err
	}
	r.Syncs, r.End = syncs, end
	return nil
}

// run is the recording as crashsim's explorer takes it.
func (r *Recording) run() *crashsim.Run {
	start := r.Base
	if start == nil {
		start = crashsim.EmptyImage()
	}
	return &crashsim.Run{Start: start, Options: r.Options, Trace: r.Trace, From: r.SetupEnd, Syncs: r.Syncs, End: r.End}
}

// Faulted reports whether a fault was injected during the run.
func (r *Recording) Faulted() bool { return len(r.Injected) > 0 }

// Record runs w on tgt over a fresh recording filesystem. With faults
// (faultfs rules, "" for none) the image is closed after the setup and
// reopened through the fault layer, seeded with seed, so the rules count
// the operations of the run proper. A guest op error stops the run and is
// returned in Recording.OpErr, not as the error; the error is for a
// setup that could not be done.
func Record(tgt target.Target, w *workload.Workload, seed uint64, faults string) (*Recording, error) {
	return RecordWith(tgt, w, RecordOptions{Seed: seed, Faults: faults})
}

// RecordWith is Record with every option: with o.Create (and no faults)
// the creation of the image and its backing chain is recorded and judged
// (create.go): the filesystem has real directory semantics (the image's
// directory itself made durable first), SetupEnd is before the backing
// chain and CreateEnd after the image's first open.
func RecordWith(tgt target.Target, w *workload.Workload, o RecordOptions) (*Recording, error) {
	seed, faults := o.Seed, o.Faults
	create := (o.Create || o.CreateFaults != "") && faults == ""
	opts := fsOptions
	if create {
		opts = crashsim.Options{} // real directory semantics
	}
	fs := crashsim.New(opts)
	rec := &Recording{W: w, Seed: seed, Dir: Dir, Image: ImagePath, Options: opts, Syncs: map[int64]*crashsim.Point{}}
	createFrom := int64(0)
	if create {
		// The image's directory exists, durably, before the creation.
		if err := fs.MkdirAll(Dir, 0o755); err != nil {
			return nil, fmt.Errorf("campaign: setup: %w", err)
		}
		root, err := fs.Open("/")
		if err != nil {
			return nil, fmt.Errorf("campaign: setup: %w", err)
		}
		err = root.Sync()
		root.Close()
		if err != nil {
			return nil, fmt.Errorf("campaign: setup: sync /: %w", err)
		}
		if o.CreateOver {
			over := OverImageFor(w.Geometry)
			if err := over.Make(tgt, fs, ImagePath); err != nil {
				return nil, fmt.Errorf("campaign: setup: %w", err)
			}
			rec.Over = &over
		}
		createFrom = fs.Ops()
		fs.OnSync(func(p *crashsim.Point) bool {
			rec.Syncs[p.K()] = p
			return false
		})
	}
	var err error
	var setupFS afero.Fs = fs
	var cffs *faultfs.FS // the fault layer of the setup (CreateFaults)
	if create && o.CreateFaults != "" {
		if cffs, err = faultfs.NewFromString(fs, int64(seed), o.CreateFaults); err != nil {
			return nil, fmt.Errorf("campaign: create faults: %w", err)
		}
		setupFS = cffs
	}
	e, err := workload.NewExecCached(tgt, setupFS, Dir, w, o.Setup)
	fs.OnSync(nil)
	injected := func() int { return 0 }
	matched := func() uint64 { return 0 }
	matched2 := func() uint64 { return 0 }
	if cffs != nil {
		// The rules are for the setup: disarmed after it (the run goes on
		// through the layer when the setup survived its fault).
		cffs.Arm(false)
		rec.Injected, rec.FaultMatches = cffs.Log(), []uint64{cffs.Matches(0)}
		if err != nil {
			return setupFailed(tgt, w, rec, fs, createFrom, err)
		}
		injected = cffs.Injected
	}
	if err != nil {
		return nil, fmt.Errorf("campaign: setup: %w", err)
	}
	var ffs *faultfs.FS
	if faults != "" {
		ffs, err = faultfs.NewFromString(fs, int64(seed), faults)
		if err != nil {
			return nil, fmt.Errorf("campaign: --fault: %w", err)
		}
		if err := e.Disk.Close(); err != nil {
			return nil, fmt.Errorf("campaign: setup: close: %w", err)
		}
		e.FS = ffs
		if e.Disk, err = tgt.Open(ffs, e.ImagePath(), e.OpenOptions(false)); err != nil {
			// An error the fault layer injected into this open is
			// expected: the open surfaced it, and the run stops before
			// its first op with the image as the failed open left it
			// (its crash states are judged like any faulted run's). So
			// is an open that refuses what a silent fault garbled (a
			// flipped bit in the header or a table: found at read). Any
			// other error is a setup failure.
			log := ffs.Log()
			surfaced := slices.ContainsFunc(log, func(in faultfs.Injection) bool { return in.Err != nil && errors.Is(err, in.Err) })
			if !surfaced && !slices.ContainsFunc(log, silentFault) {
				return nil, fmt.Errorf("campaign: setup: reopen through the fault layer: %w", err)
			}
			e.Disk = nil
			rec.OpErr = &workload.OpError{Index: -1, Err: fmt.Errorf("reopen through the fault layer (setup): %w", err)}
		}
		defer func() {
			rec.Injected = ffs.Log()
			rec.FaultMatches = make([]uint64, len(ffs.Rules()))
			for i := range rec.FaultMatches {
				rec.FaultMatches[i] = ffs.Matches(i)
			}
		}()
		injected = ffs.Injected
		matched = func() uint64 { return ffs.Matches(0) }
		if countedFaults(ffs.Rules()) {
			// The hostile op's private files go through the same rules:
			// a drawn fault or a sweep reaches the repair's and the
			// refusals' error returns on images no crash leaves.
			e.Private = ffs.Over
		}
		matched2 = func() uint64 { return ffs.Matches(1) }
	}
	rec.SetupEnd = fs.Ops()
	if create {
		rec.SetupEnd, rec.CreateEnd = createFrom, rec.SetupEnd
	}
	rec.Marks = append(rec.Marks, Mark{Op: -1, K: rec.SetupEnd, Model: e.Model.Clone(), Injected: injected(), Matched: matched(), Matched2: matched2()})
	e.Snapshot = func(i int, m *model.Disk) {
		rec.Marks = append(rec.Marks, Mark{Op: i, K: fs.Ops(), Model: m, Injected: injected(), Matched: matched(), Matched2: matched2()})
	}
	e.CommandDone = func(i int) {
		rec.CommandEnds = append(rec.CommandEnds, Mark{Op: i, K: fs.Ops(), Injected: injected(), Matched: matched(), Matched2: matched2()})
	}
	fs.OnSync(func(p *crashsim.Point) bool {
		rec.Syncs[p.K()] = p
		return false
	})
	err = nil
	if rec.OpErr == nil {
		err = e.RunAll()
	}
	fs.OnSync(nil)
	if err != nil {
		var oe *workload.OpError
		if !errors.As(err, &oe) {
			return nil, err
		}
		rec.OpErr = oe
	}
	rec.Trace = fs.Trace()
	if rec.End, err = fs.Point(); err != nil {
		return nil, fmt.Errorf("campaign: end point: %w", err)
	}
	rec.EndModel = e.Model.Clone()
	if faults != "" {
		// Where silent faults landed is located with the image's map.
		// The running image may hold metadata in memory only: write it
		// back first, faults disarmed (after End: the recorded points
		// keep their own pages). Best effort: without a map, silent
		// faults are located with the crash states' own maps only.
		ffs.Arm(false)
		if e.Disk != nil {
			_ = e.Disk.Flush()
		}
		if f, err := fs.Open(e.ImagePath()); err == nil {
			rec.EndMap, _ = check.FileMapped(f)
			f.Close()
		}
	}
	// Snapshot ran from Exec's goroutine only (concurrent groups take
	// their snapshot before starting the writers), so Marks is in K order;
	// sort anyway so that the lookup's invariant is local.
	sort.SliceStable(rec.Marks, func(i, j int) bool { return rec.Marks[i].K < rec.Marks[j].K })
	return rec, nil
}

// MarkAt returns the mark a crash at point k is judged against: the
// last one taken at or before k.
func (r *Recording) MarkAt(k int64) Mark {
	i := sort.Search(len(r.Marks), func(i int) bool { return r.Marks[i].K > k })
	if i == 0 {
		return r.Marks[0]
	}
	return r.Marks[i-1]
}

// MarkIndexAt returns the index in Marks of the mark a crash at
// point k is judged against (len(Marks) for the end model).
func (r *Recording) MarkIndexAt(k int64) int {
	if k == r.End.K() {
		return len(r.Marks)
	}
	i := sort.Search(len(r.Marks), func(i int) bool { return r.Marks[i].K > k })
	return max(i-1, 0)
}

// ModelAt returns the model a crash at point k is judged against (the
// end model for the end point).
func (r *Recording) ModelAt(k int64) *model.Disk {
	if k == r.End.K() {
		return r.EndModel
	}
	return r.MarkAt(k).Model
}

// GuestOpAt returns the guest op in progress at crash point k (-1: none
// yet; len(ops) or the failed op for the end point).
func (r *Recording) GuestOpAt(k int64) int {
	if k == r.End.K() {
		if r.OpErr != nil {
			return r.OpErr.Index
		}
		return len(r.W.Ops)
	}
	return r.MarkAt(k).Op
}

// PointKs returns the crash points of the recording, ascending: every
// sync after the setup, up to sampled indices drawn from the workload
// seed, and the end (crashsim.Run.PointKs: the explorer's rule).
func (r *Recording) PointKs(sampled int) []int64 {
	return r.run().PointKs(crashsim.ExploreOptions{Seed: r.Seed, SampledPoints: sampled})
}

// Point returns the crash point k of the recording: captured at a sync or
// the end, else rebuilt by replaying the trace from Base.
func (r *Recording) Point(k int64) (*crashsim.Point, error) { return r.run().Point(k) }

// PointFromTrace rebuilds crash point k of a recorded trace (recordings
// start from an empty filesystem).
func PointFromTrace(t *crashsim.Trace, k int64) (*crashsim.Point, error) {
	fs, err := crashsim.EmptyImage().Replay(t, k, fsOptions)
	if err != nil {
		return nil, fmt.Errorf("campaign: crash point k=%d: %w", k, err)
	}
	return fs.Point()
}

// silentUpTo returns the faults injected up to the end of the op in
// progress at crash point k (those that may have shaped its state), with
// the guest op in progress at each, if any of them is silent.
func (r *Recording) silentUpTo(k int64) ([]faultfs.Injection, []int) {
	s := r.MarkIndexAt(k)
	n := len(r.Injected)
	if s+1 < len(r.Marks) {
		n = min(n, r.Marks[s+1].Injected)
	}
	injs := r.Injected[:n]
	if !slices.ContainsFunc(injs, silentFault) {
		return nil, nil
	}
	ops := make([]int, n)
	for j := range ops {
		// The op in progress: the last snapshot taken before the injection.
		i := sort.Search(len(r.Marks), func(i int) bool { return r.Marks[i].Injected > j })
		ops[j] = r.Marks[max(i-1, 0)].Op
	}
	return injs, ops
}

// countedFaults reports whether rules place their faults by count alone
// (nth=N, after=N, no probability: the drawn faults, the sweeps' rules
// and their dry runs): then the operations of the ops that work in a
// private filesystem (the hostile op) are numbered and failed with the
// workload's own (workload.Exec.Private). Rules that fire at random or
// repeatedly (p=, every=, or at every match: a `--fault` campaign's) do
// not reach them: a hostile op makes a hundred operations, and such rules
// would end most runs there, before the ops after it.
func countedFaults(rules faultfs.RuleSet) bool {
	for _, r := range rules {
		if (r.Trigger != faultfs.Nth && r.Trigger != faultfs.After) || r.P != 0 {
			return false
		}
	}
	return len(rules) > 0
}
