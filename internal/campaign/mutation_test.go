package campaign

import (
	"context"
	"encoding/binary"
	"errors"
	"maps"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/qedtorture/qedtorture/crashsim"
	"github.com/qedtorture/qedtorture/impl/qed/qedtarget"
	"github.com/qedtorture/qedtorture/model"
	"github.com/qedtorture/qedtorture/props/oracle"
	"github.com/qedtorture/qedtorture/props/target"
	"github.com/qedtorture/qedtorture/props/workload"
	"github.com/spf13/afero"
	"github.com/stretchr/testify/require"
)

// Tests written for mutants that survived the bounded mutation run of
// docs/mutation.md.

// TestSignatureSides: a workload failure's signature says whether a read
// disagreed with the model; a crash state's names the judge that rejected
// it, or the target when no judge is named, or raw for the crashed image
// itself; a failure without a verdict has no kinds.
func TestSignatureSides(t *testing.T) {
	for _, c := range []struct {
		name string
		f    Failure
		want string
	}{
		{"an op error", Failure{Stage: StageWorkload, OpErr: &workload.OpError{Err: errors.New("eio")}}, "t/workload"},
		{"a read that disagreed", Failure{Stage: StageWorkload, OpErr: &workload.OpError{Err: workload.ErrDataMismatch, Mismatch: &model.Mismatch{}}}, "t/workload/data"},
		{"a read of zeroed data returning the backing file's", Failure{Stage: StageWorkload, OpErr: &workload.OpError{Err: workload.ErrDataMismatch, Mismatch: &model.Mismatch{
			Found: &model.Source{Kind: model.KindPattern, ID: 1, Layer: 1}, Candidates: []model.Candidate{{Source: model.Source{Kind: model.KindZeroes}}}}}}, "t/workload/data/backing-for-zeros"},
		{"a read of written data returning the backing file's", Failure{Stage: StageWorkload, OpErr: &workload.OpError{Err: workload.ErrDataMismatch, Mismatch: &model.Mismatch{
			Found: &model.Source{Kind: model.KindPattern, ID: 1, Layer: 1}, Candidates: []model.Candidate{{Source: model.Source{Kind: model.KindPattern, ID: 2}}}}}}, "t/workload/data"},
		{"a state a judge rejected", Failure{Stage: oracle.StageData, Judge: "qemu"}, "qemu/data"},
		{"a state no judge is named for", Failure{Stage: oracle.StageData}, "t/data"},
		{"a raw image without a verdict", Failure{Stage: oracle.StageStructureBefore, Judge: "qemu"}, "raw/structure-before-recovery"},
		{"a recovered image without a verdict", Failure{Stage: oracle.StageStructureAfter, Judge: "qemu"}, "qemu/structure-after-recovery"},
	} {
		if got := c.f.Signature("t"); got != c.want {
			t.Errorf("%s: signature %q, want %q", c.name, got, c.want)
		}
	}
}

// ctxKey marks the campaign's context in TestCheckerPassesItsContext.
type ctxKey struct{}

// ctxDriver records the context its recordings run under.
type ctxDriver struct {
	Driver
	seen *[]context.Context
}

func (d ctxDriver) Record(ctx context.Context, w *workload.Workload, o RecordOptions) (*Recording, error) {
	*d.seen = append(*d.seen, ctx)
	return d.Driver.Record(ctx, w, o)
}

// ctxJudge records the contexts it judges under and passes every state.
type ctxJudge struct{ seen []context.Context }

func (*ctxJudge) Name() string { return "ctx" }

func (*ctxJudge) Budget() int { return -1 }

func (j *ctxJudge) Judge(ctx context.Context, _ *State) (*oracle.Verdict, error) {
	j.seen = append(j.seen, ctx)
	return &oracle.Verdict{}, nil
}

