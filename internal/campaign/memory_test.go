package campaign

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/qedtorture/qedtorture/crashsim"
	"github.com/qedtorture/qedtorture/impl/qed/qedtarget"
	"github.com/qedtorture/qedtorture/model"
	"github.com/qedtorture/qedtorture/props/workload"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestMemoryGate: the estimates admitted never exceed the budget while
// more than one workload is in flight; one bigger than the budget runs
// alone; a waiter leaves when its context ends.
func TestMemoryGate(t *testing.T) {
	g := newMemGate(100)
	var wg sync.WaitGroup
	var inFlight, maxUsedSeen atomic.Int64
	for i := range 40 {
		n := int64(10 + (i*37)%60)
		if i == 7 {
			n = 250 // over the budget: admitted alone
		}
		wg.Go(func() {
			assert.True(t, g.acquire(context.Background(), n))
			cur := inFlight.Add(n)
			if cur > 100 {
				assert.Equal(t, n, cur, "a workload over the budget shares the budget")
			}
			for {
				m := maxUsedSeen.Load()
				if cur <= m || maxUsedSeen.CompareAndSwap(m, cur) {
					break
				}
			}
			time.Sleep(time.Millisecond)
			inFlight.Add(-n)
			g.release(n)
		})
	}
	wg.Wait()
	require.Equal(t, int64(250), g.peak, "the oversized workload ran, alone")
	require.Zero(t, g.used)

	require.True(t, g.acquire(context.Background(), 80))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan bool)
	go func() { done <- g.acquire(ctx, 30) }()
	time.Sleep(10 * time.Millisecond)
	cancel()
	require.False(t, <-done, "a waiter whose context ended takes nothing")
	g.release(80)
	require.Zero(t, g.used)
}

// TestMemoryBudgetRefusesGeometry: a geometry whose one workload cannot
// fit the budget is refused before the campaign starts, with a message
// naming it, its estimate and the budget; one that fits runs.
func TestMemoryBudgetRefusesGeometry(t *testing.T) {
	gen := quickGen()
	gen.ClusterSizes, gen.TableSizes, gen.MaxClusters = []uint32{64 << 20}, []uint32{16}, 96
	gen.BackingChance, gen.MaxChain = 0.5, 2 // two 6 GiB backing files
	_, err := Run(context.Background(), Config{Target: qedtarget.Target{}, Seed: 1, Iterations: 1, Gen: gen})
	require.ErrorIs(t, err, ErrConfig)
	for _, s := range []string{"64 MiB clusters", "16-cluster tables", "1 GiB tables", "6 GiB image", "backing chain of 2", "memory budget of 1.5 GiB"} {
		require.Contains(t, err.Error(), s)
	}
	_, err = Run(context.Background(), Config{Target: qedtarget.Target{}, Seed: 1, Iterations: 1, Gen: quickGen(), MemoryBudget: 1 << 20})
	require.ErrorIs(t, err, ErrConfig, "even a small geometry does not fit 1 MiB")
	// A 1 GiB image of 64 MiB clusters over a 2 GiB raw backing file (its
	// contents written whole).
	w := &workload.Workload{Geometry: workload.Geometry{ClusterSize: 64 << 20, TableSize: 16, Size: 1 << 30,
		Backing: []workload.Backing{{Format: "raw", Size: 2 << 30}}}}
	_, err = Run(context.Background(), Config{Target: qedtarget.Target{}, Seed: 1, Workload: w})
	require.ErrorIs(t, err, ErrConfig)
	require.True(t, strings.Contains(err.Error(), "the workload's geometry"), err.Error())
	require.False(t, errors.Is((&Config{Gen: quickGen()}).CheckMemory(), ErrConfig))
}

