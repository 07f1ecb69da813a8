package oracle_test

import (
	"testing"

	"github.com/qedtorture/qedtorture/impl/qed/qedtarget"
	"github.com/qedtorture/qedtorture/model"
	"github.com/qedtorture/qedtorture/props/oracle"
	"github.com/spf13/afero"
	"github.com/stretchr/testify/require"
)

// TestJudgeCommitBase: a raw base after a crashed commit may hold, sector
// by sector, its old contents or the image's, at its old size or grown to
// the image's; a sector torn between the two, or another size, fails.
func TestJudgeCommitBase(t *testing.T) {
	old := make([]byte, 2048)
	model.Fill(old, 1, 0)
	top, err := model.New(4096, nil)
	require.NoError(t, err)
	require.NoError(t, top.WriteID(0, 4096, 2))
	top.Flush()
	view := make([]byte, 4096)
	require.NoError(t, top.ReadAt(view, 0))
	m, err := oracle.CommitBaseModel(old, top)
	require.NoError(t, err)

	mix := append([]byte(nil), view...)
	copy(mix[512:1024], old[512:1024]) // sector 1 old, the rest the image's
	torn := append([]byte(nil), old...)
	copy(torn[256:512], view[256:512]) // half a sector
	for _, c := range []struct {
		name string
		base []byte
		ok   bool
	}{
		{"old", old, true},
		{"new", view, true},
		{"sectors mixed", mix, true},
		{"torn sector", torn, false},
		{"other size", view[:3072], false},
	} {
		fs := afero.NewMemMapFs()
		require.NoError(t, afero.WriteFile(fs, "/base.raw", c.base, 0o644))
		err := oracle.JudgeCommitBase(qedtarget.Target{}, fs, "/base.raw", "raw", m)
		if c.ok {
			require.NoError(t, err, c.name)
		} else {
			require.Error(t, err, c.name)
		}
		// The byte comparison of JudgeCommitBaseViews gives the same
		// verdicts (the durable contents: the old ones, zeros past them).
		durable := make([]byte, len(view))
		copy(durable, old)
		errV := oracle.JudgeCommitBaseViews(qedtarget.Target{}, fs, "/base.raw", "raw", m, durable, view)
		require.Equal(t, err == nil, errV == nil, "%s: %v / %v", c.name, err, errV)
	}
}