// TestCheckerPassesItsContext: a workload's recording and judging run under
// the campaign's context (so that an interrupt reaches the driver and the
// judges), not a background one.
func TestCheckerPassesItsContext(t *testing.T) {
	ctx := context.WithValue(context.Background(), ctxKey{}, "campaign")
	var recorded []context.Context
	j := &ctxJudge{}
	ck := &checker{ctx: ctx, driver: ctxDriver{InProcess(qedtarget.Target{}), &recorded}, judges: []Judge{j},
		models: quickModels, enum: crashsim.EnumOptions{Bound: 16, Samples: 4}, sampledPoints: 2}
	f, _, err := ck.runWorkload(generate(3, quickGen()), 3, "")
	require.NoError(t, err)
	require.Nil(t, f)
	require.Len(t, recorded, 1)
	require.Equal(t, "campaign", recorded[0].Value(ctxKey{}), "the recording's context")
	require.NotEmpty(t, j.seen)
	for _, c := range j.seen {
		require.Equal(t, "campaign", c.Value(ctxKey{}), "the judging's context")
	}
}

// stopJudge is a budgeted judge that, when raise is set, raises the
// campaign's stop once it has judged a state; it counts the states it is
// handed.
type stopJudge struct {
	budget  int
	raise   bool
	stopped bool
	n       int
}

func (*stopJudge) Name() string { return "stopper" }

func (j *stopJudge) Budget() int { return j.budget }

func (j *stopJudge) Judge(context.Context, *State) (*oracle.Verdict, error) {
	j.n++
	j.stopped = j.raise
	return &oracle.Verdict{}, nil
}

// TestBudgetedJudgesHonourStopAndBudget: a judge of budget 0 sees no state
// (not every one); a budgeted judge stops being handed states once the
// campaign stops.
func TestBudgetedJudgesHonourStopAndBudget(t *testing.T) {
	run := func(budget int, raise bool) (*stopJudge, *recordingJudge) {
		all := &recordingJudge{per: map[uint64][]string{}}
		s := &stopJudge{budget: budget, raise: raise}
		ck := &checker{driver: InProcess(qedtarget.Target{}), judges: []Judge{all, s}, models: quickModels,
			enum: crashsim.EnumOptions{Bound: 16, Samples: 4}, sampledPoints: 2, stop: func() bool { return s.stopped }}
		f, _, err := ck.runWorkload(generate(5, quickGen()), 5, "")
		require.NoError(t, err)
		require.Nil(t, f)
		require.Greater(t, len(all.per[5]), 3, "states for the budgeted judge")
		return s, all
	}
	s, _ := run(0, false)
	require.Zero(t, s.n, "a judge of budget 0 judges no state")
	s, _ = run(3, false)
	require.Equal(t, 3, s.n, "its budget")
	s, _ = run(3, true)
	require.Equal(t, 1, s.n, "no state after the stop")
}

// flipAllTarget is impl/qed with every read's first byte flipped: its
// crash-free run fails (a read disagrees with the model).
type flipAllTarget struct{ qedtarget.Target }

func (flipAllTarget) Name() string { return "test:flip-all" }

func (t flipAllTarget) Open(fs afero.Fs, p string, o target.OpenOptions) (target.Disk, error) {
	d, err := t.Target.Open(fs, p, o)
	if err != nil {
		return d, err
	}
	return staleDisk{d}, nil
}

// TestCrashFreeFailureKept: a target whose crash-free run fails is a
// workload failure when every stage is searched and when the workload
// stage is; minimizing another stage counts it as a pass.
func TestCrashFreeFailureKept(t *testing.T) {
	ck := inProcessChecker(flipAllTarget{}, oracle.Options{}, quickModels)
	ck.enum = crashsim.EnumOptions{Bound: 16, Samples: 4}
	for seed := uint64(1); seed < 20; seed++ {
		w := generate(seed, quickGen())
		f, _, err := ck.runWorkload(w, seed, "")
		require.NoError(t, err)
		if f == nil || f.Stage != StageWorkload {
			continue // no read before a crash state failed
		}
		require.ErrorIs(t, f.OpErr, workload.ErrDataMismatch)
		f, _, err = ck.runWorkload(w, seed, StageWorkload)
		require.NoError(t, err)
		require.NotNil(t, f, "seed %d: the workload stage searched", seed)
		require.Equal(t, StageWorkload, f.Stage)
		f, _, err = ck.runWorkload(w, seed, oracle.StageData)
		require.NoError(t, err)
		require.Nil(t, f, "seed %d: another stage searched", seed)
		return
	}
	t.Fatal("no seed below 20 fails its crash-free run")
}