// TestBigTablesCampaign: a campaign over 4 MiB tables (256 KiB clusters,
// 16-cluster tables: impl/qed makes new tables by extending the file and
// writes only their entries' sectors) passes under the crash models,
// with the size effect, within a small memory budget.
func TestBigTablesCampaign(t *testing.T) {
	seed := testSeed(t)
	gen := quickGen()
	gen.ClusterSizes, gen.TableSizes, gen.MaxClusters, gen.Ops = []uint32{256 << 10}, []uint32{16}, 6, 6
	rep, err := Run(context.Background(), Config{Target: qedtarget.Target{}, Seed: seed, Iterations: 3, Workers: 2, Gen: gen,
		Models: append(quickModels, crashsim.Model{Base: crashsim.Subset, Size: true}), Bound: 16, Samples: 4, SampledPoints: 2,
		MemoryBudget: 320 << 20})
	require.NoError(t, err)
	require.Empty(t, rep.Failures, "%+v", rep.Failures)
	t.Logf("%d crash states, %d skipped: %q", rep.CrashStates, rep.Skipped, rep.SkipReasons)
	// A drawn workload over the budget (a big backing file) is skipped,
	// and says so; the others run.
	require.EqualValues(t, 3, rep.Workloads+rep.Skipped)
	require.Positive(t, rep.Workloads)
	for _, why := range rep.SkipReasons {
		require.Contains(t, why, "more than the memory budget of 320 MiB")
	}
}

