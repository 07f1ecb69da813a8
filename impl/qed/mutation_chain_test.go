package qed_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/qedtorture/qedtorture/impl/qed"
	"github.com/spf13/afero"
)

// Tests written for mutants of commit.go and rebase.go that survived
// impl/qed's suite (docs/mutation.md, "impl/qed: the code changed since
// 78d146e").

// closeFailsFs fails the Close of every file opened writable at path
// (after closing it), as a file system whose final write-back fails.
type closeFailsFs struct {
	afero.Fs
	path string
}

func (c closeFailsFs) OpenFile(name string, flag int, perm os.FileMode) (afero.File, error) {
	f, err := c.Fs.OpenFile(name, flag, perm)
	if err != nil || filepath.Clean(name) != c.path || flag&(os.O_RDWR|os.O_WRONLY) == 0 {
		return f, err
	}
	return failingCloseFile{f}, nil
}

type failingCloseFile struct{ afero.File }

func (f failingCloseFile) Close() error {
	f.File.Close()
	return &os.PathError{Op: "close", Path: f.Name(), Err: syscall.EIO}
}

// TestCommitCloseErrorSurfaces: Commit reports the error of closing the
// image it emptied (the commit itself succeeded: the base holds the data).
func TestCommitCloseErrorSurfaces(t *testing.T) {
	mem := afero.NewMemMapFs()
	mustCreate(t, mem, "/base.qed", qed.CreateOptions{Size: 4 * opsCluster}, nil)
	mustCreate(t, mem, "/top.qed", qed.CreateOptions{Size: 4 * opsCluster, BackingFile: "base.qed"}, map[int64][]byte{opsCluster: pattern(5, 100)})
	want := view(t, mem, "/top.qed")
	err := qed.Commit(closeFailsFs{mem, "/top.qed"}, "/top.qed", qed.CommitOptions{})
	if !errors.Is(err, syscall.EIO) {
		t.Fatalf("Commit with the image's close failing returned %v, want its EIO", err)
	}
	if got := view(t, mem, "/base.qed"); !bytes.Equal(got, want) {
		t.Error("the base does not hold the committed data")
	}
}

// TestCommitClampsToTheImage: a backing file larger than the image holds
// data past the image's end; committing the image into a deeper base
// commits only the image's guest range (what the image reads), and the
// base keeps its own bytes past it.
func TestCommitClampsToTheImage(t *testing.T) {
	fs := afero.NewMemMapFs()
	mustCreate(t, fs, "/base.qed", qed.CreateOptions{Size: 8 * opsCluster}, map[int64][]byte{6 * opsCluster: pattern(1, opsCluster)})
	mustCreate(t, fs, "/mid.qed", qed.CreateOptions{Size: 8 * opsCluster, BackingFile: "base.qed"},
		map[int64][]byte{opsCluster: pattern(2, opsCluster), 5 * opsCluster: pattern(3, 2*opsCluster)})
	mustCreate(t, fs, "/top.qed", qed.CreateOptions{Size: 4 * opsCluster, BackingFile: "mid.qed"}, map[int64][]byte{2 * opsCluster: pattern(4, 10)})
	top := view(t, fs, "/top.qed")
	baseBefore := view(t, fs, "/base.qed")
	if err := qed.Commit(fs, "/top.qed", qed.CommitOptions{Base: "/base.qed"}); err != nil {
		t.Fatal(err)
	}
	base := view(t, fs, "/base.qed")
	if !bytes.Equal(base[:len(top)], top) {
		t.Error("the base does not read the image's data in the image's range")
	}
	if !bytes.Equal(base[len(top):], baseBefore[len(top):]) {
		t.Error("the commit changed the base past the image's end")
	}
}
