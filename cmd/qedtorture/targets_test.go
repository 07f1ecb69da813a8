package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qedtorture/qedtorture/impl/qed"
	"github.com/stretchr/testify/require"
)

// TestResolveTarget: every listed name resolves to the target of that
// name; impl/qed and the broken wrappers are in every build, the seeded
// defects exactly in builds with the qeddefects tag; a defect named in a
// build without them says how to get them, not "unknown target".
func TestResolveTarget(t *testing.T) {
	names := targetNames()
	for _, n := range names {
		tg, err := resolveTarget(n)
		require.NoError(t, err, n)
		require.Equal(t, n, tg.Name())
	}
	require.Subset(t, names, []string{"impl/qed", "broken:noflush", "broken:nosync"})
	defects := 0
	for _, n := range names {
		if strings.HasPrefix(n, "defect:") {
			defects++
		}
	}
	d := "defect:" + qed.DefectCatalogue[0].Name
	tg, err := resolveTarget(d)
	if qed.DefectsCompiled {
		require.NoError(t, err)
		require.Equal(t, d, tg.Name())
		require.Equal(t, len(qed.DefectCatalogue), defects, "one target per seeded defect")
	} else {
		require.ErrorContains(t, err, "rebuild it with -tags qeddefects")
		require.NotContains(t, err.Error(), "unknown target")
		require.Zero(t, defects, "no defect targets without the qeddefects tag")
		r := runWant(t, exitUsage, "run", "--target", d)
		require.Contains(t, r.stderr, "-tags qeddefects")
	}
	_, err = resolveTarget("defect:no-such-defect")
	require.ErrorContains(t, err, `unknown target "defect:no-such-defect": impl/qed has no seeded defect`)
	_, err = resolveTarget("nope")
	require.ErrorContains(t, err, `unknown target "nope" (want one of `)
	require.ErrorContains(t, err, "impl/qed")
	_, err = resolveTarget("qemu")
	require.ErrorContains(t, err, `target "qemu" runs out of process: 'run --target qemu' records it`)
}

// TestReplayDefectArtifactWithoutDefects: replaying the artifact of a
// seeded defect with a build that has none fails with one line saying to
// rebuild with -tags qeddefects (the target is resolved before anything
// else of the artifact is read).
func TestReplayDefectArtifactWithoutDefects(t *testing.T) {
	if qed.DefectsCompiled {
		t.Skip("this build has the seeded defects: their artifacts replay (internal/campaign TestSeededDefects)")
	}
	dir := t.TempDir()
	meta := `{"version": 1, "target": "defect:` + qed.DefectCatalogue[0].Name + `", "stage": "data", "state": "k=3/drop/0"}` + "\n"
	require.NoError(t, os.WriteFile(filepath.Join(dir, "meta.json"), []byte(meta), 0o644))
	r := runWant(t, exitRuntime, "replay", dir)
	require.Contains(t, r.stderr, "is a seeded defect of impl/qed")
	require.Contains(t, r.stderr, "-tags qeddefects")
	require.NotContains(t, r.stderr, "unknown target")
}