// TestWorkloadMemory pins the estimate (memory.go's formula, each term
// computed by hand here): tables held whole up to 64 KiB and in pages
// above (a page index and a page per mapped cluster, plus one), the
// guest size counted up to 64 MiB, each backing file's tables and
// contents, the bytes the requests make the files hold (a concurrent
// group's writes included; with a backing file, the copy-on-write fill
// of their first and last clusters), the setup's copies of backing files
// and what a rebase or a commit copies, the largest request's buffer.
func TestWorkloadMemory(t *testing.T) {
	for _, tc := range []struct {
		cs, ts, size, want int64
	}{
		{4096, 4, 1 << 20, 16 << 10},    // 16 KiB: whole
		{65536, 1, 128 << 20, 64 << 10}, // exactly 64 KiB: whole
		{65536, 2, 1 << 20, 128<<10/512 + 4096*(16+1)},
		{65536, 2, 1<<20 + 1, 128<<10/512 + 4096*(17+1)},
		{65536, 2, 0, 128<<10/512 + 4096},
		// A 128 GiB image of 256 KiB clusters maps more clusters than its
		// 4 MiB tables have pages: at most every page.
		{256 << 10, 16, 128 << 30, 4<<20/512 + 4<<20},
		{256 << 10, 16, 1023 * 256 << 10, 4<<20/512 + 4<<20},
		{256 << 10, 16, 1022 * 256 << 10, 4<<20/512 + 4096*1023},
	} {
		require.Equal(t, tc.want, tableMemory(tc.cs, tc.ts, tc.size), "%+v", tc)
	}
	w := &workload.Workload{
		Geometry: workload.Geometry{ClusterSize: 4096, TableSize: 4, Size: 1 << 20, Backing: []workload.Backing{
			{Format: "qed", ClusterSize: 65536, TableSize: 1, Size: 128 << 10},
			{Format: "raw", Size: 3000},
		}},
		Ops: []workload.Op{
			{Kind: workload.Write, Off: 4095, Len: 100}, // fills 4095 + 3997
			{Kind: workload.WriteZeroes, Off: 8192, Len: 10},
			{Kind: workload.Read, Len: 7},
			{Kind: workload.Flush},
			{Kind: workload.Concurrent, Group: []workload.Op{{Kind: workload.Write, Off: 4096, Len: 4096}, {Kind: workload.WriteZeroes, Off: 100, Len: 3}}},
		},
	}
	image := int64(16<<20) + 8*(16<<10) + 3*(1<<20) + 2*4096
	backing := 3*(64<<10) + (128 << 10) + 3000
	held := 100 + 10 + 4096 + 3
	fill := (4095 + 3997) + (4096 - 10) + 0 + (4096 - 3)
	peak := 4096 + 3 // the group's buffers
	memo := 4 * held // the judge's memo: four times the writes
	require.Equal(t, image+int64(backing)+int64(held+fill+peak+memo), WorkloadMemory(w))
	// The memo is bounded: a 16 MiB write counts 32 MiB, not 64; the
	// fill of a cluster-aligned write is nothing.
	long := &workload.Workload{Geometry: w.Geometry, Ops: []workload.Op{{Kind: workload.Write, Len: 16 << 20}}}
	require.Equal(t, image+int64(backing)+2*(16<<20)+model.MaxJudgeMemo, WorkloadMemory(long))
	// The fill is at most the image (each cluster filled once), and
	// without a backing file there is none.
	many := &workload.Workload{Geometry: w.Geometry}
	for i := range 1000 {
		many.Ops = append(many.Ops, workload.Op{Kind: workload.Write, Off: int64(i), Len: 1})
	}
	require.Equal(t, image+int64(backing)+1000+(1<<20)+1+4*1000, WorkloadMemory(many))
	many.Geometry.Backing = nil
	require.Equal(t, image-4096+1000+1+4*1000, WorkloadMemory(many))
	// Above 64 MiB the guest size counts as 64 MiB.
	big := &workload.Workload{Geometry: workload.Geometry{ClusterSize: 65536, TableSize: 1, Size: 128 << 20}}
	require.Equal(t, int64(16<<20)+8*(64<<10)+3*(64<<20)+65536, WorkloadMemory(big))
	// Image commands: a safe rebase onto a new file (the file, made at
	// the setup, is its buffer too; what it copies is at most the old
	// backing file and the new one's data), a rebase -u (a copy of the
	// backing file in force), a commit (the guest, and its base kept and
	// read back from the model's copy), a rebase onto nothing (the old
	// backing file's data), after a grow.
	cmds := &workload.Workload{Geometry: workload.Geometry{ClusterSize: 65536, TableSize: 1, Size: 1 << 20,
		Backing: []workload.Backing{{Format: "raw", Size: 1000}}},
		Ops: []workload.Op{
			{Kind: workload.RebaseUnsafe, Len: 9},               // 1000
			{Kind: workload.Resize, Off: 2 << 20},               //
			{Kind: workload.Rebase, Off: 512, Len: 4096, ID: 1}, // min(2 MiB, 1000+4096) + 2 MiB, peak 2 MiB
			{Kind: workload.RebaseUnsafe, Len: 9},               // 2 MiB
			{Kind: workload.Commit},                             // 2 MiB + 2 MiB, peak 4 MiB
			{Kind: workload.Rebase},                             // 2 MiB; nothing in force after it
			{Kind: workload.RebaseUnsafe, Len: 9},               // 0
		}}
	base := int64(16<<20) + 8*(64<<10) + 3*(1<<20) + 2*65536 + 1000
	require.Equal(t, base+1000+(1000+4096)+(2<<20)+(2<<20)+(4<<20)+(2<<20)+0+(4<<20), WorkloadMemory(cmds))
}

