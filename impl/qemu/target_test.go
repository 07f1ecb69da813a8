package qemu

import (
	"math/rand/v2"
	"testing"

	"github.com/qedtorture/qedtorture/internal/qemutool"
	"github.com/qedtorture/qedtorture/props/workload"
	"github.com/spf13/afero"
)

// TestTargetExec drives generated workloads through workload.Exec on the
// QEMU target: every read is checked against the model by Exec.
func TestTargetExec(t *testing.T) {
	tool := qemutool.Require(t)
	seed := uint64(7)
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	for i := range 3 {
		w, _ := Adapt(workload.Generate(rng, GenConfig()))
		dir := t.TempDir()
		e, err := workload.NewExec(Target{Tool: tool}, afero.NewOsFs(), dir, w)
		if err != nil {
			t.Fatalf("workload %d: %v\n%s", i, err, w)
		}
		if err := e.RunAll(); err != nil {
			t.Fatalf("workload %d: %v\n%s", i, err, w)
		}
		if err := e.Disk.Close(); err != nil {
			t.Fatalf("workload %d: close: %v", i, err)
		}
	}
}
