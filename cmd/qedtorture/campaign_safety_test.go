package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/qedtorture/qedtorture/internal/campaign"
	"github.com/qedtorture/qedtorture/internal/qemutool"
	"github.com/qedtorture/qedtorture/internal/racetest"
	"github.com/qedtorture/qedtorture/internal/tmpfstest"
	"github.com/stretchr/testify/require"
)

// readReport decodes a campaign report file.
func readReport(t *testing.T, name string) *campaign.Report {
	t.Helper()
	fh, err := os.Open(name)
	require.NoError(t, err)
	defer fh.Close()
	rep, err := campaign.ReadReport(fh)
	require.NoError(t, err)
	return rep
}

// TestRunReportToStdoutIsJSON: with --report -, stdout is the JSON report
// alone and every human line is on stderr (issue 11, item 9).
func TestRunReportToStdoutIsJSON(t *testing.T) {
	r := runWant(t, exitOK, runArgs([]string{"run", "--iterations", "3", "--seed", "4", "--report", "-", "--out", t.TempDir()}, quick)...)
	var m map[string]any
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &m), "stdout: %q", r.stdout)
	require.EqualValues(t, 3, m["workloads"])
	require.Contains(t, r.stderr, "seed: 4")
	require.Contains(t, r.stderr, "done: 3 workload(s) checked")
}

// TestRunDuration: a non-positive --duration is a usage error; a
// campaign that completed no workload does not exit 0, and says why
// (item 10).
func TestRunDuration(t *testing.T) {
	for _, cmd := range []string{"run", "qemu"} {
		for _, d := range []string{"0", "0s", "-1s"} {
			r := runWant(t, exitUsage, cmd, "--duration", d)
			require.Contains(t, r.stderr, "invalid --duration", cmd, d)
			require.Contains(t, r.stderr, "must be positive")
		}
	}
	rep := filepath.Join(t.TempDir(), "r.json")
	r := runWant(t, exitRuntime, runArgs([]string{"run", "--duration", "1ns", "--seed", "1", "--out", t.TempDir(), "--report", rep}, quick)...)
	require.Contains(t, r.stderr, "no workload completed")
	require.Contains(t, r.stderr, "--duration 1ns ended before the first one finished")
	require.EqualValues(t, 0, readReport(t, rep).Workloads, "the report is still written")
}

// TestRunSummaryCountsHonestly: a failing workload is counted as checked
// and failed: never "0 workloads ... 1 failure(s)" (item 11).
func TestRunSummaryCountsHonestly(t *testing.T) {
	r := runWant(t, exitRuntime, runArgs([]string{"run", "--iterations", "30", "--seed", "3", "--target", "broken:noflush", "--out", t.TempDir()}, quick)...)
	m := regexp.MustCompile(`done: (\d+) workload\(s\) checked in [0-9.]+s \((\d+) passed, (\d+) failed, (\d+) skipped\)`).FindStringSubmatch(r.stdout)
	require.NotNil(t, m, r.stdout)
	n := func(i int) int { v, _ := strconv.Atoi(m[i]); return v }
	require.Equal(t, n(1), n(2)+n(3)+n(4))
	require.Positive(t, n(3))
	require.Contains(t, r.stderr, "1 failure(s) found (seed 3)")
}

// TestShardNeedsSeed: shards without a common seed would each pick their
// own (item 8).
func TestShardNeedsSeed(t *testing.T) {
	r := runWant(t, exitUsage, "run", "--shard", "0/2", "--iterations", "2")
	require.Contains(t, r.stderr, "need --seed")
	t.Setenv("JOB_COMPLETION_INDEX", "1")
	r = runWant(t, exitUsage, "run", "--shards", "2", "--iterations", "2")
	require.Contains(t, r.stderr, "need --seed")
}

// TestMergeRefusesIncompleteShards: merging shard 0 of 2 alone fails
// unless --allow-partial, which lists the missing shard; -o and
// --output-file name the file (the old --output still works).
func TestMergeRefusesIncompleteShards(t *testing.T) {
	dir := t.TempDir()
	base := runArgs([]string{"run", "--iterations", "4", "--seed", "99", "--out", dir}, quick)
	s0 := filepath.Join(dir, "s0.json")
	runWant(t, exitOK, append(base, "--shard", "0/2", "--report", s0)...)
	r := runWant(t, exitRuntime, "report", "merge", s0)
	require.Contains(t, r.stderr, "incomplete set of shards: shard 1 missing (of 2)")
	require.Contains(t, r.stderr, "--allow-partial")
	require.Empty(t, r.stdout)

	out := filepath.Join(dir, "m.json")
	r = runWant(t, exitOK, "report", "merge", "--allow-partial", "--output-file", out, s0)
	require.Contains(t, r.stdout, "partial merge: shard 1 missing")
	require.Equal(t, []int{1}, readReport(t, out).MissingShards)

	r = runWant(t, exitOK, "report", "merge", "--allow-partial", s0)
	var m map[string]any
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &m), "stdout is the JSON alone")
	require.Contains(t, r.stderr, "partial merge")

	out2 := filepath.Join(dir, "m2.json")
	r = qt(t, "report", "merge", "--allow-partial", "--output", out2, s0)
	require.Equal(t, exitOK, r.code, r.stderr)
	require.Contains(t, r.stderr, "deprecated")
	require.FileExists(t, out2)
}

