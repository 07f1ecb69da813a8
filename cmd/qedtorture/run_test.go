package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/qedtorture/qedtorture/internal/campaign"
	"github.com/qedtorture/qedtorture/props/workload"
	"github.com/stretchr/testify/require"
)

// quick are flags for short, deterministic campaigns in tests: small
// images, no backing chains, few states.
var quick = []string{"--workers", "2", "--crash-model", "drop,subset", "--backing-chance", "0",
	"--cluster-sizes", "4K", "--max-clusters", "8", "--ops", "6", "--op-weights", "concurrent=0",
	"--bound", "8", "--samples", "2", "--sampled-points", "1", "--progress", "none"}

func runArgs(a ...[]string) []string {
	var out []string
	for _, x := range a {
		out = append(out, x...)
	}
	return out
}

func TestRunPassesAndReports(t *testing.T) {
	dir := t.TempDir()
	rep := filepath.Join(dir, "r.json")
	a := runArgs([]string{"run", "--iterations", "3", "--seed", "11", "--report", rep, "--out", dir}, quick)
	r := runWant(t, exitOK, a...)
	lines := strings.Split(r.stdout, "\n")
	require.Equal(t, "seed: 11", lines[0], "the seed is printed first")
	require.Contains(t, r.stdout, "done: 3 workload(s) checked")
	b, err := os.ReadFile(rep)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m))
	require.EqualValues(t, 11, m["seed"])
	require.EqualValues(t, 3, m["workloads"])
	require.Equal(t, "0/1", m["shard"])
	require.Empty(t, m["failures"])
	for _, k := range []string{"crash_states", "oracle_runs", "seconds", "states_per_second", "per_model"} {
		require.Contains(t, m, k)
	}
	require.LessOrEqual(t, m["oracle_runs"], m["crash_states"])
	require.EqualValues(t, 2, m["nested_depth"], "crashes during recovery by default")
	require.Contains(t, m, "nested_states")
	// --create-crashes 1: every workload's creation is crashed; impl/qed
	// leaves no image until it is complete, or, over an existing image
	// (half of them), the old one or the new one complete.
	runWant(t, exitOK, runArgs(a, []string{"--create-crashes", "1", "--nested-depth", "1"})...)
	b, err = os.ReadFile(rep)
	require.NoError(t, err)
	var cr map[string]any
	require.NoError(t, json.Unmarshal(b, &cr))
	require.NotContains(t, cr, "nested_depth")
	require.Positive(t, cr["creation_states"])
	absent, _ := cr["creation_absent"].(float64)
	old, _ := cr["creation_old"].(float64)
	require.LessOrEqual(t, absent+old, cr["creation_states"].(float64))
	require.Positive(t, absent)
	runWant(t, exitUsage, runArgs(a, []string{"--create-crashes", "1.5"})...)
	// --no-dedup judges every state: the same states, as many oracle runs.
	r = runWant(t, exitOK, runArgs(a, []string{"--no-dedup"})...)
	b, err = os.ReadFile(rep)
	require.NoError(t, err)
	var nd map[string]any
	require.NoError(t, json.Unmarshal(b, &nd))
	require.Equal(t, m["crash_states"], nd["crash_states"])
	require.Equal(t, nd["crash_states"], nd["oracle_runs"])
}

