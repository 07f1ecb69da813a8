package campaign

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/qedtorture/qedtorture/crashsim"
	"github.com/qedtorture/qedtorture/impl/qed/qedtarget"
	"github.com/qedtorture/qedtorture/props/oracle"
	"github.com/qedtorture/qedtorture/props/workload"
	"github.com/stretchr/testify/require"
)

// TestCampaignPicksTheExplorersStates: for each workload of a campaign,
// the crash states the campaign judges (without de-duplication, so every
// state enumerated reaches the judges) are exactly, in order, those
// crashsim's public explorer picks for the same workload run on its own:
// crashsim.Record over the executor, the setup's end as From, the
// campaign's models, bounds, sampled points and workload seed.
func TestCampaignPicksTheExplorersStates(t *testing.T) {
	seed := testSeed(t)
	cfg := Config{Target: qedtarget.Target{}, Seed: seed, Iterations: 8, Workers: 2, Gen: quickGen(), Models: quickModels,
		Bound: 16, Samples: 4, SampledPoints: 3, NoDedup: true}
	j := &recordingJudge{per: map[uint64][]string{}}
	cfg.Judges = []Judge{j}
	rep, err := Run(context.Background(), cfg)
	require.NoError(t, err)
	require.Empty(t, rep.Failures)
	require.EqualValues(t, rep.CrashStates, rep.OracleRuns, "without dedup every state is judged")

	for w := range cfg.Iterations {
		ws := WorkloadSeed(seed, w)
		wl := generate(ws, cfg.Gen)
		o := crashsim.ExploreOptions{Models: cfg.Models, Bound: cfg.Bound, Samples: cfg.Samples, Seed: ws,
			SampledPoints: cfg.SampledPoints, MaxFailures: -1, FS: crashsim.Options{ImplicitDirSync: true}}
		var setupEnd int64
		run, err := crashsim.Record(func(fs *crashsim.FS) error {
			e, err := workload.NewExec(qedtarget.Target{}, fs, Dir, wl)
			if err != nil {
				return err
			}
			setupEnd = fs.Ops()
			return e.RunAll()
		}, o)
		require.NoError(t, err)
		require.NoError(t, run.Err)
		run.From = setupEnd
		var ids []string
		_, err = run.Explore(o, func(s crashsim.State) error {
			ids = append(ids, s.ID.String())
			return nil
		})
		require.NoError(t, err)
		require.NotEmpty(t, ids)
		require.Equal(t, ids, j.per[ws], "workload %d (seed %d): the campaign's states are the explorer's", w, ws)
	}
}

// traceOnly is a driver handing its recordings over as an out-of-process
// driver does: the base files (none) and the trace, no live crash points.
type traceOnly struct{ Driver }

func (d traceOnly) Record(ctx context.Context, w *workload.Workload, o RecordOptions) (*Recording, error) {
	rec, err := d.Driver.Record(ctx, w, o)
	if err != nil {
		return nil, err
	}
	rec.Syncs, rec.End = nil, nil
	return rec, nil
}

// TestTraceOnlyRecording: a recording without live crash points (as QEMU's
// driver hands them over: base files and a trace) is judged exactly as the
// live one: same states (TestJudgedStatesPinned's digest), same counts.
func TestTraceOnlyRecording(t *testing.T) {
	cfg := Config{Driver: traceOnly{InProcess(qedtarget.Target{})}, Seed: 12, Iterations: 12, Workers: 2, Gen: quickGen(),
		Models: quickModels, Bound: 16, Samples: 4, SampledPoints: 3}
	d, rep := judgedDigest(t, cfg)
	require.Equal(t, "digest 72cf06e065cf36b9 points 89 states 905 oracle 354", fmt.Sprintf("digest %s points %d states %d oracle %d",
		d, rep.CrashPoints, rep.CrashStates, rep.OracleRuns))
}

// budgetJudge records the states it is handed, by workload seed; it fails
// the state failOn (if set).
type budgetJudge struct {
	budget int
	failOn string
	mu     sync.Mutex
	per    map[uint64][]string
}

