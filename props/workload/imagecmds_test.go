package workload_test

import (
	"errors"
	"math/rand/v2"
	"path"
	"strings"
	"testing"

	"github.com/qedtorture/qedtorture/impl/qed"
	"github.com/qedtorture/qedtorture/impl/qed/qedtarget"
	"github.com/qedtorture/qedtorture/props/target"
	"github.com/qedtorture/qedtorture/props/workload"
	"github.com/spf13/afero"
	"github.com/stretchr/testify/require"
)

const imageCmdsScript = `qedtorture-workload v1
image cluster_size=4096 table_size=2 size=65536
backing qed size=49152 cluster_size=4096 table_size=2 fill=2
backing raw size=65536 fill=1
write 0x1000 0x200 id=3
write 0x5000 0x3000 id=4
zero 0x9000 0x1000
rebase 0x2000 0x4000 id=5
write 0x7100 0x100 id=6
rebase-unsafe 700
write 0xa000 0x100 id=7
commit
write 0x3000 0x100 id=8
read 0x0 0x10000
rebase 0x0 0x1000 id=9
commit -d
rebase none
read 0x0 0x10000
`

// TestImageCommandsRun runs every image command on impl/qed: each read
// matches the model (the commands do not change what the guest reads),
// and after each command the header names the backing file
// BackingNames says is in force.
func TestImageCommandsRun(t *testing.T) {
	w, err := workload.Parse(strings.NewReader(imageCmdsScript))
	require.NoError(t, err)
	require.Equal(t, imageCmdsScript, w.String(), "the script round-trips")
	fs := afero.NewMemMapFs()
	e, err := workload.NewExec(qedtarget.Target{}, fs, "/w", w)
	require.NoError(t, err)
	for !e.Done() {
		i := e.Next
		require.NoError(t, e.Step())
		im, err := qed.Open(fs, e.ImagePath(), qed.OpenOptions{ReadOnly: true, NoLock: true})
		require.NoError(t, err, "op %d", i)
		name := im.Header().BackingFilename
		im.Close()
		names := w.BackingNames(i + 1)
		require.Equal(t, names[0], name, "after op %d (%s)", i, w.Ops[i])
	}
	require.NoError(t, e.Disk.Close())
	// The setup made the files the commands act on.
	for _, f := range []string{"alt3.raw", "copy5.raw", "alt10.raw"} {
		ok, err := afero.Exists(fs, path.Join("/w", f))
		require.NoError(t, err)
		require.True(t, ok, f)
	}
}

// TestImageCommandsValidate: the preconditions of the image commands.
func TestImageCommandsValidate(t *testing.T) {
	const head = "qedtorture-workload v1\nimage cluster_size=4096 table_size=2 size=65536\n"
	const backing = "backing raw size=4096 fill=1\n"
	for _, c := range []struct{ script, err string }{
		{head + "rebase-unsafe 100\n", "needs a backing file"},
		{head + "commit\n", "needs a backing file"},
		{head + backing + "commit\nrebase-unsafe 100\n", "no commit before it"},
		{head + backing + "rebase none\ncommit\n", "needs a backing file"},
		{head + backing + "rebase-unsafe 15\n", "not in 16..1000"},
		{head + backing + "rebase-unsafe 1001\n", "not in 16..1000"},
		{head + backing + "rebase 0x0 0x1000 id=1\n", "above the previous id 1"},
		{head + backing + "rebase 0xf000 0x2000 id=2\n", "outside the image"},
		{head + "commit -x\n", "commit takes -d and -b N"},
		{head + "rebase 0x0 0x1000\n", "rebase takes"},
	} {
		_, err := workload.Parse(strings.NewReader(c.script))
		require.ErrorContains(t, err, c.err, c.script)
	}
	for _, ok := range []string{
		head + "rebase 0x0 0x1000 id=1\nrebase-unsafe 100\ncommit\n", // a rebase gives the image a backing file
		head + backing + "rebase-unsafe 100\nrebase-unsafe 999\ncommit -d\nrebase none\n",
	} {
		_, err := workload.Parse(strings.NewReader(ok))
		require.NoError(t, err, ok)
	}
}

// TestBackingNames: the names a crash may leave in the header, op by op.
func TestBackingNames(t *testing.T) {
	w, err := workload.Parse(strings.NewReader(imageCmdsScript))
	require.NoError(t, err)
	long := workload.UnsafeName(5, 700)
	for _, c := range []struct {
		op   int
		want []string
	}{
		{-1, []string{"backing0.qed"}},
		{0, []string{"backing0.qed"}},
		{3, []string{"backing0.qed", "alt3.raw"}},
		{4, []string{"alt3.raw"}},
		{5, []string{"alt3.raw", long}},
		{7, []string{long}},
		{10, []string{long, "alt10.raw"}},
		{11, []string{"alt10.raw"}},
		{12, []string{"alt10.raw", ""}},
		{13, []string{""}},
		{14, []string{""}},
		{99, []string{""}},
	} {
		require.Equal(t, c.want, w.BackingNames(c.op), "op %d", c.op)
	}
	plain := &workload.Workload{Geometry: w.Geometry, Ops: w.Ops[:3]}
	require.Nil(t, plain.BackingNames(0), "no rebase: no name rule")
}

