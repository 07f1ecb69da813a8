package props

import "testing"

// BenchmarkStateMachineSequence measures the state machine's throughput:
// one op is one sequence of up to 30 commands (crashes with 8 explored
// states, faults, concurrency) on impl/qed. Report sequences/s = 1e9/ns/op.
func BenchmarkStateMachineSequence(b *testing.B) {
	cfg := DefaultStateMachineConfig()
	cfg.Seed = 42
	cfg.Sequences = b.N
	cfg.Batch = 50
	b.ReportAllocs()
	b.ResetTimer()
	res := CheckStateMachine(QEDTarget{}, cfg)
	b.StopTimer()
	if !res.Passed() {
		b.Fatal(res.Report())
	}
	b.ReportMetric(float64(res.Commands)/float64(res.Sequences), "cmds/seq")
	b.ReportMetric(float64(res.CrashStates)/float64(res.Sequences), "crashstates/seq")
}
