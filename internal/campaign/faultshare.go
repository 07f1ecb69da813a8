package campaign

import (
	"context"
	"fmt"
	"hash/fnv"
	"math/rand/v2"

	"github.com/qedtorture/qedtorture/props/workload"
)

// Drawn faults (Config.FaultShare, `run --fault-share P`).
//
// A campaign without --fault runs a share of its workloads with one fault
// rule each, drawn from the workload seed, so a default campaign also
// tests what an implementation does when its file system fails: the error
// paths after every failed write, sync, truncate, read and open, and
// the silent faults no implementation can see (a lost write or sync),
// whose damage the judges locate and excuse (faults.go). Such a workload
// is run and judged exactly as a `--fault` campaign runs and judges every
// workload (the rule is its Faults): the image reopened through the fault
// layer after the setup, an injected error ending the run, the crash
// states up to there and the state after the fault judged, a failure of
// stage workload for an op error nothing injected.
//
// The draw (FaultChosen, DrawnFault), from the workload seed alone:
//
//   - Which workloads: a share P of those whose creation is not recorded
//     (the creation judge runs without faults, CreateShare): P of them,
//     P·(1-CreateShare) of all (0.2 and 0.25 by default: 15 %).
//   - The fault: one kind of DrawnFaultKinds, uniformly.
//   - Where it lands: the n-th operation the rule matches, placed with a
//     dry run of the workload without faults (its operations of the
//     rule's kind counted step by step, no crash state judged: a few
//     milliseconds on the same driver): one step drawn uniformly among
//     the reopen and the guest ops that made such an operation, then one
//     of its operations. So every drawn fault lands inside the run, and
//     the error paths of a rare op (a commit, a rebase, a check) are as
//     likely as a write's.
//
// A workload whose dry run makes no operation of the kind (a truncate
// drawn for a workload that never grows) runs without a fault. The rule
// is a plain faultfs rule ("sync:eio@nth=7"): it is the artifact's faults,
// so `replay` runs the failing workload with the fault as the campaign
// did, and a campaign run again with its seed draws the same rules (the
// dry run's count is the same, but for a workload with concurrent groups,
// whose operations may interleave differently).

// DrawnFaultKinds are the faults drawn (faultfs's "ops:fault"): the
// error faults on every file operation impl/qed makes after the setup,
// and the silent losses of a write, a sync and a truncate.
//
// write:short (a prefix stored, ENOSPC returned) is left out: it tears a
// write inside a sector, which the format's atomic header and table
// updates cannot survive (a short write of the 64-byte header fields,
// then a crash before the implementation's rewrite of the old fields is
// durable, leaves a header half new and half old), like the garbage
// crash models; the judges excuse the silent faults' damage, not that.
// Found by the first campaign with --fault-share 1 (seed 2, workload 80:
// "write:short@nth=2" during a rebase -u).
var DrawnFaultKinds = []string{
	"write:eio", "write:enospc", "write:lost",
	"sync:eio", "sync:lost",
	"truncate:eio", "truncate:enospc", "truncate:lost",
	"read:eio",
	"open:eio",
}

// DefaultFaultShare is cmd/qedtorture's --fault-share default.
const DefaultFaultShare = 0.2

// faultRNG returns the workload seed's generator for the draw named what.
func faultRNG(seed uint64, what string) *rand.Rand {
	h := fnv.New64a()
	h.Write([]byte(what))
	return rand.New(rand.NewPCG(seed, h.Sum64()))
}

// FaultChosen reports whether the workload of seed runs with a drawn
// fault, at share (of the workloads whose creation is not recorded at
// createShare).
func FaultChosen(seed uint64, share, createShare float64) bool {
	if share <= 0 || createChosen(seed, createShare) {
		return false
	}
	return faultRNG(seed, "fault").Float64() < share
}

// DrawnFault returns the rule of a workload chosen by FaultChosen, given
// its run without faults: bounds[i] is the number of operations of the
// drawn kind the run made before its i-th step (0 first; the steps: the
// reopen through the fault layer, then each guest op), the last entry
// their total. The fault lands in one step drawn uniformly among those
// that made such an operation, at one of its operations drawn uniformly:
// a rare op (a commit, a rebase, a check, a reopen) is as likely a place
// as a common one, however few or many operations it makes. "" when the
// run made none.
func DrawnFault(seed uint64, bounds []uint64) string {
	var steps []int
	for i := 0; i+1 < len(bounds); i++ {
		if bounds[i+1] > bounds[i] {
			steps = append(steps, i)
		}
	}
	if len(steps) == 0 {
		return ""
	}
	r := faultRNG(seed, "fault-rule")
	kind := DrawnFaultKinds[r.IntN(len(DrawnFaultKinds))]
	i := steps[r.IntN(len(steps))]
	return fmt.Sprintf("%s@nth=%d", kind, bounds[i]+1+r.Uint64N(bounds[i+1]-bounds[i]))
}

// DrawnFaultKind returns the kind (an entry of DrawnFaultKinds) DrawnFault
// draws for seed.
func DrawnFaultKind(seed uint64) string {
	return DrawnFaultKinds[faultRNG(seed, "fault-rule").IntN(len(DrawnFaultKinds))]
}

// drawFault returns the fault rule the workload w of seed runs with in a
// campaign drawing faults at share (see above): "" for none. The dry run
// counts the operations of the drawn kind through a rule that never
// fires, step by step (Mark.Matched).
func drawFault(ctx context.Context, d Driver, w *workload.Workload, seed uint64, share, createShare float64) (string, error) {
	if !FaultChosen(seed, share, createShare) {
		return "", nil
	}
	kind := DrawnFaultKind(seed)
	w, _ = d.Adapt(w)
	rec, err := d.Record(ctx, w, RecordOptions{Seed: seed, Faults: kind + "@after=" + neverFires})
	if err != nil {
		return "", fmt.Errorf("campaign: dry run counting %s operations: %w", kind, err)
	}
	if len(rec.FaultMatches) != 1 {
		return "", fmt.Errorf("campaign: dry run counting %s operations: driver %s counted no matches", kind, d.Name())
	}
	bounds := []uint64{0}
	for _, m := range rec.Marks {
		bounds = append(bounds, m.Matched)
	}
	return DrawnFault(seed, append(bounds, rec.FaultMatches[0])), nil
}

// neverFires is an "after" count no run reaches: a rule that only counts.
const neverFires = "9223372036854775807"
