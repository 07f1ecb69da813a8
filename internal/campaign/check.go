package campaign

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/qedtorture/qedtorture/crashsim"
	"github.com/qedtorture/qedtorture/faultfs"
	"github.com/qedtorture/qedtorture/model"
	"github.com/qedtorture/qedtorture/props/oracle"
	"github.com/qedtorture/qedtorture/props/target"
	"github.com/qedtorture/qedtorture/props/workload"
	"github.com/spf13/afero"
)

// StageWorkload is the stage of a failure of the crash-free run itself: a
// guest operation failed (a read disagreed with the model, a check found
// corruption, an I/O error) with no fault injected to explain it.
const StageWorkload oracle.Stage = "workload"

// StageSetup is the stage of a workload whose setup (backing chain, image
// creation, first open) failed.
const StageSetup oracle.Stage = "setup"

// Failure is a failing case: a workload and, unless Stage is
// StageWorkload, the crash state the oracle rejected.
type Failure struct {
	Index        int    // workload index in the campaign (-1 when unknown)
	WorkloadSeed uint64 // seed of the workload's generation and sampling
	W            *workload.Workload
	Original     *workload.Workload // before minimization (nil if not minimized)
	Stage        oracle.Stage
	State        crashsim.StateID  // zero for StageWorkload
	GuestOp      int               // guest op in progress at the crash (or the failed op)
	Judge        string            // the judge that rejected the state (its Name; "" for StageWorkload)
	Verdict      *oracle.Verdict   // nil for StageWorkload
	OpErr        *workload.OpError // StageWorkload
	Err          error             // StageSetup
	Diff         *DiffResult       // StageDiff: the differential run
	Rec          *Recording        // the run the failure was found in
	Point        *crashsim.Point   // the crash point (nil for StageWorkload)
	Artifact     string            // directory written, if any
	ArtifactErr  error             // why the artifact could not be written
	Found        time.Duration     // campaign time when it was found
	MinimizeTime time.Duration     // time Minimize took
}

// HasState reports whether the failure is a crash state (not a run error).
func (f *Failure) HasState() bool {
	return f.Stage != StageWorkload && f.Stage != StageSetup && f.Stage != StageDiff
}

// Message is the failure's one-line summary.
func (f *Failure) Message() string {
	if f.Stage == StageSetup {
		return fmt.Sprintf("%s: %v", f.Stage, f.Err)
	}
	if f.Stage == StageDiff {
		fd := f.Diff.Failing()
		s := fmt.Sprintf("%s: against %s: %s", f.Stage, f.Diff.Other, fd[0].Text("target", f.Diff.Other))
		if len(fd) > 1 {
			s += fmt.Sprintf(" (and %d more difference(s))", len(fd)-1)
		}
		return s
	}
	if !f.HasState() {
		return fmt.Sprintf("%s: %v", f.Stage, f.OpErr)
	}
	when := fmt.Sprintf("during guest op %d", f.GuestOp)
	switch {
	case f.Judge == CreateJudgeName:
		when = "during the creation of the image and its backing chain"
	case f.GuestOp < 0:
		when = "before the first guest op"
	case f.GuestOp >= len(f.W.Ops):
		when = "after the last guest op"
	}
	return fmt.Sprintf("%s at %s (%s): %v", f.Stage, f.State, when, f.Verdict.Err)
}

// counters are the campaign's live totals, shared by the workers.
type counters struct {
	workloads, points, states, failures, skipped, oracleRuns, faulted atomic.Int64
	faultEffects, diffRuns                                            atomic.Int64
	nested                                                            atomic.Int64   // crash states of depth 2 and more (nested.go)
	creation, creationAbsent, creationOld                             atomic.Int64   // creation crash states judged, those with the image absent, and those with the old image (create.go)
	overBound                                                         atomic.Int64   // (point, model) pairs sampled for being over the bound (exhaustive campaigns)
	sweeps, sweepRuns                                                 atomic.Int64   // fault sweeps and their runs (faultsweep.go)
	perModel                                                          []atomic.Int64 // by index in Config.Models
	mu                                                                sync.Mutex     // guards the maps below
	judged, adapted                                                   map[string]int64
}

// add counts n under key of m (guarded by c.mu).
func (c *counters) add(m *map[string]int64, key string, n int64) {
	c.mu.Lock()
	if *m == nil {
		*m = map[string]int64{}
	}
	(*m)[key] += n
	c.mu.Unlock()
}

