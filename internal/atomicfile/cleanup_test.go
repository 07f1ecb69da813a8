package atomicfile

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/qedtorture/qedtorture/internal/cleanup"
	"github.com/stretchr/testify/require"
)

// TestTemporariesRegistered: a temporary is on cleanup's list (removed by
// a command exiting at once) exactly while it exists.
func TestTemporariesRegistered(t *testing.T) {
	dir := t.TempDir()
	n := cleanup.Len()
	f, err := Create(filepath.Join(dir, "r.json"), 0o644)
	require.NoError(t, err)
	require.Equal(t, n+1, cleanup.Len())
	require.NoError(t, f.Commit())
	require.Equal(t, n, cleanup.Len())
	f, err = Create(filepath.Join(dir, "r.json"), 0o644)
	require.NoError(t, err)
	require.NoError(t, f.Abort())
	require.Equal(t, n, cleanup.Len())

	tmp, err := MkdirTemp(filepath.Join(dir, "art"))
	require.NoError(t, err)
	require.Equal(t, n+1, cleanup.Len())
	require.NoError(t, CommitDir(tmp, filepath.Join(dir, "art")))
	require.Equal(t, n, cleanup.Len())
	tmp, err = MkdirTemp(filepath.Join(dir, "art2"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(tmp, "x"), []byte("x"), 0o644))
	require.NoError(t, RemoveTemp(tmp))
	require.NoDirExists(t, tmp)
	require.Equal(t, n, cleanup.Len())
	// A failed commit (the final name exists) removes and forgets it.
	tmp, err = MkdirTemp(filepath.Join(dir, "art"))
	require.NoError(t, err)
	require.Error(t, CommitDir(tmp, filepath.Join(dir, "art")))
	require.NoDirExists(t, tmp)
	require.Equal(t, n, cleanup.Len())
}
