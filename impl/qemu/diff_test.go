package qemu

import (
	"context"
	"math/rand/v2"
	"testing"

	"github.com/qedtorture/qedtorture/impl/qed/qedtarget"
	"github.com/qedtorture/qedtorture/internal/campaign"
	"github.com/qedtorture/qedtorture/internal/qemutool"
	"github.com/qedtorture/qedtorture/props/workload"
)

// TestDiff: generated workloads run on QEMU (the driver as a
// campaign.Runner) and on impl/qed without crashes give the same guest
// data and clean check reports (leak counts may differ by design).
func TestDiff(t *testing.T) {
	tool := qemutool.Require(t)
	seed := uint64(3)
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	d := &Driver{Tool: tool}
	ref := campaign.InProcess(qedtarget.Target{})
	for i := range 4 {
		w := workload.Generate(rng, GenConfig())
		res, err := campaign.RunDiff(context.Background(), d, ref, qedtarget.Target{}, qedtarget.Target{}, w, seed)
		if err != nil {
			t.Fatalf("workload %d: %v", i, err)
		}
		for _, x := range res.Failing() {
			t.Errorf("workload %d: %s\n%s", i, x.Text("qemu", "impl/qed"), res.W)
		}
	}
}
