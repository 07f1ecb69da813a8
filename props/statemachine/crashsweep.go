package statemachine

import (
	"errors"
	"fmt"
	"slices"
	"sort"

	"github.com/qedtorture/qedtorture/crashsim"
	"github.com/qedtorture/qedtorture/model"
	"github.com/qedtorture/qedtorture/props/oracle"
	"github.com/qedtorture/qedtorture/props/target"
	"github.com/qedtorture/qedtorture/props/workload"
)

// CrashSweepFailure is one crash state of a sweep that the oracle rejected,
// with the Sequence that replays it (the workload up to the op, a crash
// directive at the sync where it happened).
type CrashSweepFailure struct {
	Seq *Sequence
	ID  crashsim.StateID
	V   *oracle.Verdict
}

func (f *CrashSweepFailure) Error() string {
	return fmt.Sprintf("crash state %s: %v\nreplay:\n%s", f.ID, f.V, f.Seq)
}

// errRejected is what a crash sweep's check returns for a state the
// oracle rejected (the verdict is kept in the sweep's failure).
var errRejected = errors.New("rejected by the oracle")

// sweepMark is the model a crash during op is judged against from trace
// index k on (op len(w.Ops) is the final close).
type sweepMark struct {
	op int
	k  int64
	m  *model.Disk
}

// CheckCrashSweep is the systematic complement of the state machine, in
// the manner of CrashMonkey: it records workload w once (ending with a
// clean close) with crashsim.Record and judges the crash states of its
// points with crashsim's explorer (Run.Explore): every file sync from the
// first op on and the end of the run, under every model in models (all
// of a point's states up to enum.Bound, else enum.Samples sampled ones,
// seeded with crashsim.PointSeed(enum.Seed, k)), each with oracle.Judge
// against the model of the op in progress. Under subset and torn the
// states at a sync include those of every earlier moment since the
// previous sync, so this covers every crash point of the run for those
// models. It returns at most maxFailures failures (0 = 10) and the number
// of states judged; a workload error is returned as err.
//
// The explorer is the one the campaign engine (internal/campaign) drives
// with its own recordings: the points and states a sweep judges follow
// the same rules. The engine itself is not used: this package is the
// conformance door's (other modules import it, and internal/archtest keeps
// it off internal/campaign), and a sweep needs none of the engine's
// drivers, de-duplication, budgets or artifacts.
func CheckCrashSweep(t target.Target, w *workload.Workload, models []crashsim.Model, enum crashsim.EnumOptions, oo oracle.Options, maxFailures int) (fails []*CrashSweepFailure, states int, err error) {
	if maxFailures <= 0 {
		maxFailures = 10
	}
	var (
		e        *workload.Exec
		setupErr error
		marks    []sweepMark // in k order: Snapshot runs on Exec's goroutine
	)
	run := func(fs *crashsim.FS) error {
		setupErr = protect(func() error {
			var err error
			e, err = workload.NewExec(t, fs, "/w", w)
			return err
		})
		if setupErr != nil {
			return setupErr
		}
		e.Snapshot = func(i int, m *model.Disk) { marks = append(marks, sweepMark{i, fs.Ops(), m}) }
		return protect(func() error {
			if err := e.RunAll(); err != nil {
				return err
			}
			// The final close (write-back, NEED_CHECK clear) is judged
			// too; its failures replay as a reopen op.
			marks = append(marks, sweepMark{len(w.Ops), fs.Ops(), e.Model.Clone()})
			err := e.Disk.Close()
			e.Disk = nil
			return err
		})
	}
	o := crashsim.ExploreOptions{Models: models, Bound: enum.Bound, Samples: enum.Samples, Seed: enum.Seed,
		MaxFailures: maxFailures, FS: crashsim.Options{ImplicitDirSync: true}}
	r, err := crashsim.Record(run, o)
	if err != nil {
		return nil, 0, err
	}
	if setupErr != nil || len(marks) == 0 {
		return nil, 0, r.Err
	}
	// A point at k (just before operation k) is judged against the last
	// mark taken at or before k, as the campaign engine's
	// Recording.MarkAt: just before an op's first file operation (a sync,
	// when the op has nothing to write first) the op before it has
	// returned, its flush acknowledged, so its own snapshot (taken before
	// its I/O, without that flush) would excuse data the flush lost; the
	// op's snapshot adds only its own pending writes. The runner judges
	// the replay's crash at that sync against the same snapshot. The
	// setup's points are not judged.
	r.From = marks[0].k + 1
	syncs := make([]int64, 0, len(r.Syncs))
	for k := range r.Syncs {
		syncs = append(syncs, k)
	}
	slices.Sort(syncs)
	check := func(s crashsim.State) error {
		k := s.Point.K()
		mi := sort.Search(len(marks), func(i int) bool { return marks[i].k > k }) - 1
		mk := marks[max(mi, 0)] // (never -1: From is past the first mark)
		var v *oracle.Verdict
		if perr := protect(func() error {
			v = oracle.Judge(t, s.FS, e.ImagePath(), mk.m.Clone(), oo)
			return nil
		}); perr != nil {
			v = &oracle.Verdict{Stage: oracle.StageRecovery, Err: perr}
		}
		states++
		if v.OK() {
			return nil
		}
		// The replay: the workload up to the op (the close as a reopen),
		// crashing at the op's n-th sync (0: after it, for the end).
		ops := w.Clone().Ops[:min(mk.op+1, len(w.Ops))]
		if mk.op == len(w.Ops) {
			ops = append(ops, workload.Op{Kind: workload.Reopen})
		}
		n := len(ops)
		seq := &Sequence{W: &workload.Workload{Geometry: w.Geometry, Ops: ops}, Steps: make([]Step, n)}
		if n > 0 {
			c := &CrashSpec{Model: s.ID.Model, Choice: s.ID.Ordinal, Sampled: s.ID.Sampled}
			if s.ID.Sampled {
				c.Choice = s.ID.Seed
			}
			if _, ok := r.Syncs[k]; ok {
				// The replay counts every sync of the op (runOp), from
				// its first file operation: the op's first mark (a
				// concurrent group takes two, the second after its
				// first flush), whose sync, if the op starts with one,
				// is the op's first.
				first := mk.k
				for j := mi; j >= 0 && marks[j].op == mk.op; j-- {
					first = marks[j].k
				}
				lo, _ := slices.BinarySearch(syncs, first)
				hi, _ := slices.BinarySearch(syncs, k+1)
				c.Sync = hi - lo
			}
			seq.Steps[n-1].Crash = c
		}
		fails = append(fails, &CrashSweepFailure{Seq: seq, ID: s.ID, V: v})
		return errRejected
	}
	if _, err := r.Explore(o, check); err != nil {
		return fails, states, err
	}
	return fails, states, r.Err
}

