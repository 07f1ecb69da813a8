package statemachine

import "testing"

// BenchmarkStateMachineSequence measures the state machine's throughput:
// one op is one sequence of up to 30 commands (crashes with 8 explored
// states per crash and per sync of the crashing op, faults, concurrency)
// on impl/qed; sequences/s = 1e9 / ns/op. Correctness is the tests' job:
// here a failing sequence just ends (counted in failed/seq), so that the
// speed can be measured whatever the state of the implementation.
func BenchmarkStateMachineSequence(b *testing.B) {
	cfg := DefaultConfig()
	cfg.Seed = 42
	cfg.Sequences = b.N
	cfg.Batch = 50
	cfg.Accept = func(*Failure) bool { return false }
	b.ReportAllocs()
	b.ResetTimer()
	res := Check(QEDTarget{}, cfg)
	b.StopTimer()
	if res.Sequences < b.N {
		b.Fatalf("ran %d of %d sequences: %s", res.Sequences, b.N, res.Report())
	}
	b.ReportMetric(float64(res.Commands)/float64(res.Sequences), "cmds/seq")
	b.ReportMetric(float64(res.CrashStates)/float64(res.Sequences), "crashstates/seq")
	b.ReportMetric(float64(res.Rejected)/float64(res.Sequences), "failed/seq")
}