// TestRunNestedFindsBrokenTarget: with crashes during recovery (the
// default depth 2), a target whose flush does nothing also loses the
// recovery's own flushed write; the artifact keeps the chain (nested/2/),
// replay follows it again and show lists the recovery's operations.
func TestRunNestedFindsBrokenTarget(t *testing.T) {
	dir := t.TempDir()
	r := runWant(t, exitRuntime, runArgs([]string{"run", "--iterations", "30", "--seed", "3", "--target", "broken:noflush", "--out", dir}, quick)...)
	require.Contains(t, r.stdout, "signature: depth2/broken:noflush/")
	m := regexp.MustCompile(`artifact: (\S+)`).FindStringSubmatch(r.stdout)
	require.NotNil(t, m, r.stdout)
	art := m[1]
	for _, f := range []string{"image/image.qed", "nested/2/trace.bin", "nested/2/trace.txt", "nested/2/image/image.qed"} {
		require.FileExists(t, filepath.Join(art, f))
	}
	meta, err := os.ReadFile(filepath.Join(art, "meta.json"))
	require.NoError(t, err)
	require.Contains(t, string(meta), `"chain"`)
	rr := qt(t, "replay", art)
	require.Equal(t, exitRuntime, rr.code, rr.stdout+rr.stderr)
	verdict, err := os.ReadFile(filepath.Join(art, "verdict.txt"))
	require.NoError(t, err)
	require.Contains(t, rr.stdout, strings.TrimSpace(string(verdict)), "replay follows the chain to the same verdict")
	require.Contains(t, rr.stdout, "judged by nested")
	sh := qt(t, "show", art)
	require.Equal(t, exitOK, sh.code, sh.stdout+sh.stderr)
	require.Contains(t, sh.stdout, "crashed at depth 2")
	runWant(t, exitUsage, runArgs([]string{"run", "--iterations", "1", "--nested-depth", "-1", "--out", dir}, quick)...)
	runWant(t, exitUsage, runArgs([]string{"run", "--iterations", "1", "--nested-states", "0", "--out", dir}, quick)...)
}

func TestRunRandomSeedPrinted(t *testing.T) {
	r := runWant(t, exitOK, runArgs([]string{"run", "--iterations", "1", "--out", t.TempDir()}, quick)...)
	require.Regexp(t, regexp.MustCompile(`^seed: \d+\n`), r.stdout)
}

// TestRunFindsBrokenTarget: a deliberately broken target is caught (exit
// 1), the artifact is written, and replay reproduces the verdict (exit 1).
func TestRunFindsBrokenTarget(t *testing.T) {
	dir := t.TempDir()
	r := runWant(t, exitRuntime, runArgs([]string{"run", "--iterations", "30", "--seed", "3", "--target", "broken:noflush", "--nested-depth", "1", "--out", dir}, quick)...)
	require.Contains(t, r.stdout, "FAILURE workload")
	m := regexp.MustCompile(`artifact: (\S+)`).FindStringSubmatch(r.stdout)
	require.NotNil(t, m, r.stdout)
	art := m[1]
	require.FileExists(t, filepath.Join(art, "image", "image.qed"))
	rr := qt(t, "replay", art)
	require.Equal(t, exitRuntime, rr.code, rr.stdout+rr.stderr)
	verdict, err := os.ReadFile(filepath.Join(art, "verdict.txt"))
	require.NoError(t, err)
	require.Contains(t, rr.stdout, strings.TrimSpace(string(verdict)), "replay shows the same verdict")
	require.Contains(t, rr.stdout, "judged by broken:noflush")
	require.NotContains(t, rr.stdout, "Replay with", "a replay does not tell to replay")
	ex, err := os.ReadFile(filepath.Join(art, "explain.txt"))
	require.NoError(t, err)
	require.Contains(t, string(ex), "Replay with: qedtorture replay "+art)
}

func TestReplayErrors(t *testing.T) {
	runWant(t, exitUsage, "replay")
	runWant(t, exitUsage, "replay", "a", "b")
	runWant(t, exitRuntime, "replay", t.TempDir())
}

func TestRunUsageErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"run", "--seed", "x"}, "invalid --seed"},
		{[]string{"run", "--crash-model", "bogus"}, "invalid --crash-model"},
		{[]string{"run", "--shard", "2/2"}, "invalid --shard"},
		{[]string{"run", "--shard", "1"}, "invalid --shard"},
		{[]string{"run", "--workers", "0"}, "invalid --workers"},
		{[]string{"run", "--duration", "-1s"}, "invalid --duration"},
		{[]string{"run", "--fault", "write:nope"}, "invalid --fault"},
		{[]string{"run", "--cluster-sizes", "3000"}, "invalid --cluster-sizes"},
		{[]string{"run", "--table-sizes", "32"}, "invalid --table-sizes"},
		{[]string{"run", "--backing-chance", "2"}, "invalid --backing-chance"},
		{[]string{"run", "--target", "qemu9"}, "invalid --target"},
		{[]string{"run", "--progress", "fancy"}, "invalid --progress"},
		{[]string{"run", "--op-weights", "frob=1"}, "invalid --op-weights"},
		{[]string{"run", "--ops", "10001"}, "invalid --ops 10001: want 1..10000"},
		{[]string{"run", "--max-clusters", "0"}, "invalid --max-clusters 0: want 1..1048576"},
		{[]string{"run", "--max-chain", "9"}, "invalid --max-chain"},
		{[]string{"run", "--memory-budget", "1x"}, "invalid --memory-budget"},
		{[]string{"run", "--memory-budget", "1M"}, "invalid --memory-budget"},
		{[]string{"qemu", "--memory-budget", "1M"}, "invalid --memory-budget"},
		{[]string{"run", "--cluster-sizes", "64M", "--table-sizes", "16"}, "64 MiB clusters, 16-cluster tables (1 GiB tables), a 4 GiB image, backing chain of 2 needs about"},
		{[]string{"run", "--cluster-sizes", "4M", "--table-sizes", "16", "--memory-budget", "256M"}, "more than the memory budget of 256 MiB"},
		{[]string{"run", "--max-failures", "0"}, "invalid --max-failures"},
		{[]string{"run", "--bound", "0"}, "--bound and --samples"},
		{[]string{"run", "--progress-interval", "-1s"}, "invalid --progress-interval"},
		{[]string{"run", "--minimize-time", "0s"}, "invalid --minimize-time"},
		{[]string{"run", "--shards", "4"}, "JOB_COMPLETION_INDEX"},
		{[]string{"run", "--shards", "4", "--shard", "1/4"}, "exclusive"},
		{[]string{"run", "extra"}, "too many arguments"},
		{[]string{"run", "--bogus"}, "unknown flag"},
		{[]string{"report"}, "want merge"},
		{[]string{"report", "merge"}, "missing argument"},
	} {
		r := runWant(t, exitUsage, c.args...)
		require.Contains(t, r.stderr, c.want, c.args)
	}
}

// TestShardsMergeCLI: shards from --shard and from JOB_COMPLETION_INDEX,
// merged with 'report merge', equal one unsharded run of the same seeds.
func TestShardsMergeCLI(t *testing.T) {
	dir := t.TempDir()
	base := runArgs([]string{"run", "--iterations", "4", "--seed", "99", "--out", dir}, quick)
	runWant(t, exitOK, append(base, "--report", filepath.Join(dir, "all.json"))...)
	runWant(t, exitOK, append(base, "--shard", "0/2", "--report", filepath.Join(dir, "s0.json"))...)
	t.Setenv("JOB_COMPLETION_INDEX", "1")
	runWant(t, exitOK, append(base, "--shards", "2", "--report", filepath.Join(dir, "s1.json"))...)
	out := filepath.Join(dir, "merged.json")
	r := runWant(t, exitOK, "report", "merge", "-o", out, filepath.Join(dir, "s0.json"), filepath.Join(dir, "s1.json"))
	require.Contains(t, r.stdout, "merged 2 report(s)")
	read := func(name string) *campaign.Report {
		fh, err := os.Open(name)
		require.NoError(t, err)
		defer fh.Close()
		rep, err := campaign.ReadReport(fh)
		require.NoError(t, err)
		return rep
	}
	all, m := read(filepath.Join(dir, "all.json")), read(out)
	require.Equal(t, all.Workloads, m.Workloads)
	require.Equal(t, all.CrashStates, m.CrashStates)
	require.Equal(t, all.PerModel, m.PerModel)
	require.Equal(t, all.Digest, m.Digest)
	// Merging a shard twice is refused.
	runWant(t, exitRuntime, "report", "merge", filepath.Join(dir, "s0.json"), filepath.Join(dir, "s0.json"))
	runWant(t, exitRuntime, "report", "merge", filepath.Join(dir, "missing.json"))
}

func TestRunProgressLines(t *testing.T) {
	r := runWant(t, exitOK, runArgs([]string{"run", "--iterations", "2", "--seed", "5", "--out", t.TempDir()}, quick, []string{"--progress", "lines", "--progress-interval", "1h"})...)
	require.Regexp(t, regexp.MustCompile(`\[\d+s\] workloads 2, crash points \d+, crash states \d+ \(\d+/s\), failures 0\n$`), r.stderr)
}

