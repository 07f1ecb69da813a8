//go:build linux

package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/qedtorture/qedtorture/internal/racetest"
	"github.com/stretchr/testify/require"
)

// TestReproScript: an artifact's repro.sh replays a scratch copy (the
// artifact is left as it was) and exits 0 when the failure reproduces, 2
// when replay cannot run (a target this binary does not have).
// Seed 4: its first failure is a top-level crash state (seed 3's became
// one found during recovery when the generator drew the ops of issue 16.2).
func TestReproScript(t *testing.T) {
	racetest.Heavy(t)
	bin := qedtortureBinary(t)
	out := t.TempDir()
	r := qt(t, "run", "--target", "broken:noflush", "--iterations", "30", "--seed", "4", "--crash-model", "drop,subset",
		"--out", out, "--progress", "none", "--workers", "1")
	require.Equal(t, exitRuntime, r.code, r.stdout+r.stderr)
	m := regexp.MustCompile(`artifact: (\S+)`).FindStringSubmatch(r.stdout)
	require.NotNil(t, m, r.stdout)
	art := m[1]
	before, err := os.ReadDir(art)
	require.NoError(t, err)
	sh := filepath.Join(art, "repro.sh")
	cmd := exec.Command(sh)
	cmd.Env = append(os.Environ(), "QEDTORTURE="+bin)
	o, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", o)
	require.Contains(t, string(o), "repro: reproduced")
	after, err := os.ReadDir(art)
	require.NoError(t, err)
	require.Equal(t, len(before), len(after), "the artifact is not written")

	// Pointed at a target this binary does not have: replay cannot run.
	meta, err := os.ReadFile(filepath.Join(art, "meta.json"))
	require.NoError(t, err)
	meta = regexp.MustCompile(`"target": "broken:noflush"`).ReplaceAll(meta, []byte(`"target": "defect:nonexistent"`))
	require.NoError(t, os.WriteFile(filepath.Join(art, "meta.json"), meta, 0o644))
	cmd = exec.Command(sh)
	cmd.Env = append(os.Environ(), "QEDTORTURE="+bin)
	o, err = cmd.CombinedOutput()
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee, "%s", o)
	require.Equal(t, 2, ee.ExitCode(), "%s", o)
}