// CrashSweeps is the conformance door's crash sweep: CheckCrashSweep on
// every workload of FaultSweepWorkloads (in name order) under every model
// of models, judging at each sync all crash states up to states per model,
// else max(1, states/2) sampled ones seeded with seed. It returns the
// states judged and every problem found, each naming its workload: a run
// that failed by itself, a rejected crash state (at most 5 per workload),
// or a sweep that judged fewer states than one per workload and model.
func CrashSweeps(tg target.Target, models []crashsim.Model, states int, seed uint64, oo oracle.Options) (judged int, problems []error) {
	enum := crashsim.EnumOptions{Bound: uint64(states), Samples: max(1, states/2), Seed: seed}
	workloads := FaultSweepWorkloads()
	names := make([]string, 0, len(workloads))
	for name := range workloads {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		w := workloads[name]
		fails, n, err := CheckCrashSweep(tg, w, models, enum, oo, 5)
		judged += n
		if err != nil {
			problems = append(problems, fmt.Errorf("workload %s: the run itself failed: %w\nworkload:\n%s", name, err, w))
		}
		for _, f := range fails {
			problems = append(problems, fmt.Errorf("workload %s: %w", name, f))
		}
	}
	if judged < len(workloads)*len(models) {
		problems = append(problems, fmt.Errorf("%d crash states judged over %d workloads and %d models: each sync of each workload has at least one per model", judged, len(workloads), len(models)))
	}
	return judged, problems
}
