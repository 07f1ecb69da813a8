package campaign

import (
	"context"
	"fmt"
	"slices"

	"github.com/qedtorture/qedtorture/props/workload"
)

// Fault sweeps (Config.FaultSweep, `run --fault-sweep P`).
//
// A drawn fault (faultshare.go) lands at one operation of one step, so an
// error return of impl/qed is reached only when a fault of its kind lands
// at its own operation: 150 all-faulted workloads reached 36 of the 133
// statements behind a failed file operation (docs/campaigns.md,
// "Statement coverage"). The steps with most of the rest are rare (a
// commit into its base, a rebase's copy, a resize hiding the backing
// file's tail, the repair of a hostile image, the reopen through the fault
// layer), and each makes many operations, each the last one before a
// different error return. A sweep aims at one such step and fails each
// of its operations in turn, one run each, as the conformance door's
// fault sweep (faultfs.SweepRules) fails every operation of a call:
//
//   - Which workloads: a share P of those drawn for a fault (FaultChosen)
//     sweep instead of running their one drawn rule. In a workload with
//     concurrent groups only the steps before its first group are swept:
//     a group's operations may interleave differently from run to run, so
//     from the group on an operation's number names no fixed operation,
//     while before it every run makes the same operations in the same
//     order (a run whose fault it survives goes on through the groups, as
//     a drawn fault's does).
//   - The fault: SweepFault ("*:eio") on every operation the step makes:
//     an error on any file operation (read, write, sync, truncate, open,
//     create, close, stat, of the image or of a backing file or a commit's
//     base) reaches the error return after it. EIO only: the other error
//     kinds take the same returns, and the silent faults none.
//   - The step: a dry run with a rule that never fires numbers the
//     operations step by step (as drawFault's); one op kind is drawn
//     uniformly among the kinds of the steps that made an operation (the
//     reopen through the fault layer is a kind of its own), then one step
//     of that kind: a workload's one commit is as likely as any of its
//     writes together, so the rare steps' error returns are reached.
//   - The runs: one per operation of the step (`*:eio@nth=N`), at most
//     MaxSweepRuns: past that, the first and last quarter of them and the
//     rest spread evenly between (a step's error returns cluster at its
//     start, its opening reads and checks, and at its end, its syncs and
//     header writes).
//
// Every run is a faulted run judged exactly as a drawn fault's (the
// injected error ends it; its crash states and the state right after the
// fault judged by the oracle's rules for faulted runs). The runs differ
// only from the step on: the operations before it are the same in every
// run (no concurrency, the rule's count the same), so their crash states
// are the same states; the first run judges them from the setup on, the
// others from the step's first crash point (checker.sweepFrom). A failure
// is reported with its run's rule as its faults, so its artifact replays
// it as any faulted run (`replay` judges from the setup on).

// SweepFault is the fault every operation of a swept step gets in turn.
const SweepFault = "*:eio"

// MaxSweepRuns bounds the runs of one sweep.
const MaxSweepRuns = 32

// DefaultFaultSweep is cmd/qedtorture's --fault-sweep default.
const DefaultFaultSweep = 0.3

// SweepChosen reports whether the workload of seed, drawn for a fault
// (FaultChosen), sweeps a step instead, at share sweep.
func SweepChosen(seed uint64, sweep float64) bool {
	return sweep > 0 && faultRNG(seed, "sweep").Float64() < sweep
}

// A sweep is the plan of one workload's fault sweep.
type sweep struct {
	op    int      // the guest op swept (-1: the reopen through the fault layer, or the setup)
	setup bool     // the setup is swept: the rules are CreateFaults
	rules []string // one rule per run, in operation order
}

// SweepPlan returns the step a sweep of seed aims at and the operations
// of it each run fails (1 to counts[step], ascending), given each step's
// count of operations (counts[i]) and kind (kinds[i]). ok is false when
// no step made an operation.
func SweepPlan(seed uint64, counts []uint64, kinds []string) (step int, ops []uint64, ok bool) {
	var byKind []string
	for i := 0; i < len(counts) && i < len(kinds); i++ {
		if counts[i] > 0 && !slices.Contains(byKind, kinds[i]) {
			byKind = append(byKind, kinds[i])
		}
	}
	if len(byKind) == 0 {
		return 0, nil, false
	}
	r := faultRNG(seed, "sweep-step")
	kind := byKind[r.IntN(len(byKind))]
	var steps []int
	for i := 0; i < len(counts) && i < len(kinds); i++ {
		if counts[i] > 0 && kinds[i] == kind {
			steps = append(steps, i)
		}
	}
	step = steps[r.IntN(len(steps))]
	return step, sweepPositions(counts[step]), true
}