func (*budgetJudge) Name() string { return "budget" }

func (j *budgetJudge) Budget() int { return j.budget }

func (j *budgetJudge) Judge(_ context.Context, st *State) (*oracle.Verdict, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.per[st.Rec.Seed] = append(j.per[st.Rec.Seed], st.ID.String())
	if st.ID.String() == j.failOn {
		return &oracle.Verdict{Stage: oracle.StageLiveness, Err: fmt.Errorf("budget judge: planted failure")}, nil
	}
	return &oracle.Verdict{}, nil
}

// TestBudgetedJudge: a judge with a budget sees, per workload, a seeded
// sample of at most Budget of the distinct states every unbudgeted judge
// passed, each once, the same ones for the same seed; a state it rejects
// is a failure of that judge, minimized against that judge.
func TestBudgetedJudge(t *testing.T) {
	run := func(failOn string) (*Report, *recordingJudge, *budgetJudge) {
		all := &recordingJudge{per: map[uint64][]string{}}
		b := &budgetJudge{budget: 3, failOn: failOn, per: map[uint64][]string{}}
		rep, err := Run(context.Background(), Config{Target: qedtarget.Target{}, Seed: 21, Iterations: 6, Workers: 2,
			Gen: quickGen(), Models: quickModels, Bound: 16, Samples: 4, SampledPoints: 2, Judges: []Judge{all, b}})
		require.NoError(t, err)
		return rep, all, b
	}
	rep, all, b := run("")
	require.Empty(t, rep.Failures)
	require.Len(t, b.per, 6, "every workload")
	var some string
	for ws, ids := range b.per {
		require.Len(t, ids, min(3, len(all.per[ws])), "workload seed %d", ws)
		require.Len(t, ids, len(slices.Compact(slices.Clone(ids))), "each state once")
		for _, id := range ids {
			require.Contains(t, all.per[ws], id, "a distinct state the others passed")
		}
		some = ids[len(ids)-1]
	}
	_, _, again := run("")
	require.Equal(t, b.per, again.per, "the same sample for the same seed")

	rep, _, _ = run(some)
	require.Len(t, rep.Failures, 1)
	require.Equal(t, string(oracle.StageLiveness), rep.Failures[0].Stage)
	require.Contains(t, rep.Failures[0].Message, "planted failure")
}

func TestSampleStates(t *testing.T) {
	ids := make([]crashsim.StateID, 10)
	for i := range ids {
		ids[i] = crashsim.StateID{K: int64(i)}
	}
	require.Equal(t, ids[:3], sampleStates(ids[:3], 5, 1, "x"), "fewer than the budget: all")
	s := sampleStates(ids, 4, 1, "x")
	require.Len(t, s, 4)
	require.True(t, slices.IsSortedFunc(s, func(a, b crashsim.StateID) int { return int(a.K - b.K) }), "in enumeration order")
	require.Equal(t, s, sampleStates(ids, 4, 1, "x"))
	require.NotEqual(t, s, sampleStates(ids, 4, 1, "y"), "seeded by the judge's name too")
	require.Empty(t, sampleStates(ids, 0, 1, "x"))
}

// preparedJudge is a PreparedJudge failing the states of failOn; slow's
// judging takes a while, so that the states after it in its window finish
// first; every other takes a few milliseconds. It records the most
// judgings it saw in flight at once, and how many states of slow's
// workload had started when slow finished (beforeSlowEnd).
type preparedJudge struct {
	window int
	failOn map[string]bool
	slow   string
	// holdFor > 0: a judging waits (at most holdWait) until holdFor
	// judgings have been seen in flight at once, so that a window's
	// overlap does not depend on the scheduler (a loaded machine).
	holdFor int
	// slowWaits > 0: slow's judging waits (at most holdWait) until that
	// many states of its workload have started, before it ends.
	slowWaits int
	gaveUp    bool // a wait ran out (waitUntil)
	mu        sync.Mutex
	inFlight  int
	most      int
	per       map[uint64][]string
	// beforeSlowEnd is the states of slow's workload started when slow's
	// judging finished.
	beforeSlowEnd int
}

