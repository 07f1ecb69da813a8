package workload_test

import (
	"bytes"
	"math/rand/v2"
	"path"
	"strings"
	"testing"

	"github.com/qedtorture/qedtorture/impl/qed/qedtarget"
	"github.com/qedtorture/qedtorture/model"
	"github.com/qedtorture/qedtorture/props/target"
	"github.com/qedtorture/qedtorture/props/workload"
	"github.com/spf13/afero"
	"github.com/stretchr/testify/require"
)

// A chain of two files, the first a QED image (which allocates its
// fill, the first half of its 0x30000 bytes), the base a shorter raw
// file; the image longer than both.
const deepHead = `qedtorture-workload v1
image cluster_size=4096 table_size=1 size=262144
backing qed size=196608 cluster_size=4096 table_size=2 fill=2
backing raw size=131072 fill=1
`

// TestCommitDeeperBase: commit -b 2 writes into the file at depth 2
// what the image and the file between allocate, as the image reads it,
// grows the base to the image's size and keeps the image (the guest
// view unchanged); the base past what the files above allocate keeps its
// contents.
func TestCommitDeeperBase(t *testing.T) {
	script := deepHead + "write 0x1000 0x3000 id=3\nwrite 0x38000 0x1200 id=4\ncommit -b 2\nread 0x0 0x40000\n"
	w, err := workload.Parse(strings.NewReader(script))
	require.NoError(t, err)
	require.Equal(t, script, w.String())
	fs := afero.NewMemMapFs()
	e, err := workload.NewExec(qedtarget.Target{}, fs, "/w", w)
	require.NoError(t, err)
	require.NoError(t, e.RunAll())
	view := make([]byte, e.Model.Size())
	require.NoError(t, e.Model.ReadAt(view, 0))
	require.NoError(t, e.Disk.Close())
	base, err := afero.ReadFile(fs, "/w/backing1.raw")
	require.NoError(t, err)
	require.Len(t, base, 0x40000, "the base grew to the image's size")
	require.Equal(t, view[:0x18000], base[:0x18000], "the image's writes and the file between's fill")
	require.Equal(t, view[0x38000:0x39200], base[0x38000:0x39200], "the image's write past the file between")
	old := make([]byte, 0x20000)
	model.Fill(old, 1, 0)
	require.Equal(t, old[0x18000:], base[0x18000:0x20000], "nothing above allocates: the base's own contents")
	require.Equal(t, make([]byte, 0x8000), base[0x30000:0x38000], "the grown part nothing allocates reads zeros")
	img, err := afero.ReadFile(fs, "/w/"+workload.ImageName)
	require.NoError(t, err)
	require.Greater(t, len(img), 0x4000, "the image is kept (commit -b implies -d)")
}

// commitTarget wraps impl/qed with a Commit of its own.
type commitTarget struct {
	qedtarget.Target
	commit func(fs afero.Fs, path string, o target.CommitOptions) error
}

func (c commitTarget) Commit(fs afero.Fs, path string, o target.CommitOptions) error {
	return c.commit(fs, path, o)
}

// TestCommitCheckedAfter: the base of a commit that returned success is
// checked (Exec.checkCommitted): a commit -b or -d that writes nothing, one
// into the wrong file, one that reports progress wrongly, each fail the
// op; impl/qed's passes.
func TestCommitCheckedAfter(t *testing.T) {
	qt := qedtarget.Target{}
	var calls [][2]int64
	for _, c := range []struct {
		name, ops string
		commit    func(fs afero.Fs, path string, o target.CommitOptions) error
		err       string
	}{
		{"impl/qed -b 2", "commit -b 2", qt.Commit, ""},
		{"impl/qed -d", "commit -d", qt.Commit, ""},
		{"impl/qed", "commit", qt.Commit, ""},
		{"impl/qed -b 1", "commit -b 1", qt.Commit, ""},
		{"impl/qed, progress", "commit -b 2", func(fs afero.Fs, p string, o target.CommitOptions) error {
			pr := o.Progress
			o.Progress = func(d, t int64) { calls = append(calls, [2]int64{d, t}); pr(d, t) }
			return qt.Commit(fs, p, o)
		}, ""},
		{"nothing written, -b 2", "commit -b 2", func(afero.Fs, string, target.CommitOptions) error { return nil }, "commit base backing1.raw after the commit: size"},
		{"nothing written, -d", "commit -d", func(afero.Fs, string, target.CommitOptions) error { return nil }, "commit base backing0.qed after the commit: size 0x30000, want 0x40000"},
		{"nothing written, -d, same size", "commit -d", func(fs afero.Fs, p string, o target.CommitOptions) error {
			d, err := qt.Open(fs, "/w/backing0.qed", target.OpenOptions{})
			if err != nil {
				return err
			}
			if err := d.Resize(0x40000); err != nil {
				return err
			}
			return d.Close()
		}, "commit base backing0.qed after the commit: sector 0x1000 reads neither"},
		{"the base ignored", "commit -b 2", func(fs afero.Fs, p string, o target.CommitOptions) error {
			o.Base, o.Drop = "", true
			return qt.Commit(fs, p, o)
		}, "commit base backing1.raw after the commit"},
		{"progress backwards", "commit -b 2", func(fs afero.Fs, p string, o target.CommitOptions) error {
			o.Progress(0, 10)
			o.Progress(5, 10)
			o.Progress(4, 10)
			o.Progress(10, 10)
			return nil
		}, "commit progress: done 4 after 5"},
		{"progress unfinished", "commit -b 2", func(fs afero.Fs, p string, o target.CommitOptions) error {
			pr := o.Progress
			o.Progress = func(d, t int64) { pr(min(d, t-1), t) }
			return qt.Commit(fs, p, o)
		}, "commit progress: ended at"},
		{"progress not from 0", "commit -b 2", func(fs afero.Fs, p string, o target.CommitOptions) error {
			o.Progress(1, 10)
			return nil
		}, "first report (1, 10)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			runCommitScript(t, deepHead+"write 0x1000 0x3000 id=3\nwrite 0x38000 0x1200 id=4\n"+c.ops+"\n", c.commit, c.err)
		})
	}
	require.NotEmpty(t, calls, "impl/qed reports progress")
	require.Equal(t, [2]int64{0, calls[0][1]}, calls[0])
	require.Equal(t, [2]int64{calls[0][1], calls[0][1]}, calls[len(calls)-1])
	require.Equal(t, int64(0x18000+0x2000), calls[0][1], "the clusters the image and the file between allocate")
}