// counts returns a copy of m (nil when empty).
func (c *counters) counts(m *map[string]int64) map[string]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(*m) == 0 {
		return nil
	}
	out := make(map[string]int64, len(*m))
	for k, n := range *m {
		out[k] = n
	}
	return out
}

// checker records workloads through a driver and judges their crash
// states with its judges.
type checker struct {
	ctx    context.Context // nil: context.Background()
	driver Driver
	// judges are the oracle judge first, then the driver's and the
	// configuration's (see Config.judges).
	judges        []Judge
	models        []crashsim.Model
	enum          crashsim.EnumOptions
	sampledPoints int
	faults        string
	c             *counters   // may be nil
	stop          func() bool // polled between states; nil = never
	allPoints     bool        // every op index, not only syncs + samples (minimization)
	// fromOp > 0: crash points start at guest op fromOp (the prefix of an
	// exhaustive workload is not judged), and the (point, model) pairs
	// over the bound are counted (counters.overBound).
	fromOp int
	// sweepFrom > 0: crash points start at guest op sweepFrom, and
	// sweepRepeat: the run is not the first of its fault sweep, so it is
	// not counted in Report.Faulted again (faultsweep.go).
	sweepFrom   int
	sweepRepeat bool
	// createFaults are faultfs rules for the setup (RecordOptions.CreateFaults:
	// a fault sweep's setup step, faultsetup.go); "" for none.
	createFaults string
	// setup keeps the bytes of the workload's setup between its
	// recordings (RecordOptions.Setup); nil: none.
	setup     *workload.SetupCache
	noDedup   bool   // run the judges on every state, even byte-identical ones
	onlyJudge string // failures of this judge only ("" = any): minimization keeps the judge
	// diff is the other side of differential runs (nil: none), diffRead
	// and read the targets that read back a non-Runner's files (its
	// recoverer, or the reference); diffSig, when set, keeps only
	// differential failures of that signature (minimization).
	diff           Driver
	diffRead, read target.Target
	diffSig        string
	// createShare is the share of workloads whose creation is recorded
	// and judged (create.go); create judges those states (nil: built from
	// the oracle judge).
	createShare float64
	create      Judge
	hasher      *stateHasher
	modelIdx    []int // index of models[i] in the campaign's counters
	// cpu, when set, bounds the checkers running in-process checks at
	// once (OverlappedDriver): held while the states are enumerated and
	// judged in process (judge, judgeEach), not while recording or
	// waiting for a PreparedJudge.
	cpu chan struct{}
	// local counts what this checker did (one worker's share).
	local struct{ points, states, oracleRuns int64 }
	// memo is the sector rule's memo of the states of the workload this
	// checker judges (model.JudgeMemo: a chunk read back equal to one
	// that passed for the same model is not judged again); made at first
	// use, dropped at the next workload.
	memo *model.JudgeMemo
}

// judgeMemo returns ck's memo of the sector rule's answers.
func (ck *checker) judgeMemo() *model.JudgeMemo {
	if ck.memo == nil {
		ck.memo = new(model.JudgeMemo)
	}
	return ck.memo
}

// inProcessChecker returns a checker of t's crash states under models,
// run in process and judged by the oracle judge alone (replay, tests).
func inProcessChecker(t target.Target, o oracle.Options, models []crashsim.Model) *checker {
	return &checker{driver: InProcess(t), judges: []Judge{&oracleJudge{t: t, oracle: o}}, models: models}
}

// maxDurableCache bounds the durable contents (oracle.DurableCost) judge() keeps
// in memory to speed up the data check (oracle.Options.Durable).
const maxDurableCache = 64 << 20

// generate returns workload w's workload for a campaign seed.
func generate(seed uint64, gen workload.GenConfig) *workload.Workload {
	return workload.Generate(rand.New(rand.NewPCG(seed, 0x776f726b)), gen) // "work"
}

func (ck *checker) context() context.Context {
	if ck.ctx == nil {
		return context.Background()
	}
	return ck.ctx
}