// holdWait bounds a preparedJudge's waits: a driver that does not
// overlap judgings then fails the test's counts instead of hanging.
const holdWait = 5 * time.Second

// waitUntil polls cond under j.mu until it holds or holdWait passed;
// after one wait in vain it no longer waits (the test fails anyway).
func (j *preparedJudge) waitUntil(cond func() bool) {
	for end := time.Now().Add(holdWait); ; time.Sleep(time.Millisecond) {
		j.mu.Lock()
		ok := cond() || j.gaveUp
		if !ok && time.Now().After(end) {
			j.gaveUp, ok = true, true
		}
		j.mu.Unlock()
		if ok {
			return
		}
	}
}

func (*preparedJudge) Name() string { return "prepared" }

func (*preparedJudge) Budget() int { return 5 }

func (j *preparedJudge) Concurrency() int { return j.window }

func (j *preparedJudge) Judge(ctx context.Context, st *State) (*oracle.Verdict, error) {
	run, err := j.Prepare(ctx, st)
	if err != nil {
		return nil, err
	}
	return run()
}

func (j *preparedJudge) Prepare(_ context.Context, st *State) (func() (*oracle.Verdict, error), error) {
	id, seed := st.ID.String(), st.Rec.Seed
	return func() (*oracle.Verdict, error) {
		j.mu.Lock()
		j.per[seed] = append(j.per[seed], id)
		j.inFlight++
		j.most = max(j.most, j.inFlight)
		j.mu.Unlock()
		j.waitUntil(func() bool { return j.most >= j.holdFor })
		if id == j.slow {
			time.Sleep(50 * time.Millisecond)
			j.waitUntil(func() bool { return len(j.per[seed]) >= j.slowWaits })
			j.mu.Lock()
			j.beforeSlowEnd = len(j.per[seed])
			j.mu.Unlock()
		} else {
			time.Sleep(5 * time.Millisecond) // long enough for the window to overlap
		}
		j.mu.Lock()
		j.inFlight--
		j.mu.Unlock()
		if j.failOn[id] {
			return &oracle.Verdict{Stage: oracle.StageLiveness, Err: fmt.Errorf("prepared judge: planted failure at %s", id)}, nil
		}
		return &oracle.Verdict{}, nil
	}, nil
}

// TestPreparedJudge: a PreparedJudge's sample is judged a window at a time
// (judgings overlap), and the outcome is that of judging one state at a
// time: the same states, and of two failing states of one window the first
// in the sample's order is the failure reported, even when the second
// finishes first.
func TestPreparedJudge(t *testing.T) {
	run := func(window int, failOn map[string]bool, slow string, hold ...int) (*Report, *preparedJudge) {
		j := &preparedJudge{window: window, failOn: failOn, slow: slow, per: map[uint64][]string{}}
		if len(hold) == 2 {
			j.holdFor, j.slowWaits = hold[0], hold[1]
		}
		rep, err := Run(context.Background(), Config{Target: qedtarget.Target{}, Seed: 21, Iterations: 4, Workers: 1,
			Gen: quickGen(), Models: quickModels, Bound: 16, Samples: 4, SampledPoints: 2, Judges: []Judge{j},
			MinimizeTimeout: time.Nanosecond}) // the failure as found
		require.NoError(t, err)
		return rep, j
	}
	rep, one := run(1, nil, "")
	require.Empty(t, rep.Failures)
	require.Equal(t, 1, one.most)
	_, three := run(3, nil, "", 3, 0)
	for _, ids := range three.per {
		slices.Sort(ids) // started in any order within a window
	}
	for _, ids := range one.per {
		slices.Sort(ids)
	}
	require.Equal(t, one.per, three.per, "the same states")
	require.Equal(t, 3, three.most, "a window of 3 judged at once")

	_, one = run(1, nil, "") // in the sample's order
	var seed uint64
	var ids []string
	for s, x := range one.per {
		if len(x) >= 2 && (ids == nil || s < seed) {
			seed, ids = s, x
		}
	}
	require.NotNil(t, ids, "a workload with two sampled states")
	fail := map[string]bool{ids[0]: true, ids[1]: true}
	want, _ := run(1, fail, "")
	got, _ := run(3, fail, ids[0])
	require.NotEmpty(t, want.Failures)
	// The window slides: while the first state is slow, the states after
	// it start as the others of the window finish (a window judged as a
	// batch would start none of them before the slow one ends).
	var most []string
	for _, x := range one.per {
		if len(x) > len(most) {
			most = x
		}
	}
	require.GreaterOrEqual(t, len(most), 4, "a workload with four sampled states")
	_, slid := run(2, nil, most[0], 0, len(most))
	require.Equal(t, len(most), slid.beforeSlowEnd, "states of %v started before the slow one ended", most)
	require.Len(t, got.Failures, len(want.Failures))
	for i := range want.Failures {
		w, g := want.Failures[i], got.Failures[i]
		require.Equal(t, [3]string{fmt.Sprint(w.WorkloadSeed), fmt.Sprint(w.State), w.Message}, [3]string{fmt.Sprint(g.WorkloadSeed), fmt.Sprint(g.State), g.Message})
	}
}

