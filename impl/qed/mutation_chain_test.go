package qed_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
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

// TestCommitBaseThroughLink: a base named by another path to the same
// file (a symbolic link, on the OS's file system) is found in the chain
// by device and inode.
func TestCommitBaseThroughLink(t *testing.T) {
	dir := t.TempDir()
	fs := afero.NewOsFs()
	base, top, link := filepath.Join(dir, "base.qed"), filepath.Join(dir, "top.qed"), filepath.Join(dir, "link.qed")
	mustCreate(t, fs, base, qed.CreateOptions{Size: 4 * opsCluster}, nil)
	mustCreate(t, fs, top, qed.CreateOptions{Size: 4 * opsCluster, BackingFile: "base.qed"}, map[int64][]byte{0: pattern(6, 100)})
	if err := os.Symlink(base, link); err != nil {
		t.Skip("no symbolic links here:", err)
	}
	want := view(t, fs, top)
	if err := qed.Commit(fs, top, qed.CommitOptions{Base: link}); err != nil {
		t.Fatalf("commit into the base named through a link: %v", err)
	}
	if got := view(t, fs, base); !bytes.Equal(got, want) {
		t.Error("the base does not hold the committed data")
	}
}

// TestCommitProgressCountsTheUnion: ranges two layers both allocate (one
// overlapping the other) are committed once: the progress total is the
// union of the allocated ranges, and the last report is (total, total).
func TestCommitProgressCountsTheUnion(t *testing.T) {
	fs := afero.NewMemMapFs()
	mustCreate(t, fs, "/base.qed", qed.CreateOptions{Size: 4 * opsCluster}, nil)
	mustCreate(t, fs, "/mid.qed", qed.CreateOptions{Size: 4 * opsCluster, BackingFile: "base.qed"}, map[int64][]byte{opsCluster: pattern(7, 2*opsCluster)})
	mustCreate(t, fs, "/top.qed", qed.CreateOptions{Size: 4 * opsCluster, BackingFile: "mid.qed"}, map[int64][]byte{opsCluster: pattern(8, 10)})
	want := view(t, fs, "/top.qed")
	var last [2]int64
	calls := 0
	err := qed.Commit(fs, "/top.qed", qed.CommitOptions{Base: "/base.qed", Progress: func(done, total int64) {
		calls++
		last = [2]int64{done, total}
	}})
	if err != nil {
		t.Fatal(err)
	}
	if calls < 2 || last != [2]int64{2 * opsCluster, 2 * opsCluster} {
		t.Errorf("progress: %d calls, last %v, want at least 2 and the last (%d, %d): clusters 1 and 2 once", calls, last, 2*opsCluster, 2*opsCluster)
	}
	if got := view(t, fs, "/base.qed"); !bytes.Equal(got, want) {
		t.Error("the base does not read the image's data")
	}
}

// TestCommitRawBaseSize: a raw base shorter than the image is grown to
// the image's size (durably, before the data), a longer one keeps its
// length and its bytes past the image's end.
func TestCommitRawBaseSize(t *testing.T) {
	for _, baseLen := range []int64{2 * opsCluster, 6 * opsCluster} {
		fs := afero.NewMemMapFs()
		raw := pattern(9, int(baseLen))
		if err := afero.WriteFile(fs, "/base.raw", raw, 0o644); err != nil {
			t.Fatal(err)
		}
		mustCreate(t, fs, "/top.qed", qed.CreateOptions{Size: 4 * opsCluster, BackingFile: "base.raw", BackingFormat: "raw"}, map[int64][]byte{0: pattern(10, 100)})
		want := view(t, fs, "/top.qed")
		if err := qed.Commit(fs, "/top.qed", qed.CommitOptions{}); err != nil {
			t.Fatalf("base of %d bytes: %v", baseLen, err)
		}
		got, err := afero.ReadFile(fs, "/base.raw")
		if err != nil {
			t.Fatal(err)
		}
		wantLen := max(baseLen, 4*opsCluster)
		if int64(len(got)) != wantLen {
			t.Fatalf("base of %d bytes is %d bytes after the commit, want %d", baseLen, len(got), wantLen)
		}
		if !bytes.Equal(got[:len(want)], want) {
			t.Errorf("base of %d bytes: it does not read the image's data", baseLen)
		}
		if !bytes.Equal(got[len(want):], raw[min(len(raw), len(want)):]) {
			t.Errorf("base of %d bytes: its bytes past the image's end changed", baseLen)
		}
	}
}

// baseFaultsFs fails, for the file at path, Truncate (failTruncate),
// WriteAt (failWrite) and the first failSyncs Syncs after the first
// passSyncs (nil: none), with EIO.
type baseFaultsFs struct {
	afero.Fs
	path                    string
	failTruncate, failWrite bool
	failSyncs, passSyncs    *int
}

func (b baseFaultsFs) OpenFile(name string, flag int, perm os.FileMode) (afero.File, error) {
	f, err := b.Fs.OpenFile(name, flag, perm)
	if err != nil || filepath.Clean(name) != b.path {
		return f, err
	}
	return baseFaultsFile{f, b}, nil
}

type baseFaultsFile struct {
	afero.File
	b baseFaultsFs
}

func (f baseFaultsFile) Truncate(size int64) error {
	if f.b.failTruncate {
		return &os.PathError{Op: "truncate", Path: f.Name(), Err: syscall.EIO}
	}
	return f.File.Truncate(size)
}

