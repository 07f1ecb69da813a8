package campaign

import (
	"fmt"
	"testing"
	"time"

	"github.com/qedtorture/qedtorture/crashsim"
	"github.com/qedtorture/qedtorture/impl/qed/qedtarget"
	"github.com/qedtorture/qedtorture/props/oracle"
	"github.com/qedtorture/qedtorture/props/workload"
)

// benchWorkload: nWrites cluster-sized writes spread over the image, a
// flush every flushEvery writes (the unsynced writes at a crash point).
func benchWorkload(cluster uint32, size int64, nWrites, flushEvery int) *workload.Workload {
	w := &workload.Workload{Geometry: workload.Geometry{ClusterSize: cluster, TableSize: 4, Size: size}}
	stride := size / int64(nWrites+1)
	stride -= stride % int64(cluster)
	for i := range nWrites {
		w.Ops = append(w.Ops, workload.Op{Kind: workload.Write, Off: int64(i) * stride, Len: int64(cluster), ID: uint32(i + 1)})
		if (i+1)%flushEvery == 0 {
			w.Ops = append(w.Ops, workload.Op{Kind: workload.Flush})
		}
	}
	return w
}

// reportPerCPU reports n per CPU second of the process (user+system)
// since cpu0 (from cpuTime): the per-core rate even when other processes
// share the cores. Nothing is reported where CPU time is not available.
func reportPerCPU(b *testing.B, n float64, cpu0 time.Duration, unit string) {
	if used := cpuTime(b) - cpu0; cpu0 >= 0 && used > 0 {
		b.ReportMetric(n/used.Seconds(), unit)
	}
}

type benchState struct {
	p  *crashsim.Point
	id crashsim.StateID
	k  int64
}

// benchStates records w and lists the states of its crash points under
// the subset and torn4k models (bounded).
func benchStates(b *testing.B, w *workload.Workload) (*Recording, []benchState) {
	rec, err := Record(qedtarget.Target{}, w, 1, "")
	if err != nil || rec.OpErr != nil {
		b.Fatal(err, rec.OpErr)
	}
	var out []benchState
	for _, k := range rec.PointKs(8) {
		p, err := rec.Point(k)
		if err != nil {
			b.Fatal(err)
		}
		for _, m := range []crashsim.Model{{Base: crashsim.Subset}, {Base: crashsim.Torn, Sector: 4096}} {
			for id := range p.IDs(m, crashsim.EnumOptions{Bound: 64, Samples: 16, Seed: 1}) {
				out = append(out, benchState{p, id, k})
			}
		}
	}
	return rec, out
}

// BenchmarkCrashStates measures crash states judged per second on one
// core: build the state, run the whole oracle (structure before, recovery,
// size, data, structure after, liveness).
func BenchmarkCrashStates(b *testing.B) {
	cases := []struct {
		name    string
		cluster uint32
		size    int64
		writes  int
	}{
		{"4k-1MiB", 4096, 1 << 20, 16},
		{"4k-16MiB", 4096, 16 << 20, 16},
		{"64k-1GiB", 65536, 1 << 30, 16},
	}
	for _, c := range cases {
		// unsynced: the writes between flushes (1 = every write flushed,
		// 16 = none until the end), i.e. the pending writes at a crash
		// point: how the cost grows with them and with the image size.
		for _, unsynced := range []int{1, 2, 8, 16} {
			b.Run(fmt.Sprintf("%s/unsynced=%d", c.name, unsynced), func(b *testing.B) {
				rec, states := benchStates(b, benchWorkload(c.cluster, c.size, c.writes, unsynced))
				durables := map[int64]*oracle.Durable{}
				for _, s := range states {
					if durables[s.k] == nil && oracle.DurableCost(rec.ModelAt(s.k)) <= maxDurableCache {
						d, err := oracle.NewDurable(rec.ModelAt(s.k))
						if err != nil {
							b.Fatal(err)
						}
						durables[s.k] = d
					}
				}
				b.ReportAllocs()
				b.ResetTimer()
				cpu0 := cpuTime(b)
				for i := 0; b.Loop(); i++ {
					s := states[i%len(states)]
					st, err := s.p.FinalState(s.id)
					if err != nil {
						b.Fatal(err)
					}
					v := oracle.Judge(qedtarget.Target{}, st, ImagePath, rec.ModelAt(s.k).Clone(), oracle.Options{Durable: durables[s.k]})
					st.Release()
					if !v.OK() {
						b.Fatalf("%s: %v", s.id, v)
					}
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "states/s")
				reportPerCPU(b, float64(b.N), cpu0, "states/cpu-s")
			})
		}
	}
}

// BenchmarkJudge measures what a campaign worker does per workload after
// the run: enumerate the default models' states at every crash point and
// judge them, with the durable-contents cache and deduplication of
// byte-identical states. states/s counts every state; oracle-runs/s the
// oracle calls.
func BenchmarkJudge(b *testing.B) {
	for _, c := range []struct {
		name    string
		cluster uint32
		size    int64
	}{{"4k-1MiB", 4096, 1 << 20}, {"64k-1GiB", 65536, 1 << 30}} {
		b.Run(c.name, func(b *testing.B) {
			rec, err := Record(qedtarget.Target{}, benchWorkload(c.cluster, c.size, 16, 4), 1, "")
			if err != nil || rec.OpErr != nil {
				b.Fatal(err, rec.OpErr)
			}
			var states, runs int64
			b.ReportAllocs()
			cpu0 := cpuTime(b)
			for b.Loop() {
				ck := inProcessChecker(qedtarget.Target{}, oracle.Options{}, oracle.DefaultModels())
				ck.sampledPoints, ck.enum = DefaultSampledPoints, crashsim.EnumOptions{Bound: DefaultBound, Samples: DefaultSamples}
				f, err := ck.judge(rec, "")
				if err != nil || f != nil {
					b.Fatal(err, f.Message())
				}
				states += ck.local.states
				runs += ck.local.oracleRuns
			}
			b.ReportMetric(float64(states)/b.Elapsed().Seconds(), "states/s")
			reportPerCPU(b, float64(states), cpu0, "states/cpu-s")
			b.ReportMetric(float64(runs)/b.Elapsed().Seconds(), "oracle-runs/s")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(states), "ns/state")
		})
	}
}