// TestMergeSaysCheckpointAndInterrupted: checkpointed and interrupted
// shard reports merge, and the output and the merged report say so
// (item 7).
func TestMergeSaysCheckpointAndInterrupted(t *testing.T) {
	dir := t.TempDir()
	base := runArgs([]string{"run", "--iterations", "4", "--seed", "98", "--out", dir}, quick)
	var names []string
	for i := range 2 {
		n := filepath.Join(dir, "s"+strconv.Itoa(i)+".json")
		runWant(t, exitOK, append(base, "--shard", strconv.Itoa(i)+"/2", "--report", n)...)
		names = append(names, n)
	}
	mark := func(name, field string) {
		var m map[string]any
		b, err := os.ReadFile(name)
		require.NoError(t, err)
		require.NoError(t, json.Unmarshal(b, &m))
		m[field] = true
		b, err = json.Marshal(m)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(name, b, 0o644))
	}
	mark(names[0], "interrupted")
	mark(names[1], "checkpoint")
	out := filepath.Join(dir, "m.json")
	r := runWant(t, exitOK, "report", "merge", "-o", out, names[0], names[1])
	require.Contains(t, r.stdout, "shard 0/2 was interrupted")
	require.Contains(t, r.stdout, "shard 1/2 is a checkpoint")
	m := readReport(t, out)
	require.True(t, m.Interrupted)
	require.True(t, m.Checkpoint)
	require.Equal(t, []int{0, 1}, m.Partial)
}

// TestRunOutputsCheckedBeforeStart: an unwritable --out or --report fails
// at once with one line naming it, before any workload runs (item 5).
func TestRunOutputsCheckedBeforeStart(t *testing.T) {
	racetest.Heavy(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	require.NoError(t, os.WriteFile(file, []byte("x"), 0o644))
	ro := tmpfstest.Mount(t, "ro,size=64k")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--out", file}, "--out " + file + ": not a directory"},
		{[]string{"--out", filepath.Join(file, "sub")}, "not a directory"},
		{[]string{"--out", ro}, "read-only file system"},
		{[]string{"--out", filepath.Join(ro, "new")}, "read-only file system"},
		{[]string{"--out", dir, "--report", filepath.Join(ro, "r.json")}, "--report " + filepath.Join(ro, "r.json") + ": cannot write in " + ro + ": read-only file system"},
		{[]string{"--out", dir, "--report", dir}, "is a directory"},
	} {
		for _, cmd := range []string{"run", "qemu"} {
			if cmd == "qemu" && !hasQEMU() {
				continue
			}
			args := append([]string{cmd, "--iterations", "1", "--seed", "1", "--progress", "none"}, c.args...)
			r := runWant(t, exitRuntime, args...)
			require.Contains(t, r.stderr, c.want, args)
			require.NotContains(t, r.stdout+r.stderr, "workload", "the campaign did not start: %v", args)
		}
	}
	// A missing parent directory is created (at the end, not before).
	rep := filepath.Join(dir, "new", "sub", "r.json")
	runWant(t, exitOK, runArgs([]string{"run", "--iterations", "1", "--seed", "1", "--out", filepath.Join(dir, "arts"), "--report", rep}, quick)...)
	require.FileExists(t, rep)
	require.NoDirExists(t, filepath.Join(dir, "arts"), "no failure, no artifact directory")
}

// TestRunReportFullDisk: a report that does not fit fails with one line
// naming it and the cause, and leaves no report, partial or temporary
// (item 4).
func TestRunReportFullDisk(t *testing.T) {
	racetest.Heavy(t)
	d := tmpfstest.Mount(t, "size=64k")
	tmpfstest.Fill(t, d)
	rep := filepath.Join(d, "r.json")
	r := runWant(t, exitRuntime, runArgs([]string{"run", "--iterations", "2", "--seed", "1", "--out", t.TempDir(), "--report", rep, "--checkpoint-interval", "0"}, quick)...)
	require.Contains(t, r.stderr, "writing the report: "+rep+": no space left on device")
	require.NoFileExists(t, rep)
	noTemps(t, d)
}