func (f baseFaultsFile) WriteAt(p []byte, off int64) (int, error) {
	if f.b.failWrite {
		return 0, &os.PathError{Op: "write", Path: f.Name(), Err: syscall.EIO}
	}
	return f.File.WriteAt(p, off)
}

func (f baseFaultsFile) Sync() error {
	if p := f.b.passSyncs; p != nil && *p > 0 {
		*p--
		return f.File.Sync()
	}
	if *f.b.failSyncs > 0 {
		*f.b.failSyncs--
		return &os.PathError{Op: "sync", Path: f.Name(), Err: syscall.EIO}
	}
	return f.File.Sync()
}

// TestCommitRawBaseErrors: a raw base's growth that fails (its truncate,
// or the sync that makes it durable), a failed data write into it and a
// failed final sync (a base as long as the image: no growth) fail the
// commit.
func TestCommitRawBaseErrors(t *testing.T) {
	for _, how := range []string{"truncate", "grow sync", "write", "flush"} {
		fs := afero.NewMemMapFs()
		baseLen := 2 * opsCluster
		if how == "flush" || how == "write" {
			baseLen = 4 * opsCluster
		}
		if err := afero.WriteFile(fs, "/base.raw", pattern(9, baseLen), 0o644); err != nil {
			t.Fatal(err)
		}
		mustCreate(t, fs, "/top.qed", qed.CreateOptions{Size: 4 * opsCluster, BackingFile: "base.raw", BackingFormat: "raw"}, map[int64][]byte{0: pattern(10, 100)})
		syncs := 0
		if how == "grow sync" || how == "flush" {
			syncs = 1
		}
		err := qed.Commit(baseFaultsFs{fs, "/base.raw", how == "truncate", how == "write", &syncs, nil}, "/top.qed", qed.CommitOptions{})
		if !errors.Is(err, syscall.EIO) {
			t.Errorf("commit with the base's %s failing returned %v, want its EIO", how, err)
		}
	}
}

// TestCommitEmptiesWholeL1: emptying an image whose L1 table is one page
// of more than 512 entries (8 KiB clusters, one-cluster tables: 1024
// entries) zeros every entry; before the fix only the first 512 were
// written, so a mapping through L1[640] stayed in the file, pointing past
// the end the emptying cut it to (an inconsistent image with NEED_CHECK
// clear), found through a surviving mutant of that count.
func TestCommitEmptiesWholeL1(t *testing.T) {
	fs := afero.NewMemMapFs()
	const cs = 8 << 10
	const size = 8 << 30
	const off = 5 << 30 // L1[640]: an L2 table maps 8 MiB
	mustCreate(t, fs, "/base.qed", qed.CreateOptions{Size: size, ClusterSize: cs, TableSize: 1}, nil)
	mustCreate(t, fs, "/top.qed", qed.CreateOptions{Size: size, ClusterSize: cs, TableSize: 1, BackingFile: "base.qed"},
		map[int64][]byte{0: pattern(12, 100), off: pattern(11, 100)})
	if err := qed.Commit(fs, "/top.qed", qed.CommitOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/top.qed", "/base.qed"} {
		if rep, err := checkFile(fs, p); err != nil || !rep.IsConsistent() {
			t.Fatalf("%s after the commit: %v %v", p, err, rep.Err())
		}
	}
	// The file ends at its L1 table: every L2 table and data cluster
	// dropped (header 1 cluster, L1 1 cluster).
	if st, err := fs.Stat("/top.qed"); err != nil || st.Size() != 2*cs {
		t.Errorf("the emptied image is %v bytes (%v), want %d: header and L1 table", st.Size(), err, 2*cs)
	}
	im, err := qed.Open(fs, "/top.qed", qed.OpenOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer im.Close()
	ext, err := im.Map()
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range ext {
		if x.Kind != qed.ExtentUnallocated {
			t.Errorf("the emptied image still maps %+v", x)
		}
	}
	for _, o := range []int64{0, off} {
		got := make([]byte, 100)
		if _, err := im.ReadAt(got, o); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, pattern(map[int64]byte{0: 12, off: 11}[o], 100)) {
			t.Errorf("guest offset %d does not read the committed data", o)
		}
	}
}

// TestCommitEmptyingErrors: each failing step of emptying the image
// fails the commit, naming the step: the zeroed L1 table's write, its
// sync, the truncate that drops the clusters, and that truncate's sync
// (the first sync of the image's file is the metadata writeback's).
func TestCommitEmptyingErrors(t *testing.T) {
	for _, c := range []struct {
		how        string
		pass, fail int
		write, cut bool
		want       string
	}{
		{"write", 0, 0, true, false, "writing table at"},
		{"sync", 1, 1, false, false, "flush after emptying the L1 table"},
		{"truncate", 0, 0, false, true, "dropping the emptied clusters"},
		{"truncate sync", 2, 1, false, false, "flush after dropping the emptied clusters"},
	} {
		fs := afero.NewMemMapFs()
		mustCreate(t, fs, "/base.qed", qed.CreateOptions{Size: 4 * opsCluster}, nil)
		mustCreate(t, fs, "/top.qed", qed.CreateOptions{Size: 4 * opsCluster, BackingFile: "base.qed"}, map[int64][]byte{opsCluster: pattern(13, 100)})
		fail, pass := c.fail, c.pass
		err := qed.Commit(baseFaultsFs{fs, "/top.qed", c.cut, c.write, &fail, &pass}, "/top.qed", qed.CommitOptions{})
		if !errors.Is(err, syscall.EIO) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("commit with the image's %s failing returned %v, want its EIO in %q", c.how, err, c.want)
		}
	}
}