// TestRunWorkloadFile: run --workload runs the given script instead of
// generated ones (once by default, at every index with --iterations), and
// a missing or malformed file is a usage error naming it.
func TestRunWorkloadFile(t *testing.T) {
	dir := t.TempDir()
	wf := filepath.Join(dir, "w.txt")
	script := "qedtorture-workload v1\nimage cluster_size=4096 table_size=4 size=65536\n" +
		"write 0x0 0x1000 id=1\nflush\nwrite 0x2000 0x800 id=2\n"
	require.NoError(t, os.WriteFile(wf, []byte(script), 0o644))
	w, err := workload.Parse(strings.NewReader(script))
	require.NoError(t, err)
	for _, c := range []struct {
		args []string
		n    int
	}{{nil, 1}, {[]string{"--iterations", "3"}, 3}} {
		rep := filepath.Join(dir, "r.json")
		runWant(t, exitOK, append([]string{"run", "--workload", wf, "--seed", "4", "--report", rep, "--out", dir, "--progress", "none"}, c.args...)...)
		b, err := os.ReadFile(rep)
		require.NoError(t, err)
		var m campaign.Report
		require.NoError(t, json.Unmarshal(b, &m))
		require.EqualValues(t, c.n, m.Workloads)
		var d uint64
		for i := range c.n {
			d ^= campaign.ScriptDigest(i, w)
		}
		require.Equal(t, campaign.FormatDigest(d), m.WorkloadDigest, "the given workload ran at every index")
	}
	r := runWant(t, exitUsage, "run", "--workload", filepath.Join(dir, "missing.txt"))
	require.Contains(t, r.stderr, "invalid --workload")
	require.NoError(t, os.WriteFile(wf, []byte("qedtorture-workload v1\nbogus\n"), 0o644))
	r = runWant(t, exitUsage, "run", "--workload", wf)
	require.Contains(t, r.stderr, "invalid --workload "+wf)
}

// TestReplayOldQEMUArtifact: replay recognises an artifact of the former
// 'qedtorture qemu' engine and says how to run its workload again.
func TestReplayOldQEMUArtifact(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "explanation.txt"), []byte("target: qemu\n"), 0o644))
	r := runWant(t, exitRuntime, "replay", dir)
	require.Contains(t, r.stderr, "qedtorture run --target qemu --workload "+filepath.Join(dir, "workload.txt"))
}

// TestRunExhaustive: --exhaustive K runs the exhaustive source (here the
// first 2 of its 72 workloads) and states the result in one line; a depth
// outside 1..4 and a workload file are usage errors.
func TestRunExhaustive(t *testing.T) {
	dir := t.TempDir()
	r := runWant(t, exitOK, "run", "--exhaustive", "1", "--iterations", "2", "--crash-model", "drop,subset", "--progress", "none", "--out", dir)
	require.Contains(t, r.stdout, "exhaustive to depth 1: 2 workloads, ")
	require.Contains(t, r.stdout, " crash states, 0 failures (of 72 workloads in all shards)")
	require.Contains(t, r.stdout, "vocabulary: write-aligned-allocated, ")
	require.Contains(t, r.stdout, "layouts: 4k-aligned (cluster_size=4096 table_size=1 size=16384); ")
	r = runWant(t, exitUsage, "run", "--exhaustive", "5")
	require.Contains(t, r.stderr, "invalid --exhaustive 5")
	wf := filepath.Join(dir, "w.txt")
	require.NoError(t, os.WriteFile(wf, []byte("qedtorture-workload v1\nimage cluster_size=4096 table_size=1 size=4096\nflush\n"), 0o644))
	r = runWant(t, exitUsage, "run", "--exhaustive", "1", "--workload", wf)
	require.Contains(t, r.stderr, "exclusive")
}

