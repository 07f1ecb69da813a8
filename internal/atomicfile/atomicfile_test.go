package atomicfile

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func listDir(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

func TestWriteFileReplacesWhole(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "r.json")
	require.NoError(t, os.WriteFile(p, []byte("old"), 0o600))
	require.NoError(t, WriteFile(p, []byte("new contents"), 0o644))
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	require.Equal(t, "new contents", string(b))
	fi, err := os.Stat(p)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o644), fi.Mode().Perm())
	require.Equal(t, []string{"r.json"}, listDir(t, dir))
}

func TestAbortLeavesFinalUntouched(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "out.raw")
	require.NoError(t, os.WriteFile(p, []byte("keep"), 0o600))
	f, err := Create(p, 0o644)
	require.NoError(t, err)
	require.True(t, IsTemp(f.TempName()))
	_, err = f.Write([]byte("partial"))
	require.NoError(t, err)
	require.NoError(t, f.Abort())
	require.NoError(t, f.Commit(), "commit after abort is a no-op")
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	require.Equal(t, "keep", string(b))
	require.Equal(t, []string{"out.raw"}, listDir(t, dir))
}

func TestCommitErrorNamesFinalOnceAndRemovesTemp(t *testing.T) {
	dir := t.TempDir()
	// The final name is an existing directory: rename of a file onto it fails.
	p := filepath.Join(dir, "taken")
	require.NoError(t, os.Mkdir(p, 0o755))
	f, err := Create(p, 0o644)
	require.NoError(t, err)
	tmp := f.TempName()
	err = f.Commit()
	require.Error(t, err)
	require.Contains(t, err.Error(), p)
	require.NotContains(t, err.Error(), filepath.Base(tmp))
	_, serr := os.Stat(tmp)
	require.True(t, os.IsNotExist(serr))
}

func TestTempPathAndCommitPath(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "img.qed")
	tmp, err := TempPath(p)
	require.NoError(t, err)
	require.Equal(t, dir, filepath.Dir(tmp))
	require.True(t, IsTemp(tmp))
	_, err = os.Stat(tmp)
	require.True(t, os.IsNotExist(err), "TempPath creates nothing")
	require.NoError(t, os.WriteFile(tmp, []byte("image"), 0o644))
	require.NoError(t, CommitPath(tmp, p))
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	require.Equal(t, "image", string(b))
	require.Equal(t, []string{"img.qed"}, listDir(t, dir))
}

func TestCommitDir(t *testing.T) {
	parent := t.TempDir()
	final := filepath.Join(parent, "failure-1")
	tmp, err := MkdirTemp(final)
	require.NoError(t, err)
	require.True(t, IsTemp(tmp))
	require.NoError(t, os.MkdirAll(filepath.Join(tmp, "image"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(tmp, "image", "image.qed"), []byte("x"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(tmp, "workload.txt"), []byte("w"), 0o644))
	require.NoError(t, CommitDir(tmp, final))
	require.Equal(t, []string{"failure-1"}, listDir(t, parent))
	require.ElementsMatch(t, []string{"image", "workload.txt"}, listDir(t, final))

	// Publishing over an existing directory is refused and cleans up.
	tmp2, err := MkdirTemp(final)
	require.NoError(t, err)
	require.Error(t, CommitDir(tmp2, final))
	require.Equal(t, []string{"failure-1"}, listDir(t, parent))
}

func TestIsTemp(t *testing.T) {
	require.True(t, IsTemp("/a/.r.json.tmp-123"))
	require.False(t, IsTemp("/a/r.json"))
	require.False(t, IsTemp("x.tmp-1"))
}
