package campaign

import (
	"slices"

	"github.com/qedtorture/qedtorture/props/workload"
)

// The weights of the op kinds a fault sweep's step is drawn by
// (SweepPlan).
//
// A drawn kind uniformly among the kinds of a workload's steps left the
// rarest steps, each with most error returns of its own, to a few sweeps
// in a thousand: a commit is in one workload in five, beside some ten
// other kinds, so about one sweep in fifty swept one, and a default
// campaign's handful of sweeps reached none of a commit's 20 error
// returns (docs/campaigns.md, "Statement coverage"). The kinds below are
// weighted by what a sweep of them reaches that nothing else does: a
// step that makes many file operations, each the last one before an
// error return of its own, which neither the drawn faults (one operation
// of one step) nor a sweep of a common step reach:
//
//   - the setup: Create's, writeNewImage's and syncDir's returns, and the
//     backing chain's creation (weighing less: every workload has one, and
//     one sweep of it reaches most of them);
//   - a commit: the base's open, growth, writes and flushes, the image's
//     emptying (its table write, syncs and truncation);
//   - a rebase: the new backing file's open and reads, the copy's reads
//     and writes, the header's rewrite and its syncs; a rebase -u: the
//     header's rewrite in place;
//   - a resize: hiding the backing file's tail (reads of the clusters
//     past the old size, their zeroing, the tables' flush);
//   - a hostile op: the repair of a planted image (its tables' rewrite,
//     NEED_CHECK set and cleared, the repair on open) and the refusals'
//     opens. Its image lives in a filesystem of its own, reached by the
//     run's rules through the fault layer's Over (workload.Exec.Private):
//     nothing else in a campaign repairs an image through the fault
//     layer (a crash state's recovery is opened by the judges, without
//     faults).
//
// A write and a write-zeroes weigh 2: their steps hold the allocation's
// and the zeroing's error returns (fillAndWrite, linkAllocLocked,
// zeroInPlace, zeroMarkLocked), which a drawn fault reaches only when one
// of its kind lands at their own operation (none did in a default
// campaign of 150 workloads). Every other kind weighs 1: a read's, a
// flush's, a reopen's error returns are few, and the drawn faults' (a
// drawn fault lands in the step of a common kind most of the time).
var sweepKindWeights = map[string]int{
	workload.Commit.String():       8,
	workload.Rebase.String():       8,
	workload.RebaseUnsafe.String(): 4,
	workload.Resize.String():       4,
	workload.Hostile.String():      4,
	SetupStep:                      2,
	workload.Write.String():        2,
	workload.WriteZeroes.String():  2,
}

// sweepKindWeight is kind's weight in a sweep's draw of its step: 1 for a
// kind not in sweepKindWeights.
func sweepKindWeight(kind string) int {
	if w, ok := sweepKindWeights[kind]; ok {
		return w
	}
	return 1
}

// sweepAlways is the weight from which a kind's step makes a workload
// drawn for a fault sweep whatever SweepChosen says (sweepsAnyway).
const sweepAlways = 8

// firstGroup returns the index of ops' first concurrent group, len(ops)
// without one: only the steps before it are numbered the same in every
// run.
func firstGroup(ops []workload.Op) int {
	if i := slices.IndexFunc(ops, func(op workload.Op) bool { return op.Kind == workload.Concurrent }); i >= 0 {
		return i
	}
	return len(ops)
}

// sweepsAnyway reports whether ops (a workload's steps a sweep may aim
// at) hold a kind of weight sweepAlways or more: a commit or a rebase.
// Such a workload, drawn for a fault, sweeps instead of running its one
// drawn rule: one in five workloads has a commit, so the default share of
// sweeps (a tenth of the workloads with no concurrent group before it)
// left a campaign of 150 workloads with a commit swept in none of them
// (docs/campaigns.md, "Statement coverage").
func sweepsAnyway(ops []workload.Op) bool {
	return slices.ContainsFunc(ops, func(op workload.Op) bool { return sweepKindWeight(op.Kind.String()) >= sweepAlways })
}

// shapeOps returns the guest ops of ops (a workload's steps a sweep may
// aim at) that are the steps of the generator's rare shapes: the
// zero-data shape's write-zeroes (a write, a reopen, a write-zeroes of
// the same range first: GenConfig.ZeroDataChance) and the tail shape's
// grow (a write up to the image's size, a grow, a read from the last
// cluster's start to the new size: GenConfig.TailChance). Their steps
// hold error returns nothing else reaches (the zeroing in place of
// allocated clusters: WriteZeroes, zeroInPlace; the hiding of a backing
// file's tail under a dirty last cluster), but a sweep drew them among a
// workload's other write-zeroes and resizes: seed 1's 450 workloads had
// 53 with the zero-data shape and swept its write-zeroes in none
// (docs/campaigns.md, "Statement coverage"). A drawn fault's workload
// with one sweeps (sweepsShape), and its sweep takes their steps
// (withShapeSteps).
func shapeOps(ops []workload.Op, clusterSize uint32) []int {
	var found []int
	if len(ops) >= 3 && ops[0].Kind == workload.Write && ops[1].Kind == workload.Reopen && ops[2].Kind == workload.WriteZeroes &&
		ops[0].Off == ops[2].Off && ops[0].Len == ops[2].Len && ops[0].Len > 0 {
		found = append(found, 2)
	}
	cs := int64(clusterSize)
	for i := 1; i+1 < len(ops) && cs > 0; i++ {
		wr, gr, rd := ops[i-1], ops[i], ops[i+1]
		if wr.Kind == workload.Write && gr.Kind == workload.Resize && rd.Kind == workload.Read &&
			rd.Off%cs == 0 && rd.Off+rd.Len == gr.Off && wr.Off >= rd.Off && wr.Off+wr.Len < gr.Off && (wr.Off+wr.Len)%cs != 0 {
			found = append(found, i)
		}
	}
	return found
}

// sweepsShape reports whether ops (a workload's steps a sweep may aim
// at) hold a rare shape's step (shapeOps): such a workload, drawn for a
// fault, sweeps instead of running its one drawn rule.
func sweepsShape(ops []workload.Op, clusterSize uint32) bool {
	return len(shapeOps(ops, clusterSize)) > 0
}

// withShapeSteps returns plan (SweepPlan's steps, at most n, of distinct
// kinds) with the steps of shapes (steps, indices of counts and kinds)
// in it: a shape's step that made an operation and is not in plan
// replaces the plan's step of its kind, or, with none, is added while
// plan holds fewer than n, else replaces the plan's step of the lightest
// kind (sweepKindWeight; the last drawn of those) that is no shape's
// step. Deterministic: no draw of its own. Sorted, as SweepPlan's.
func withShapeSteps(plan, shapes []int, counts []uint64, kinds []string, n int) []int {
	plan = slices.Clone(plan)
	for _, s := range shapes {
		if s < 0 || s >= len(counts) || s >= len(kinds) || counts[s] == 0 || slices.Contains(plan, s) {
			continue
		}
		if j := slices.IndexFunc(plan, func(p int) bool { return kinds[p] == kinds[s] }); j >= 0 {
			plan[j] = s
			continue
		}
		if len(plan) < n {
			plan = append(plan, s)
			continue
		}
		j := -1
		for i, p := range plan {
			if slices.Contains(shapes, p) {
				continue
			}
			if j < 0 || sweepKindWeight(kinds[p]) <= sweepKindWeight(kinds[plan[j]]) {
				j = i
			}
		}
		if j >= 0 {
			plan[j] = s
		}
	}
	slices.Sort(plan)
	return plan
}
