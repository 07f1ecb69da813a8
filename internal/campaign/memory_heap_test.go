package campaign

import (
	"context"
	"runtime"
	"runtime/metrics"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qedtorture/qedtorture/crashsim"
	"github.com/qedtorture/qedtorture/impl/qed/qedtarget"
	"github.com/qedtorture/qedtorture/internal/racetest"
	"github.com/qedtorture/qedtorture/props/workload"
	"github.com/stretchr/testify/require"
)

// TestWorkloadMemoryBoundsHeap: the estimate the memory budget admits
// workloads by (WorkloadMemory) is at least the live heap a workload
// makes while it is recorded and judged, measured (runtime/metrics'
// live heap at each collection, above what was live before): for
// workloads whose bytes dominate (megabyte writes and overwrites, a
// concurrent group, copy-on-write from a backing file, image commands
// that copy files). A formula that forgets what the recording keeps of
// each write, the fill from the backing file or the copies the image
// commands make is under the measured heap and fails here: the budget
// would then not be honoured.
func TestWorkloadMemoryBoundsHeap(t *testing.T) {
	racetest.Heavy(t)
	if testing.Short() {
		t.Skip("records and judges megabyte workloads")
	}
	const mib = 1 << 20
	script := func(s string) *workload.Workload {
		w, err := workload.Parse(strings.NewReader(s))
		require.NoError(t, err)
		return w
	}
	cases := map[string]*workload.Workload{
		// 128 MiB of writes over a 32 MiB image: the recording keeps
		// every byte written, overwritten or not.
		"overwrites": script(`qedtorture-workload v1
image cluster_size=4194304 table_size=16 size=33554432
write 0x0 0x1000000 id=1
write 0x800000 0x1000000 id=2
write 0x1000000 0x1000000 id=3
concurrent 3
  write 0x0 0x1000000 id=4
  write 0x1000000 0x1000000 id=5
  zero 0x400000 0x800000
write 0x10 0xfffff0 id=6
flush
write 0x400000 0x1000000 id=7
write 0x0 0x2000000 id=8
read 0x0 0x2000000
`),
		// Small writes into clusters a 24 MiB backing file fills (the
		// recording keeps whole clusters), a copy of the backing file
		// (rebase -u) and a commit.
		"backing": script(`qedtorture-workload v1
image cluster_size=4194304 table_size=16 size=33554432
backing raw size=25165824 fill=1
write 0x1 0x10 id=2
write 0x400001 0x10 id=3
write 0x800001 0x10 id=4
write 0xc00001 0x10 id=5
write 0x1000001 0x10 id=6
write 0x1400001 0x10 id=7
flush
rebase-unsafe 40
write 0x1800001 0x10 id=8
commit
`),
	}
	for name, w := range cases {
		t.Run(name, func(t *testing.T) {
			est := WorkloadMemory(w)
			sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
			live := func() int64 {
				metrics.Read(sample)
				return int64(sample[0].Value.Uint64())
			}
			cfg := Config{Target: qedtarget.Target{}, Seed: 1, Workload: w, Iterations: 1, Workers: 1,
				Models: []crashsim.Model{{Base: crashsim.Subset}, {Base: crashsim.Torn, Sector: 4096}}, Bound: 8, Samples: 2, SampledPoints: 2,
				MemoryBudget: 4 * est}
			// A first run fills what the process keeps for every
			// workload (the model's memo of pattern bytes, the pools
			// of pages and checkers): not the workload's.
			_, err := Run(context.Background(), cfg)
			require.NoError(t, err)
			runtime.GC()
			runtime.GC()
			before := live()
			var (
				mu   sync.Mutex
				peak int64
			)
			done := make(chan struct{})
			var wg sync.WaitGroup
			wg.Go(func() {
				tick := time.NewTicker(time.Millisecond)
				defer tick.Stop()
				for {
					mu.Lock()
					peak = max(peak, live())
					mu.Unlock()
					select {
					case <-done:
						return
					case <-tick.C:
					}
				}
			})
			rep, err := Run(context.Background(), cfg)
			close(done)
			wg.Wait()
			require.NoError(t, err)
			require.Empty(t, rep.Failures)
			require.Positive(t, rep.CrashStates)
			used := peak - before
			t.Logf("estimate %.1f MiB, live heap at most %.1f MiB above the start", float64(est)/mib, float64(used)/mib)
			// The model's memo of pattern bytes (model/memo.go, 32 MiB)
			// is the process's, shared by its workers: emptied when
			// full, it may grow again during the measured run.
			const memo = 32 << 20
			require.LessOrEqual(t, used, est+memo, "the estimate is under the measured live heap")
		})
	}
}
