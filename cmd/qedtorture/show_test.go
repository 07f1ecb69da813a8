package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"

	"github.com/qedtorture/qedtorture/internal/campaign"
	"github.com/stretchr/testify/require"
)

// TestShow: show lists an artifact's trace by epochs with each write
// labelled (header fields changed, tables, guest data), the guest op that
// issued it (the workload line), what the crash did to it, and hexdumps a
// range; bad arguments are usage errors.
// Seed 5: its first failure is a top-level crash state with guest ops
// before it (seed 3's became one found during recovery when the generator
// drew the ops of issue 16.2; seed 4's became a crash just after the setup
// when it drew idle ops and commit -b).
// 4 KiB clusters: tables of at most 64 KiB, which impl/qed writes whole
// when it creates the image (bigger ones are made by extending the file,
// issue 19), so the trace has the header and L1 writes whose labels are
// checked.
func TestShow(t *testing.T) {
	out := t.TempDir()
	r := qt(t, "run", "--target", "broken:noflush", "--iterations", "30", "--seed", "5", "--crash-model", "drop,subset",
		"--out", out, "--progress", "none", "--workers", "1", "--cluster-sizes", "4K")
	require.Equal(t, exitRuntime, r.code, r.stdout+r.stderr)
	m := regexp.MustCompile(`artifact: (\S+)`).FindStringSubmatch(r.stdout)
	require.NotNil(t, m, r.stdout)
	s := runWant(t, 0, "show", m[1], "--hexdump", "0+16")
	for _, want := range []string{"== epoch 0 ==", "-- guest op 0: ", "[durable]", "header, changes", "[lost]", "header (backing file name and padding) and L1 entries 0..7", "crash state k=", "00000000  51 45 44 00"} {
		require.Contains(t, s.stdout, want)
	}
	require.Regexp(t, `L[12] (table \d+ \(L1 entry \d+\) )?entr`, s.stdout)
	runWant(t, exitUsage, "show", m[1], "--hexdump", "junk")
	other := runWant(t, 0, "show", m[1], "k=6/prefix/0")
	require.Contains(t, other.stdout, "crash state k=6/prefix/0")
	runWant(t, exitRuntime, "show", m[1], "k=bogus")
	runWant(t, exitUsage, "show")
	runWant(t, exitRuntime, "show", t.TempDir())
}

// TestHTMLOutputs: run --html writes the report as a page naming the
// failure, report html renders a JSON report (its artifacts found beside
// it), show --html renders one artifact; a page is never written to
// stdout, and a missing report is a runtime error.
func TestHTMLOutputs(t *testing.T) {
	dir := t.TempDir()
	rj, rh := filepath.Join(dir, "r.json"), filepath.Join(dir, "r.html")
	r := qt(t, "run", "--target", "broken:noflush", "--iterations", "10", "--seed", "3", "--crash-model", "drop",
		"--out", filepath.Join(dir, "out"), "--progress", "none", "--workers", "1", "--report", rj, "--html", rh)
	require.Equal(t, exitRuntime, r.code, r.stdout+r.stderr)
	require.Contains(t, r.stdout, "html: "+rh)
	page, err := os.ReadFile(rh)
	require.NoError(t, err)
	require.Contains(t, string(page), "broken:noflush/data")
	require.Contains(t, string(page), "Timeline of the writes between barriers")

	out := filepath.Join(dir, "again.html")
	runWant(t, 0, "report", "html", rj, out)
	again, err := os.ReadFile(out)
	require.NoError(t, err)
	require.Contains(t, string(again), "Cluster map of the crashed image")
	runWant(t, exitRuntime, "report", "html", filepath.Join(dir, "none.json"), out)
	runWant(t, exitUsage, "report", "html", rj)

	m := regexp.MustCompile(`artifact: (\S+)`).FindStringSubmatch(r.stdout)
	require.NotNil(t, m, r.stdout)
	one := filepath.Join(dir, "one.html")
	s := runWant(t, 0, "show", m[1], "--html", one)
	require.NotContains(t, s.stdout, "== epoch 0 ==", "the page replaces the text")
	b, err := os.ReadFile(one)
	require.NoError(t, err)
	require.Contains(t, string(b), "Hexdump diff: expected vs read")

	runWant(t, exitUsage, "run", "--html", "-", "--iterations", "1")
}

// TestShowCreationFailure: show and show --html of a crash during the
// creation of an image over an existing one (broken:nosync's creation
// loses its syncs: a crash keeps the new header over the old tables) say
// that the state is a crash during the creation and what the creation
// judge allows there.
func TestShowCreationFailure(t *testing.T) {
	dir := t.TempDir()
	wl := filepath.Join(dir, "w.txt")
	require.NoError(t, os.WriteFile(wl, []byte("qedtorture-workload v1\nimage cluster_size=4096 table_size=1 size=65536\nwrite 0x8000 4096 id=1\nflush\n"), 0o644))
	seed := uint64(1)
	for !campaign.CreateOverChosen(campaign.WorkloadSeed(seed, 0)) {
		seed++
	}
	r := qt(t, "run", "--target", "broken:nosync", "--workload", wl, "--iterations", "1", "--seed", strconv.FormatUint(seed, 10),
		"--crash-model", "subset", "--create-crashes", "1", "--out", filepath.Join(dir, "out"), "--progress", "none", "--workers", "1")
	require.Equal(t, exitRuntime, r.code, r.stdout+r.stderr)
	m := regexp.MustCompile(`artifact: (\S+)`).FindStringSubmatch(r.stdout)
	require.NotNil(t, m, r.stdout)
	require.Contains(t, r.stdout, "signature: create/")
	s := runWant(t, 0, "show", m[1])
	require.Contains(t, s.stdout, "a crash during the creation of the image and its backing chain (trace operations before ")
	require.Contains(t, s.stdout, "over an existing image: the creation judge wants the image absent")
	require.Contains(t, s.stdout, "the old image intact")
	page := filepath.Join(dir, "a.html")
	runWant(t, 0, "show", m[1], "--html", page)
	b, err := os.ReadFile(page)
	require.NoError(t, err)
	require.Contains(t, string(b), "over an existing image: the creation judge wants the image absent")
	require.Contains(t, string(b), `class="mono signature">create/`)
}
