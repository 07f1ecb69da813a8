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
//   - A worker takes its workload's estimate from the gate before it
//     runs it and gives it back after; a workload waits while the
//     estimates in flight would exceed three quarters of the budget
//     (gateBudget: the rest is the collector's room, as the budget is
//     also the runtime's soft limit: packed to the budget, 64 MiB-cluster
//     workloads passed 2 GB of RSS with a budget of 1.5 GiB), so big
//     geometries run with fewer workers, small ones with all of them. A
//     workload never waits when nothing else is in flight: one whose
//     estimate exceeds the gate's share but not the budget runs alone.
//   - A drawn workload whose estimate exceeds the budget is not run: it
//     is counted in Report.Skipped, its reason in Report.SkipReasons
//     (alone, the worst of 200 workloads of 64 MiB clusters and 128 MiB
//     images, estimated 2.6 GiB, passed 2 GB of RSS).
//   - Run refuses, before it starts, a configuration whose typical
//     workload of its largest geometry (maxGenMemory) does not fit the
//     budget, with a message naming the geometry, its estimate and the
//     budget; with a workload file, that workload.
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
// maps, plus one, and never more pages than the table has (a wide image
// of small clusters maps more clusters than one table has pages).
func tableMemory(cs, ts, size int64) int64 {
	tb := cs * ts
	if tb <= 64<<10 {
		return tb
	}
	return tb/512 + 4096*min((size+cs-1)/cs+1, tb/4096)
}

// DefaultMemoryBudget is Config.MemoryBudget's default: 1.5 GiB, which
// keeps a campaign with two workers under 2 GB of resident memory.
const DefaultMemoryBudget = 1536 << 20

// memoryBase is the part of a workload's estimate that does not depend
// on its geometry (buffers, the model, the trace's bookkeeping).
const memoryBase = 16 << 20

// WorkloadMemory estimates the peak bytes a workload holds while it is
// run and judged (calibrated on impl/qed with --memprofile's live heap;
// docs/campaigns.md, "Session 10: memory"):
//
//   - eight tables of the image (L1 and L2 tables of the recovery, the
//     reopen and the checker's walk; tableMemory), three of each QED
//     backing file (read-only opens keep only the L2 tables they read);
//   - three times the guest size up to 64 MiB (the judge's durable
//     contents, maxDurableCache, and two read-backs);
//   - a cluster (impl/qed's copy-on-write buffer), two with a backing
//     file;
//   - every byte the workload makes the files hold, once: the recording
//     keeps each write's bytes in its trace and the files' pages point
//     into them (crashsim), so a byte costs what it costs whether it was
//     overwritten since or not. That is each backing file, the writes
//     and write-zeroes (with a backing file, the rest of the first and
//     last clusters of each, filled from it, up to the image's size in
//     all), the setup's copies of backing files (a safe
//     rebase's new backing file, a rebase -u's copy of the one in
//     force) and what a safe rebase or a commit may copy (the guest);
//   - the buffer of the largest request in flight (a concurrent group's
//     requests together; a safe rebase's new backing file, a rebase -u's
//     copy; a commit's base, read back, which the judge also keeps);
//   - the judge's memo of the sector rule (four times the writes, at
//     most model.MaxJudgeMemo).
func WorkloadMemory(w *workload.Workload) int64 {
	g := w.Geometry
	cs := int64(g.ClusterSize)
	n := int64(memoryBase) + 8*tableMemory(cs, int64(g.TableSize), g.Size) + 3*min(g.Size, maxDurableCache) + cs
	if len(g.Backing) > 0 {
		n += cs // copy-on-write from a backing file: impl/qed's buffer and its copy
	}
	inForce := int64(0) // the backing file in force's guest size
	biggest := int64(0) // the largest backing file's (a commit's base)
	for i, b := range g.Backing {
		if b.Format == "qed" {
			n += 3 * tableMemory(int64(b.ClusterSize), int64(b.TableSize), b.Size)
		}
		n += b.Size
		biggest = max(biggest, b.Size)
		if i == 0 {
			inForce = b.Size
		}
	}
	held, writes, peak, fill, size := int64(0), int64(0), int64(0), int64(0), g.Size
	write := func(op workload.Op) {
		held += op.Len
		writes += op.Len
		if len(g.Backing) > 0 && op.Len > 0 {
			// An allocating write fills the rest of its first and last
			// clusters from the backing file, and the trace keeps it.
			fill += (op.Off+op.Len+cs-1)/cs*cs - op.Off/cs*cs - op.Len
		}
	}
	for i, op := range w.Ops {
		if op.Kind == workload.Resize {
			size = max(size, op.Off)
		}
		switch op.Kind {
		case workload.Write, workload.WriteZeroes:
			write(op)
			peak = max(peak, op.Len)
		case workload.Read, workload.ReopenRO:
			peak = max(peak, op.Len)
		case workload.Concurrent:
			group := int64(0)
			for _, o := range op.Group {
				if o.Kind == workload.Write || o.Kind == workload.WriteZeroes {
					write(o)
				}
				group += o.Len
			}
			peak = max(peak, group)
		case workload.Rebase:
			size := w.SizeAt(i)
			// The data the rebase copies into the image: where the
			// backing file in force and the new one may differ.
			held += min(size, inForce+op.Len)
			if op.Len > 0 {
				held += size // the new backing file, made at the setup
				peak = max(peak, size)
				inForce, biggest = size, max(biggest, size)
			} else {
				inForce = 0
			}
		case workload.RebaseUnsafe:
			held += inForce // the copy of the backing file in force
			peak = max(peak, inForce)
		case workload.Commit:
			// The data the commit copies into its base, and the base's
			// contents as the setup made them (the judge keeps them for
			// the workload: commitBaseOf), read back.
			held += w.SizeAt(i) + biggest
			peak = max(peak, 2*biggest) // and the model's copy it is read from
		}
	}
	// A cluster is filled once, when it is allocated: at most the image.
	return n + held + min(fill, size) + peak + min(model.MaxJudgeMemo, 4*writes)
}