// runWorkload adapts w to the driver, records it and judges its crash
// states; it returns the first failure (nil if none). stage, when
// non-empty, restricts failures to that stage (minimization keeps the
// failure kind); other failures then count as passes.
func (ck *checker) runWorkload(w *workload.Workload, seed uint64, stage oracle.Stage) (*Failure, *Recording, error) {
	if ck.diff != nil && (stage == "" || stage == StageDiff) {
		f, err := ck.runDiff(w, seed)
		if err != nil || f != nil || stage == StageDiff {
			return f, nil, err
		}
	}
	w, ad := ck.driver.Adapt(w)
	create := ck.fromOp == 0 && ck.faults == "" && (ck.createFaults != "" || createChosen(seed, ck.createShare))
	rec, err := ck.driver.Record(ck.context(), w, RecordOptions{Seed: seed, Faults: ck.faults, Create: create, CreateOver: create && CreateOverChosen(seed),
		CreateFaults: ck.createFaults, Setup: ck.setup})
	if err != nil {
		return nil, nil, err
	}
	rec.Adaptations = ad
	if ck.c != nil {
		for _, a := range ad {
			ck.c.add(&ck.c.adapted, a.Kind, 1)
		}
	}
	if rec.Faulted() && ck.c != nil && !ck.sweepRepeat {
		ck.c.faulted.Add(1)
	}
	if fails, effect := rec.workloadFails(); fails {
		if stage == "" || stage == StageWorkload {
			return &Failure{Index: -1, WorkloadSeed: seed, W: w, Stage: StageWorkload, GuestOp: rec.OpErr.Index, OpErr: rec.OpErr, Rec: rec}, rec, nil
		}
		return nil, rec, nil
	} else if effect {
		ck.faultEffect()
	}
	if stage == StageWorkload {
		return nil, rec, nil
	}
	f, err := ck.judge(rec, stage)
	return f, rec, err
}

// runDiff runs the differential run of w: its failure (of ck.diffSig,
// when set), or nil.
func (ck *checker) runDiff(w *workload.Workload, seed uint64) (*Failure, error) {
	r, err := RunDiff(ck.context(), ck.driver, ck.diff, ck.read, ck.diffRead, w, seed)
	if err != nil {
		return nil, err
	}
	if ck.c != nil {
		ck.c.diffRuns.Add(1)
	}
	f := diffFailure(r, seed)
	if f != nil && ck.diffSig != "" && diffSignature(r) != ck.diffSig {
		return nil, nil
	}
	return f, nil
}