// TestMaxGenMemory pins the estimate of a typical workload of the
// largest geometry a generator draws and the geometry named with it: the
// largest cluster and table sizes, the image of MaxClusters of them,
// the writes the ops draw on average (from the weights) of one cluster
// each, three of them a group when groups are drawn; a long request, the
// backing chain and the big clusters only when their chance is not 0.
func TestMaxGenMemory(t *testing.T) {
	gen := workload.GenConfig{ClusterSizes: []uint32{4096, 65536}, TableSizes: []uint32{4, 1}, MaxClusters: 10, Ops: 5,
		MaxChain: 2, BigClusterSizes: []uint32{2 << 20}, LongChance: 0,
		Weights: map[workload.Kind]int{workload.Write: 2, workload.Read: 2}}
	require.Equal(t, 3, expectedRequests(gen), "5 ops, half of them writes: 2.5, rounded up")
	// 64 KiB clusters, 4-cluster (256 KiB) tables of a 640 KiB image:
	// each table a 512-byte page index and 10+1 pages.
	table := int64(256<<10/512 + 4096*(10+1))
	memo := int64(4 * 3 * 65536) // the judge's memo: four times the writes
	base := int64(16<<20) + 8*table + 3*(640<<10) + 65536 + 3*65536 + 65536 + memo
	n, what := maxGenMemory(gen)
	require.Equal(t, base, n)
	require.Equal(t, "64 KiB clusters, 4-cluster tables (256 KiB tables), a 640 KiB image, backing chain of 0", what)

	g := gen
	g.Weights = map[workload.Kind]int{workload.Write: 1, workload.Concurrent: 1, workload.Read: 2}
	require.Equal(t, 5, expectedRequests(g), "5 ops: a quarter writes, a quarter groups of three")
	n, _ = maxGenMemory(g)
	require.Equal(t, base+2*65536+2*65536+8*65536, n, "five writes, three of them a group (the buffers of three)")

	g = gen
	g.LongChance = 0.1
	n, _ = maxGenMemory(g)
	require.Equal(t, base-memo+(8<<20)+(8<<20)-65536+model.MaxJudgeMemo, n, "a long request of 8 MiB (the memo then at its bound)")

	g = gen
	g.BackingChance = 0.5
	n, what = maxGenMemory(g)
	require.Equal(t, base+65536+2*(3*table+(640<<10)), n, "two qed backing files like the image, a copy-on-write buffer")
	require.True(t, strings.HasSuffix(what, "backing chain of 2"), what)

	g = gen
	g.BigClusterChance = 0.1
	n, what = maxGenMemory(g)
	// 2 MiB clusters, one-cluster (2 MiB) tables: a 4 KiB page index and
	// 1+1 pages; the image and the requests as for 64 KiB clusters.
	require.Equal(t, int64(16<<20)+8*(2<<20/512+4096*2)+3*(640<<10)+(2<<20)+3*65536+65536+memo, n)
	require.Equal(t, "2 MiB clusters, 1-cluster tables (2 MiB tables), a 640 KiB image, backing chain of 0", what)
	g.BigClusterSizes = []uint32{4096} // smaller than the ordinary worst
	n, what = maxGenMemory(g)
	require.Equal(t, base, n)
	require.True(t, strings.HasPrefix(what, "64 KiB clusters"), what)

	g = gen
	g.MaxClusters = 0 // an image of one cluster at least
	_, what = maxGenMemory(g)
	require.Contains(t, what, "a 64 KiB image")
	g.Weights = nil
	require.Zero(t, expectedRequests(g))
}

// TestCheckMemory: a negative budget refused, 0 the default, an estimate
// of exactly the budget accepted and one byte over refused, naming the
// estimate and the budget; an exhaustive campaign never refused.
func TestCheckMemory(t *testing.T) {
	require.ErrorIs(t, (&Config{MemoryBudget: -1}).CheckMemory(), ErrConfig)
	c := &Config{Gen: quickGen()}
	require.NoError(t, c.CheckMemory())
	require.Equal(t, int64(DefaultMemoryBudget), c.MemoryBudget)

	w := &workload.Workload{Geometry: workload.Geometry{ClusterSize: 4096, TableSize: 4, Size: 1 << 20}}
	need := WorkloadMemory(w)
	require.NoError(t, (&Config{Workload: w, MemoryBudget: need}).CheckMemory())
	err := (&Config{Workload: w, MemoryBudget: need - 1}).CheckMemory()
	require.ErrorIs(t, err, ErrConfig)
	require.Contains(t, err.Error(), "the workload's geometry needs about "+FormatBytes(need)+" per workload, more than the memory budget of "+FormatBytes(need-1))

	gn, _ := maxGenMemory(quickGen())
	require.NoError(t, (&Config{Gen: quickGen(), MemoryBudget: gn}).CheckMemory())
	require.ErrorIs(t, (&Config{Gen: quickGen(), MemoryBudget: gn - 1}).CheckMemory(), ErrConfig)
	require.NoError(t, (&Config{Gen: quickGen(), Exhaustive: workload.NewExhaustive(1), MemoryBudget: 1}).CheckMemory())
}