// TestDiffMinimizationRerunsDiff: minimizing a differential failure (stage
// diff) reruns the differential check and finds the failure again.
func TestDiffMinimizationRerunsDiff(t *testing.T) {
	g := quickGen()
	g.Weights = maps.Clone(g.Weights)
	g.Weights[workload.ReopenRO] = 0
	ck := inProcessChecker(qedtarget.Target{}, oracle.Options{}, quickModels)
	ck.enum = crashsim.EnumOptions{Bound: 16, Samples: 4}
	ck.diff, ck.read, ck.diffRead = InProcess(staleReadTarget{}), qedtarget.Target{}, staleReadTarget{}
	for seed := uint64(1); seed < 20; seed++ {
		w := generate(seed, g)
		f, _, err := ck.runWorkload(w, seed, "")
		require.NoError(t, err)
		if f == nil {
			continue
		}
		require.Equal(t, StageDiff, f.Stage, "seed %d", seed)
		again, _, err := ck.runWorkload(w, seed, StageDiff)
		require.NoError(t, err)
		require.NotNil(t, again, "seed %d: the minimizer's rerun finds the difference", seed)
		require.Equal(t, StageDiff, again.Stage)
		return
	}
	t.Fatal("no seed below 20 shows the seeded difference")
}

// pointJudge passes every state; it records each state's crash point
// index and, per new point, how many of its (point, model) pairs have more
// states than bound.
type pointJudge struct {
	models []crashsim.Model
	bound  uint64
	ks     []int64
	counts []uint64 // the state count of each (point, model) pair seen
	over   int64
	last   *crashsim.Point
}

func (*pointJudge) Name() string { return "points" }

func (*pointJudge) Budget() int { return -1 }

func (j *pointJudge) Judge(_ context.Context, st *State) (*oracle.Verdict, error) {
	j.ks = append(j.ks, st.ID.K)
	if st.Point != j.last {
		j.last = st.Point
		for _, m := range j.models {
			c := st.Point.CountBig(m)
			if !c.IsUint64() || c.Uint64() > j.bound {
				j.over++
			}
			if c.IsUint64() {
				j.counts = append(j.counts, c.Uint64())
			}
		}
	}
	return &oracle.Verdict{}, nil
}

