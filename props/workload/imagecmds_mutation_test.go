package workload_test

import (
	"errors"
	"fmt"
	"path"
	"strings"
	"testing"

	"github.com/qedtorture/qedtorture/impl/qed"
	"github.com/qedtorture/qedtorture/impl/qed/qedtarget"
	"github.com/qedtorture/qedtorture/model"
	"github.com/qedtorture/qedtorture/props/target"
	"github.com/qedtorture/qedtorture/props/workload"
	"github.com/spf13/afero"
	"github.com/stretchr/testify/require"
)

// Tests written for mutants of imagecmds.go that survived the rest of the
// suite or that its tests did not reach (docs/mutation.md): the image
// commands' files made for ops appended after the setup (what the state
// machine does), the rerun of a command, commit's -d, the bounds of
// UnsafeName and CommitBase.

// TestUnsafeNameLengths: a name padded at all (three bytes or more of
// padding) has exactly the length asked for and names copyI.raw in the
// image's directory; a shorter padding gives the file name alone.
func TestUnsafeNameLengths(t *testing.T) {
	for _, i := range []int{0, 7, 12345} {
		f := fmt.Sprintf("copy%d.raw", i)
		for n := 0; n < len(f)+40; n++ {
			got := workload.UnsafeName(i, int64(n))
			if n-len(f) < 3 {
				require.Equal(t, f, got, "op %d, %d bytes", i, n)
				continue
			}
			require.Len(t, got, n, "op %d: %q", i, got)
			require.Equal(t, f, path.Clean(got), "op %d: %q", i, got)
			require.False(t, path.IsAbs(got), "op %d: %q", i, got)
		}
	}
}

// TestCommitBaseOutOfRange: CommitBase of no op (the setup, after the
// last op) is not a commit, without a panic.
func TestCommitBaseOutOfRange(t *testing.T) {
	w, err := workload.Parse(strings.NewReader("qedtorture-workload v1\nimage cluster_size=4096 table_size=2 size=65536\nbacking raw size=8192 fill=1\ncommit\n"))
	require.NoError(t, err)
	for _, i := range []int{-1, len(w.Ops), len(w.Ops) + 1} {
		_, _, _, ok, fixed, err := w.CommitBase(i)
		require.NoError(t, err, "op %d", i)
		require.False(t, ok || fixed, "op %d", i)
	}
	_, _, _, ok, _, err := w.CommitBase(0)
	require.NoError(t, err)
	require.True(t, ok)
}

// allocated counts the data clusters the image's tables map.
func allocated(t *testing.T, fs afero.Fs, p string) uint64 {
	t.Helper()
	return checkFile(t, fs, p).AllocatedClusters
}

// TestCommitDrop: a commit empties the image (its data now in the base),
// a commit -d leaves the image's clusters mapped; the guest reads the
// same either way.
func TestCommitDrop(t *testing.T) {
	for _, c := range []struct {
		cmd  string
		kept bool
	}{{"commit", false}, {"commit -d", true}} {
		w, err := workload.Parse(strings.NewReader("qedtorture-workload v1\nimage cluster_size=4096 table_size=2 size=65536\n" +
			"backing qed size=65536 cluster_size=4096 table_size=2 fill=1\nwrite 0x1000 0x2000 id=2\n" + c.cmd + "\nread 0x0 0x10000\n"))
		require.NoError(t, err)
		fs := afero.NewMemMapFs()
		e, err := workload.NewExec(qedtarget.Target{}, fs, "/w", w)
		require.NoError(t, err)
		require.NoError(t, e.RunAll(), c.cmd)
		require.NoError(t, e.Disk.Close())
		n := allocated(t, fs, e.ImagePath())
		if c.kept {
			require.EqualValues(t, 2, n, "%s: the image's clusters kept", c.cmd)
		} else {
			require.Zero(t, n, "%s: the image emptied", c.cmd)
		}
	}
}