// judge enumerates the crash states of rec with crashsim's explorer
// (Run.Explore: the crash points, and per point and model the states, by
// the campaign's rules) and hands each distinct one to the judges: every
// state to the unbudgeted ones, in enumeration order, then a seeded sample
// of the states they all passed to each budgeted one. It returns the first
// failure (of stage and ck.onlyJudge, when set).
//
// De-duplication: a state whose bytes (stateKey) equal those of a state
// of the same point that every judge passed, judged against the same
// mark, shares that verdict and is not judged again (the judges are
// deterministic). A state passed only as a fault's direct effect (excused)
// is not shared.
func (ck *checker) judge(rec *Recording, stage oracle.Stage) (*Failure, error) {
	release := ck.acquireCPU()
	defer func() { release() }()
	if err := rec.complete(); err != nil {
		return nil, err
	}
	if ck.hasher == nil {
		ck.hasher = newStateHasher()
	}
	ck.memo = nil // one workload's: its memory goes with it
	o := crashsim.ExploreOptions{Models: ck.models, Bound: ck.enum.Bound, Samples: ck.enum.Samples, Seed: rec.Seed,
		SampledPoints: ck.sampledPoints, AllPoints: ck.allPoints, From: rec.SetupEnd, MaxFailures: -1}
	if from := max(ck.fromOp, ck.sweepFrom); from > 0 {
		for _, m := range rec.Marks {
			if m.Op >= from {
				o.From = max(o.From, m.K)
				break
			}
		}
	}
	budgeted := false
	for _, j := range ck.judges {
		budgeted = budgeted || j.Budget() >= 0
	}
	var (
		found    *Failure
		ferr     error
		seen     = map[stateKey]struct{}{}
		point    *crashsim.Point // the point of the states being judged
		base     *model.Disk     // its model
		mark     int             // its mark's index (len(Marks): the end)
		guestOp  int
		durable  *oracle.Durable // base's durable contents, if kept
		kept     *oracle.Durable // the last mark's durable contents
		keptMark = -1
		distinct []crashsim.StateID // passed by every unbudgeted judge, for the budgeted ones
	)
	// failure returns the failure of judge j's failing verdict v, or nil
	// when it is another kind of failure than the one searched (a pass).
	failure := func(j Judge, v *oracle.Verdict, id crashsim.StateID, p *crashsim.Point, guest int) *Failure {
		if (stage != "" && v.Stage != stage) || (ck.onlyJudge != "" && j.Name() != ck.onlyJudge) {
			return nil
		}
		return &Failure{Index: -1, WorkloadSeed: rec.Seed, W: rec.W, Stage: v.Stage, State: id, Judge: j.Name(),
			GuestOp: guest, Verdict: v, Rec: rec, Point: p}
	}
	check := func(s crashsim.State) error {
		if ck.stop != nil && ck.stop() {
			return crashsim.ErrStopExplore
		}
		if s.Point != point {
			point = s.Point
			k := point.K()
			if ck.fromOp > 0 && ck.c != nil {
				bound := ck.enum.Bound
				if bound == 0 {
					bound = crashsim.DefaultBound
				}
				for _, m := range ck.models {
					if c := point.CountBig(m); !c.IsUint64() || c.Uint64() > bound {
						ck.c.overBound.Add(1)
					}
				}
			}
			base, mark, guestOp, durable = rec.ModelAt(k), rec.MarkIndexAt(k), rec.GuestOpAt(k), nil
			if oracle.DurableCost(base) <= maxDurableCache {
				// Points come in K order, so each mark's states are
				// consecutive: keep the last mark's durable contents, and
				// build the next mark's from them (the blocks the ops
				// between did not change are shared, not generated again).
				if mark != keptMark {
					var err error
					if kept, err = oracle.NewDurableAfter(kept, base); err != nil {
						ferr = err
						return crashsim.ErrStopExplore
					}
					keptMark = mark
				}
				durable = kept
			}
		}
		ck.local.states++
		if ck.c != nil {
			ck.c.states.Add(1)
			for mi, m := range ck.models {
				if m == s.ID.Model {
					ck.c.perModel[ck.modelIdx[mi]].Add(1)
					break
				}
			}
		}
		var key stateKey
		keyed := false
		if !ck.noDedup {
			if key, keyed = ck.hasher.keyOf(rec.Dir, point, s.ID, s.FS, mark); keyed {
				if _, dup := seen[key]; dup {
					return nil // same bytes, same model: same verdicts (passed)
				}
			}
		}
		ck.local.oracleRuns++
		if ck.c != nil {
			ck.c.oracleRuns.Add(1)
		}
		judges := ck.judges
		creation := rec.CreateEnd > 0 && s.ID.K < rec.CreateEnd
		if creation {
			// A crash during the creation: the creation judge alone.
			judges = []Judge{ck.creationJudge()}
			if ck.c != nil {
				ck.c.creation.Add(1)
			}
		}
		shared, first := true, true
		for _, j := range judges {
			if j.Budget() >= 0 {
				continue
			}
			var fs afero.Fs = s.FS
			if !first {
				// Every judge gets the files as the crash left them.
				own, err := point.FinalState(s.ID)
				if err != nil {
					ferr = fmt.Errorf("campaign: %s: %w", s.ID, err)
					return crashsim.ErrStopExplore
				}
				defer own.Release()
				fs = own
			}
			first = false
			if ck.c != nil {
				ck.c.add(&ck.c.judged, j.Name(), 1)
			}
			v, err := j.Judge(ck.context(), &State{ID: s.ID, Point: point, FS: fs, Image: rec.Image, Model: base.Clone(),
				Durable: durable, Memo: ck.judgeMemo(), GuestOp: guestOp, Rec: rec})
			if err != nil {
				ferr = fmt.Errorf("campaign: judge %s, %s: %w", j.Name(), s.ID, err)
				return crashsim.ErrStopExplore
			}
			if v == excused {
				ck.faultEffect()
				shared = false
				continue
			}
			if !v.OK() {
				shared = false
				if found = failure(j, v, s.ID, point, guestOp); found != nil {
					return crashsim.ErrStopExplore
				}
			}
		}
		if shared && keyed {
			seen[key] = struct{}{}
		}
		if shared && budgeted && !creation {
			distinct = append(distinct, s.ID)
		}
		return nil
	}
	// The explorer takes the first crash point from the run (Run.From),
	// not from o: an exhaustive campaign's points start after the prefix.
	run := rec.run()
	run.From = o.From
	rep, err := run.Explore(o, check)
	if rep != nil {
		ck.local.points += int64(rep.Points)
		if ck.c != nil {
			ck.c.points.Add(int64(rep.Points))
		}
	}
	switch {
	case err != nil:
		return nil, err
	case ferr != nil:
		return nil, ferr
	case found != nil:
		return found, nil
	case rep.Stopped:
		return nil, nil // stopped from outside
	}
	release()
	release = func() {}
	return ck.judgeBudgeted(rec, distinct, failure)
}

