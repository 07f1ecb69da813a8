package campaign

import (
	"context"
	"fmt"
	"sync"

	"github.com/qedtorture/qedtorture/model"
	"github.com/qedtorture/qedtorture/props/workload"
)

// Memory budget (issue 19, goal 5).
//
// A workload's memory is set by its geometry, not by the campaign: the
// recording holds what the workload wrote, and judging a crash state opens
// the image (its L1 table and a few L2 tables in memory, twice: the
// recovery and the reopen), walks its tables with the independent checker
// and compares the guest's bytes with the model. With 64 MiB clusters and
// 16-cluster tables a table is 1 GiB, so a campaign that runs as many big
// workloads as it has workers runs out of memory.
//
// The engine therefore admits workloads against Config.MemoryBudget:
//
//   - WorkloadMemory estimates the peak bytes one workload holds while it
//     is run and judged (calibrated on impl/qed: a 4 MiB-cluster,
//     16-cluster-table workload without backing holds about 450 MB live,
//     WorkloadMemory says 700 MiB).
//   - A worker takes its workload's estimate from the budget before it
//     runs it and gives it back after; a workload waits while the
//     estimates in flight would exceed the budget (so big geometries run
//     with fewer workers, small ones with all of them). A workload never
//     waits when nothing else is in flight: one whose estimate exceeds
//     the budget alone runs alone.
//   - Run refuses, before it starts, a configuration whose largest
//     geometry (the largest cluster and table sizes drawn, the largest
//     image, the longest backing chain, requests of one cluster) does not
//     fit the budget alone, with a message naming the geometry, its
//     estimate and the budget; with a workload file, that workload.
//
// The command line also sets the Go runtime's soft memory limit to the
// budget (runtime/debug.SetMemoryLimit, unless GOMEMLIMIT is set), so the
// garbage collector returns the short-lived table buffers before the heap
// grows past it.

// tableMemory estimates what one table of an image of size bytes with
// cs-byte clusters and ts-cluster tables holds in memory. Tables of at
// most 64 KiB (impl/qed's maxWholeTable) are held whole. impl/qed holds a
// bigger one in 4 KiB pages, only those with entries (the file's holes
// are not read; the independent checker walks it in chunks and skips
// holes, and crashsim stores no page for a hole): its page index (one
// pointer per 512 entries) and at most one page per cluster the image
// maps, plus one.
func tableMemory(cs, ts, size int64) int64 {
	tb := cs * ts
	if tb <= 64<<10 {
		return tb
	}
	return tb/512 + 4096*((size+cs-1)/cs+1)
}

// DefaultMemoryBudget is Config.MemoryBudget's default: 1.5 GiB, which
// keeps a campaign with two workers under 2 GB of resident memory.
const DefaultMemoryBudget = 1536 << 20

// memoryBase is the part of a workload's estimate that does not depend
// on its geometry (buffers, the model, the trace's bookkeeping).
const memoryBase = 16 << 20

// WorkloadMemory estimates the peak bytes a workload holds while it is
// run and judged: eight tables of the image (L1 and L2 tables of the
// recovery, the reopen and the checker's walk; tableMemory), three of each
// QED backing file (read-only opens keep only the L2 tables they read), twice each
// backing file's contents (written whole when the chain is built), four
// times the guest size up to 64 MiB (the model's durable contents and
// read-back buffers; above, the oracle keeps only the written ranges),
// eight clusters (copy-on-write buffers) and the requests: three times
// each write's length (its data in the trace, the pages it fills, the
// buffers of the write), twice each read's; and the judge's memo of the
// sector rule (four times the writes, at most model.MaxJudgeMemo).
func WorkloadMemory(w *workload.Workload) int64 {
	g := w.Geometry
	cs := int64(g.ClusterSize)
	n := int64(memoryBase) + 8*tableMemory(cs, int64(g.TableSize), g.Size) + 4*min(g.Size, 64<<20) + 8*cs
	for _, b := range g.Backing {
		if b.Format == "qed" {
			n += 3*tableMemory(int64(b.ClusterSize), int64(b.TableSize), b.Size) + 2*int64(b.ClusterSize)
		}
		n += 2 * b.Size
	}
	writes := int64(0)
	var ops func([]workload.Op)
	ops = func(os []workload.Op) {
		for _, op := range os {
			switch op.Kind {
			case workload.Write, workload.WriteZeroes:
				n += 3 * op.Len
				writes += op.Len
			case workload.Read:
				n += 2 * op.Len
			}
			ops(op.Group)
		}
	}
	ops(w.Ops)
	// The judging worker's memo of the sector rule (model.JudgeMemo,
	// kept for one workload): up to four read-backs of each chunk of the
	// pending writes, bounded.
	return n + min(model.MaxJudgeMemo, 4*writes)
}

