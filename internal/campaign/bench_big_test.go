package campaign

import (
	"testing"

	"github.com/qedtorture/qedtorture/crashsim"
	"github.com/qedtorture/qedtorture/impl/qed/qedtarget"
	"github.com/qedtorture/qedtorture/props/oracle"
)

// BenchmarkJudgeBig is issue 19 goal 5's measure of judging speed on big
// geometries, on fixed work: the workloads `qedtorture run
// --cluster-sizes 4M --table-sizes 16 --max-clusters 8` draws for
// workload seeds 1 to 6 (the campaign's generator; those whose setup
// fails are left out), recorded once, then every crash state of each
// judged as a campaign worker does (ck.judge: the default models, bound,
// samples and sampled points, deduplication, the durable contents and
// the sector rule's memo). states/cpu-s divides by the process's CPU
// time: compare builds with it, interleaved, on a shared machine.
// Run it with -benchtime 1x (one pass is about 3,000 states).
func BenchmarkJudgeBig(b *testing.B) {
	gen := DefaultGenConfig()
	gen.ClusterSizes, gen.TableSizes, gen.MaxClusters = []uint32{4 << 20}, []uint32{16}, 8
	var recs []*Recording
	for seed := uint64(1); seed <= 6; seed++ {
		rec, err := Record(qedtarget.Target{}, generate(seed, gen), seed, "")
		if err != nil {
			b.Fatal(err)
		}
		if rec.OpErr == nil {
			recs = append(recs, rec)
		}
	}
	if len(recs) == 0 {
		b.Fatal("no workload recorded")
	}
	var states, runs int64
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime(b)
	for b.Loop() {
		for _, rec := range recs {
			ck := inProcessChecker(qedtarget.Target{}, oracle.Options{}, oracle.DefaultModels())
			ck.sampledPoints, ck.enum = DefaultSampledPoints, crashsim.EnumOptions{Bound: DefaultBound, Samples: DefaultSamples}
			f, err := ck.judge(rec, "")
			if err != nil || f != nil {
				b.Fatal(err, f.Message())
			}
			states += ck.local.states
			runs += ck.local.oracleRuns
		}
	}
	b.ReportMetric(float64(len(recs)), "workloads")
	b.ReportMetric(float64(states)/float64(b.N), "states/op")
	b.ReportMetric(float64(runs)/float64(b.N), "oracle-runs/op")
	reportPerCPU(b, float64(states), cpu0, "states/cpu-s")
}