// TestPrepareAppended: ops appended after NewExec (the state machine's
// way) get their files from Prepare, with the contents the setup would
// have given them; Prepare of no op does nothing, and the commands then
// run.
func TestPrepareAppended(t *testing.T) {
	w, err := workload.Parse(strings.NewReader("qedtorture-workload v1\nimage cluster_size=4096 table_size=2 size=65536\nbacking raw size=65536 fill=1\n"))
	require.NoError(t, err)
	fs := afero.NewMemMapFs()
	e, err := workload.NewExec(qedtarget.Target{}, fs, "/w", w)
	require.NoError(t, err)
	defer func() {
		if e.Disk != nil {
			e.Disk.Close()
		}
	}()
	back := make([]byte, 65536)
	model.Fill(back, 1, 0)
	alt := append([]byte(nil), back...)
	model.Fill(alt[0x2000:0x3000], 2, 0x2000)

	read := func(name string) []byte {
		t.Helper()
		b, err := afero.ReadFile(fs, path.Join("/w", name))
		require.NoError(t, err, name)
		return b
	}
	exists := func(name string) bool {
		ok, err := afero.Exists(fs, path.Join("/w", name))
		require.NoError(t, err)
		return ok
	}
	for _, i := range []int{-1, 0, 1} {
		require.NoError(t, e.Prepare(i), "no op %d yet", i)
	}
	e.W.Ops = append(e.W.Ops, workload.Op{Kind: workload.RebaseUnsafe, Len: 100})
	require.False(t, exists("copy0.raw"))
	require.NoError(t, e.Prepare(0))
	require.Equal(t, back, read("copy0.raw"), "rebase-unsafe's copy of the backing file")
	require.NoError(t, e.Step())

	e.W.Ops = append(e.W.Ops, workload.Op{Kind: workload.Rebase, Off: 0x2000, Len: 0x1000, ID: 2})
	require.NoError(t, e.Prepare(1))
	require.Equal(t, alt, read("alt1.raw"), "the rebase's file: the copy with id 2 over its range")
	require.NoError(t, e.Step())

	e.W.Ops = append(e.W.Ops, workload.Op{Kind: workload.RebaseUnsafe, Len: 50})
	require.NoError(t, e.Prepare(2))
	require.Equal(t, alt, read("copy2.raw"), "a copy of the backing file in force: the rebase's")
	require.NoError(t, e.Prepare(3), "past the last op")
	require.NoError(t, e.Step())
	require.NoError(t, e.Disk.Close())
	e.Disk = nil
	im, err := qed.Open(fs, e.ImagePath(), qed.OpenOptions{ReadOnly: true, NoLock: true})
	require.NoError(t, err)
	require.Equal(t, workload.UnsafeName(2, 50), im.Header().BackingFilename)
	require.NoError(t, im.Close())
}

// TestRerunImageCommand: a rerun runs the command on the closed image's
// files (here one that never ran), refuses an open image and a target
// without image commands.
func TestRerunImageCommand(t *testing.T) {
	w, err := workload.Parse(strings.NewReader("qedtorture-workload v1\nimage cluster_size=4096 table_size=2 size=65536\nbacking raw size=65536 fill=1\nrebase-unsafe 100\n"))
	require.NoError(t, err)
	fs := afero.NewMemMapFs()
	e, err := workload.NewExec(qedtarget.Target{}, fs, "/w", w)
	require.NoError(t, err)
	require.ErrorContains(t, e.RerunImageCommand(0), "rerun of op 0 with the image open")
	require.NoError(t, e.Disk.Close())
	e.Disk = nil
	require.NoError(t, fs.Remove("/w/copy0.raw"))
	require.NoError(t, e.RerunImageCommand(0))
	ok, err := afero.Exists(fs, "/w/copy0.raw")
	require.NoError(t, err)
	require.True(t, ok, "the rerun made the command's file")
	im, err := qed.Open(fs, e.ImagePath(), qed.OpenOptions{ReadOnly: true, NoLock: true})
	require.NoError(t, err)
	require.Equal(t, workload.UnsafeName(0, 100), im.Header().BackingFilename, "the command ran")
	require.NoError(t, im.Close())

	e2, err := workload.NewExec(struct{ target.Target }{qedtarget.Target{}}, afero.NewMemMapFs(), "/w", w)
	require.NoError(t, err)
	require.NoError(t, e2.Disk.Close())
	e2.Disk = nil
	err = e2.RerunImageCommand(0)
	require.True(t, errors.Is(err, workload.ErrUnsupported), "%v", err)
}

// refusingCommands is impl/qed whose image commands refuse, leaving the
// files as they are.
type refusingCommands struct{ qedtarget.Target }

var errRefusedCommand = errors.New("the command refused")

func (refusingCommands) Rebase(afero.Fs, string, string, string, bool) error {
	return errRefusedCommand
}

func (refusingCommands) Commit(afero.Fs, string, target.CommitOptions) error {
	return errRefusedCommand
}

// TestImageCommandFails: an image command's error fails the op even when
// the image reopens at the right size, and the image is open again after
// it (the workload may go on).
func TestImageCommandFails(t *testing.T) {
	for _, cmd := range []string{"rebase-unsafe 100", "rebase 0x0 0x1000 id=2", "commit"} {
		w, err := workload.Parse(strings.NewReader("qedtorture-workload v1\nimage cluster_size=4096 table_size=2 size=65536\nbacking raw size=65536 fill=1\n" + cmd + "\n"))
		require.NoError(t, err)
		e, err := workload.NewExec(refusingCommands{}, afero.NewMemMapFs(), "/w", w)
		require.NoError(t, err)
		require.ErrorIs(t, e.Step(), errRefusedCommand, cmd)
		require.NotNil(t, e.Disk, "%s: reopened", cmd)
		require.NoError(t, e.Disk.Close())
	}
}
