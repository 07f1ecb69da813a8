package html

import (
	"bytes"
	"context"
	"image"
	"image/color/palette"
	"image/draw"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/qedtorture/qedtorture/crashsim"
	"github.com/qedtorture/qedtorture/internal/campaign"
	"github.com/qedtorture/qedtorture/props/workload"
	"github.com/stretchr/testify/require"
)

// chromiumPath finds headless Chromium (Debian's chromium package,
// installed by scripts/install-deps; QEDTORTURE_CHROMIUM overrides). The
// test skips without it, except under CI, where it fails.
func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("QEDTORTURE_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("CI is set and headless Chromium is required (scripts/install-deps installs Debian's chromium)")
	}
	t.Skip("skipping: no chromium on the PATH (scripts/install-deps installs it)")
	return ""
}

// chromium runs headless Chromium on file (with an optional #fragment) with a fresh profile, nothing
// fetched in the background, and the extra arguments; it returns stdout.
func chromium(t *testing.T, bin, file string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	file, frag, _ := strings.Cut(file, "#")
	if frag != "" {
		frag = "#" + frag
	}
	abs, err := filepath.Abs(file)
	require.NoError(t, err)
	all := append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir=" + t.TempDir()}, args...)
	cmd := exec.CommandContext(ctx, bin, append(all, "file://"+abs+frag)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "chromium: %s", stderr.String())
	return string(out)
}

// screenshot writes a PNG of the page at url (file, with an optional
// #fragment) into $QEDTORTURE_SCREENSHOTS (for docs/), when that is set:
// the top height pixels, in 256 colours (a small file).
func screenshot(t *testing.T, bin, url, name string, height int) {
	t.Helper()
	dir := screenshotDir()
	if dir == "" {
		return
	}
	png := filepath.Join(dir, name)
	chromium(t, bin, url, "--hide-scrollbars", "--window-size=1100,"+strconv.Itoa(height), "--screenshot="+png)
	require.NoError(t, shrinkPNG(png))
	fi, err := os.Stat(png)
	require.NoError(t, err)
	t.Logf("screenshot %s (%d bytes)", png, fi.Size())
}

// shrinkPNG rewrites a PNG in the Plan 9 palette, best compression.
func shrinkPNG(name string) error {
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	img, err := png.Decode(f)
	f.Close()
	if err != nil {
		return err
	}
	p := image.NewPaletted(img.Bounds(), palette.Plan9)
	draw.Draw(p, p.Bounds(), img, img.Bounds().Min, draw.Src)
	var b bytes.Buffer
	if err := (&png.Encoder{CompressionLevel: png.BestCompression}).Encode(&b, p); err != nil {
		return err
	}
	return os.WriteFile(name, b.Bytes(), 0o644)
}

func screenshotDir() string { return os.Getenv("QEDTORTURE_SCREENSHOTS") }

// TestChromiumRendersReport renders a report page of a real failure in
// headless Chromium and checks the DOM after the page's script ran: the
// summary, the failure, the timeline's entries, the cluster map, and the
// script's own summaries (which exist only once it ran).
func TestChromiumRendersReport(t *testing.T) {
	bin := chromiumPath(t)
	rep := campaignWith(t, broken(t, "broken:noflush"))
	file := filepath.Join(t.TempDir(), "report.html")
	require.NoError(t, ForReport(rep, "", "qedtorture run: broken:noflush").WriteFile(file))
	dom := chromium(t, bin, file, "--dump-dom")
	fr := rep.Failures[0]
	for _, want := range []string{
		`data-rendered="yes"`, // the script ran to its end
		"(interactive: 1 failure(s)",
		"1 new failure signature(s)", "Crash states per model", "Crash states per second over time",
		fr.Signature, "Timeline of the writes between barriers", "barrier: sync #",
		"Cluster map of the crashed image", "Hexdump diff: expected vs read", "first differing guest offset",
	} {
		if !strings.Contains(dom, want) {
			t.Errorf("the rendered page lacks %q", want)
		}
	}
	// The script's crash-outcome line counts the timeline's rows.
	require.Regexp(t, regexp.MustCompile(`Crash outcome: \d+ durable.*\d+ lost.* \(of \d+ operations\)\.`), dom)
	require.Regexp(t, `<tr class="op" data-fate="lost">`, dom)
	require.Regexp(t, `<polyline[^>]+points="[0-9.]+,[0-9.]+`, dom, "the states-per-second chart has its samples")
	require.Regexp(t, `class="cell header"`, dom)
	require.Regexp(t, `#\d+ write /w/image\.qed@\d+\+\d+`, dom)
	if screenshotDir() != "" {
		// For docs/: a campaign long enough for the rate chart.
		rep, err := campaign.Run(context.Background(), campaign.Config{Seed: 5, Duration: 8 * time.Second,
			Target: broken(t, "broken:noflush"), Workers: 1, MaxFailures: 2, Out: t.TempDir()}) // one signature: runs 8 s
		require.NoError(t, err)
		require.NoError(t, ForReport(rep, "", "qedtorture run: broken:noflush").WriteFile(file))
		screenshot(t, bin, file, "html-report.png", 1250)
	}
}

