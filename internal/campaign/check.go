package campaign

import (
	"fmt"
	"math/rand/v2"
	"sync/atomic"

	"github.com/qedtorture/qedtorture/crashsim"
	"github.com/qedtorture/qedtorture/internal/workload"
	"github.com/qedtorture/qedtorture/props"
)

// StageWorkload is the stage of a failure of the crash-free run itself: a
// guest operation failed (a read disagreed with the model, a check found
// corruption, an I/O error) with no fault injected to explain it.
const StageWorkload props.Stage = "workload"

// Failure is a failing case: a workload and, unless Stage is
// StageWorkload, the crash state the oracle rejected.
type Failure struct {
	Index        int    // workload index in the campaign (-1 when unknown)
	WorkloadSeed uint64 // seed of the workload's generation and sampling
	W            *workload.Workload
	Original     *workload.Workload // before minimization (nil if not minimized)
	Stage        props.Stage
	State        crashsim.StateID // zero for StageWorkload
	GuestOp      int              // guest op in progress at the crash (or the failed op)
	Verdict      *props.Verdict   // nil for StageWorkload
	OpErr        *props.OpError   // StageWorkload
	Rec          *Recording       // the run the failure was found in
	Point        *crashsim.Point  // the crash point (nil for StageWorkload)
	Artifact     string           // directory written, if any
}

// HasState reports whether the failure is a crash state (not a run error).
func (f *Failure) HasState() bool { return f.Stage != StageWorkload }

// Message is the failure's one-line summary.
func (f *Failure) Message() string {
	if !f.HasState() {
		return fmt.Sprintf("%s: %v", f.Stage, f.OpErr)
	}
	return fmt.Sprintf("%s at %s (guest op %d in progress): %v", f.Stage, f.State, f.GuestOp, f.Verdict.Err)
}

// counters are the campaign's live totals, shared by the workers.
type counters struct {
	workloads, points, states, failures, skipped atomic.Int64
	perModel                                     []atomic.Int64 // by index in Config.Models
}

// checker judges the crash states of recordings.
type checker struct {
	target        props.Target
	models        []crashsim.Model
	enum          crashsim.EnumOptions
	sampledPoints int
	oracle        props.OracleOptions
	faults        string
	c             *counters  // may be nil
	stop          func() bool // polled between states; nil = never
	allPoints     bool        // every op index, not only syncs + samples (minimization)
	modelIdx      []int       // index of models[i] in the campaign's counters
}

// generate returns workload w's workload for a campaign seed.
func generate(seed uint64, gen workload.GenConfig) *workload.Workload {
	return workload.Generate(rand.New(rand.NewPCG(seed, 0x776f726b)), gen) // "work"
}

// runWorkload records w and judges its crash states; it returns the first
// failure (nil if none). stage, when non-empty, restricts failures to that
// stage (minimization keeps the failure kind); other failures then count
// as passes.
func (ck *checker) runWorkload(w *workload.Workload, seed uint64, stage props.Stage) (*Failure, *Recording, error) {
	rec, err := Record(ck.target, w, seed, ck.faults)
	if err != nil {
		return nil, nil, err
	}
	if rec.OpErr != nil && !rec.Faulted() {
		if stage == "" || stage == StageWorkload {
			return &Failure{Index: -1, WorkloadSeed: seed, W: w, Stage: StageWorkload, GuestOp: rec.OpErr.Index, OpErr: rec.OpErr, Rec: rec}, rec, nil
		}
		return nil, rec, nil
	}
	if stage == StageWorkload {
		return nil, rec, nil
	}
	f, err := ck.judge(rec, stage)
	return f, rec, err
}

// judge enumerates and checks the crash states of rec.
func (ck *checker) judge(rec *Recording, stage props.Stage) (*Failure, error) {
	ks := rec.PointKs(ck.sampledPoints)
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
		if ck.c != nil {
			ck.c.points.Add(1)
		}
		base := rec.ModelAt(k)
		enum := ck.enum
		enum.Seed = rec.Seed ^ uint64(k)*0x9e3779b97f4a7c15
		for mi, m := range ck.models {
			for id := range p.IDs(m, enum) {
				if ck.stop != nil && ck.stop() {
					return nil, nil
				}
				st, err := p.State(id)
				if err != nil {
					return nil, fmt.Errorf("campaign: %s: %w", id, err)
				}
				v := props.CheckCrashState(ck.target, st, ImagePath, base.Clone(), ck.oracle)
				if ck.c != nil {
					ck.c.states.Add(1)
					ck.c.perModel[ck.modelIdx[mi]].Add(1)
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