// TestRunDiff: --diff TARGET runs every workload on the other target too
// (the report says against what and how many); a clean pair passes; a
// bad name is a usage error, and so is --diff with --fault.
func TestRunDiff(t *testing.T) {
	dir := t.TempDir()
	rep := filepath.Join(dir, "r.json")
	r := qt(t, "run", "--diff", "broken:nosync", "--iterations", "3", "--seed", "4", "--ops", "6", "--max-clusters", "8",
		"--crash-model", "prefix", "--workers", "1", "--progress", "none", "--out", "", "--report", rep)
	require.Equal(t, exitOK, r.code, "stdout: %s\nstderr: %s", r.stdout, r.stderr)
	require.Contains(t, r.stdout, "3 diff runs against broken:nosync")
	var m campaign.Report
	b, err := os.ReadFile(rep)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &m))
	require.Equal(t, "broken:nosync", m.Diff)
	require.EqualValues(t, 3, m.DiffRuns)
	r = runWant(t, exitUsage, "run", "--diff", "nope", "--iterations", "1")
	require.Contains(t, r.stderr, "invalid --diff")
	r = runWant(t, exitUsage, "run", "--diff", "impl/qed", "--fault", "write:eio@nth=3", "--iterations", "1")
	require.Contains(t, r.stderr, "--diff")
}

// TestRunFaultShare: by default a share of the workloads runs with a
// drawn fault (the summary says so, the report carries the share and
// counts the faulted workloads); the share is refused out of [0,1] and,
// asked for, where it cannot apply; --fault turns the default off.
func TestRunFaultShare(t *testing.T) {
	dir := t.TempDir()
	rep := filepath.Join(dir, "r.json")
	a := runArgs([]string{"run", "--iterations", "4", "--seed", "11", "--report", rep, "--out", dir, "--nested-depth", "1"}, quick)
	read := func() map[string]any {
		b, err := os.ReadFile(rep)
		require.NoError(t, err)
		var m map[string]any
		require.NoError(t, json.Unmarshal(b, &m))
		return m
	}
	r := runWant(t, exitOK, a...)
	require.Contains(t, r.stdout, "faults: one drawn rule in 0.2 of the workloads")
	require.EqualValues(t, 0.2, read()["fault_share"])
	r = runWant(t, exitOK, runArgs(a, []string{"--fault-share", "1", "--create-crashes", "0"})...)
	m := read()
	require.EqualValues(t, 1, m["fault_share"])
	require.Positive(t, m["faulted"], "faults drawn into every workload fire")
	require.Contains(t, r.stdout, "faulted: ")
	r = runWant(t, exitOK, runArgs(a, []string{"--fault", "write:eio@nth=1000000"})...)
	require.NotContains(t, read(), "fault_share", "--fault turns the drawn faults off")
	require.NotContains(t, r.stdout, "one drawn rule")
	for _, bad := range [][]string{
		{"--fault-share", "1.5"},
		{"--fault-share", "-1"},
		{"--fault-share", "0.5", "--fault", "write:eio@nth=1"},
		{"--fault-share", "0.5", "--exhaustive", "1"},
		{"--fault-share", "0.5", "--diff", "impl/qed"},
		{"--fault-share", "0.5", "--target", "exec:qedtorture io"},
	} {
		r := runWant(t, exitUsage, runArgs(a, bad)...)
		require.Contains(t, r.stderr, "fault-share", "%v", bad)
	}
	// Every workload drawn and swept: the summary and the report count
	// the sweeps and their runs; the share is refused out of [0,1].
	r = runWant(t, exitOK, runArgs(a, []string{"--fault-share", "1", "--fault-sweep", "1", "--create-crashes", "0"})...)
	m = read()
	require.EqualValues(t, 1, m["fault_sweep"])
	require.Positive(t, m["fault_sweeps"], "workloads swept")
	require.Greater(t, m["fault_sweep_runs"], m["fault_sweeps"], "a sweep runs once per operation of its step")
	require.Contains(t, r.stdout, "fault sweeps: ")
	for _, bad := range [][]string{{"--fault-sweep", "1.5"}, {"--fault-sweep", "-1"}} {
		r := runWant(t, exitUsage, runArgs(a, bad)...)
		require.Contains(t, r.stderr, "fault-sweep", "%v", bad)
	}
}
