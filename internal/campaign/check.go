package campaign

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sync/atomic"
	"time"

	"github.com/qedtorture/qedtorture/crashsim"
	"github.com/qedtorture/qedtorture/faultfs"
	"github.com/qedtorture/qedtorture/model"
	"github.com/qedtorture/qedtorture/props/oracle"
	"github.com/qedtorture/qedtorture/props/target"
	"github.com/qedtorture/qedtorture/props/workload"
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
	Verdict      *oracle.Verdict   // nil for StageWorkload
	OpErr        *workload.OpError // StageWorkload
	Err          error             // StageSetup
	Rec          *Recording        // the run the failure was found in
	Point        *crashsim.Point   // the crash point (nil for StageWorkload)
	Artifact     string            // directory written, if any
	ArtifactErr  error             // why the artifact could not be written
	Found        time.Duration     // campaign time when it was found
	MinimizeTime time.Duration     // time Minimize took
}

// HasState reports whether the failure is a crash state (not a run error).
func (f *Failure) HasState() bool { return f.Stage != StageWorkload && f.Stage != StageSetup }

// Message is the failure's one-line summary.
func (f *Failure) Message() string {
	if f.Stage == StageSetup {
		return fmt.Sprintf("%s: %v", f.Stage, f.Err)
	}
	if !f.HasState() {
		return fmt.Sprintf("%s: %v", f.Stage, f.OpErr)
	}
	when := fmt.Sprintf("during guest op %d", f.GuestOp)
	switch {
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
	faultEffects                                                      atomic.Int64
	perModel                                                          []atomic.Int64 // by index in Config.Models
}

// checker judges the crash states of recordings.
type checker struct {
	target        target.Target
	models        []crashsim.Model
	enum          crashsim.EnumOptions
	sampledPoints int
	oracle        oracle.Options
	faults        string
	c             *counters   // may be nil
	stop          func() bool // polled between states; nil = never
	allPoints     bool        // every op index, not only syncs + samples (minimization)
	noDedup       bool        // run the oracle on every state, even byte-identical ones
	hasher        *stateHasher
	modelIdx      []int // index of models[i] in the campaign's counters
	// local counts what this checker did (one worker's share).
	local struct{ points, states, oracleRuns int64 }
}

// maxDurableCache bounds the durable contents (oracle.DurableCost) judge() keeps
// in memory to speed up the data check (oracle.Options.Durable).
const maxDurableCache = 64 << 20

// generate returns workload w's workload for a campaign seed.
func generate(seed uint64, gen workload.GenConfig) *workload.Workload {
	return workload.Generate(rand.New(rand.NewPCG(seed, 0x776f726b)), gen) // "work"
}

// runWorkload records w and judges its crash states; it returns the first
// failure (nil if none). stage, when non-empty, restricts failures to that
// stage (minimization keeps the failure kind); other failures then count
// as passes.
func (ck *checker) runWorkload(w *workload.Workload, seed uint64, stage oracle.Stage) (*Failure, *Recording, error) {
	rec, err := Record(ck.target, w, seed, ck.faults)
	if err != nil {
		return nil, nil, err
	}
	if rec.Faulted() && ck.c != nil {
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

// judge enumerates and checks the crash states of rec.
func (ck *checker) judge(rec *Recording, stage oracle.Stage) (*Failure, error) {
	ks := rec.PointKs(ck.sampledPoints)
	seen := map[stateKey]struct{}{}
	var durable *oracle.Durable
	durSnap := -1
	if ck.hasher == nil {
		ck.hasher = newStateHasher()
	}
	if ck.allPoints {
		ks = ks[:0]
		for k := rec.SetupEnd; k <= rec.End.K(); k++ {
			ks = append(ks, k)
		}
	}
	for _, k := range ks {
		p, err := rec.Point(k)
		if err != nil {
			return nil, err
		}
		ck.local.points++
		if ck.c != nil {
			ck.c.points.Add(1)
		}
		base := rec.ModelAt(k)
		snap := rec.SnapIndexAt(k)
		opts := ck.oracle
		if opts.Durable == nil && oracle.DurableCost(base) <= maxDurableCache {
			// Points come in K order, so each snapshot's states are
			// consecutive: keep the last snapshot's durable contents.
			if snap != durSnap {
				if durable, err = oracle.NewDurable(base); err != nil {
					return nil, err
				}
				durSnap = snap
			}
			opts.Durable = durable
		}
		enum := ck.enum
		enum.Seed = rec.Seed ^ uint64(k)*0x9e3779b97f4a7c15
		for mi, m := range ck.models {
			for id := range p.IDs(m, enum) {
				if ck.stop != nil && ck.stop() {
					return nil, nil
				}
				st, err := p.FinalState(id)
				if err != nil {
					return nil, fmt.Errorf("campaign: %s: %w", id, err)
				}
				ck.local.states++
				if ck.c != nil {
					ck.c.states.Add(1)
					ck.c.perModel[ck.modelIdx[mi]].Add(1)
				}
				var key stateKey
				keyed := false
				if !ck.noDedup {
					if key, keyed = ck.hasher.key(p, st, snap); keyed {
						if _, dup := seen[key]; dup {
							st.Release()
							continue // same bytes, same model: same verdict (passed)
						}
					}
				}
				v := oracle.Judge(ck.target, st, ImagePath, base.Clone(), opts)
				st.Release() // the verdict holds no reference to the state's files
				ck.local.oracleRuns++
				if ck.c != nil {
					ck.c.oracleRuns.Add(1)
				}
				if keyed && v.OK() {
					seen[key] = struct{}{}
				}
				if !v.OK() && rec.Faulted() {
					// Within what a silent fault touched, a failure is the
					// fault's direct effect (faults.go); judged again with
					// that damage excused, what remains is a failure.
					var direct bool
					if direct, v, err = ck.directEffect(rec, p, id, k, base, opts, v); err != nil {
						return nil, err
					}
					if direct {
						ck.faultEffect()
						continue
					}
				}
				if !v.OK() && (stage == "" || v.Stage == stage) {
					return &Failure{Index: -1, WorkloadSeed: rec.Seed, W: rec.W, Stage: v.Stage, State: id,
						GuestOp: rec.GuestOpAt(k), Verdict: v, Rec: rec, Point: p}, nil
				}
			}
		}
	}
	return nil, nil
}

func (ck *checker) faultEffect() {
	if ck.c != nil {
		ck.c.faultEffects.Add(1)
	}
}

// directEffect reports whether failing verdict v of crash state id (at
// point k, judged against base) lies within the damage of the silent
// faults injected up to k; if not, it returns the verdict of the state
// judged with that damage excused (the failure outside it).
func (ck *checker) directEffect(rec *Recording, p *crashsim.Point, id crashsim.StateID, k int64, base *model.Disk, opts oracle.Options, v *oracle.Verdict) (bool, *oracle.Verdict, error) {
	injs, ops := rec.silentUpTo(k)
	if injs == nil {
		return false, v, nil
	}
	d := damageOf(injs, ops, rec.W, base.Size(), rec.EndMap, v.Before)
	if d.foundBy(v) {
		return true, v, nil
	}
	if len(d.ranges) == 0 {
		return false, v, nil
	}
	st, err := p.FinalState(id)
	if err != nil {
		return false, v, fmt.Errorf("campaign: %s: %w", id, err)
	}
	m := base.Clone()
	for _, r := range d.ranges {
		m.Excuse(r.Off, r.Len)
	}
	v2 := oracle.Judge(ck.target, st, ImagePath, m, opts)
	st.Release()
	if v2.OK() || d.foundBy(v2) {
		return true, v, nil
	}
	return false, v2, nil
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