// overlapped is an OverlappedDriver over the in-process driver whose
// recordings take a while (as a process's round trips do); it records
// the most recordings it saw at once.
type overlapped struct {
	Driver
	inFlight int
	mu       sync.Mutex
	now      int
	most     int
}

func (d *overlapped) InFlight() int { return d.inFlight }

func (d *overlapped) Record(ctx context.Context, w *workload.Workload, o RecordOptions) (*Recording, error) {
	d.mu.Lock()
	d.now++
	d.most = max(d.most, d.now)
	d.mu.Unlock()
	time.Sleep(20 * time.Millisecond)
	d.mu.Lock()
	d.now--
	d.mu.Unlock()
	return d.Driver.Record(ctx, w, o)
}

// inProcessJudge is an unbudgeted judge recording the most judgings it
// saw at once.
type inProcessJudge struct {
	mu   sync.Mutex
	now  int
	most int
	n    int
}

func (*inProcessJudge) Name() string { return "in-process" }

func (*inProcessJudge) Budget() int { return -1 }

func (j *inProcessJudge) Judge(context.Context, *State) (*oracle.Verdict, error) {
	j.mu.Lock()
	j.now++
	j.n++
	j.most = max(j.most, j.now)
	j.mu.Unlock()
	time.Sleep(50 * time.Microsecond)
	j.mu.Lock()
	j.now--
	j.mu.Unlock()
	return &oracle.Verdict{}, nil
}

// TestOverlappedDriver: an OverlappedDriver's workloads are InFlight per
// worker (two recordings at once with one worker), while the in-process
// checks stay at Workers at a time (one judging at once), and the
// campaign checks the same workloads and states as with one in flight.
func TestOverlappedDriver(t *testing.T) {
	run := func(inFlight int) (*Report, *overlapped, *inProcessJudge) {
		d := &overlapped{Driver: InProcess(qedtarget.Target{}), inFlight: inFlight}
		j := &inProcessJudge{}
		rep, err := Run(context.Background(), Config{Driver: d, Seed: 23, Iterations: 8, Workers: 1, Gen: quickGen(),
			Models: quickModels, Bound: 16, Samples: 4, SampledPoints: 2, Judges: []Judge{j}})
		require.NoError(t, err)
		return rep, d, j
	}
	one, d1, j1 := run(1)
	two, d2, j2 := run(2)
	require.Equal(t, 1, d1.most)
	require.Equal(t, 2, d2.most, "two workloads recorded at once by one worker")
	require.Equal(t, 1, j2.most, "in-process checks: one worker's at a time")
	require.Positive(t, j1.n)
	require.Equal(t, j1.n, j2.n, "the same states judged")
	require.Equal(t, one.Digest, two.Digest)
	require.Equal(t, one.CrashStates, two.CrashStates)
}
