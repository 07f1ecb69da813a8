package qemu

import (
	"bytes"
	"context"
	"math/rand/v2"
	"testing"

	"github.com/qedtorture/qedtorture/crashsim"
	"github.com/qedtorture/qedtorture/impl/qed/qedtarget"
	"github.com/qedtorture/qedtorture/internal/campaign"
	"github.com/qedtorture/qedtorture/internal/qemutool"
	"github.com/qedtorture/qedtorture/props/oracle"
	"github.com/qedtorture/qedtorture/props/workload"
	"github.com/spf13/afero"
)

// replayAll rebuilds the image file from the snapshot and the whole log.
func replayAll(t *testing.T, rec *Recording) []byte {
	t.Helper()
	base, err := rec.Base()
	if err != nil {
		t.Fatal(err)
	}
	fs, err := base.Replay(rec.Trace, int64(len(rec.Trace.Ops)), crashsim.Options{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := afero.ReadFile(fs, imageInTree)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestRecordReplaysToFinal: the log imported with crashsim replays on the
// snapshot to exactly the file QEMU left, for every way a run ends
// (except SIGKILL, where the log may lag), and the phases are ordered.
func TestRecordReplaysToFinal(t *testing.T) {
	tool := qemutool.Require(t)
	seed := uint64(11)
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	gen := GenConfig()
	// The workloads of before the image commands were drawn (a new one,
	// 1, ends with an abort while a group is in flight, whose log may lag
	// the file); TestImageCommandsTraced replays those commands.
	gen.NoImageCommands()
	for i, end := range []End{EndClose, EndAbort, EndClose, EndKill} {
		w := workload.Generate(rng, gen)
		rec, err := Record(tool, w, t.TempDir(), end)
		if err != nil {
			t.Fatalf("workload %d (%s): %v\n%s", i, end, err, w)
		}
		if len(rec.Trace.Ops) == 0 && len(rec.W.Ops) > 3 {
			t.Errorf("workload %d: empty trace for %d ops", i, len(rec.W.Ops))
		}
		if end != EndKill {
			if got := replayAll(t, rec); !bytes.Equal(got, rec.Final) {
				t.Errorf("workload %d (%s): replayed image (%d bytes) differs from QEMU's file (%d bytes)", i, end, len(got), len(rec.Final))
			}
		}
		for j := 1; j < len(rec.Phases); j++ {
			if rec.Phases[j].Start < rec.Phases[j-1].Start {
				t.Errorf("workload %d: phase %d starts at %d before phase %d at %d", i, j, rec.Phases[j].Start, j-1, rec.Phases[j-1].Start)
			}
		}
		t.Logf("workload %d (%s): %d ops, %d log entries, %d trace ops, %d phases", i, end, len(rec.W.Ops), rec.LogEntries, len(rec.Trace.Ops), len(rec.Phases))
	}
}

// TestDriverCampaignEndToEnd runs a short campaign on QEMU through the
// one engine: small workloads, every default model with small bounds, a
// few states through QEMU's own recovery, runs ending with close and
// kill. The only failures allowed are QEMU 7.2's known findings
// (testdata/known/qemu-7.2.txt, F1 among them); anything else fails the
// test.
func TestDriverCampaignEndToEnd(t *testing.T) {
	tool := qemutool.Require(t)
	seed := uint64(5)
	t.Logf("seed %d", seed)
	gen := GenConfig()
	gen.Ops, gen.MaxClusters = 8, 16
	known := knownQEMU(t)
	rep, err := campaign.Run(context.Background(), campaign.Config{
		Driver: &Driver{Tool: tool, Ends: []End{EndClose, EndKill}, QEMUStates: 6}, Reference: qedtarget.Target{},
		Seed: seed, Iterations: 2, Gen: gen, Bound: 8, Samples: 4, SampledPoints: 2, Known: known, MinimizeCandidates: -1,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d points, %d states, judged %v, known %v", rep.CrashPoints, rep.CrashStates, rep.Judged, rep.Known)
	if rep.CrashPoints == 0 || rep.CrashStates == 0 || rep.Judged["impl/qed"] == 0 || len(rep.PerModel) != len(oracle.DefaultModels()) {
		t.Errorf("nothing checked: %+v", rep)
	}
	if rep.Known == nil && rep.Judged["qemu"] == 0 {
		t.Errorf("no state judged by QEMU's recovery: %+v", rep.Judged)
	}
	for _, f := range rep.Failures {
		t.Errorf("%s: %s", f.Signature, f.Message)
	}
}
