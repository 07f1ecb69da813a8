package campaign

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/qedtorture/qedtorture/crashsim"
	"github.com/qedtorture/qedtorture/impl/qed/qedtarget"
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
	gen.ClusterSizes, gen.TableSizes = []uint32{64 << 20}, []uint32{16}
	_, err := Run(context.Background(), Config{Target: qedtarget.Target{}, Seed: 1, Iterations: 1, Gen: gen})
	require.ErrorIs(t, err, ErrConfig)
	for _, s := range []string{"64 MiB clusters", "16-cluster tables", "1 GiB tables", "memory budget of 1.5 GiB"} {
		require.Contains(t, err.Error(), s)
	}
	_, err = Run(context.Background(), Config{Target: qedtarget.Target{}, Seed: 1, Iterations: 1, Gen: quickGen(), MemoryBudget: 1 << 20})
	require.ErrorIs(t, err, ErrConfig, "even a small geometry does not fit 1 MiB")
	// A 1 GiB image of 64 MiB clusters over a 1 GiB raw backing file (its
	// contents written whole: twice 1 GiB in the estimate).
	w := &workload.Workload{Geometry: workload.Geometry{ClusterSize: 64 << 20, TableSize: 16, Size: 1 << 30,
		Backing: []workload.Backing{{Format: "raw", Size: 1 << 30}}}}
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
		MemoryBudget: 200 << 20})
	require.NoError(t, err)
	require.Empty(t, rep.Failures, "%+v", rep.Failures)
	require.EqualValues(t, 3, rep.Workloads)
	t.Logf("%d crash states", rep.CrashStates)
}
