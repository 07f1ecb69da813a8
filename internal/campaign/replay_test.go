package campaign

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// editMeta rewrites fields of an artifact's meta.json (a value nil
// removes the field).
func editMeta(t *testing.T, dir string, fields map[string]any) {
	t.Helper()
	p := filepath.Join(dir, metaFile)
	mb, err := os.ReadFile(p)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(mb, &m))
	for k, v := range fields {
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
	}
	mb, err = json.Marshal(m)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(p, mb, 0o644))
}

// TestReplayNestedByTheReference: a crash during a recovery that the
// reference ran in process (meta.json's chain_judge the reference's name,
// no chain_recorder) replays without the artifact's driver, judged by the
// reference, and says so; a recovery some recorder ran needs the driver.
func TestReplayNestedByTheReference(t *testing.T) {
	art := nestedArtifact(t, InProcess(TargetOrDie(t, "broken:noflush")))
	ref := TargetOrDie(t, "impl/qed")
	editMeta(t, art, map[string]any{"chain_judge": ref.Name()})
	unavailable := func(name string) (Driver, error) { return nil, fmt.Errorf("unknown target %q", name) }
	res, err := Replay(art, ReplayOptions{Resolve: unavailable, Reference: ref})
	require.NoError(t, err)
	require.Equal(t, NestedJudgeName, res.Judge)
	require.Contains(t, strings.Join(res.Notes, "\n"), "target broken:noflush is not available here")
	editMeta(t, art, map[string]any{"chain_recorder": "qemu"})
	_, err = Replay(art, ReplayOptions{Resolve: unavailable, Reference: ref})
	require.ErrorContains(t, err, `unknown target "broken:noflush"`)
}