func TestFormatBytes(t *testing.T) {
	for n, want := range map[int64]string{
		0: "0 B", 1023: "1023 B", 1024: "1 KiB", 1536: "1.5 KiB", 1<<20 - 1: "1024.0 KiB",
		1 << 20: "1 MiB", 3 << 29: "1.5 GiB", 3 << 30: "3 GiB", 5 << 40: "5120 GiB",
	} {
		require.Equal(t, want, FormatBytes(n), "%d", n)
	}
}

// TestMemoryGateBounds: the gate takes three quarters of the budget
// (the rest is the collector's room); an estimate that fills it exactly is
// admitted beside the others; once every workload is released, one over
// the budget is admitted alone again.
func TestMemoryGateBounds(t *testing.T) {
	require.Equal(t, int64(1152<<20), gateBudget(DefaultMemoryBudget), "three quarters of the budget")
	g := newMemGate(100)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.True(t, g.acquire(ctx, 60))
	require.True(t, g.acquire(ctx, 40), "60 + 40 fits a budget of 100")
	g.release(60)
	g.release(40)
	require.True(t, g.acquire(ctx, 250), "nothing in flight: admitted alone")
	require.Equal(t, int64(250), g.peak)
	g.release(250)
	require.Zero(t, g.used)
}

// TestOverBudgetWorkloadsSkipped: a drawn workload whose estimate
// exceeds the memory budget is not run (it is counted in Skipped and
// named in SkipReasons); the others, one estimated at exactly the budget
// included, are run and judged. Without the
// check, the budget is not honoured: such a workload ran alone, over it.
func TestOverBudgetWorkloadsSkipped(t *testing.T) {
	seed := testSeed(t)
	gen := quickGen()
	gen.Ops = 30 // estimates spread with the writes drawn
	typical, _ := maxGenMemory(gen)
	const n = 12
	ests := make([]int64, n)
	for w := range n {
		ests[w] = WorkloadMemory(generate(WorkloadSeed(seed, w), gen))
	}
	sorted := slices.Clone(ests)
	slices.Sort(sorted)
	// About half the workloads over it, and the budget one of the
	// estimates when one of the upper half reaches the typical workload:
	// a workload estimated at exactly the budget is not over it, and runs.
	budget := max(typical, sorted[n/2])
	for _, e := range sorted[n/2:] {
		if e >= typical {
			budget = e
			break
		}
	}
	over := 0
	for _, e := range ests {
		if e > budget {
			over++
		}
	}
	if over == 0 {
		budget = sorted[n-1] - 1
		over = 1
		require.GreaterOrEqual(t, budget, typical, "seed %d: no drawn workload over the typical one", seed)
	}
	rep, err := Run(context.Background(), Config{Target: qedtarget.Target{}, Seed: seed, Iterations: n, Workers: 2, Gen: gen,
		Models: quickModels[:2], Bound: 4, Samples: 2, SampledPoints: 1, MemoryBudget: budget})
	require.NoError(t, err)
	require.Empty(t, rep.Failures)
	require.EqualValues(t, over, rep.Skipped, "seed %d, budget %d, estimates %v", seed, budget, ests)
	require.EqualValues(t, n-over, rep.Workloads)
	require.NotEmpty(t, rep.SkipReasons)
	require.Contains(t, rep.SkipReasons[0], "more than the memory budget of "+FormatBytes(budget))
	t.Logf("%d of %d workloads over a budget of %s, %d crash states judged", over, n, FormatBytes(budget), rep.CrashStates)
}