// TestUnsafeName: the name has the length asked for and names the copy.
func TestUnsafeName(t *testing.T) {
	for _, i := range []int{0, 7, 123} {
		for n := int64(16); n <= 1000; n++ {
			name := workload.UnsafeName(i, n)
			require.Len(t, name, int(n), "op %d, length %d", i, n)
			require.Equal(t, path.Base(workload.UnsafeName(i, 16)), path.Clean(name))
			require.False(t, path.IsAbs(name))
		}
	}
}

// TestImageCommandsUnsupported: a target without target.ImageOps cannot
// run an image command; the op fails with ErrUnsupported.
func TestImageCommandsUnsupported(t *testing.T) {
	w, err := workload.Parse(strings.NewReader("qedtorture-workload v1\nimage cluster_size=4096 table_size=2 size=65536\nbacking raw size=4096 fill=1\ncommit\n"))
	require.NoError(t, err)
	e, err := workload.NewExec(struct{ target.Target }{qedtarget.Target{}}, afero.NewMemMapFs(), "/w", w)
	require.NoError(t, err)
	err = e.Step()
	require.True(t, errors.Is(err, workload.ErrUnsupported), "%v", err)
}

// TestCommitBase: the base of each commit and its contents as the setup
// made them; a second commit into the same file has no fixed contents.
func TestCommitBase(t *testing.T) {
	w, err := workload.Parse(strings.NewReader(imageCmdsScript))
	require.NoError(t, err)
	fs := afero.NewMemMapFs()
	_, err = workload.NewExec(qedtarget.Target{}, fs, "/w", w)
	require.NoError(t, err)
	for _, c := range []struct {
		op   int
		file string
	}{{7, "copy5.raw"}, {11, "alt10.raw"}} {
		name, format, old, ok, fixed, err := w.CommitBase(c.op)
		require.NoError(t, err)
		require.True(t, ok && fixed, "op %d", c.op)
		require.Equal(t, "raw", format)
		require.Equal(t, c.file, path.Clean(name))
		made, err := afero.ReadFile(fs, path.Join("/w", c.file))
		require.NoError(t, err)
		require.Equal(t, made, old, "op %d: the contents the setup made", c.op)
	}
	_, _, _, ok, _, err := w.CommitBase(0)
	require.NoError(t, err)
	require.False(t, ok, "not a commit")
	w2, err := workload.Parse(strings.NewReader("qedtorture-workload v1\nimage cluster_size=4096 table_size=2 size=65536\nbacking qed size=8192 cluster_size=4096 table_size=2 fill=1\ncommit -d\ncommit\n"))
	require.NoError(t, err)
	_, format, old, ok, fixed, err := w2.CommitBase(0)
	require.NoError(t, err)
	require.True(t, ok && fixed)
	require.Equal(t, "qed", format)
	require.Len(t, old, 8192)
	name, _, _, ok, fixed, _ := w2.CommitBase(1)
	require.True(t, ok)
	require.Equal(t, "backing0.qed", name)
	require.False(t, fixed, "a second commit into the same file")
}

// TestImageCommandsGenerated: generated workloads that draw the image
// commands (weight 2 each) validate, run on impl/qed with every read
// matching the model, and leave an image that reads as the model says.
// The seed is fixed (the generator's draws are what is tested).
func TestImageCommandsGenerated(t *testing.T) {
	cfg := workload.DefaultGenConfig()
	cfg.HugeChance = 0 // every guest byte is read back at once below: no 4 GiB images (killed under -race)
	for _, k := range []workload.Kind{workload.Rebase, workload.RebaseUnsafe, workload.Commit} {
		cfg.Weights[k] = 2
	}
	drawn := map[workload.Kind]int{}
	for i := range uint64(40) {
		w := workload.Generate(rand.New(rand.NewPCG(18, i)), cfg)
		require.NoError(t, w.Validate(), "workload %d:\n%s", i, w)
		for _, op := range w.Ops {
			drawn[op.Kind]++
		}
		fs := afero.NewMemMapFs()
		e, err := workload.NewExec(qedtarget.Target{}, fs, "/w", w)
		require.NoError(t, err, "workload %d:\n%s", i, w)
		require.NoError(t, e.RunAll(), "workload %d:\n%s", i, w)
		buf := make([]byte, e.Disk.Size())
		_, err = e.Disk.ReadAt(buf, 0)
		require.NoError(t, err)
		require.NoError(t, e.Model.Verify(0, buf), "workload %d:\n%s", i, w)
		require.NoError(t, e.Disk.Close())
	}
	for _, k := range []workload.Kind{workload.Rebase, workload.RebaseUnsafe, workload.Commit} {
		require.Positive(t, drawn[k], "%s never drawn", k)
	}
}
