package qemu

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/qedtorture/qedtorture/crashsim"
	"github.com/qedtorture/qedtorture/impl/qed/qedtarget"
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
	for i, end := range []End{EndClose, EndAbort, EndClose, EndKill} {
		w := workload.Generate(rng, GenConfig())
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

// TestCheckCrashesEndToEnd runs a short crash campaign on QEMU: small
// workloads, every default model with small bounds, a few states through
// QEMU. The only failure allowed is finding F1 of docs/findings.md (the
// raw image with NEED_CHECK clear but inconsistent, and QEMU's recovery
// keeping it); anything else fails the test.
func TestCheckCrashesEndToEnd(t *testing.T) {
	tool := qemutool.Require(t)
	seed := uint64(5)
	t.Logf("seed %d", seed)
	gen := GenConfig()
	gen.Ops, gen.MaxClusters = 8, 16
	for i := range 2 {
		w, _ := GenerateWorkload(seed, i, gen)
		rec, err := Record(tool, w, t.TempDir(), []End{EndClose, EndKill}[i])
		if err != nil {
			t.Fatalf("workload %d: %v\n%s", i, err, w)
		}
		res, err := CheckCrashes(rec, CrashOptions{Tool: tool, Reference: qedtarget.Target{}, QEMUBudget: 6, Seed: seed, SamplePoints: 2,
			Enum: crashsim.EnumOptions{Bound: 8, Samples: 4}})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("workload %d: %d points, %d states, %d distinct, %d via impl/qed, %d via QEMU", i, res.Points, res.States, res.Distinct, res.QEDChecked, res.QEMUChecked)
		if res.Points == 0 || res.States == 0 || res.QEDChecked == 0 || res.QEMUChecked == 0 || len(res.PerModel) != len(oracle.DefaultModels()) {
			t.Errorf("workload %d: nothing checked: %+v", i, res)
		}
		for _, f := range res.Failures {
			if sig := Signature(f); sig != KnownNeedCheck && !(f.Side == SideQEMU && f.Stage == string(oracle.StageStructureAfter)) {
				t.Errorf("workload %d: %s [%s]", i, f, sig)
			}
		}
	}
}