// maxGenMemory is the estimate of a typical workload of the largest
// geometry a generator draws, and that geometry (for the refusal
// message): the largest cluster and table sizes with the largest image,
// or a big cluster (GenConfig.BigClusterSizes, one-cluster tables) with
// the requests and image size drawn for the largest ordinary cluster;
// the longest chain; the requests the generator draws on average (each
// op's expected number of writes and write-zeroes, from the weights: a
// concurrent group holds three on average; each one cluster long, as
// workload.Generate's extents are about on average; three of them
// together when groups are drawn), plus a long request when drawn. A
// drawn workload may need more (the gate then runs it alone, under the
// runtime's soft limit); a configuration whose typical workload does
// not fit the budget is refused.
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
		// are 1 byte to 2 clusters, about one on average), as many as
		// the ops draw on average.
		n := expectedRequests(gen)
		w.Ops = make([]workload.Op, 0, n+2)
		if group := min(n, 3); gen.Weights[workload.Concurrent] > 0 && group > 1 {
			op := workload.Op{Kind: workload.Concurrent}
			for range group {
				op.Group = append(op.Group, workload.Op{Kind: workload.Write, Len: int64(cs)})
			}
			w.Ops, n = append(w.Ops, op), n-group
		}
		for range n {
			w.Ops = append(w.Ops, workload.Op{Kind: workload.Write, Len: int64(cs)})
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

// expectedRequests is the number of writes and write-zeroes gen.Ops ops
// draw on average (a concurrent group holds three), rounded up.
func expectedRequests(gen workload.GenConfig) int {
	total, reqs := 0, 0
	for k, wt := range gen.Weights {
		total += wt
		switch k {
		case workload.Write, workload.WriteZeroes:
			reqs += wt
		case workload.Concurrent:
			reqs += 3 * wt
		}
	}
	if total == 0 {
		return 0
	}
	return (gen.Ops*reqs + total - 1) / total
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

// gateBudget is the part of the memory budget the estimates of the
// workloads in flight may take together: three quarters of it.
func gateBudget(budget int64) int64 { return budget / 4 * 3 }

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
