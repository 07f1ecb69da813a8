package blackbox

import (
	"context"
	"strings"
	"testing"

	"github.com/qedtorture/qedtorture/crashsim"
	"github.com/qedtorture/qedtorture/impl/qed/qedtarget"
	"github.com/qedtorture/qedtorture/internal/campaign"
	"github.com/qedtorture/qedtorture/internal/strace"
	"github.com/qedtorture/qedtorture/props/workload"
	"github.com/spf13/afero"
)

// TestRecordRecovery: the program's own recovery of a crash state is
// recorded through strace (not recovered in process by impl/qed): on an
// image with NEED_CHECK set, the program's writable open writes the header
// (clearing the bit after its check) before the prompt of the recovery's
// write, the recovery's one sector is written between its write and flush
// marks and made durable by a sync after the flush mark, and the marks
// are the recovery's steps in order.
func TestRecordRecovery(t *testing.T) {
	strace.Require(t)
	bin := qedtortureBin(t)
	w, err := workload.Parse(strings.NewReader("qedtorture-workload v1\nimage cluster_size=65536 table_size=4 size=1048576\nwrite 0x1000 0x3000 id=1\nflush\n"))
	if err != nil {
		t.Fatal(err)
	}
	fs := afero.NewMemMapFs()
	e, err := workload.NewExec(qedtarget.Target{}, fs, "/", w)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.RunAll(); err != nil {
		t.Fatal(err)
	}
	if err := e.Disk.Close(); err != nil {
		t.Fatal(err)
	}
	img, _ := afero.ReadFile(fs, "/"+workload.ImageName)
	img[16] |= 2 // features: NEED_CHECK on a consistent image
	if err := afero.WriteFile(fs, "/"+workload.ImageName, img, 0o644); err != nil {
		t.Fatal(err)
	}
	d, err := New(bin+" io", qedtarget.Target{})
	if err != nil {
		t.Fatal(err)
	}
	st := &campaign.State{FS: fs, Image: "/" + workload.ImageName, Model: e.Model.Clone()}
	rec, err := d.RecordRecovery(context.Background(), st)
	if err != nil {
		t.Fatal(err)
	}
	if rec.OpErr != nil {
		t.Fatalf("recovery failed: %v", rec.OpErr)
	}
	if !rec.Recovery || !strings.Contains(rec.Recorder, "strace") {
		t.Fatalf("not a recovery recorded by strace: %+v", rec)
	}
	var ops []int
	at := map[int]int64{}
	for _, m := range rec.Marks {
		ops = append(ops, m.Op)
		at[m.Op] = m.K
	}
	want := []int{campaign.RecoveryOpen, campaign.RecoveryWrite, campaign.RecoveryFlush, campaign.RecoveryClose}
	if len(ops) != len(want) {
		t.Fatalf("marks %v, want the steps %v", ops, want)
	}
	for i := range want {
		if ops[i] != want[i] || i > 0 && rec.Marks[i].K < rec.Marks[i-1].K {
			t.Fatalf("marks %+v, want the steps %v in order", rec.Marks, want)
		}
	}
	var header, sector, synced bool
	for _, op := range rec.Trace.Ops {
		if op.Path != "/"+workload.ImageName {
			continue
		}
		switch {
		case op.Kind == crashsim.OpWrite && op.Off < 512 && op.Index < at[campaign.RecoveryWrite]:
			header = true
		case op.Kind == crashsim.OpWrite && op.Off >= 65536 && op.Index >= at[campaign.RecoveryWrite] && op.Index < at[campaign.RecoveryFlush]:
			sector = true
		case op.Kind == crashsim.OpSync && op.Index >= at[campaign.RecoveryFlush]:
			synced = true
		}
	}
	if !header || !sector || !synced {
		t.Errorf("recovery trace: header written by the open %v, sector written %v, synced after the flush %v\n%v", header, sector, synced, rec.Trace.Ops)
	}
	t.Logf("the program's recovery: %d operations, marks %+v", len(rec.Trace.Ops), rec.Marks)
}

// TestExecNestedCampaign: with the default --nested-depth 2, an exec
// campaign judges crash states of the program's own recorded recoveries
// (depth 2), and a clean program passes them.
func TestExecNestedCampaign(t *testing.T) {
	strace.Require(t)
	bin := qedtortureBin(t)
	d, err := New(bin+" io", qedtarget.Target{})
	if err != nil {
		t.Fatal(err)
	}
	d.JudgeBudget = 0
	cfg := campaign.Config{Driver: d, Reference: qedtarget.Target{}, Seed: 5, Iterations: 2, Workers: 1, MaxFailures: 1,
		NestedDepth: 2, NestedStates: 1, Out: t.TempDir()}
	rep, err := campaign.Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if rep.FailedWorkloads != 0 || rep.Workloads == 0 {
		t.Fatalf("%d workloads, %d failed: %+v", rep.Workloads, rep.FailedWorkloads, rep.Failures)
	}
	if rep.NestedStates == 0 {
		t.Fatalf("no crash state of the program's recovery judged: %+v", rep)
	}
	t.Logf("exec:qedtorture io, seed 5, 2 workloads: %d crash states, %d at depth 2", rep.CrashStates, rep.NestedStates)
}
