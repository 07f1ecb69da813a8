package blackbox

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/qedtorture/qedtorture/impl/qed/qedtarget"
	"github.com/qedtorture/qedtorture/internal/campaign"
	"github.com/qedtorture/qedtorture/internal/strace"
	"github.com/qedtorture/qedtorture/props/workload"
	"github.com/spf13/afero"
)

// campaignOver runs a small seeded campaign over exec:COMMAND and returns
// its report; artifacts go to a temporary directory.
func campaignOver(t *testing.T, command string, iterations int) *campaign.Report {
	t.Helper()
	d, err := New(command, qedtarget.Target{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := campaign.Config{Driver: d, Reference: qedtarget.Target{}, Seed: 1, Iterations: iterations, Workers: 1, MaxFailures: 1, MinimizeTimeout: 20 * time.Second, Out: t.TempDir()}
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
	strace.Require(t)
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
	// explain.txt says how the trace was recorded: strace, not crashsim.
	ex, err := os.ReadFile(filepath.Join(rep.Failures[0].Artifact, "explain.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(ex), "recorded by strace") || strings.Contains(string(ex), "recording filesystem") {
		t.Errorf("explain.txt does not say the trace was recorded by strace:\n%s", ex)
	}
}

// TestProgramJudge: the program's own recovery judge passes a sound crash
// state and fails one whose data the program cannot give back.
func TestProgramJudge(t *testing.T) {
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
	d, err := New(bin+" io", qedtarget.Target{})
	if err != nil {
		t.Fatal(err)
	}
	j := d.Judges()[0]
	st := &campaign.State{FS: fs, Image: "/" + workload.ImageName, Model: e.Model}
	v, err := j.Judge(context.Background(), st)
	if err != nil || !v.OK() {
		t.Fatalf("sound state: %v, %v", v, err)
	}
	// Lose the data cluster's contents: the program reads zeros where the
	// model wants id 1.
	img, _ := afero.ReadFile(fs, st.Image)
	for i := 65536 * 2; i < len(img); i++ {
		img[i] = 0
	}
	if err := afero.WriteFile(fs, st.Image, img, 0o644); err != nil {
		t.Fatal(err)
	}
	v, err = j.Judge(context.Background(), st)
	if err != nil || v.OK() {
		t.Fatalf("state without its data: %v, %v (want a failed verdict)", v, err)
	}
	t.Logf("verdict: %v", v.Stage)
}

// TestDropConcurrentOverlap: writes of a concurrent group sharing a sector
// with an earlier one are dropped (their order in the file is not
// recorded); the others stay.
func TestDropConcurrentOverlap(t *testing.T) {
	w, err := workload.Parse(strings.NewReader("qedtorture-workload v1\nimage cluster_size=4096 table_size=2 size=117248\n" +
		"concurrent 4\n  write 0x33cc 0x13dd id=1\n  zero 0x1b00 0x133f\n  write 0x585 0x1463 id=2\n  write 0x17ff 0x15a5 id=3\n"))
	if err != nil {
		t.Fatal(err)
	}
	a, ad := dropConcurrentOverlap(w)
	if got := len(a.Ops[0].Group); got != 3 || len(ad) != 1 {
		t.Fatalf("group of %d writes kept, %d adaptations (%v); want 3 and 1", got, len(ad), ad)
	}
	if len(w.Ops[0].Group) != 4 {
		t.Fatal("the generated workload was changed")
	}
}
