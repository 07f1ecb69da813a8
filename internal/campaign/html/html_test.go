package html

import (
	"bytes"
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qedtorture/qedtorture/impl/qed/qedtarget"
	"github.com/qedtorture/qedtorture/internal/campaign"
	"github.com/qedtorture/qedtorture/props/target"
	"github.com/qedtorture/qedtorture/props/workload"
	"github.com/spf13/afero"
	"github.com/stretchr/testify/require"
)

// campaignWith runs a short seeded campaign on tgt whose first failure is
// minimized into an artifact under a temporary directory.
func campaignWith(t *testing.T, tgt target.Target) *campaign.Report {
	t.Helper()
	return campaignWithGen(t, tgt, workload.GenConfig{})
}

// campaignWithGen is campaignWith drawing workloads from gen (the
// campaign's default when gen is zero).
func campaignWithGen(t *testing.T, tgt target.Target, gen workload.GenConfig) *campaign.Report {
	t.Helper()
	rep, err := campaign.Run(context.Background(), campaign.Config{Seed: 5, Iterations: 20, Target: tgt, Workers: 1,
		MaxFailures: 1, Out: t.TempDir(), Gen: gen})
	require.NoError(t, err)
	require.NotEmpty(t, rep.Failures, "%s found nothing", tgt.Name())
	return rep
}

func broken(t *testing.T, name string) target.Target {
	t.Helper()
	for _, b := range qedtarget.Broken() {
		if b.Name() == name {
			return b
		}
	}
	t.Fatalf("no target %s", name)
	return nil
}

// render renders p and returns the page.
func render(t *testing.T, p *Page) string {
	t.Helper()
	var b bytes.Buffer
	require.NoError(t, p.Render(&b))
	return b.String()
}

// requireSelfContained fails if the page refers to anything outside itself.
func requireSelfContained(t *testing.T, page string) {
	t.Helper()
	for _, bad := range []string{"http://", "https://", "src=", "<link", "@import", "url(", "@font-face"} {
		require.NotContains(t, page, bad, "the page must load nothing")
	}
}

// TestReportPage: a data failure's page has the run's summary, the
// per-model counts, the rate chart, the minimized workload, the timeline
// with what the crash did to each write, the cluster map and the
// expected-vs-read hexdump; it loads nothing.
func TestReportPage(t *testing.T) {
	rep := campaignWith(t, broken(t, "broken:noflush"))
	fr := rep.Failures[0]
	page := render(t, ForReport(rep, "", "qedtorture run: broken:noflush"))
	requireSelfContained(t, page)
	for _, want := range []string{
		"qedtorture run: broken:noflush", `id="summary"`, "Crash states per model", fr.Signature,
		"qedtorture-workload v1", "epoch 0", `class="fate fate-durable"`, "barrier: sync #",
		"Cluster map of the crashed image", `class="cell header"`, `class="cell l1"`,
		"Hexdump diff: expected vs read", "first differing guest offset", `class="evr-mark"`,
		"<polyline", "Crash outcome", // the script's text is in the script
	} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	for m := range rep.PerModel {
		if !strings.Contains(page, strings.ReplaceAll(m, "+", "&#43;")) {
			t.Errorf("the page lacks model %q", m)
		}
	}
}

// TestReportPageSetupAndGaps: a report whose artifact is gone still
// renders, saying so; report text is escaped; a report without rate
// samples says it has none.
func TestReportPageGaps(t *testing.T) {
	rep := &campaign.Report{Version: campaign.ReportVersion, Target: "<b>t</b>", PerModel: map[string]int64{"drop": 3},
		Failures: []campaign.FailureReport{
			{Signature: "x/data", Message: "<script>alert(1)</script>", Artifact: filepath.Join(t.TempDir(), "gone")},
			{Signature: "y/setup", ArtifactError: "no space left on device"},
		}}
	page := render(t, ForReport(rep, "", "t"))
	requireSelfContained(t, page)
	require.NotContains(t, page, "<script>alert(1)")
	require.NotContains(t, page, "<b>t</b>")
	require.Contains(t, page, "&lt;script&gt;alert(1)")
	require.Contains(t, page, "The artifact could not be read")
	require.Contains(t, page, "no space left on device")
	require.Contains(t, page, "has no rate samples")
}

// TestArtifactPage: show --html's page of a broken:nosync artifact (an
// empty crashed image) says the image has no header to map; the page
// names the state it shows.
func TestArtifactPage(t *testing.T) {
	rep := campaignWith(t, broken(t, "broken:nosync"))
	p, err := ForArtifact(rep.Failures[0].Artifact, "")
	require.NoError(t, err)
	page := render(t, p)
	requireSelfContained(t, page)
	require.Contains(t, page, "no valid QED header")
	require.Contains(t, page, rep.Failures[0].State)
	_, err = ForArtifact(t.TempDir(), "")
	require.Error(t, err)
}

// TestWriteFile: the page is written atomically: it replaces an old page
// whole, leaves no temporary, and fails with the path named when the
// directory cannot be written.
func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "r.html")
	require.NoError(t, os.WriteFile(out, []byte("old"), 0o644))
	p := ForReport(&campaign.Report{Version: campaign.ReportVersion, PerModel: map[string]int64{}}, "", "t")
	require.NoError(t, p.WriteFile(out))
	b, err := os.ReadFile(out)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(string(b), "<!DOCTYPE html>"))
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, ents, 1, "no temporary left")
	if os.Geteuid() != 0 { // root writes anywhere
		ro := filepath.Join(dir, "ro")
		require.NoError(t, os.Mkdir(ro, 0o555))
		err = p.WriteFile(filepath.Join(ro, "r.html"))
		require.ErrorContains(t, err, "r.html")
	}
}

// TestClusterMapDoubleReference: an image whose second guest cluster's L2
// entry points at the first one's data (a doubled pointer): the map
// outlines the L2 table holding the entries and fills the shared data
// cluster, and the first damaged entry is returned for the hexdump diff.
func TestClusterMapDoubleReference(t *testing.T) {
	fs := afero.NewMemMapFs()
	tgt := qedtarget.Target{}
	require.NoError(t, tgt.Create(fs, "/i.qed", target.CreateOptions{Size: 1 << 20, ClusterSize: 4096, TableSize: 1}))
	d, err := tgt.Open(fs, "/i.qed", target.OpenOptions{})
	require.NoError(t, err)
	_, err = d.WriteAt(bytes.Repeat([]byte{0xa1}, 8192), 0)
	require.NoError(t, err)
	require.NoError(t, d.Close())
	img, err := afero.ReadFile(fs, "/i.qed")
	require.NoError(t, err)
	le := binary.LittleEndian
	l2 := le.Uint64(img[le.Uint64(img[40:]):]) // L1[0]
	first := le.Uint64(img[l2:])
	le.PutUint64(img[l2+8:], first) // guest cluster 1 -> guest cluster 0's data
	m, bad := clusterMap(img, &campaign.Timeline{})
	require.NotNil(t, bad)
	require.Equal(t, first, bad.Value)
	var classes []string
	for _, c := range m.Cells {
		classes = append(classes, c.Class)
	}
	require.Contains(t, classes, "cell l2 bad", "the table holding the doubled entry")
	require.Contains(t, classes, "cell data target", "the shared cluster")
	require.Contains(t, classes, "cell unreferenced", "guest cluster 1's own data, now referenced by nothing")
}
