//go:build linux

package imagelock_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	. "github.com/qedtorture/qedtorture/internal/imagelock"
	"github.com/qedtorture/qedtorture/internal/qemutool"
	"github.com/stretchr/testify/require"
)

func openFile(t *testing.T, path string) *os.File {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	require.NoError(t, err)
	t.Cleanup(func() { f.Close() })
	return f
}

func newFile(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "img.qed")
	require.NoError(t, os.WriteFile(p, make([]byte, 4096), 0o644))
	return p
}

// TestModesConflictAsQEMU: two opens of one file (open-file-description
// locks conflict within a process as between processes) follow QEMU's
// table: a writer excludes writers and readers, readers coexist, a
// force-share reader coexists with everything.
func TestModesConflictAsQEMU(t *testing.T) {
	modes := map[string]Mode{"rw": ReadWrite, "ro": ReadOnly, "U": ForceShare}
	ok := map[[2]string]bool{
		{"rw", "rw"}: false, {"rw", "ro"}: false, {"rw", "U"}: true,
		{"ro", "rw"}: false, {"ro", "ro"}: true, {"ro", "U"}: true,
		{"U", "rw"}: true, {"U", "ro"}: true, {"U", "U"}: true,
	}
	for pair, want := range ok {
		p := newFile(t)
		first, second := openFile(t, p), openFile(t, p)
		require.NoError(t, Lock(first, p, modes[pair[0]]), pair)
		err := Lock(second, p, modes[pair[1]])
		if want {
			require.NoError(t, err, pair)
			continue
		}
		require.ErrorIs(t, err, ErrLocked, pair)
		var ce *ConflictError
		require.ErrorAs(t, err, &ce)
		require.Equal(t, 1, strings.Count(err.Error(), p), "names the file once: %s", err)
		// The failed attempt released what it took: once the first open
		// is closed, the second gets its lock.
		held, unshared, err := Probe(openFile(t, p))
		require.NoError(t, err)
		require.Equal(t, modes[pair[0]].Hold, held, pair)
		require.Equal(t, All&^modes[pair[0]].Share, unshared, pair)
		require.NoError(t, first.Close())
		require.NoError(t, Lock(second, p, modes[pair[1]]), pair)
	}
}

func TestConflictMessages(t *testing.T) {
	p := newFile(t)
	w, r := openFile(t, p), openFile(t, p)
	require.NoError(t, Lock(w, p, ReadWrite))
	require.EqualError(t, Lock(r, p, ReadOnly), `Failed to get shared "write" lock: is another process using the image [`+p+`]?`)
	require.EqualError(t, Lock(r, p, ReadWrite), `Failed to get "write" lock: is another process using the image [`+p+`]?`)
	require.NoError(t, Unlock(w))
	require.NoError(t, Lock(r, p, ReadWrite))
}

// TestQEMUSeesOurLocks and TestWeSeeQEMULocks run qemu-io against this
// package both ways.
func TestWeSeeQEMULocks(t *testing.T) {
	tool := qemutool.Require(t)
	dir := t.TempDir()
	p := filepath.Join(dir, "img.qed")
	_, err := tool.Img("create", "-f", "qed", p, "1M")
	require.NoError(t, err)
	for _, c := range []struct {
		opts       []string
		rw, ro, fs bool // whether ReadWrite, ReadOnly, ForceShare succeed
		held       Perm
	}{
		{[]string{"-f", "qed"}, false, false, true, ConsistentRead | Write | Resize},
		{[]string{"-f", "qed", "-r"}, false, true, true, ConsistentRead},
		{[]string{"-f", "qed", "-r", "-U"}, true, true, true, ConsistentRead},
	} {
		h, err := tool.Hold(p, c.opts...)
		require.NoError(t, err)
		f := openFile(t, p)
		held, _, err := Probe(f)
		require.NoError(t, err)
		require.Equal(t, c.held, held, c.opts)
		for _, m := range []struct {
			m  Mode
			ok bool
		}{{ReadWrite, c.rw}, {ReadOnly, c.ro}, {ForceShare, c.fs}} {
			err := Lock(f, p, m.m)
			if m.ok {
				require.NoError(t, err, "%v under qemu-io %v", m.m, c.opts)
				require.NoError(t, Unlock(f))
			} else {
				require.ErrorIs(t, err, ErrLocked, "%v under qemu-io %v", m.m, c.opts)
			}
		}
		h.Release()
	}
}

func TestQEMUSeesOurLocks(t *testing.T) {
	tool := qemutool.Require(t)
	dir := t.TempDir()
	p := filepath.Join(dir, "img.qed")
	_, err := tool.Img("create", "-f", "qed", p, "1M")
	require.NoError(t, err)
	for _, c := range []struct {
		m           Mode
		rw, ro, roU bool // whether qemu-io read-write, -r, -r -U opens succeed
	}{
		{ReadWrite, false, false, true},
		{ReadOnly, false, true, true},
		{ForceShare, true, true, true},
	} {
		f := openFile(t, p)
		require.NoError(t, Lock(f, p, c.m))
		for _, q := range []struct {
			opts []string
			ok   bool
		}{{nil, c.rw}, {[]string{"-r"}, c.ro}, {[]string{"-r", "-U"}, c.roU}} {
			args := append(append([]string{"-f", "qed"}, q.opts...), "-c", "read 0 512", p)
			res, err := tool.RunIO(args...)
			require.NoError(t, err)
			failed := res.ExitCode != 0 || strings.Contains(string(res.Stderr), "lock")
			require.Equal(t, !q.ok, failed, "qemu-io %v with our %v lock: %s", q.opts, c.m, res.Stderr)
			if failed && q.opts == nil {
				require.Contains(t, string(res.Stderr), "Failed to get", c.m)
			}
		}
		require.NoError(t, f.Close())
	}
}