// acquireCPU takes one of ck.cpu's places (when set) and returns its
// release (to be called once).
func (ck *checker) acquireCPU() func() {
	if ck.cpu == nil {
		return func() {}
	}
	ck.cpu <- struct{}{}
	return func() { <-ck.cpu }
}

// creationJudge is the judge of crash states during the creation: ck.create,
// else one recovering with the oracle judge's target.
func (ck *checker) creationJudge() Judge {
	if ck.create == nil {
		oj, _ := ck.judges[0].(*oracleJudge)
		if oj == nil {
			return ck.judges[0]
		}
		ck.create = &createJudge{t: oj.t, oracle: oj.oracle}
	}
	return ck.create
}

// judgeBudgeted hands each budgeted judge its seeded sample of the
// distinct states every unbudgeted judge passed, in the sample's order.
// A PreparedJudge's states are judged in a sliding window of
// Concurrency() (judgeWindow); the others one at a time. The first
// failure or harness error in the sample's order ends the workload.
func (ck *checker) judgeBudgeted(rec *Recording, distinct []crashsim.StateID, failure func(Judge, *oracle.Verdict, crashsim.StateID, *crashsim.Point, int) *Failure) (*Failure, error) {
	for _, j := range ck.judges {
		if j.Budget() < 0 {
			continue
		}
		ids := sampleStates(distinct, j.Budget(), rec.Seed, j.Name())
		var f *Failure
		var err error
		if pj, _ := j.(PreparedJudge); pj != nil {
			f, err = ck.judgeWindow(rec, pj, ids, failure)
		} else {
			f, err = ck.judgeEach(rec, j, ids, failure)
		}
		if f != nil || err != nil {
			return f, err
		}
	}
	return nil, nil
}

// budgetedState builds the State of id for a budgeted judge; release
// releases its FS once the judge is done with it.
func budgetedState(rec *Recording, id crashsim.StateID) (st *State, release func(), err error) {
	p, err := rec.Point(id.K)
	if err != nil {
		return nil, nil, err
	}
	fs, err := p.FinalState(id)
	if err != nil {
		return nil, nil, fmt.Errorf("campaign: %s: %w", id, err)
	}
	return &State{ID: id, Point: p, FS: fs, Image: rec.Image, Model: rec.ModelAt(id.K).Clone(),
		GuestOp: rec.GuestOpAt(id.K), Rec: rec}, fs.Release, nil
}

// judgeEach judges ids with j one at a time, in order (in process: with
// one of ck.cpu's places).
func (ck *checker) judgeEach(rec *Recording, j Judge, ids []crashsim.StateID, failure func(Judge, *oracle.Verdict, crashsim.StateID, *crashsim.Point, int) *Failure) (*Failure, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	defer ck.acquireCPU()()
	for _, id := range ids {
		if ck.stop != nil && ck.stop() {
			return nil, nil
		}
		st, release, err := budgetedState(rec, id)
		if err != nil {
			return nil, err
		}
		v, err := j.Judge(ck.context(), st)
		release()
		if f, err := ck.budgetedVerdict(j, st, v, err, failure); f != nil || err != nil {
			return f, err
		}
	}
	return nil, nil
}

// budgetedVerdict counts a budgeted judge's verdict on st and returns its
// failure or error.
func (ck *checker) budgetedVerdict(j Judge, st *State, v *oracle.Verdict, err error, failure func(Judge, *oracle.Verdict, crashsim.StateID, *crashsim.Point, int) *Failure) (*Failure, error) {
	if ck.c != nil {
		ck.c.add(&ck.c.judged, j.Name(), 1)
	}
	if err != nil {
		return nil, fmt.Errorf("campaign: judge %s, %s: %w", j.Name(), st.ID, err)
	}
	if v != excused && !v.OK() {
		return failure(j, v, st.ID, st.Point, st.GuestOp), nil
	}
	return nil, nil
}

