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

// TestDriverRecordsItsRecovery: with crashes during recovery, QEMU's own
// recovery of its crash states is recorded through blklogwrites
// (Driver.RecordRecovery) and its crash states judged at depth 2. The
// workload allocates nothing after its flush, and its recovery writes one
// sector into an allocated cluster: QEMU's recovery passes (no F1: it
// allocates nothing).
func TestDriverRecordsItsRecovery(t *testing.T) {
	tool := qemutool.Require(t)
	w, err := workload.Parse(strings.NewReader("qedtorture-workload v1\nimage cluster_size=65536 table_size=4 size=1048576\n" +
		"write 0x0 0x10000 id=1\nflush\nwrite 0x200 0x200 id=2\n"))
	if err != nil {
		t.Fatal(err)
	}
	rep, err := campaign.Run(context.Background(), campaign.Config{
		Driver: &Driver{Tool: tool, Ends: []End{EndClose}, QEMUStates: 0}, Reference: qedtarget.Target{},
		Workload: w, Iterations: 1, Seed: 1, Models: []crashsim.Model{{Base: crashsim.Prefix}, {Base: crashsim.Subset}},
		Bound: 64, Samples: 8, MinimizeCandidates: -1, NestedDepth: 2, NestedStates: 2,
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Failures) > 0 {
		t.Fatalf("%s: %s", rep.Failures[0].Signature, rep.Failures[0].Message)
	}
	if rep.Judged[campaign.NestedJudgeName] == 0 || rep.NestedStates == 0 {
		t.Fatalf("no recovery recorded: judged %v, nested states %d", rep.Judged, rep.NestedStates)
	}
	t.Logf("%d states, %d recovered by QEMU through blklogwrites, %d crash states of those recoveries", rep.CrashStates, rep.Judged[campaign.NestedJudgeName], rep.NestedStates)
}
