package campaign

import (
	"slices"

	"github.com/qedtorture/qedtorture/crashsim"
	"github.com/qedtorture/qedtorture/props/workload"
)

// modelRank orders crash models weakest first: drop, prefix, subset, torn
// (512 before 4k), each plain before +garbage before +size.
func modelRank(m crashsim.Model) int {
	r := map[crashsim.Base]int{crashsim.Drop: 0, crashsim.Prefix: 1, crashsim.Subset: 2, crashsim.Torn: 3}[m.Base] * 100
	if m.Sector == 4096 {
		r += 10
	}
	if m.Garbage {
		r += 1
	}
	if m.Size {
		r += 2
	}
	return r
}

// minimize shrinks f deterministically (see the package doc) with at most
// budget workload runs, and returns the smallest failing case found (f
// itself if nothing smaller fails). ck must not count into the campaign's
// counters; its stop function bounds the time (a candidate cut short
// counts as passing, so only an unbounded minimization is deterministic).
func minimize(ck *checker, f *Failure, budget int) *Failure {
	if f.Stage == StageSetup {
		return f
	}
	best := f
	runs := 0
	// Candidates are judged under the failing state's model only (it
	// reproduces the failure, and the others would multiply the cost);
	// the final step below tries every model for the simplest state.
	all := ck.models
	if f.HasState() {
		one := *ck
		one.models = []crashsim.Model{f.State.Model}
		one.onlyJudge = f.Judge
		if f.Judge == NestedJudgeName {
			// A crash during recovery: every candidate's distinct states
			// are recovered and crashed (not a sample), so that a smaller
			// workload that still fails is not missed for a draw.
			one.judges = slices.Clone(one.judges)
			for i, j := range one.judges {
				if nj, ok := j.(*nestedJudge); ok {
					all := *nj
					all.budget = -1
					one.judges[i] = &all
				}
			}
		}
		ck = &one
	}
	if f.Stage == StageDiff {
		// Keep the difference: same kind, same deviating side.
		one := *ck
		one.diffSig = f.Signature("")
		ck = &one
	}
	// try reports whether w still fails with f's stage, and keeps it.
	try := func(w *workload.Workload) bool {
		if runs >= budget || (ck.stop != nil && ck.stop()) || w.Validate() != nil {
			return false
		}
		runs++
		nf, _, err := ck.runWorkload(w, f.WorkloadSeed, f.Stage)
		if err != nil || nf == nil {
			return false
		}
		best = nf
		return true
	}
	dropOps := func() {
		for chunk := max(len(best.W.Ops)/2, 1); chunk >= 1; chunk /= 2 {
			for i := 0; i < len(best.W.Ops); {
				w := best.W.Clone()
				w.Ops = slices.Delete(w.Ops, i, min(i+chunk, len(w.Ops)))
				if !try(w) {
					i += chunk
				}
			}
		}
	}
	dropOps()
	// Concurrent groups run one write after the other (flush; writes;
	// flush): deterministic, and easier to read.
	for i := 0; i < len(best.W.Ops); i++ {
		if best.W.Ops[i].Kind != workload.Concurrent {
			continue
		}
		w := best.W.Clone()
		seq := []workload.Op{{Kind: workload.Flush}}
		seq = append(seq, w.Ops[i].Group...)
		seq = append(seq, workload.Op{Kind: workload.Flush})
		w.Ops = slices.Replace(w.Ops, i, i+1, seq...)
		try(w)
	}
	// The backing chain: drop it, else drop its deepest files.
	for len(best.W.Geometry.Backing) > 0 {
		w := best.W.Clone()
		w.Geometry.Backing = nil
		if try(w) {
			break
		}
		w = best.W.Clone()
		w.Geometry.Backing = w.Geometry.Backing[:len(w.Geometry.Backing)-1]
		if !try(w) {
			break
		}
	}
	dropOps()
	// The simplest crash state of the minimized workload: earliest point
	// (every operation index, not only syncs), weakest model, lowest
	// ordinal.
	if best.HasState() && runs < budget {
		sk := *ck
		sk.allPoints = true
		sk.models = slices.Clone(all)
		slices.SortStableFunc(sk.models, func(a, b crashsim.Model) int { return modelRank(a) - modelRank(b) })
		if nf, _, err := sk.runWorkload(best.W, f.WorkloadSeed, f.Stage); err == nil && nf != nil {
			best = nf
		}
	}
	if best != f {
		best.Original = f.W
		best.Index = f.Index
	}
	return best
}