// TestCommitDeeperValidate: commit -b N names a file of the geometry's
// chain down to its first raw file, before any rebase.
func TestCommitDeeperValidate(t *testing.T) {
	const head = "qedtorture-workload v1\nimage cluster_size=4096 table_size=2 size=65536\n"
	const rawFirst = "backing raw size=4096 fill=2\nbacking raw size=4096 fill=1\n"
	const qedFirst = "backing qed size=8192 cluster_size=4096 table_size=2 fill=2\nbacking raw size=4096 fill=1\n"
	for _, c := range []struct{ script, err string }{
		{head + rawFirst + "commit -b 2\n", "commit -b 2: the backing chain in force has 1 file(s)"},
		{head + qedFirst + "commit -b 3\n", "has 2 file(s)"},
		{head + qedFirst + "rebase-unsafe 100\ncommit -b 2\n", "has 0 file(s)"},
		{head + qedFirst + "rebase 0x0 0x1000 id=3\ncommit -b 1\n", "has 0 file(s)"},
		{head + qedFirst + "commit -b 0\n", "base depth of 1 or more"},
		{head + qedFirst + "commit -b\n", "commit takes -d and -b N"},
		{head + qedFirst + "commit -b 2 -b 2\n", "commit takes -d and -b N"},
		{head + qedFirst + "commit -d -d\n", "commit takes -d and -b N"},
		{head + "commit -b 1\n", "needs a backing file"},
	} {
		_, err := workload.Parse(strings.NewReader(c.script))
		require.ErrorContains(t, err, c.err, c.script)
	}
	for _, c := range []struct{ script, want string }{
		{head + qedFirst + "commit -b 2\ncommit -d -b 1\ncommit -b 2 -d\n", "commit -b 2\ncommit -d -b 1\ncommit -d -b 2\n"},
		{head + rawFirst + "commit -b 1\n", "commit -b 1\n"},
	} {
		w, err := workload.Parse(strings.NewReader(c.script))
		require.NoError(t, err, c.script)
		require.True(t, strings.HasSuffix(w.String(), c.want), w.String())
	}
	require.Equal(t, 0, workload.CommitChain(nil))
	require.Equal(t, 1, workload.CommitChain([]workload.Backing{{Format: "raw"}, {Format: "qed"}}))
	require.Equal(t, 2, workload.CommitChain([]workload.Backing{{Format: "qed"}, {Format: "qed"}}))
	require.Equal(t, 3, workload.CommitChain([]workload.Backing{{Format: "qed"}, {Format: "qed"}, {Format: "raw"}, {Format: "raw"}}))
}

