//go:build qeddefects

package html

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/qedtorture/qedtorture/impl/qed"
	"github.com/qedtorture/qedtorture/impl/qed/qedtarget"
	"github.com/qedtorture/qedtorture/internal/campaign"
	"github.com/stretchr/testify/require"
)

// TestStructuralFailurePage: a seeded defect that never sets NEED_CHECK
// leaves a clean-marked image with an L2 entry past the end of the file;
// the page's cluster map marks the L2 table holding the entry and draws
// the cluster it points at past the end, and the hexdump diff shows the
// crashed entry against the image at the end of the crash-free run.
func TestStructuralFailurePage(t *testing.T) {
	var tgt = qedtarget.Defects()[0]
	for _, d := range qedtarget.Defects() {
		if d.Name() == "defect:need-check-never-set" {
			tgt = d
		}
	}
	require.Equal(t, "defect:need-check-never-set", tgt.Name())
	// The defect target switches the defect on for the whole process.
	t.Cleanup(func() { qed.SetDefect(qed.DefectNone) })
	// Without hostile ops: the defect also fails a hostile op's repair
	// (the image is left marked clean), a failure at stage workload
	// with no crashed image to map.
	gen := campaign.DefaultGenConfig()
	gen.HostileChance, gen.HostileAgainChance = 0, 0
	rep := campaignWithGen(t, tgt, gen)
	fr := rep.Failures[0]
	require.Contains(t, fr.Signature, "data-past-eof")
	p := ForReport(rep, "", "qedtorture run: "+tgt.Name())
	page := render(t, p)
	requireSelfContained(t, page)
	for _, want := range []string{`class="cell l2 bad"`, `class="cell target ghost"`, "past the end of the", "Hexdump diff around L2[", "where that entry points", `class="d"`} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	f := p.Failures[0]
	require.Len(t, f.Diffs, 2, "the entry, and where it points")
	diff := 0
	for _, r := range f.Diffs[1].Rows {
		for _, c := range r.A {
			if c.Diff {
				diff++
				require.Equal(t, "--", c.Hex, "the crashed file ends before the cluster the entry points at")
			}
		}
	}
	require.Positive(t, diff, "the cluster pointed at is past the crashed file's end, not at the end of the run")
	// For docs/: a screenshot when QEDTORTURE_SCREENSHOTS is set.
	// The artifact's own page (show --html), the timeline filtered to
	// what the crash decided (#decided).
	if dir := screenshotDir(); dir != "" {
		a, err := ForArtifact(fr.Artifact, "")
		require.NoError(t, err)
		file := filepath.Join(t.TempDir(), "structural.html")
		require.NoError(t, a.WriteFile(file))
		screenshot(t, chromiumPath(t), file+"#decided", "html-failure.png", 2000)
	}
}
