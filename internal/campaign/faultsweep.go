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
//     sweep instead of running their one drawn rule, and so does every
//     one drawn for a fault with a commit or a rebase among the steps a
//     sweep may aim at (sweepsAnyway: the rarest steps with the most
//     error returns of their own). In a workload with concurrent groups
//     only the steps before its first group are swept: a group's
//     operations may interleave differently from run to run, so from the
//     group on an operation's number names no fixed operation, while
//     before it every run makes the same operations in the same order (a
//     run whose fault it survives goes on through the groups, as a drawn
//     fault's does).
//   - The fault: SweepFault ("*:eio") on every operation the step makes:
//     an error on any file operation (read, write, sync, truncate, open,
//     create, close, stat, of the image or of a backing file or a commit's
//     base) reaches the error return after it. EIO only: the other error
//     kinds take the same returns, and the silent faults none.
//   - The steps: a dry run with a rule that never fires numbers the
//     operations step by step (as drawFault's; an image command's close
//     and command are one step), and another the setup's; SweepSteps op
//     kinds are drawn one after the other without replacement among the
//     kinds of the steps that made an operation (the setup and the reopen
//     through the fault layer are kinds of their own), each by its weight
//     (sweepweights.go: a commit, a rebase, a resize and the setup weigh
//     more), then one step of each kind: a workload's one commit is more
//     likely than all its writes together, so the rare steps' error
//     returns are reached. The steps are swept in order, one after the
//     other.
//   - The runs: one per operation of a step (`*:eio@nth=N`), at most
//     MaxSweepRuns: past that, the first and last quarter of them and the
//     rest spread evenly between (a step's error returns cluster at its
//     start, its opening reads and checks, and at its end, its syncs and
//     header writes).
//
// Every run is a faulted run judged exactly as a drawn fault's (the
// injected error ends it; its crash states and the state right after the
// fault judged by the oracle's rules for faulted runs). The runs of a
// step differ only from the step on: the operations before it are the
// same in every run (no concurrency before it, the rule's count the
// same), so their crash states are the same states, and they are those
// of the runs of the steps swept before, up to their own step. So the
// first run of the first step judges them from the setup on, the first
// run of each later step from the previous step swept on (the crash
// states up to there judged by that step's first run; from the setup on
// again after a sweep of the setup, whose runs record a creation), and
// the other runs of a step from the step's first crash point
// (checker.sweepFrom). A failure is reported with its run's rule as its
// faults (as its create faults for the setup), so its artifact replays
// it as any faulted run (`replay` judges from the setup on).

// SweepFault is the fault every operation of a swept step gets in turn.
const SweepFault = "*:eio"

// SweepWriteFault is the fault a long step's writes, syncs and
// truncates get, some of them in turn (sweepPositions).
const SweepWriteFault = "write|sync|truncate:eio"

// MaxSweepRuns bounds the runs of one step's sweep.
const MaxSweepRuns = 32

// SweepSteps is the number of steps (of distinct kinds) a swept workload
// sweeps, one after the other.
const SweepSteps = 4

// DefaultFaultSweep is cmd/qedtorture's --fault-sweep default.
const DefaultFaultSweep = 0.3

// RareSweepChosen reports whether the workload of seed, not drawn for a
// fault, sweeps the writes, syncs and truncates of its commit or rebase
// after its usual run, at share sweep (the --fault-sweep share): a
// commit is in one workload in five, but only those drawn for a fault
// (15 %) swept one, so a default campaign of 150 workloads swept one
// commit (docs/campaigns.md, "Statement coverage").
func RareSweepChosen(seed uint64, sweep float64) bool {
	return sweep > 0 && faultRNG(seed, "rare-sweep").Float64() < sweep
}

// SweepChosen reports whether the workload of seed, drawn for a fault
// (FaultChosen), sweeps a step instead, at share sweep.
func SweepChosen(seed uint64, sweep float64) bool {
	return sweep > 0 && faultRNG(seed, "sweep").Float64() < sweep
}

// A sweep is the plan of one workload's fault sweep.
type sweep struct {
	op    int  // the guest op swept (-1: the reopen through the fault layer, or the setup)
	setup bool // the setup is swept: the rules are CreateFaults
	// after: the workload ran as usual first (not drawn for a fault);
	// every run of the sweep is judged from the swept op on.
	after bool
	rules []string // one rule per run, in operation order
}

