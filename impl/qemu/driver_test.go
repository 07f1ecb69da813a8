package qemu

import (
	"context"
	"strings"
	"testing"

	"github.com/qedtorture/qedtorture/crashsim"
	"github.com/qedtorture/qedtorture/impl/qed/qedtarget"
	"github.com/qedtorture/qedtorture/internal/campaign"
	"github.com/qedtorture/qedtorture/internal/qemutool"
	"github.com/qedtorture/qedtorture/props/workload"
)

// TestDriverFindsF1: the one engine, driving QEMU, finds finding F1 from
// its reproducer: under the subset model a crash leaves NEED_CHECK clear
// with an L2 entry past the end of the file (found on the raw image by
// the oracle judge, whatever recovers it).
func TestDriverFindsF1(t *testing.T) {
	tool := qemutool.Require(t)
	w, err := workload.Parse(strings.NewReader(needCheckRepro))
	if err != nil {
		t.Fatal(err)
	}
	rep, err := campaign.Run(context.Background(), campaign.Config{
		Driver: &Driver{Tool: tool, Ends: []End{EndClose}, QEMUStates: 4}, Reference: qedtarget.Target{},
		Workload: w, Iterations: 1, Seed: 1, Models: []crashsim.Model{{Base: crashsim.Subset}},
		Bound: 64, Samples: 8, MinimizeCandidates: -1,
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Failures) == 0 || rep.Failures[0].Stage != "structure-before-recovery" {
		t.Fatalf("want F1 (structure-before-recovery), got %+v", rep.Failures)
	}
	t.Logf("%d states, %s", rep.CrashStates, rep.Failures[0].Message)
}