// TestCommitBaseDeeper: the base of commit -b 2 and whether its old
// contents are fixed: a commit into the file above it leaves them, one
// into it or below it (what it reads through) does not.
func TestCommitBaseDeeper(t *testing.T) {
	const qedChain = "qedtorture-workload v1\nimage cluster_size=4096 table_size=2 size=65536\nbacking qed size=0x6000 cluster_size=4096 table_size=2 fill=2\nbacking qed size=0x4000 cluster_size=4096 table_size=2 fill=1\n"
	w, err := workload.Parse(strings.NewReader(qedChain + "commit\ncommit -b 2\ncommit -d\ncommit -b 2\n"))
	require.NoError(t, err)
	for _, c := range []struct {
		op    int
		name  string
		fixed bool
	}{{0, "backing0.qed", true}, {1, "backing1.qed", true}, {2, "backing0.qed", false}, {3, "backing1.qed", false}} {
		name, format, old, ok, fixed, err := w.CommitBase(c.op)
		require.NoError(t, err)
		require.True(t, ok)
		require.Equal(t, c.name, path.Clean(name), "op %d", c.op)
		require.Equal(t, "qed", format)
		require.Equal(t, c.fixed, fixed, "op %d", c.op)
		if c.op == 1 {
			want := make([]byte, 0x4000)
			model.Fill(want[:0x2000], 1, 0) // a qed backing file holds its fill over its first half
			require.True(t, bytes.Equal(want, old), "op 1: the base's own contents")
		}
	}
	w, err = workload.Parse(strings.NewReader(qedChain + "commit -b 2\ncommit -b 1\n"))
	require.NoError(t, err)
	_, _, _, _, fixed, _ := w.CommitBase(1)
	require.False(t, fixed, "the file at depth 1 reads through the base written before")
}

// TestCommitDeeperGenerated: the generator draws commit -b into the
// deepest base of a chain whose first file is a QED image (half of the
// commits there), never elsewhere.
func TestCommitDeeperGenerated(t *testing.T) {
	cfg := workload.DefaultGenConfig()
	cfg.BackingChance = 1
	cfg.Weights[workload.Commit] = 10
	deep, plain := 0, 0
	for i := range uint64(300) {
		w := workload.Generate(rand.New(rand.NewPCG(16, i)), cfg)
		require.NoError(t, w.Validate())
		chain := workload.CommitChain(w.Geometry.Backing)
		rebased := false
		for _, op := range w.Ops {
			rebased = rebased || op.Kind == workload.Rebase || op.Kind == workload.RebaseUnsafe
			if op.Kind != workload.Commit {
				continue
			}
			if op.Off > 0 {
				deep++
				require.Equal(t, int64(chain), op.Off, "workload %d: the deepest base", i)
				require.False(t, rebased)
			} else if chain > 1 && !rebased {
				plain++
			}
		}
	}
	require.Greater(t, deep, 50, "commit -b drawn")
	require.Greater(t, plain, 50, "plain commits still drawn on deep chains")
	t.Logf("commit -b %d, plain or -d on deep chains %d", deep, plain)
}

// TestCommitCheckBounds: the commit check's two bounds
// (docs/mutation.md, imagecmds.go 437:51 and 475:22). An image of
// exactly maxCheckedCommit (256 MiB) is still checked: a commit that
// writes nothing fails. A base sector starting exactly where the file
// between ends (sector-aligned, before the base does) reads through to
// the base: the image reads zeros there and the base keeps its old
// contents, which impl/qed's commit -b 2 leaves, and passes.
func TestCommitCheckBounds(t *testing.T) {
	qt := qedtarget.Target{}
	nothing := func(afero.Fs, string, target.CommitOptions) error { return nil }
	for _, c := range []struct {
		name, script string
		commit       func(fs afero.Fs, path string, o target.CommitOptions) error
		err          string
	}{
		{"256 MiB, nothing written", "qedtorture-workload v1\nimage cluster_size=65536 table_size=1 size=268435456\nbacking raw size=131072 fill=1\nwrite 0x1000 0x3000 id=3\ncommit -d\n",
			nothing, "commit base backing0.raw after the commit: size 0x20000, want 0x10000000"},
		{"the file between ends first", "qedtorture-workload v1\nimage cluster_size=4096 table_size=1 size=262144\nbacking qed size=65536 cluster_size=4096 table_size=2 fill=2\nbacking raw size=131072 fill=1\nwrite 0x1000 0x3000 id=3\ncommit -b 2\n",
			qt.Commit, ""},
	} {
		t.Run(c.name, func(t *testing.T) { runCommitScript(t, c.script, c.commit, c.err) })
	}
}

// runCommitScript runs script over impl/qed with commit as its Commit:
// it must pass (wantErr "") or fail with an error containing wantErr.
func runCommitScript(t *testing.T, script string, commit func(fs afero.Fs, path string, o target.CommitOptions) error, wantErr string) {
	t.Helper()
	w, err := workload.Parse(strings.NewReader(script))
	require.NoError(t, err)
	e, err := workload.NewExec(commitTarget{qedtarget.Target{}, commit}, afero.NewMemMapFs(), "/w", w)
	require.NoError(t, err)
	err = e.RunAll()
	if wantErr == "" {
		require.NoError(t, err)
		return
	}
	require.ErrorContains(t, err, wantErr)
}