// SweepPlan returns the steps a sweep of seed aims at, ascending: up to n
// steps of distinct kinds, given each step's count of operations
// (counts[i]) and kind (kinds[i]). The kinds are drawn one after the other
// without replacement among those of the steps that made an operation,
// each by its weight (sweepweights.go), and one step of each kind
// uniformly, or, with writes (each step's writes, syncs and truncates),
// by 1 + its writes: of a kind's steps, those that write most hold most
// error returns of their own (a write-zeroes over allocated clusters
// zeroes them in place, one over unallocated ones writes nothing until
// the next flush; a resize that zeroes a backing file's tail, a hostile
// op that repairs), and a uniform draw among a workload's writes and
// write-zeroes rarely swept one of them (docs/campaigns.md, "Statement
// coverage"). Each step is swept at sweepPositions(counts[step]). None
// when no step made an operation.
func SweepPlan(seed uint64, counts []uint64, kinds []string, n int, writes ...[]uint64) []int {
	var ws []uint64
	if len(writes) > 0 {
		ws = writes[0]
	}
	var byKind []string
	for i := 0; i < len(counts) && i < len(kinds); i++ {
		if counts[i] > 0 && !slices.Contains(byKind, kinds[i]) {
			byKind = append(byKind, kinds[i])
		}
	}
	r := faultRNG(seed, "sweep-step")
	var plan []int
	for ; n > 0 && len(byKind) > 0; n-- {
		total := 0
		for _, k := range byKind {
			total += sweepKindWeight(k)
		}
		j, x := 0, r.IntN(total)
		for ; j < len(byKind)-1; j++ {
			if x -= sweepKindWeight(byKind[j]); x < 0 {
				break
			}
		}
		kind := byKind[j]
		byKind = slices.Delete(byKind, j, j+1)
		var steps []int
		var sum uint64
		for i := 0; i < len(counts) && i < len(kinds); i++ {
			if counts[i] > 0 && kinds[i] == kind {
				steps = append(steps, i)
				sum += stepWeight(ws, i)
			}
		}
		if ws == nil {
			plan = append(plan, steps[r.IntN(len(steps))])
			continue
		}
		y := r.Uint64N(sum)
		for _, i := range steps {
			if w := stepWeight(ws, i); y >= w {
				y -= w
				continue
			}
			plan = append(plan, i)
			break
		}
	}
	slices.Sort(plan)
	return plan
}

// stepWeight is step i's weight among the steps of its kind in
// SweepPlan's draw with writes ws: 1 plus its writes.
func stepWeight(ws []uint64, i int) uint64 {
	if i < len(ws) {
		return 1 + min(ws[i], 1<<32)
	}
	return 1
}

// sweepPositions returns the operations a sweep of a step of n
// operations, nw of them writes, syncs and truncates, fails: all (1 to
// n) up to MaxSweepRuns, and then no writes; else, of all, the first and
// last quarter of MaxSweepRuns and some evenly spread between, and of
// the writes (1 to nw) the rest of the middle half, at most half of it,
// evenly spread over them (all of them when there are that few). The
// middle of a long step is mostly reads (a commit's copy, a rebase's,
// the opening reads of the tables), while most of its error returns
// follow a write, a sync or a truncate (the base's growth and flush, the
// image's emptying, a header's rewrite): spread over all operations
// alone, the middle runs rarely hit one.
func sweepPositions(n, nw uint64) (all, writes []uint64) {
	if n <= MaxSweepRuns {
		for i := uint64(1); i <= n; i++ {
			all = append(all, i)
		}
		return all, nil
	}
	q := uint64(MaxSweepRuns / 4)
	mid := uint64(MaxSweepRuns) - 2*q
	writes = spread(nw, mid/2)
	mid -= uint64(len(writes))
	for i := uint64(1); i <= q; i++ {
		all = append(all, i)
	}
	// mid positions spread over (q, n-q]: strictly between the two ends.
	span := n - 2*q
	for j := uint64(0); j < mid; j++ {
		all = append(all, q+1+j*span/mid)
	}
	for i := n - q + 1; i <= n; i++ {
		all = append(all, i)
	}
	return all, writes
}