// TestChromiumRendersNestedFailure renders a crash during recovery (the
// nested judge, depth 2) in headless Chromium: the failure's section shows
// the recorded recovery of the depth-1 state with what the depth-2 crash
// kept, lost or tore.
func TestChromiumRendersNestedFailure(t *testing.T) {
	bin := chromiumPath(t)
	rep, err := campaign.Run(context.Background(), campaign.Config{Seed: 3, Iterations: 30, Target: broken(t, "broken:noflush"),
		Workers: 1, MaxFailures: 4, NestedDepth: 2, NestedStates: 1, MinimizeCandidates: -1, Out: t.TempDir()})
	require.NoError(t, err)
	var nested *campaign.FailureReport
	for i := range rep.Failures {
		if strings.HasPrefix(rep.Failures[i].Signature, "depth2/") {
			nested = &rep.Failures[i]
		}
	}
	require.NotNil(t, nested, "seed 3 found no crash during recovery: %+v", rep.Signatures)
	rep.Failures = []campaign.FailureReport{*nested}
	file := filepath.Join(t.TempDir(), "report.html")
	require.NoError(t, ForReport(rep, "", "qedtorture run: broken:noflush, nested").WriteFile(file))
	dom := chromium(t, bin, file, "--dump-dom")
	for _, want := range []string{
		`data-rendered="yes"`, nested.Signature, "Timeline of the writes between barriers",
		"Crash during recovery: the recovery's writes", "depth 2: the recovery of the crash state above (nested/2/trace.bin)",
	} {
		if !strings.Contains(dom, want) {
			t.Errorf("the rendered page lacks %q", want)
		}
	}
	require.Regexp(t, `<tr class="nested-op" data-fate="[a-z]+"><td class="n">\d+</td><td class="mono">recovery</td>`, dom)
	require.Regexp(t, `class="fate fate-(kept|lost|torn|durable|unsynced)"`, dom)
}

// TestChromiumRendersCreationFailure renders a crash during the creation
// of an image over an existing one (broken:nosync's creation loses its
// syncs) in headless Chromium: the failure's section says the state is a
// crash during the creation and what the creation judge allows there.
func TestChromiumRendersCreationFailure(t *testing.T) {
	bin := chromiumPath(t)
	w, err := workload.Parse(strings.NewReader("qedtorture-workload v1\nimage cluster_size=4096 table_size=1 size=65536\nwrite 0x8000 4096 id=1\nflush\n"))
	require.NoError(t, err)
	seed := uint64(1)
	for !campaign.CreateOverChosen(campaign.WorkloadSeed(seed, 0)) {
		seed++
	}
	rep, err := campaign.Run(context.Background(), campaign.Config{Seed: seed, Iterations: 1, Workload: w, Target: broken(t, "broken:nosync"),
		Workers: 1, Models: []crashsim.Model{{Base: crashsim.Subset}}, CreateShare: 1, SampledPoints: 8, MaxFailures: 4, MinimizeCandidates: -1, Out: t.TempDir()})
	require.NoError(t, err)
	var creation *campaign.FailureReport
	for i := range rep.Failures {
		if strings.HasPrefix(rep.Failures[i].Signature, "create/") {
			creation = &rep.Failures[i]
		}
	}
	require.NotNil(t, creation, "no crash during the creation failed: %+v", rep.Signatures)
	rep.Failures = []campaign.FailureReport{*creation}
	file := filepath.Join(t.TempDir(), "report.html")
	require.NoError(t, ForReport(rep, "", "qedtorture run: broken:nosync, creation").WriteFile(file))
	dom := chromium(t, bin, file, "--dump-dom")
	for _, want := range []string{
		`data-rendered="yes"`, rep.Failures[0].Signature, "Timeline of the writes between barriers",
		"Crash during creation: a crash during the creation of the image and its backing chain",
		"over an existing image: the creation judge wants the image absent",
	} {
		if !strings.Contains(dom, want) {
			t.Errorf("the rendered page lacks %q", want)
		}
	}
}