// TestExhaustiveFromOpAndOverBound: an exhaustive campaign (every crash
// point, from an op on) judges exactly the crash points from the mark of
// the first op at or after fromOp to the end, and counts the (point,
// model) pairs with more states than the bound (the default one when
// none is set), only in such a campaign.
func TestExhaustiveFromOpAndOverBound(t *testing.T) {
	const seed = 9
	w := generate(seed, quickGen())
	run := func(fromOp int, bound uint64) (*pointJudge, *Recording, *counters) {
		j := &pointJudge{models: quickModels, bound: bound}
		if bound == 0 {
			j.bound = crashsim.DefaultBound
		}
		c := &counters{perModel: make([]atomic.Int64, len(quickModels))}
		ck := &checker{driver: InProcess(qedtarget.Target{}), judges: []Judge{j}, models: quickModels, noDedup: true,
			enum: crashsim.EnumOptions{Bound: bound, Samples: 2}, allPoints: true, fromOp: fromOp, c: c,
			modelIdx: []int{0, 1, 2, 3}}
		f, rec, err := ck.runWorkload(w, seed, "")
		require.NoError(t, err)
		require.Nil(t, f)
		return j, rec, c
	}
	all, rec, c := run(0, 0)
	require.Zero(t, c.overBound.Load(), "not counted outside an exhaustive campaign")
	require.Greater(t, len(rec.Marks), 3)
	for _, fromOp := range []int{3, 4} { // marks at K 14 and 19, after the setup's end (10)
		from := rec.SetupEnd
		for _, m := range rec.Marks {
			if m.Op >= fromOp {
				from = max(from, m.K)
				break
			}
		}
		var want []int64
		for _, k := range all.ks {
			if k >= from {
				want = append(want, k)
			}
		}
		require.Less(t, len(want), len(all.ks), "fromOp %d: some points before its mark", fromOp)
		j, _, _ := run(fromOp, 0)
		require.Equal(t, want, j.ks, "fromOp %d: the points from mark %d on", fromOp, from)
	}

	j, _, c := run(3, 0)
	require.Equal(t, j.over, c.overBound.Load(), "over the default bound")
	// A bound some pair's count equals exactly: that pair is not over it.
	slices.Sort(j.counts)
	bound := j.counts[len(j.counts)/2]
	j, _, c = run(3, bound)
	require.Positive(t, j.over, "bound %d", bound)
	require.Equal(t, j.over, c.overBound.Load(), "over bound %d", bound)
	_, _, c = run(0, bound)
	require.Zero(t, c.overBound.Load(), "bound %d: not counted outside an exhaustive campaign", bound)
}

// TestMismatchBeyondSilentFaultFails: in a run with only silent faults
// injected (a lost sync), a read that disagrees with the model where no
// fault could have reached is a workload failure of the target.
func TestMismatchBeyondSilentFaultFails(t *testing.T) {
	ck := inProcessChecker(flipAllTarget{}, oracle.Options{}, quickModels)
	ck.enum = crashsim.EnumOptions{Bound: 16, Samples: 4}
	ck.faults = "sync:lost@nth=1"
	for seed := uint64(1); seed < 20; seed++ {
		f, rec, err := ck.runWorkload(generate(seed, quickGen()), seed, StageWorkload)
		require.NoError(t, err)
		if !rec.Faulted() || rec.OpErr == nil || rec.OpErr.Mismatch == nil {
			continue
		}
		require.NotNil(t, f, "seed %d: %v", seed, rec.OpErr)
		require.ErrorIs(t, f.OpErr, workload.ErrDataMismatch)
		return
	}
	t.Fatal("no seed below 20 reads back after a lost sync")
}

// TestModelRank: the minimizer's final step tries the crash models weakest
// first: drop, prefix, subset, torn (512 before 4k), each plain before
// +garbage before +size.
func TestModelRank(t *testing.T) {
	order := []string{"drop", "prefix", "subset", "subset+size", "torn512", "torn512+garbage", "torn512+size", "torn512+garbage+size", "torn4k", "torn4k+garbage", "torn4k+size"}
	prev := -1
	for _, s := range order {
		m, err := crashsim.ParseModel(s)
		require.NoError(t, err, s)
		r := modelRank(m)
		require.Greater(t, r, prev, "%s ranked %d, not after the one before it", s, r)
		prev = r
	}
}

