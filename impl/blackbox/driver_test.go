package blackbox

import (
	"context"
	"testing"
	"time"

	"github.com/qedtorture/qedtorture/impl/qed/qedtarget"
	"github.com/qedtorture/qedtorture/internal/campaign"
)

// campaignOver runs a small seeded campaign over exec:COMMAND and returns
// its report.
func campaignOver(t *testing.T, command string, iterations int) *campaign.Report {
	t.Helper()
	d, err := New(command, qedtarget.Target{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := campaign.Config{Driver: d, Reference: qedtarget.Target{}, Seed: 1, Iterations: iterations, Workers: 1, MaxFailures: 1, MinimizeTimeout: 20 * time.Second}
	rep, err := campaign.Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// TestExecCampaign: `qedtorture io` (impl/qed behind the qemu-io language,
// recorded by its system calls) runs clean, and its variant that drops
// every fsync is caught.
func TestExecCampaign(t *testing.T) {
	requireStrace(t)
	bin := qedtortureBin(t)
	rep := campaignOver(t, bin+" io", 4)
	if rep.FailedWorkloads != 0 || rep.Skipped != 0 || rep.Workloads == 0 {
		t.Fatalf("exec:qedtorture io: %d passed, %d failed: %+v", rep.Workloads, rep.FailedWorkloads, rep.Failures)
	}
	t.Logf("exec:qedtorture io: %d workloads, %d crash states", rep.Workloads, rep.CrashStates)
	rep = campaignOver(t, bin+" io --broken-drop-sync", 4)
	if rep.FailedWorkloads == 0 {
		t.Fatalf("exec:qedtorture io --broken-drop-sync: no failure in %d workloads", rep.Workloads)
	}
}