// TestRunArtifactFullDisk: a failure whose artifact does not fit is
// reported on stderr, recorded in the report, and the summary says it has
// no artifact; --out holds nothing that looks like an artifact (items 4,
// 5).
func TestRunArtifactFullDisk(t *testing.T) {
	out := tmpfstest.Mount(t, "size=64k")
	tmpfstest.Fill(t, out)
	rep := filepath.Join(t.TempDir(), "r.json")
	r := qt(t, runArgs([]string{"run", "--iterations", "30", "--seed", "3", "--target", "broken:noflush", "--out", out, "--report", rep}, quick)...)
	require.Equal(t, exitRuntime, r.code, r.stdout+r.stderr)
	require.Contains(t, r.stdout, "artifact: none, it could not be written")
	require.Regexp(t, `qedtorture: the failure of workload \d+ has no artifact: campaign: artifact `+regexp.QuoteMeta(out)+`/failure-3-w\d+-\w+: [^\n]*no space left on device`, r.stderr)
	require.Contains(t, r.stderr, "1 failure(s) found, 1 of them without an artifact")
	es, err := os.ReadDir(out)
	require.NoError(t, err)
	require.Len(t, es, 1, "only the filler: %v", es)
	fr := readReport(t, rep).Failures
	require.Len(t, fr, 1)
	require.Empty(t, fr[0].Artifact)
	require.Contains(t, fr[0].ArtifactError, "no space left on device")
}

// hasQEMU reports whether qemu-img and qemu-io are installed.
func hasQEMU() bool {
	_, err := qemutool.Find()
	return err == nil
}

// TestQEMUReportStdoutAndNoWorkload: qemu with --report - keeps stdout
// JSON; a qemu campaign that completed no workload exits 1 and says why.
func TestQEMUReportStdoutAndNoWorkload(t *testing.T) {
	qemutool.Require(t)
	base := []string{"qemu", "--seed", "9", "--ops", "4", "--max-clusters", "16", "--crash-model", "prefix", "--qemu-states", "1",
		"--diff=false", "--progress", "none", "--minimize", "-1", "--out", t.TempDir()}
	r := runWant(t, exitOK, append(base, "--iterations", "1", "--report", "-")...)
	var m map[string]any
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &m), "stdout: %q", r.stdout)
	require.EqualValues(t, 1, m["workloads"])
	require.Contains(t, r.stderr, "seed: 9")
	require.Contains(t, r.stderr, "done: 1 workload(s) checked")

	r = qt(t, append(base, "--duration", "1ns")...) // the seed is on stderr too
	require.Equal(t, exitRuntime, r.code)
	require.Contains(t, r.stderr, "no workload completed: --duration 1ns ended before the first one finished")
}

// TestQEMUArtifactFullDisk: a QEMU finding whose artifact does not fit is
// reported on stderr and in the report, and --out holds nothing of it.
func TestQEMUArtifactFullDisk(t *testing.T) {
	qemutool.Require(t)
	dir := t.TempDir()
	wf := filepath.Join(dir, "w.txt")
	require.NoError(t, os.WriteFile(wf, []byte("qedtorture-workload v1\nimage cluster_size=65536 table_size=4 size=1048576\n"+
		"write 0x0 0x1000 id=1\nreopen\nwrite 0x20000 0x1000 id=2\nflush\n"), 0o644))
	out := tmpfstest.Mount(t, "size=64k")
	tmpfstest.Fill(t, out)
	rep := filepath.Join(dir, "r.json")
	r := qt(t, "qemu", "--workload", wf, "--ends", "close", "--crash-model", "subset", "--qemu-states", "0",
		"--diff=false", "--seed", "1", "--out", out, "--report", rep, "--progress", "none", "--minimize", "-1")
	require.Equal(t, exitRuntime, r.code, r.stdout+r.stderr)
	require.Contains(t, r.stdout, "artifact: none, it could not be written")
	require.Regexp(t, `qedtorture: the failure of workload 0 has no artifact: campaign: artifact `+regexp.QuoteMeta(out)+`/failure-1-w0-[^:]+: [^\n]*no space left on device`, r.stderr)
	es, err := os.ReadDir(out)
	require.NoError(t, err)
	require.Len(t, es, 1, "only the filler: %v", es)
	var q map[string]any
	b, err := os.ReadFile(rep)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &q))
	f := q["failures"].([]any)[0].(map[string]any)
	require.Nil(t, f["artifact"])
	require.Contains(t, f["artifact_error"], "no space left on device")
}

// A campaign whose every workload failed with a known finding verified
// nothing else: it says so, not that no workload ran.
func TestNoWorkloadErrorKnownFailures(t *testing.T) {
	err := noWorkloadError(23, 0, "", time.Minute, 60)
	require.ErrorContains(t, err, "each of the 23 that ran failed with a known finding")
	require.NotContains(t, err.Error(), "ended before")
	err = noWorkloadError(2, 3, "why", time.Minute, 60)
	require.ErrorContains(t, err, "3 more were skipped (why)")
	require.ErrorContains(t, noWorkloadError(0, 3, "why", time.Minute, 60), "all 3 were skipped (why)")
	require.ErrorContains(t, noWorkloadError(0, 0, "", time.Second, 2), "--duration 1s ended before the first one finished")
}
