package statemachine

import (
	"fmt"
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

// CheckCrashSweep is the systematic complement of the state machine, in
// the manner of CrashMonkey: it runs workload w once (ending with a clean
// close) and, at every file sync it issues, judges the crash states of
// every model in models (all of them up to enum.Bound, else enum.Samples
// sampled ones) with oracle.Judge against the model as of that moment.
// Under subset and torn the states at a sync include those of every
// earlier moment since the previous sync, so this covers every crash
// point of the run for those models. It returns at most maxFailures
// failures (0 = 10) and the number of states judged; a workload error is
// returned as err.
func CheckCrashSweep(t target.Target, w *workload.Workload, models []crashsim.Model, enum crashsim.EnumOptions, oo oracle.Options, maxFailures int) (fails []*CrashSweepFailure, states int, err error) {
	if maxFailures <= 0 {
		maxFailures = 10
	}
	fs := crashsim.New(crashsim.Options{ImplicitDirSync: true, DiscardTrace: true})
	var e *workload.Exec
	if err := protect(func() error {
		var err error
		e, err = workload.NewExec(t, fs, "/w", w)
		return err
	}); err != nil {
		return nil, 0, err
	}
	var snap *model.Disk
	op, syncs := -1, 0
	closing := false // the final close: replayed as a reopen op
	e.Snapshot = func(i int, m *model.Disk) {
		if i != op {
			op, syncs = i, 0
		}
		snap = m
	}
	fs.OnSync(func(p *crashsim.Point) bool {
		syncs++
		if snap == nil || len(fails) >= maxFailures {
			return false
		}
		for _, m := range models {
			for id, sfs := range p.States(m, enum) {
				var v *oracle.Verdict
				if perr := protect(func() error {
					v = oracle.Judge(t, sfs, e.ImagePath(), snap.Clone(), oo)
					return nil
				}); perr != nil {
					v = &oracle.Verdict{Stage: oracle.StageRecovery, Err: perr}
				}
				states++
				if v.OK() {
					continue
				}
				ops := w.Clone().Ops[:min(op+1, len(w.Ops))]
				if closing {
					ops = append(w.Clone().Ops, workload.Op{Kind: workload.Reopen})
				}
				n := len(ops)
				s := &Sequence{W: &workload.Workload{Geometry: w.Geometry, Ops: ops}, Steps: make([]Step, n)}
				if n > 0 {
					c := &CrashSpec{Sync: syncs, Model: m, Choice: id.Ordinal, Sampled: id.Sampled}
					if id.Sampled {
						c.Choice = id.Seed
					}
					s.Steps[n-1].Crash = c
				}
				fails = append(fails, &CrashSweepFailure{Seq: s, ID: id, V: v})
				if len(fails) >= maxFailures {
					return false
				}
			}
		}
		return false
	})
	runErr := protect(func() error {
		if err := e.RunAll(); err != nil {
			return err
		}
		// The final close (write-back, NEED_CHECK clear) is judged too, as
		// part of the last op.
		snap = e.Model.Clone()
		closing, syncs = true, 0
		err := e.Disk.Close()
		e.Disk = nil
		return err
	})
	fs.OnSync(nil)
	return fails, states, runErr
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
