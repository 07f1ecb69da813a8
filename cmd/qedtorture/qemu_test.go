package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/qedtorture/qedtorture/internal/campaign"
	"github.com/qedtorture/qedtorture/internal/qemutool"
	"github.com/qedtorture/qedtorture/internal/racetest"
	"github.com/spf13/pflag"
	"github.com/stretchr/testify/require"
)

// TestQEMUCommandCampaign runs a short real campaign through the qemu
// alias (run --target qemu with QEMU's defaults) under the prefix model
// (which QEMU 7.2 passes: see docs/findings.md) without backing files
// (finding F2 needs one) and checks the one report: QEMU's recovery and
// impl/qed's both judged states, every workload got its differential run
// against impl/qed.
func TestQEMUCommandCampaign(t *testing.T) {
	qemutool.Require(t)
	dir := t.TempDir()
	report := filepath.Join(dir, "r.json")
	args := []string{"qemu", "--iterations", "3", "--seed", "9", "--ops", "6", "--max-clusters", "16", "--backing-chance", "0", "--crash-model", "prefix,drop", "--qemu-states", "4",
		// Concurrent groups can hit QEMU 7.2's F3 abort, and a rebase onto a
		// file gives the image a backing file (F2); this test is about the
		// command, not QEMU's bugs.
		"--op-weights", "concurrent=0,rebase=0",
		"--create-crashes", "0", // so can crashes during creation (F7; impl/qemu's TestDriverFindsF7)
		"--out", filepath.Join(dir, "art"), "--report", report, "--progress", "none", "--minimize", "-1"}
	r := qt(t, args...)
	if r.code != exitOK {
		t.Fatalf("qedtorture %q: exit %d\nstdout: %s\nstderr: %s", args, r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout, "seed: 9") || !strings.Contains(r.stdout, "target qemu") || !strings.Contains(r.stdout, "3 diff runs against impl/qed") {
		t.Errorf("stdout: %q", r.stdout)
	}
	b, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	var rep campaign.Report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Workloads != 3 || rep.CrashStates == 0 || rep.Judged["qemu"] == 0 || rep.Judged["impl/qed"] == 0 || rep.DiffRuns != 3 ||
		rep.Diff != "impl/qed" || rep.Target != "qemu" || rep.Workers != 1 {
		t.Errorf("report %+v", rep)
	}
}

// TestQEMUCommandUsage: bad flags are usage errors naming the flag, with
// qemu's own limits on the flags it shares with run.
func TestQEMUCommandUsage(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"qemu", "--ends", "explode"}, "invalid --ends"},
		{[]string{"qemu", "--crash-model", "nope"}, "invalid --crash-model"},
		{[]string{"qemu", "--workers", "0"}, "invalid --workers"},
		{[]string{"qemu", "--seed", "-3"}, "invalid --seed"},
		{[]string{"qemu", "--ops", "1001"}, "invalid --ops 1001: want 1..1000"},
		{[]string{"qemu", "--max-clusters", "65537"}, "invalid --max-clusters 65537: want 1..65536"},
		{[]string{"qemu", "--progress-interval", "0s"}, "invalid --progress-interval"},
		{[]string{"qemu", "--qemu-states", "-2"}, "invalid --qemu-states"},
		{[]string{"qemu", "--iterations", "-1"}, "invalid --iterations"},
		{[]string{"qemu", "--workload", "/nonexistent/w.txt"}, "invalid --workload"},
		{[]string{"qemu", "stray"}, "too many arguments"},
		{[]string{"qemu", "--fault", "write:eio"}, "unknown flag: --fault"},
	} {
		r := runWant(t, exitUsage, c.args...)
		require.Contains(t, r.stderr, c.want, c.args)
	}
}