// sweepPositions returns the operations (1 to n) a sweep of a step of n
// operations fails: all of them up to MaxSweepRuns, else the first and
// last quarter of MaxSweepRuns and the rest evenly spread between.
func sweepPositions(n uint64) []uint64 {
	var ps []uint64
	if n <= MaxSweepRuns {
		for i := uint64(1); i <= n; i++ {
			ps = append(ps, i)
		}
		return ps
	}
	q := uint64(MaxSweepRuns / 4)
	mid := uint64(MaxSweepRuns) - 2*q
	for i := uint64(1); i <= q; i++ {
		ps = append(ps, i)
	}
	// mid positions spread over (q, n-q]: strictly between the two ends.
	span := n - 2*q
	for j := uint64(0); j < mid; j++ {
		ps = append(ps, q+1+j*span/mid)
	}
	for i := n - q + 1; i <= n; i++ {
		ps = append(ps, i)
	}
	return ps
}

// SetupStep is the kind of a sweep's step that is the setup (the
// creation of the backing chain and the image, and the first open:
// faultsetup.go); ReopenStep the reopen through the fault layer after it.
const (
	SetupStep  = "setup"
	ReopenStep = "reopen-faultfs"
)

// drawSweep returns the sweep the workload w of seed runs (nil: none, it
// runs its drawn fault, if any): chosen by FaultChosen and SweepChosen,
// planned with two dry runs counting every operation through a rule that
// never fires: the setup's (its creation recorded, as its sweep runs it),
// and the run's step by step (Mark.Matched).
func drawSweep(ctx context.Context, d Driver, w *workload.Workload, seed uint64, share, createShare, sweepShare float64) (*sweep, error) {
	if !FaultChosen(seed, share, createShare) || !SweepChosen(seed, sweepShare) {
		return nil, nil
	}
	w, _ = d.Adapt(w)
	// A concurrent group's operations may interleave differently from run
	// to run: only the steps before the first group are numbered the same
	// in every run (the setup, the reopen, the ops before it).
	group := slices.IndexFunc(w.Ops, func(op workload.Op) bool { return op.Kind == workload.Concurrent })
	if group < 0 {
		group = len(w.Ops)
	}
	count := func(o RecordOptions) (*Recording, error) {
		rec, err := d.Record(ctx, w, o)
		if err != nil {
			return nil, fmt.Errorf("campaign: dry run counting the operations of a fault sweep: %w", err)
		}
		if len(rec.FaultMatches) != 1 {
			return nil, fmt.Errorf("campaign: dry run counting the operations of a fault sweep: driver %s counted no matches", d.Name())
		}
		return rec, nil
	}
	never := SweepFault + "@after=" + neverFires
	setup, err := count(RecordOptions{Seed: seed, CreateFaults: never, CreateOver: CreateOverChosen(seed)})
	if err != nil {
		return nil, err
	}
	rec, err := count(RecordOptions{Seed: seed, Faults: never})
	if err != nil {
		return nil, err
	}
	// Steps: the setup, the reopen through the fault layer (its operations
	// made before the first mark, Op -1), each guest op (from its mark,
	// taken before its I/O, to the next one).
	counts := []uint64{setup.FaultMatches[0], 0}
	kinds, ops, bases := []string{SetupStep, ReopenStep}, []int{-1, -1}, []uint64{0, 0}
	for i, m := range rec.Marks {
		if m.Op < 0 {
			counts[1] = m.Matched
			continue
		}
		if m.Op >= group {
			break
		}
		next := rec.FaultMatches[0]
		if i+1 < len(rec.Marks) {
			next = rec.Marks[i+1].Matched
		}
		counts, kinds = append(counts, next-m.Matched), append(kinds, w.Ops[m.Op].Kind.String())
		ops, bases = append(ops, m.Op), append(bases, m.Matched)
	}
	step, nths, ok := SweepPlan(seed, counts, kinds)
	if !ok {
		return nil, nil
	}
	sw := &sweep{op: ops[step], setup: step == 0}
	for _, n := range nths {
		sw.rules = append(sw.rules, fmt.Sprintf("%s@nth=%d", SweepFault, bases[step]+n))
	}
	return sw, nil
}

// runSweep runs w once per rule of sw, each run judged as a faulted run
// (runWorkload), and returns the first failure, with ck.faults left at its
// rule (the minimizer and the artifact take it from there). The first run
// is judged from the setup on, the others from the swept op on (see
// above). It stops early when the campaign stops. The report counts the
// workload once in Faulted (its first run), each run in FaultSweepRuns.
func (ck *checker) runSweep(w *workload.Workload, seed uint64, sw *sweep) (*Failure, error) {
	defer func() { ck.sweepFrom, ck.sweepRepeat = 0, false }()
	if ck.c != nil {
		ck.c.sweeps.Add(1)
	}
	for i, rule := range sw.rules {
		if i > 0 && ck.stop != nil && ck.stop() {
			return nil, nil
		}
		ck.sweepFrom, ck.sweepRepeat = 0, i > 0
		if sw.setup {
			ck.createFaults = rule
		} else {
			ck.faults = rule
		}
		if i > 0 {
			ck.sweepFrom = max(sw.op, 0)
		}
		f, _, err := ck.runWorkload(w, seed, "")
		if ck.c != nil {
			ck.c.sweepRuns.Add(1)
		}
		if err != nil || f != nil {
			return f, err
		}
	}
	return nil, nil
}
