package qemu

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/qedtorture/qedtorture/crashsim"
	"github.com/qedtorture/qedtorture/impl/qed/qedtarget"
	"github.com/qedtorture/qedtorture/internal/campaign"
	"github.com/qedtorture/qedtorture/internal/qemutool"
	"github.com/qedtorture/qedtorture/props/check"
)

// TestRepairCrashesQEMU: QEMU's two repair paths, recorded through
// blklogwrites, leave crash states that a second repair by the same path
// brings to the result of the uninterrupted repair; the automatic check of
// a writable open and qemu-img check -r all both write (a trace with more
// than its end point), and the recording replays to the image QEMU left.
func TestRepairCrashesQEMU(t *testing.T) {
	tool := qemutool.Require(t)
	d := &Driver{Tool: tool}
	rep, err := campaign.RepairCrashes(context.Background(), campaign.RepairConfig{
		Seed: 1, Images: 1, Reference: qedtarget.Target{}, Repairers: d.Repairers(),
		Corruptions: []check.Corruption{check.CorruptL2PastEOF, check.CorruptL1Misaligned},
		Dir:         t.TempDir(), Timeout: 30 * time.Second,
	}, 2, 0)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Plants != 8 || rep.States <= int64(rep.Plants) {
		t.Errorf("want 8 plant runs recorded (2 kinds x 2 NEED_CHECK x 2 paths) with crash states besides their ends, got %+v", rep)
	}
	for _, name := range []string{"qemu open", "qemu-img check -r all"} {
		if rep.PathStates[name] == 0 {
			t.Errorf("no crash state of %s: %v", name, rep.PathStates)
		}
	}
	for _, f := range rep.Failures {
		t.Errorf("%s", f)
	}
	t.Logf("%d plant runs, %d crash states %v", rep.Plants, rep.States, rep.PathStates)
}

// truncatingRecorder drops the last write of QEMU's recorded trace.
type truncatingRecorder struct{ Repairer }

func (r truncatingRecorder) RecordRepair(ctx context.Context, dir, tracePath string) (*crashsim.Trace, error) {
	tr, err := r.Repairer.RecordRepair(ctx, dir, tracePath)
	for i := len(tr.Ops) - 1; err == nil && i >= 0; i-- {
		if tr.Ops[i].Kind == crashsim.OpWrite {
			tr.Ops = append(tr.Ops[:i:i], tr.Ops[i+1:]...)
			break
		}
	}
	return tr, err
}

// TestRepairCrashesRefusesBadRecording: a trace that does not replay to
// the image the repair left is refused, not judged.
func TestRepairCrashesRefusesBadRecording(t *testing.T) {
	tool := qemutool.Require(t)
	_, err := campaign.RepairCrashes(context.Background(), campaign.RepairConfig{
		Seed: 1, Images: 1, Reference: qedtarget.Target{}, Repairers: []campaign.Repairer{truncatingRecorder{Repairer{Tool: tool}}},
		Corruptions: []check.Corruption{check.CorruptL2PastEOF}, Dir: t.TempDir(), Timeout: 30 * time.Second,
	}, 0, 0)
	if err == nil || !strings.Contains(err.Error(), "does not give the image the repair left") {
		t.Errorf("err %v, want the recording refused", err)
	}
}