// maxGenMemory is the largest WorkloadMemory a generator can draw, and
// the geometry that gives it (for the refusal message): the largest
// cluster and table sizes with the largest image, or a big cluster
// (GenConfig.BigClusterSizes, one-cluster tables) with the requests and
// image size drawn for the largest ordinary cluster; the longest chain;
// requests of one cluster each, plus a long request when drawn.
func maxGenMemory(gen workload.GenConfig) (int64, string) {
	var cs, ts, big uint32
	for _, c := range gen.ClusterSizes {
		cs = max(cs, c)
	}
	for _, t := range gen.TableSizes {
		ts = max(ts, t)
	}
	if gen.BigClusterChance > 0 {
		for _, c := range gen.BigClusterSizes {
			big = max(big, c)
		}
	}
	chain := 0
	if gen.BackingChance > 0 {
		chain = gen.MaxChain
	}
	size := max(gen.MaxClusters, 1) * int64(cs)
	worst := func(ics, its uint32) (int64, string) {
		w := &workload.Workload{Geometry: workload.Geometry{ClusterSize: ics, TableSize: its, Size: size}}
		// Requests: writes of one cluster (workload.Generate's extents
		// are 1 byte to 2 clusters, about one on average).
		w.Ops = make([]workload.Op, gen.Ops, gen.Ops+2)
		for i := range w.Ops {
			w.Ops[i] = workload.Op{Kind: workload.Write, Len: int64(cs)}
		}
		// The long requests (each up to 8 MiB): one of LongChance, one of
		// BackedLongChance (an image with a backing file).
		if gen.LongChance > 0 {
			w.Ops = append(w.Ops, workload.Op{Kind: workload.Write, Len: 8 << 20})
		}
		if gen.BackedLongChance > 0 {
			w.Ops = append(w.Ops, workload.Op{Kind: workload.Write, Len: 8 << 20})
		}
		for range chain {
			w.Geometry.Backing = append(w.Geometry.Backing, workload.Backing{Format: "qed", ClusterSize: cs, TableSize: ts, Size: size})
		}
		return WorkloadMemory(w), fmt.Sprintf("%s clusters, %d-cluster tables (%s tables), a %s image, backing chain of %d",
			FormatBytes(int64(ics)), its, FormatBytes(int64(ics)*int64(its)), FormatBytes(size), chain)
	}
	n, what := worst(cs, ts)
	if big > 0 {
		if bn, bwhat := worst(big, 1); bn > n {
			n, what = bn, bwhat
		}
	}
	return n, what
}

// CheckMemory refuses a configuration whose largest workload does not
// fit the memory budget alone (0 becomes DefaultMemoryBudget). Run calls
// it; a command line may call it first, to refuse before it prints
// anything.
func (c *Config) CheckMemory() error {
	if c.MemoryBudget < 0 {
		return fmt.Errorf("%w: negative memory budget", ErrConfig)
	}
	if c.MemoryBudget == 0 {
		c.MemoryBudget = DefaultMemoryBudget
	}
	need, what := int64(0), ""
	switch {
	case c.Workload != nil:
		need, what = WorkloadMemory(c.Workload), "the workload's geometry"
	case c.Exhaustive != nil:
		return nil // small canonical layouts
	default:
		need, what = maxGenMemory(c.Gen)
	}
	if need > c.MemoryBudget {
		return fmt.Errorf("%w: %s needs about %s per workload, more than the memory budget of %s: raise --memory-budget or draw smaller cluster or table sizes",
			ErrConfig, what, FormatBytes(need), FormatBytes(c.MemoryBudget))
	}
	return nil
}

// FormatBytes prints n (a memory size) in the largest binary unit that keeps one decimal.
func FormatBytes(n int64) string {
	for _, u := range []struct {
		shift int
		name  string
	}{{30, "GiB"}, {20, "MiB"}, {10, "KiB"}} {
		if n >= 1<<u.shift {
			if n%(1<<u.shift) == 0 {
				return fmt.Sprintf("%d %s", n>>u.shift, u.name)
			}
			return fmt.Sprintf("%.1f %s", float64(n)/float64(int64(1)<<u.shift), u.name)
		}
	}
	return fmt.Sprintf("%d B", n)
}

// memGate admits workloads while the estimates in flight fit the budget.
type memGate struct {
	mu     sync.Mutex
	cond   sync.Cond
	budget int64
	used   int64
	inUse  int   // workloads admitted
	peak   int64 // largest used seen (tests)
}

func newMemGate(budget int64) *memGate {
	g := &memGate{budget: budget}
	g.cond.L = &g.mu
	return g
}

// acquire waits until n fits beside the workloads in flight (or none is in
// flight) and takes it; false when ctx ended first (nothing taken).
func (g *memGate) acquire(ctx context.Context, n int64) bool {
	stop := context.AfterFunc(ctx, func() {
		g.mu.Lock()
		g.cond.Broadcast()
		g.mu.Unlock()
	})
	defer stop()
	g.mu.Lock()
	defer g.mu.Unlock()
	for g.inUse > 0 && g.used+n > g.budget {
		if ctx.Err() != nil {
			return false
		}
		g.cond.Wait()
	}
	if ctx.Err() != nil {
		return false
	}
	g.used += n
	g.inUse++
	g.peak = max(g.peak, g.used)
	return true
}

// release gives back what acquire took.
func (g *memGate) release(n int64) {
	g.mu.Lock()
	g.used -= n
	g.inUse--
	g.cond.Broadcast()
	g.mu.Unlock()
}
