package props

import (
	"fmt"

	"github.com/qedtorture/qedtorture/crashsim"
	"github.com/qedtorture/qedtorture/model"
	"github.com/qedtorture/qedtorture/props/workload"
)

// CrashSweepFailure is one crash state of a sweep that the oracle rejected,
// with the Sequence that replays it (the workload up to the op, a crash
// directive at the sync where it happened).
type CrashSweepFailure struct {
	Seq *Sequence
	ID  crashsim.StateID
	V   *Verdict
}

func (f *CrashSweepFailure) Error() string {
	return fmt.Sprintf("crash state %s: %v\nreplay:\n%s", f.ID, f.V, f.Seq)
}

// CheckCrashSweep is the systematic complement of the state machine, in
// the manner of CrashMonkey: it runs workload w once (ending with a clean
// close) and, at every file sync it issues, judges the crash states of
// every model in models (all of them up to enum.Bound, else enum.Samples
// sampled ones) with CheckCrashState against the model as of that moment.
// Under subset and torn the states at a sync include those of every
// earlier moment since the previous sync, so this covers every crash
// point of the run for those models. It returns at most maxFailures
// failures (0 = 10) and the number of states judged; a workload error is
// returned as err.
func CheckCrashSweep(t Target, w *workload.Workload, models []crashsim.Model, enum crashsim.EnumOptions, oracle OracleOptions, maxFailures int) (fails []*CrashSweepFailure, states int, err error) {
	if maxFailures <= 0 {
		maxFailures = 10
	}
	fs := crashsim.New(crashsim.Options{ImplicitDirSync: true, DiscardTrace: true})
	var e *Exec
	if err := protect(func() error {
		var err error
		e, err = NewExec(t, fs, "/w", w)
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
				var v *Verdict
				if perr := protect(func() error {
					v = CheckCrashState(t, sfs, e.ImagePath(), snap.Clone(), oracle)
					return nil
				}); perr != nil {
					v = &Verdict{Stage: StageRecovery, Err: perr}
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