// TestMinimizeHonoursStopAndBudget: the minimizer tries no candidate once
// its stop says so (a spent MinimizeTimeout), and at most
// MinimizeCandidates of them.
func TestMinimizeHonoursStopAndBudget(t *testing.T) {
	target, _ := targetByName("broken:noflush")
	run := func(cfg Config) *FailureReport {
		cfg.Seed, cfg.Iterations, cfg.Gen, cfg.Models, cfg.Bound, cfg.Samples = 3, 30, quickGen(), quickModels, 64, 8
		cfg.Target, cfg.TargetName = target, "broken:noflush"
		rep, err := Run(context.Background(), cfg)
		require.NoError(t, err)
		require.Len(t, rep.Failures, 1)
		return &rep.Failures[0]
	}
	f := run(Config{MinimizeTimeout: time.Nanosecond})
	require.Equal(t, f.OriginalOps, f.Ops, "ops dropped after the minimizer's time was spent")
	full := run(Config{})
	require.Less(t, full.Ops, full.OriginalOps, "the default minimization dropped nothing at this seed")
	one := run(Config{MinimizeCandidates: 1})
	// At this seed the first candidate (the first half dropped) does not
	// fail: with a budget of one, nothing is dropped.
	require.Equal(t, one.OriginalOps, one.Ops, "ops dropped with a budget of one candidate")
	t.Logf("ops: %d of %d (full), %d (one candidate); state %s", full.Ops, full.OriginalOps, one.Ops, full.State)
	// Single ops dropped too (chunks down to one op), and the simplest
	// state: a lost flush shows in the weakest model, drop.
	require.Equal(t, 2, full.Ops, "at this seed the minimized workload has 2 ops")
	require.Contains(t, full.State, "/drop/", "the simplest state's model")
}

// countingRecovery records recoveries in process with t, counting them.
type countingRecovery struct {
	t target.Target
	n int
}

func (r *countingRecovery) RecordRecovery(_ context.Context, st *State) (*Recording, error) {
	r.n++
	return RecordRecovery(r.t, st)
}

// bigNoFlushTarget is impl/qed whose guest flush does nothing on an
// image opened with more than one L2 table and two data clusters: only the
// recoveries of crash states past some point of a workload lose their
// flush, so a crash during recovery fails for some states and passes for
// the others.
type bigNoFlushTarget struct{ qedtarget.Target }

func (bigNoFlushTarget) Name() string { return "test:big-noflush" }

func (t bigNoFlushTarget) Open(fs afero.Fs, p string, o target.OpenOptions) (target.Disk, error) {
	b, err := afero.ReadFile(fs, p)
	if err != nil {
		return nil, err
	}
	d, err := t.Target.Open(fs, p, o)
	if err != nil || len(b) < 16 {
		return d, err
	}
	cluster, table, header := int64(binary.LittleEndian.Uint32(b[4:])), int64(binary.LittleEndian.Uint32(b[8:])), int64(binary.LittleEndian.Uint32(b[12:]))
	if int64(len(b)) <= (header+2*table+2)*cluster {
		return d, err
	}
	return noFlushDisk{d}, nil
}

type noFlushDisk struct{ target.Disk }

func (noFlushDisk) Flush() error { return nil }

// TestMinimizeNestedRecoversEveryState: the candidates of a crash during
// recovery are judged with every distinct state recovered and crashed,
// not the campaign's sample of one: a smaller workload that still fails
// is not missed for a draw. Counted: more recoveries than workload runs.
func TestMinimizeNestedRecoversEveryState(t *testing.T) {
	tgt := bigNoFlushTarget{}
	rr := &countingRecovery{t: tgt}
	g := quickGen()
	g.Weights = maps.Clone(g.Weights)
	g.Weights[workload.Reopen] = 0 // the workload's own flushes work
	nj := &nestedJudge{t: tgt, rr: rr, models: quickModels[:2], enum: crashsim.EnumOptions{Bound: 8, Samples: 2}, depth: 2, budget: 1}
	var recorded []context.Context
	ck := &checker{driver: ctxDriver{InProcess(tgt), &recorded}, judges: []Judge{&oracleJudge{t: tgt}, nj},
		models: quickModels[:2], enum: crashsim.EnumOptions{Bound: 8, Samples: 2}}
	for seed := uint64(1); seed < 40; seed++ {
		f, _, err := ck.runWorkload(generate(seed, g), seed, "")
		require.NoError(t, err)
		if f == nil || f.Judge != NestedJudgeName {
			continue
		}
		rr.n, recorded = 0, nil
		const budget = 4
		mf := minimize(ck, f, budget)
		require.Equal(t, NestedJudgeName, mf.Judge, "seed %d: the minimized failure is a crash during recovery", seed)
		require.NotNil(t, f.Nested(), "seed %d: the chain of crashes during recovery", seed)
		require.NotNil(t, mf.Nested(), "seed %d: the minimized chain", seed)
		require.LessOrEqual(t, len(recorded), budget, "seed %d: workload runs", seed)
		t.Logf("ops %d -> %d, state %s -> %s", len(f.W.Ops), len(mf.W.Ops), f.State, mf.State)
		require.Greater(t, rr.n, budget+1, "seed %d: recoveries in %d workload runs (one state each: a sample)", seed, len(recorded))
		require.Equal(t, 1, nj.budget, "the campaign's judge is left as it was")
		return
	}
	t.Fatal("no seed below 40 fails by a crash during recovery")
}