// spread returns k of the positions 1 to n evenly spread, ascending (all
// of them when n <= k).
func spread(n, k uint64) []uint64 {
	var ps []uint64
	if n <= k {
		for i := uint64(1); i <= n; i++ {
			ps = append(ps, i)
		}
		return ps
	}
	for j := uint64(0); j < k; j++ {
		ps = append(ps, 1+j*n/k)
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
// and the run's step by step (Mark.Matched). cache, if set, keeps the
// workload's setup bytes for the dry runs and the runs after them
// (RecordOptions.Setup).
func drawSweep(ctx context.Context, d Driver, w *workload.Workload, seed uint64, share, createShare, sweepShare float64, cache *workload.SetupCache) ([]*sweep, error) {
	if sweepShare <= 0 || share <= 0 {
		return nil, nil
	}
	// after: a workload not drawn for a fault, run as usual, then its
	// commit's or rebase's writes swept (RareSweepChosen).
	after := !FaultChosen(seed, share, createShare)
	if after && !RareSweepChosen(seed, sweepShare) {
		return nil, nil
	}
	w, _ = d.Adapt(w)
	// A concurrent group's operations may interleave differently from run
	// to run: only the steps before the first group are numbered the same
	// in every run (the setup, the reopen, the ops before it).
	group := firstGroup(w.Ops)
	if after && !sweepsAnyway(w.Ops[:group]) {
		return nil, nil
	}
	if !after && !SweepChosen(seed, sweepShare) && !sweepsAnyway(w.Ops[:group]) && !sweepsShape(w.Ops[:group], w.Geometry.ClusterSize) {
		return nil, nil
	}
	count := func(o RecordOptions) (*Recording, error) {
		o.Setup = cache
		rec, err := d.Record(ctx, w, o)
		if err != nil {
			return nil, fmt.Errorf("campaign: dry run counting the operations of a fault sweep: %w", err)
		}
		if len(rec.FaultMatches) == 0 {
			return nil, fmt.Errorf("campaign: dry run counting the operations of a fault sweep: driver %s counted no matches", d.Name())
		}
		return rec, nil
	}
	never := SweepFault + "@after=" + neverFires
	setup := &Recording{FaultMatches: []uint64{0}} // not swept after a run
	if !after {
		var err error
		if setup, err = count(RecordOptions{Seed: seed, CreateFaults: never, CreateOver: CreateOverChosen(seed)}); err != nil {
			return nil, err
		}
	}
	// The second rule counts the writes, syncs and truncates (Matched2).
	rec, err := count(RecordOptions{Seed: seed, Faults: never + "; " + SweepWriteFault + "@after=" + neverFires})
	if err != nil {
		return nil, err
	}
	if len(rec.FaultMatches) != 2 {
		return nil, fmt.Errorf("campaign: dry run counting the operations of a fault sweep: driver %s counted no writes", d.Name())
	}
	// Steps: the setup, the reopen through the fault layer (its operations
	// made before the first mark, Op -1), each guest op (from its mark,
	// taken before its I/O, to the next one; an image command to where
	// the command itself returned). counts and bases count every
	// operation, countsW and basesW the writes, syncs and truncates (none
	// for the setup: its sweep spreads over all its operations).
	counts, countsW := []uint64{setup.FaultMatches[0], 0}, []uint64{0, 0}
	kinds, ops, bases, basesW := []string{SetupStep, ReopenStep}, []int{-1, -1}, []uint64{0, 0}, []uint64{0, 0}
	for i, m := range rec.Marks {
		if m.Op < 0 {
			counts[1], countsW[1] = m.Matched, m.Matched2
			continue
		}
		if m.Op >= group {
			break
		}
		next, nextW := rec.FaultMatches[0], rec.FaultMatches[1]
		if i+1 < len(rec.Marks) {
			next, nextW = rec.Marks[i+1].Matched, rec.Marks[i+1].Matched2
		}
		if last := len(ops) - 1; ops[last] == m.Op {
			// An op marked twice (an image command: its close, then the
			// command) is one step.
			counts[last] += next - m.Matched
			countsW[last] += nextW - m.Matched2
			continue
		}
		counts, kinds = append(counts, next-m.Matched), append(kinds, w.Ops[m.Op].Kind.String())
		countsW = append(countsW, nextW-m.Matched2)
		ops, bases, basesW = append(ops, m.Op), append(bases, m.Matched), append(basesW, m.Matched2)
	}
	// An image command's step ends where the command returned: the
	// commit's read-back of its base and the reopen after it make a
	// hundred operations or more, which would take the sweep's last
	// positions away from the command's own tail (the base's growth and
	// flush, the image's emptying).
	for _, c := range rec.CommandEnds {
		if j := slices.Index(ops, c.Op); j >= 2 && c.Op >= 0 {
			counts[j], countsW[j] = c.Matched-bases[j], c.Matched2-basesW[j]
		}
	}
	if after {
		// One step of a kind that always sweeps (a commit, a rebase),
		// drawn as the plan draws it, its writes, syncs and truncates
		// alone.
		rare := slices.Clone(countsW)
		for i := range rare {
			if i < 2 || sweepKindWeight(kinds[i]) < sweepAlways {
				rare[i] = 0
			}
		}
		plan := SweepPlan(seed, rare, kinds, 1)
		if len(plan) == 0 {
			return nil, nil
		}
		sw := &sweep{op: ops[plan[0]], after: true}
		for _, n := range spread(countsW[plan[0]], MaxSweepRuns) {
			sw.rules = append(sw.rules, fmt.Sprintf("%s@nth=%d", SweepWriteFault, basesW[plan[0]]+n))
		}
		return []*sweep{sw}, nil
	}
	var sws []*sweep
	// The rare shapes' steps are always swept (withShapeSteps).
	var shapes []int
	for _, o := range shapeOps(w.Ops[:group], w.Geometry.ClusterSize) {
		if j := slices.Index(ops, o); j >= 2 {
			shapes = append(shapes, j)
		}
	}
	plan := withShapeSteps(SweepPlan(seed, counts, kinds, SweepSteps, countsW), shapes, counts, kinds, SweepSteps)
	for _, step := range plan {
		sw := &sweep{op: ops[step], setup: step == 0}
		all, writes := sweepPositions(counts[step], countsW[step])
		if kinds[step] == workload.Hostile.String() {
			// A hostile op's error returns of its own follow its writes,
			// syncs and truncates (the repair's table writes, NEED_CHECK
			// set and cleared): all of those, and no other, up to
			// MaxSweepRuns (its reads' returns are the opens' and the
			// reads' of every other step).
			all, writes = nil, spread(countsW[step], MaxSweepRuns)
		}
		for _, n := range all {
			sw.rules = append(sw.rules, fmt.Sprintf("%s@nth=%d", SweepFault, bases[step]+n))
		}
		// The writes' runs go before the last quarter's.
		tail := slices.Clone(sw.rules[len(sw.rules)-min(len(sw.rules), MaxSweepRuns/4):])
		if len(writes) == 0 {
			tail = nil
		}
		sw.rules = sw.rules[:len(sw.rules)-len(tail)]
		for _, n := range writes {
			sw.rules = append(sw.rules, fmt.Sprintf("%s@nth=%d", SweepWriteFault, basesW[step]+n))
		}
		sw.rules = append(sw.rules, tail...)
		sws = append(sws, sw)
	}
	return sws, nil
}

// runSweep runs w once per rule of each step of sws (in step order),
// each run judged as a faulted run (runWorkload), and returns the first
// failure, with ck.faults (or ck.createFaults, a sweep of the setup) left
// at its rule (the minimizer and the artifact take it from there). A
// step's first run is judged from the previous step swept on (the first
// step's, or one after a sweep of the setup, whose runs record a creation:
// from the setup on), the others from the swept op on (see above). It
// stops early when the campaign stops. The report counts the workload
// once in Faulted (its first run) and FaultSweeps, each run in
// FaultSweepRuns.
func (ck *checker) runSweep(w *workload.Workload, seed uint64, sws []*sweep) (*Failure, error) {
	defer func() { ck.sweepFrom, ck.sweepRepeat = 0, false }()
	if ck.c != nil {
		ck.c.sweeps.Add(1)
	}
	from, runs := 0, 0 // judged from guest op from on; the runs so far
	if len(sws) > 0 && sws[0].after {
		from = sws[0].op // the usual run judged what comes before it
	}
	for _, sw := range sws {
		for i, rule := range sw.rules {
			if runs > 0 && ck.stop != nil && ck.stop() {
				return nil, nil
			}
			ck.sweepFrom, ck.sweepRepeat = from, runs > 0
			if sw.setup {
				ck.faults, ck.createFaults = "", rule
			} else {
				ck.faults, ck.createFaults = rule, ""
			}
			if i > 0 {
				ck.sweepFrom = max(sw.op, 0)
			}
			f, _, err := ck.runWorkload(w, seed, "")
			runs++
			if ck.c != nil {
				ck.c.sweepRuns.Add(1)
			}
			if err != nil || f != nil {
				return f, err
			}
		}
		if !sw.setup {
			from = max(sw.op, 0)
		}
	}
	return nil, nil
}