// judgeWindow judges ids with pj in a sliding window: up to
// pj.Concurrency() judgings run at once, and a new state is prepared (in
// this goroutine: a State's FS is not for concurrent use) as soon as one
// finishes, so that one slow state does not hold the others back. The
// verdicts are taken in the sample's order: the outcome, the failure
// reported and the states counted are those of judging one state at a
// time. Once a verdict in order fails (or a judging's harness fails), no
// further state is started; the ones in flight are waited for and
// discarded.
func (ck *checker) judgeWindow(rec *Recording, pj PreparedJudge, ids []crashsim.StateID, failure func(Judge, *oracle.Verdict, crashsim.StateID, *crashsim.Point, int) *Failure) (*Failure, error) {
	type result struct {
		v   *oracle.Verdict
		err error
	}
	var (
		window  = max(1, pj.Concurrency())
		states  = make([]*State, len(ids))
		results = make([]chan result, len(ids))
		slots   = make(chan struct{}, window)
		next    int // the next verdict to take, in order
		started int
		wg      sync.WaitGroup
	)
	defer wg.Wait() // no judging outlives the workload
	// take takes the verdicts in order while they are ready (all of the
	// started ones when wait is set): a failure or error ends the window.
	take := func(wait bool) (*Failure, error) {
		for next < started {
			var r result
			if wait {
				r = <-results[next]
			} else {
				select {
				case r = <-results[next]:
				default:
					return nil, nil
				}
			}
			st := states[next]
			next++
			if f, err := ck.budgetedVerdict(pj, st, r.v, r.err, failure); f != nil || err != nil {
				return f, err
			}
		}
		return nil, nil
	}
	for started < len(ids) {
		if ck.stop != nil && ck.stop() {
			return nil, nil
		}
		slots <- struct{}{} // a judging finished (or the window is not full)
		if f, err := take(false); f != nil || err != nil {
			<-slots
			return f, err
		}
		i := started
		st, release, err := budgetedState(rec, ids[i])
		if err != nil {
			<-slots
			return nil, err
		}
		run, err := pj.Prepare(ck.context(), st)
		release()
		if err != nil {
			<-slots
			return nil, fmt.Errorf("campaign: judge %s, %s: %w", pj.Name(), st.ID, err)
		}
		states[i], results[i] = st, make(chan result, 1)
		started++
		wg.Go(func() {
			defer func() { <-slots }()
			v, err := run()
			results[i] <- result{v, err}
		})
	}
	return take(true)
}

// sampleStates returns at most n of ids (all of them when there are no
// more), drawn with PCG(seed, FNV-1a of name) and kept in their order.
func sampleStates(ids []crashsim.StateID, n int, seed uint64, name string) []crashsim.StateID {
	if n >= len(ids) {
		return ids
	}
	h := fnv.New64a()
	h.Write([]byte(name))
	pick := rand.New(rand.NewPCG(seed, h.Sum64())).Perm(len(ids))[:n]
	slices.Sort(pick)
	out := make([]crashsim.StateID, n)
	for i, x := range pick {
		out[i] = ids[x]
	}
	return out
}

func (ck *checker) faultEffect() {
	if ck.c != nil {
		ck.c.faultEffects.Add(1)
	}
}

// workloadFails reports whether the run's guest op error is a failure of
// the implementation: an error with no fault injected, or a read that
// disagreed with the model outside what the silent faults injected so far
// touched (with only silent faults injected: an injected error ends the
// run as expected). effect is set when a read disagreed only within that
// damage (the fault's direct effect).
func (rec *Recording) workloadFails() (fails, effect bool) {
	if rec.OpErr == nil {
		return false, false
	}
	if !rec.Faulted() {
		return true, false
	}
	mm := rec.OpErr.Mismatch
	if mm == nil || slices.ContainsFunc(rec.Injected, func(in faultfs.Injection) bool { return in.Err != nil }) {
		return false, false
	}
	injs, ops := rec.silentUpTo(rec.End.K())
	if injs == nil {
		return false, false
	}
	d := damageOf(injs, ops, rec.W, rec.EndModel.Size(), rec.EndMap)
	if !d.within(mm.Off, max(mm.Len, 1)) {
		return true, false
	}
	return false, true
}

// cancelled reports whether f's error is a context's cancellation or
// deadline (the campaign stopping under a judge or a driver), not a
// finding.
func (f *Failure) cancelled() bool {
	var errs []error
	if f.Err != nil {
		errs = append(errs, f.Err)
	}
	if f.OpErr != nil {
		errs = append(errs, f.OpErr)
	}
	if f.Verdict != nil && f.Verdict.Err != nil {
		errs = append(errs, f.Verdict.Err)
	}
	for _, err := range errs {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return true
		}
	}
	return false
}