// TestMinimizeDiffKeepsSignature: a differential failure minimizes to a
// smaller workload with the same difference (the same kind, the same side
// deviating), not to whichever difference a smaller workload shows: here
// a read of a read-only reopen that disagrees (run), which most smaller
// workloads turn into a difference of the data read back at the end.
func TestMinimizeDiffKeepsSignature(t *testing.T) {
	ck := inProcessChecker(qedtarget.Target{}, oracle.Options{}, quickModels)
	ck.enum = crashsim.EnumOptions{Bound: 16, Samples: 4}
	ck.diff, ck.read, ck.diffRead = InProcess(staleReadTarget{}), qedtarget.Target{}, staleReadTarget{}
	for seed := uint64(1); seed < 40; seed++ {
		f, _, err := ck.runWorkload(generate(seed, quickGen()), seed, "")
		require.NoError(t, err)
		if f == nil || f.Signature("") != "diff/run/other" {
			continue
		}
		mf := minimize(ck, f, 200)
		require.Less(t, len(mf.W.Ops), len(f.W.Ops), "seed %d: nothing dropped", seed)
		require.Equal(t, "diff/run/other", mf.Signature(""), "seed %d: the minimized difference", seed)
		return
	}
	t.Fatal("no seed below 40 shows a differing read-only read")
}

// TestMinimizeFinalStep: the minimizer's last step looks for the simplest
// crash state of the minimized workload under every model, weakest first
// (a failure found under the strongest model of the campaign ends under
// drop); it is a workload run like the candidates, so a spent budget skips
// it: at most budget runs.
func TestMinimizeFinalStep(t *testing.T) {
	tgt, _ := targetByName("broken:noflush")
	strongestFirst := slices.Clone(quickModels)
	slices.Reverse(strongestFirst)
	var recorded []context.Context
	ck := inProcessChecker(tgt, oracle.Options{}, strongestFirst)
	ck.driver = ctxDriver{InProcess(tgt), &recorded}
	ck.enum = crashsim.EnumOptions{Bound: 64, Samples: 8}
	for seed := uint64(1); seed < 20; seed++ {
		f, _, err := ck.runWorkload(generate(seed, quickGen()), seed, "")
		require.NoError(t, err)
		if f == nil || !f.HasState() || f.State.Model.Base == crashsim.Drop {
			continue
		}
		for _, budget := range []int{0, 1, 2} {
			recorded = nil
			mf := minimize(ck, f, budget)
			require.LessOrEqual(t, len(recorded), budget, "seed %d: workload runs with a budget of %d", seed, budget)
			require.Equal(t, f.State.Model, mf.State.Model, "seed %d, budget %d: the final step ran", seed, budget)
		}
		recorded = nil
		mf := minimize(ck, f, 1000)
		require.Equal(t, crashsim.Drop, mf.State.Model.Base, "seed %d: the simplest state of %s (from %s)", seed, mf.State, f.State)
		require.LessOrEqual(t, len(mf.W.Ops), len(f.W.Ops))
		return
	}
	t.Fatal("no seed below 20 fails under a model stronger than drop")
}