// TestQEMUCommandFindingArtifactReplay: a known QEMU finding (F1 of
// docs/findings.md) run from a workload script through the alias is
// found, minimized and written in the one artifact layout, and --replay
// (the one replay) rebuilds its crash state and reproduces it.
func TestQEMUCommandFindingArtifactReplay(t *testing.T) {
	qemutool.Require(t)
	dir := t.TempDir()
	wf := filepath.Join(dir, "w.txt")
	script := "qedtorture-workload v1\nimage cluster_size=65536 table_size=4 size=1048576\n" +
		"write 0x0 0x1000 id=1\nreopen\nwrite 0x20000 0x1000 id=2\nflush\n"
	if err := os.WriteFile(wf, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "art")
	r := qt(t, "qemu", "--workload", wf, "--ends", "close", "--crash-model", "subset", "--qemu-states", "0",
		"--diff=false", "--seed", "1", "--out", out, "--progress", "none")
	if r.code != exitRuntime || !strings.Contains(r.stdout, f1Signature) {
		t.Fatalf("want the finding (exit 1), got exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	arts, _ := filepath.Glob(filepath.Join(out, "*"))
	if len(arts) != 1 {
		t.Fatalf("artifacts %v", arts)
	}
	for _, n := range []string{"meta.json", "workload.txt", "trace.bin", "trace.txt", "repro.sh", "image/image.qed", "base/image.qed", "target/image.log", "target/repro.sh"} {
		if _, err := os.Stat(filepath.Join(arts[0], n)); err != nil {
			t.Errorf("artifact lacks %s: %v", n, err)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(arts[0], "workload.txt")); strings.Count(string(b), "\n") > 5 {
		t.Errorf("workload not minimized:\n%s", b)
	}
	rr := qt(t, "qemu", "--replay", arts[0])
	if rr.code != exitRuntime || !strings.Contains(rr.stdout, "structure-before-recovery") || !strings.Contains(rr.stderr, "the case still fails") {
		t.Fatalf("replay: exit %d\nstdout: %s\nstderr: %s", rr.code, rr.stdout, rr.stderr)
	}
}

// f1Signature is finding F1's signature (testdata/known/qemu-7.2.txt).
const f1Signature = "raw/structure-before-recovery/data-past-eof+need-check-clear-but-inconsistent"

// TestSameSeedSameWorkloads: run and qemu draw the same workloads from the
// same seed and generator flags (their reports' workload digests agree,
// and change with the seed); QEMU's adaptations come after generation.
func TestSameSeedSameWorkloads(t *testing.T) {
	qemutool.Require(t)
	gen := []string{"--iterations", "3", "--backing-chance", "0.5", "--cluster-sizes", "4K,64K", "--table-sizes", "1,4", "--max-clusters", "8",
		"--ops", "5", "--op-weights", "concurrent=0", "--crash-model", "prefix", "--bound", "1", "--samples", "1",
		"--sampled-points", "0", "--progress", "none", "--out", ""}
	digest := func(args ...string) string {
		t.Helper()
		rep := filepath.Join(t.TempDir(), "r.json")
		r := qt(t, append(append(args, "--report", rep), gen...)...)
		if r.code != exitOK && r.code != exitRuntime {
			t.Fatalf("%q: exit %d\nstdout: %s\nstderr: %s", args, r.code, r.stdout, r.stderr)
		}
		b, err := os.ReadFile(rep)
		if err != nil {
			t.Fatal(err)
		}
		var m struct {
			Workloads      int64  `json:"workloads"`
			WorkloadDigest string `json:"workload_digest"`
		}
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		if m.WorkloadDigest == "" {
			t.Fatalf("%q: no workload_digest in %s", args, b)
		}
		return m.WorkloadDigest
	}
	run := digest("run", "--seed", "9", "--workers", "2")
	qemu := digest("qemu", "--seed", "9", "--qemu-states", "0", "--diff=false", "--ends", "close", "--minimize", "-1")
	other := digest("run", "--seed", "10", "--workers", "2")
	if run != qemu {
		t.Errorf("seed 9: run's workload digest %s, qemu's %s", run, qemu)
	}
	if run == other {
		t.Errorf("seeds 9 and 10 give the same workload digest %s", run)
	}
}

// TestRunTargetQEMU: `run --target qemu` (QEMU on the one engine) finds
// finding F1 from its reproducer, minimizes it and writes the one
// artifact layout with the driver's files: base/ (the files the trace
// replays on) and target/ (the blklogwrites log, the qemu-io script and
// the pattern files it writes from). --fault is refused for it.
func TestRunTargetQEMU(t *testing.T) {
	racetest.Heavy(t)
	qemutool.Require(t)
	dir := t.TempDir()
	wf := filepath.Join(dir, "w.txt")
	script := "qedtorture-workload v1\nimage cluster_size=65536 table_size=4 size=1048576\n" +
		"write 0x0 0x1000 id=1\nreopen\nwrite 0x20000 0x1000 id=2\nflush\n"
	if err := os.WriteFile(wf, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "art")
	r := qt(t, "run", "--target", "qemu", "--workload", wf, "--crash-model", "subset", "--seed", "1", "--out", out, "--progress", "none")
	if r.code != exitRuntime || !strings.Contains(r.stdout, "structure-before-recovery") || !strings.Contains(r.stdout, "need-check-clear-but-inconsistent") {
		t.Fatalf("want F1 (exit 1), got exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	arts, _ := filepath.Glob(filepath.Join(out, "*"))
	if len(arts) != 1 {
		t.Fatalf("artifacts %v", arts)
	}
	for _, n := range []string{"meta.json", "workload.txt", "trace.bin", "image/image.qed", "base/image.qed", "target/image.log", "target/repro.sh"} {
		if _, err := os.Stat(filepath.Join(arts[0], n)); err != nil {
			t.Errorf("artifact lacks %s: %v", n, err)
		}
	}
	repro, _ := os.ReadFile(filepath.Join(arts[0], "target", "repro.sh"))
	pats := regexp.MustCompile(`pat/[0-9a-f]+\.bin`).FindAllString(string(repro), -1)
	if len(pats) == 0 || !strings.Contains(string(repro), "cp ../base/* .") {
		t.Errorf("repro.sh:\n%s", repro)
	}
	for _, n := range pats {
		if _, err := os.Stat(filepath.Join(arts[0], "target", n)); err != nil {
			t.Errorf("artifact lacks target/%s, which repro.sh writes from: %v", n, err)
		}
	}
	r = runWant(t, exitUsage, "run", "--target", "qemu", "--fault", "write:enospc@nth=17", "--iterations", "1")
	require.Contains(t, r.stderr, "runs out of process")
}

// TestRunTargetQEMUFlags: --qemu-states is the budget of QEMU's own
// recovery judge (the report counts what it judged, per judge), --ends
// how the runs end; both are refused for another target, and bad values
// are usage errors.
func TestRunTargetQEMUFlags(t *testing.T) {
	qemutool.Require(t)
	judged := func(states string) map[string]int64 {
		t.Helper()
		rep := filepath.Join(t.TempDir(), "r.json")
		r := qt(t, "run", "--target", "qemu", "--iterations", "2", "--seed", "3", "--ops", "4", "--max-clusters", "8",
			"--backing-chance", "0", "--op-weights", "concurrent=0", "--crash-model", "prefix", "--ends", "close",
			"--qemu-states", states, "--report", rep, "--out", "", "--progress", "none")
		if r.code != exitOK && r.code != exitRuntime {
			t.Fatalf("exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
		}
		b, err := os.ReadFile(rep)
		if err != nil {
			t.Fatal(err)
		}
		var m struct {
			Judged map[string]int64 `json:"judged"`
		}
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		return m.Judged
	}
	if j := judged("2"); j["qemu"] < 1 || j["qemu"] > 4 || j["impl/qed"] <= j["qemu"] {
		t.Errorf("--qemu-states 2 over 2 workloads: judged %v", j)
	}
	if j := judged("0"); j["qemu"] != 0 || j["impl/qed"] == 0 {
		t.Errorf("--qemu-states 0: judged %v", j)
	}
	for _, c := range []struct{ args []string }{
		{[]string{"run", "--qemu-states", "3"}},
		{[]string{"run", "--target", "impl/qed", "--ends", "close"}},
		{[]string{"run", "--target", "qemu", "--ends", "close,never"}},
		{[]string{"run", "--target", "qemu", "--qemu-states", "-2"}},
	} {
		runWant(t, exitUsage, c.args...)
	}
}

// TestQEMUAliasCarriesRunFlags: `qedtorture qemu` is `run --target qemu`,
// so it carries every flag of run except those that choose another target
// or cannot apply to QEMU (--target, --fault, --exec-states), and the
// engine's flags (crashes during recovery and creation, shards, the
// exhaustive campaign, the HTML report) with run's defaults. Before, the
// alias had neither --nested-depth nor --create-crashes and silently ran
// one crash and a clean recovery.
func TestQEMUAliasCarriesRunFlags(t *testing.T) {
	e := &env{}
	run, alias := newRunCommand(e), newQEMUCommand(e)
	runOnly := map[string]bool{"target": true, "fault": true, "fault-share": true, "fault-sweep": true, "exec-states": true}
	run.Flags().VisitAll(func(rf *pflag.Flag) {
		af := alias.Flags().Lookup(rf.Name)
		switch {
		case runOnly[rf.Name]:
			if af != nil {
				t.Errorf("qemu registers --%s, which cannot apply to QEMU", rf.Name)
			}
		case af == nil:
			t.Errorf("qemu lacks run's --%s", rf.Name)
		}
	})
	for _, name := range []string{"nested-depth", "nested-states", "create-crashes", "shard", "shards", "no-dedup", "html", "exhaustive"} {
		af := alias.Flags().Lookup(name)
		if af == nil {
			continue // reported above
		}
		if rf := run.Flags().Lookup(name); af.DefValue != rf.DefValue {
			t.Errorf("qemu --%s defaults to %s, run to %s", name, af.DefValue, rf.DefValue)
		}
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"qemu", "--nested-depth", "9"}, "invalid --nested-depth 9"},
		{[]string{"qemu", "--nested-states", "0"}, "invalid --nested-states 0"},
		{[]string{"qemu", "--create-crashes", "1.5"}, "invalid --create-crashes 1.5"},
		{[]string{"qemu", "--exhaustive", "5"}, "invalid --exhaustive 5"},
		{[]string{"qemu", "--shard", "1/2"}, "need --seed"},
		{[]string{"qemu", "--exec-states", "1"}, "unknown flag: --exec-states"},
		{[]string{"qemu", "--target", "impl/qed"}, "unknown flag: --target"},
	} {
		r := runWant(t, exitUsage, c.args...)
		require.Contains(t, r.stderr, c.want, c.args)
	}
}
