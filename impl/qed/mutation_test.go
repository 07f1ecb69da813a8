package qed

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/spf13/afero"
)

// Tests written for mutants that survived the rest of the suite (see
// docs/mutation.md).

// TestRawBackingShorterUnaligned: a raw backing file that ends inside a
// cluster (and inside a sector) reads as its bytes up to its end and as
// zeros past it, through reads across the end and copy-on-write.
func TestRawBackingShorterUnaligned(t *testing.T) {
	fs := afero.NewMemMapFs()
	const bsize = 10000
	mustNil(t, afero.WriteFile(fs, "/b/base.raw", fill(bsize, 7), 0o644))
	im := mustCreate(t, fs, "/b/top.qed", CreateOptions{Size: 4 * cs4k, ClusterSize: cs4k, BackingFile: "base.raw", BackingFormat: "raw"}, OpenOptions{})
	want := append(fill(bsize, 7), make([]byte, 4*cs4k-bsize)...)
	p := make([]byte, 2000)
	_, err := im.ReadAt(p, 9000)
	mustNil(t, err)
	assertEqual(t, p, want[9000:11000])
	_, err = im.WriteAt([]byte{9}, 2*cs4k+100) // copy-on-write of the cluster holding the end
	mustNil(t, err)
	want[2*cs4k+100] = 9
	assertEqual(t, readAll(t, im), want)
	mustNil(t, im.Close())
}

// failingFs fails every ReadAt of one file with EIO.
type failingFs struct {
	afero.Fs
	name string
}

func (f failingFs) Open(name string) (afero.File, error) {
	return f.OpenFile(name, os.O_RDONLY, 0)
}

func (f failingFs) OpenFile(name string, flag int, perm os.FileMode) (afero.File, error) {
	file, err := f.Fs.OpenFile(name, flag, perm)
	if err != nil || filepath.Clean(name) != f.name {
		return file, err
	}
	return failingFile{file}, nil
}

type failingFile struct{ afero.File }

func (failingFile) ReadAt([]byte, int64) (int, error) {
	return 0, &os.PathError{Op: "read", Path: "backing", Err: syscall.EIO}
}

// TestBackingReadErrorsSurface: an I/O error reading a raw backing file,
// and a corrupt table of a qed backing file, fail the guest read instead of
// reading as zeros.
func TestBackingReadErrorsSurface(t *testing.T) {
	mem := afero.NewMemMapFs()
	mustNil(t, afero.WriteFile(mem, "/e/base.raw", fill(cs4k, 7), 0o644))
	mustNil(t, Create(mem, "/e/top.qed", CreateOptions{Size: 2 * cs4k, ClusterSize: cs4k, BackingFile: "base.raw", BackingFormat: "raw"}))
	im, err := Open(failingFs{mem, "/e/base.raw"}, "/e/top.qed", OpenOptions{ReadOnly: true})
	mustNil(t, err)
	if _, err := im.ReadAt(make([]byte, 100), 0); !errors.Is(err, syscall.EIO) {
		t.Errorf("read over a failing raw backing file: %v, want EIO", err)
	}
	im.Close()

	fs := afero.NewMemMapFs()
	b := mustCreate(t, fs, "/q/base.qed", CreateOptions{Size: 2 * cs4k, ClusterSize: cs4k}, OpenOptions{})
	_, err = b.WriteAt(fill(cs4k, 5), 0)
	mustNil(t, err)
	mustNil(t, b.Close())
	pokeL2(t, fs, "/q/base.qed", 0, 1<<30) // past the backing file's end
	mustNil(t, Create(fs, "/q/top.qed", CreateOptions{Size: 2 * cs4k, ClusterSize: cs4k, BackingFile: "base.qed", BackingFormat: "qed"}))
	top, err := Open(fs, "/q/top.qed", OpenOptions{ReadOnly: true})
	mustNil(t, err)
	if _, err := top.ReadAt(make([]byte, 100), 0); !errors.Is(err, ErrCorrupt) {
		t.Errorf("read over a corrupt qed backing file: %v, want ErrCorrupt", err)
	}
	top.Close()
}

// TestBackingLoopThroughLinks: a backing chain that comes back to an image
// under another name (a symlink, a hard link) is a loop, found at the
// reference that closes it.
func TestBackingLoopThroughLinks(t *testing.T) {
	for _, link := range []string{"symlink", "hardlink"} {
		t.Run(link, func(t *testing.T) {
			dir := t.TempDir()
			fs := afero.NewOsFs()
			a := filepath.Join(dir, "a.qed")
			mustNil(t, Create(fs, a, CreateOptions{Size: cs4k, ClusterSize: cs4k, BackingFile: "b.qed", BackingFormat: "qed", NoLock: true}))
			var err error
			if link == "symlink" {
				err = os.Symlink("a.qed", filepath.Join(dir, "b.qed"))
			} else {
				err = os.Link(a, filepath.Join(dir, "b.qed"))
			}
			if err != nil {
				t.Skipf("%s: %v", link, err)
			}
			skipFinalCheck(t, a)
			_, err = Open(fs, a, OpenOptions{ReadOnly: true})
			// Found where it is made, by device and inode: b.qed is a.qed,
			// named again by a.qed (not one hop later, by b.qed's header).
			if !errors.Is(err, ErrBackingLoop) || !strings.HasSuffix(err.Error(), "named again by "+a) {
				t.Errorf("a chain back to a.qed through a %s: %v, want ErrBackingLoop found at a.qed", link, err)
			}
		})
	}
}

// TestRawBackingShrunkUnderneath: a raw backing file that became shorter
// than it was at open (truncated by someone else) fails the read that
// reaches past its new end (the OS reports the short read with EOF),
// rather than reading zeros.
func TestRawBackingShrunkUnderneath(t *testing.T) {
	fs := afero.NewOsFs()
	dir := t.TempDir()
	base, top := filepath.Join(dir, "base.raw"), filepath.Join(dir, "top.qed")
	mustNil(t, os.WriteFile(base, fill(2*cs4k, 7), 0o644))
	mustNil(t, Create(fs, top, CreateOptions{Size: 2 * cs4k, ClusterSize: cs4k, BackingFile: "base.raw", BackingFormat: "raw"}))
	im, err := Open(fs, top, OpenOptions{ReadOnly: true})
	mustNil(t, err)
	defer im.Close()
	mustNil(t, os.Truncate(base, 5000))
	if _, err := im.ReadAt(make([]byte, cs4k), cs4k); err == nil {
		t.Error("a read past the shrunk backing file's end succeeded")
	}
}

// TestRepairReportsNoErrorWhenItWorks: a repair that writes its fixes and
// clears NEED_CHECK reports no check error; one whose table write fails
// reports it and returns the error.
func TestRepairReportsNoErrorWhenItWorks(t *testing.T) {
	fs := afero.NewMemMapFs()
	im := mustCreate(t, fs, "/n/n.qed", CreateOptions{Size: 16 * cs4k, ClusterSize: cs4k}, OpenOptions{IdleClearDelay: -1})
	_, err := im.WriteAt(fill(cs4k, 3), 0) // allocates: NEED_CHECK set until a clean point
	mustNil(t, err)
	if im.Header().Features&FeatureNeedCheck == 0 {
		t.Skip("NEED_CHECK not set by an allocating write: nothing to clear")
	}
	rep, err := im.Check(true)
	mustNil(t, err)
	if rep.CheckErrors != 0 || rep.Corruptions != 0 {
		t.Errorf("repair of a consistent image: %+v", rep)
	}
	if im.Header().Features&FeatureNeedCheck != 0 {
		t.Error("NEED_CHECK still set after a clean repair")
	}
	mustNil(t, im.Close())

	for _, what := range []string{"L2", "L1"} {
		t.Run(what, func(t *testing.T) {
			mem := afero.NewMemMapFs()
			path := "/w/w.qed"
			im := mustCreate(t, mem, path, CreateOptions{Size: 4 * 512 * cs4k, ClusterSize: cs4k, TableSize: 1}, OpenOptions{})
			_, err := im.WriteAt(fill(2*cs4k, 7), 0)
			mustNil(t, err)
			mustNil(t, im.Close())
			if what == "L2" {
				pokeL2(t, mem, path, cs4k, 1<<30)
			} else {
				h, err := ReadHeader(mem, path)
				mustNil(t, err)
				skipFinalCheck(t, path)
				setHeaderField(t, mem, path, int64(h.L1TableOffset)+16, 8, 1<<40)
			}
			ffs := &writeFailFs{Fs: mem, name: path}
			rw, err := Open(ffs, path, OpenOptions{})
			mustNil(t, err)
			ffs.armed.Store(true)
			rep, err := rw.Check(true)
			if !errors.Is(err, syscall.EIO) || rep.CheckErrors == 0 {
				t.Errorf("repair whose %s write fails: %+v, %v; want a check error and EIO", what, rep, err)
			}
			ffs.armed.Store(false)
			rw.Close()
		})
	}
}

// writeFailFs fails every WriteAt of one file with EIO while armed.
type writeFailFs struct {
	afero.Fs
	name  string
	armed atomic.Bool
}

func (f *writeFailFs) OpenFile(name string, flag int, perm os.FileMode) (afero.File, error) {
	file, err := f.Fs.OpenFile(name, flag, perm)
	if err != nil || filepath.Clean(name) != f.name {
		return file, err
	}
	return writeFailFile{file, &f.armed}, nil
}

type writeFailFile struct {
	afero.File
	armed *atomic.Bool
}

func (w writeFailFile) WriteAt(p []byte, off int64) (int, error) {
	if w.armed.Load() {
		return 0, &os.PathError{Op: "write", Path: "image", Err: syscall.EIO}
	}
	return w.File.WriteAt(p, off)
}

// TestHeaderBoundaries: validateHeader accepts every value at the edge of
// what the spec allows (image size at its maximum, header_size*cluster_size
// at the 32-bit limit, a backing name of the maximum length, ending at the
// end of the header clusters), and a data cluster
// at the end of the file's whole clusters is not a valid offset.
func TestHeaderBoundaries(t *testing.T) {
	base, err := newHeader(CreateOptions{Size: cs4k, ClusterSize: cs4k, TableSize: 1})
	mustNil(t, err)
	const big = uint64(1) << 40 // a file length: validateHeader reads nothing
	ok := func(what string, h Header, fileLen uint64) {
		t.Helper()
		if err := validateHeader(&h, fileLen); err != nil {
			t.Errorf("%s: %v", what, err)
		}
	}
	h := base
	h.ImageSize = MaxImageSize(h.ClusterSize, h.TableSize)
	ok("image size at the maximum", h, big)
	h = base
	h.HeaderSize = math.MaxUint32 / h.ClusterSize
	h.L1TableOffset = uint64(h.HeaderSize) * uint64(h.ClusterSize)
	ok("header_size * cluster_size at the 32-bit limit", h, big)
	h = base
	h.HeaderSize = 2
	h.L1TableOffset = 2 * cs4k
	h.Features |= FeatureBackingFile
	h.BackingFilenameOffset = 2*cs4k - MaxBackingFilenameSize
	h.BackingFilenameSize = MaxBackingFilenameSize
	ok("a backing name of the maximum length ending at the end of the header", h, big)
	h.BackingFilenameSize = MaxBackingFilenameSize + 1
	h.BackingFilenameOffset--
	if err := validateHeader(&h, big); err == nil {
		t.Error("a backing name one byte over the maximum accepted")
	}
	g := newGeometry(&base)
	if g.validClusterOffset(4*cs4k, 4*cs4k) {
		t.Error("a cluster at the end of the file's whole clusters is a valid offset")
	}
	if !g.validClusterOffset(3*cs4k, 4*cs4k) {
		t.Error("the last whole cluster is not a valid offset")
	}
}

// dirFs wraps a file system: Sync of a directory counts (or fails with EIO
// while failDir is set), Close of the file named failClose fails.
type dirFs struct {
	afero.Fs
	dirSyncs  atomic.Int64
	failDir   bool
	failClose string
}

func (d *dirFs) Open(name string) (afero.File, error) {
	f, err := d.Fs.Open(name)
	if err != nil {
		return f, err
	}
	if st, err := f.Stat(); err == nil && st.IsDir() {
		return dirFile{f, d}, nil
	}
	return f, nil
}

func (d *dirFs) OpenFile(name string, flag int, perm os.FileMode) (afero.File, error) {
	f, err := d.Fs.OpenFile(name, flag, perm)
	if err != nil || filepath.Clean(name) != d.failClose {
		return f, err
	}
	return closeFailFile{f}, nil
}

type dirFile struct {
	afero.File
	d *dirFs
}

func (f dirFile) Sync() error {
	if f.d.failDir {
		return &os.PathError{Op: "sync", Path: f.Name(), Err: syscall.EIO}
	}
	f.d.dirSyncs.Add(1)
	return nil
}

type closeFailFile struct{ afero.File }

func (f closeFailFile) Close() error {
	f.File.Close()
	return &os.PathError{Op: "close", Path: f.Name(), Err: syscall.EIO}
}

// TestCreateDurableAndChecked: Create syncs the directory that holds the
// new image (its entry is durable only then), and reports a directory sync
// error and an error closing the image file.
func TestCreateDurableAndChecked(t *testing.T) {
	fs := &dirFs{Fs: afero.NewMemMapFs()}
	mustNil(t, fs.MkdirAll("/c", 0o755))
	mustNil(t, Create(fs, "/c/a.qed", CreateOptions{Size: cs4k, ClusterSize: cs4k}))
	if fs.dirSyncs.Load() == 0 {
		t.Error("Create did not sync the image's directory")
	}
	fs.failDir = true
	if err := Create(fs, "/c/b.qed", CreateOptions{Size: cs4k, ClusterSize: cs4k}); !errors.Is(err, syscall.EIO) {
		t.Errorf("Create with a failing directory sync: %v, want EIO", err)
	}
	fs.failDir, fs.failClose = false, "/c/d.qed"
	if err := Create(fs, "/c/d.qed", CreateOptions{Size: cs4k, ClusterSize: cs4k}); !errors.Is(err, syscall.EIO) {
		t.Errorf("Create whose close fails: %v, want EIO", err)
	}
}

// TestCreateRefusesSelfThroughLink: Create refuses a backing file that is
// the image itself under another name (a symlink to it).
func TestCreateRefusesSelfThroughLink(t *testing.T) {
	dir := t.TempDir()
	fs := afero.NewOsFs()
	a := filepath.Join(dir, "a.qed")
	mustNil(t, Create(fs, a, CreateOptions{Size: cs4k, ClusterSize: cs4k, NoLock: true}))
	if err := os.Symlink("a.qed", filepath.Join(dir, "b.qed")); err != nil {
		t.Skipf("symlink: %v", err)
	}
	if err := Create(fs, a, CreateOptions{Size: cs4k, ClusterSize: cs4k, BackingFile: "b.qed", NoLock: true}); !errors.Is(err, ErrBackingLoop) {
		t.Errorf("Create of a.qed backed by b.qed -> a.qed: %v, want ErrBackingLoop", err)
	}
}

// TestCreateBackingNameLimits: the backing name must fit in the header
// cluster after the fixed fields, and be at most MaxBackingFilenameSize
// bytes; names at those limits are accepted.
func TestCreateBackingNameLimits(t *testing.T) {
	fs := afero.NewMemMapFs()
	for _, c := range []struct {
		cluster uint32
		n       int
		ok      bool
	}{
		{cs4k, cs4k - HeaderFieldsSize, true},
		{cs4k, cs4k - HeaderFieldsSize + 1, false},
		{2 * cs4k, MaxBackingFilenameSize, true},
		{2 * cs4k, MaxBackingFilenameSize + 1, false},
	} {
		err := Create(fs, "/n/img.qed", CreateOptions{Size: cs4k, ClusterSize: c.cluster, BackingFile: strings.Repeat("b", c.n)})
		if c.ok != (err == nil) || (!c.ok && !errors.Is(err, ErrInvalidOption)) {
			t.Errorf("cluster %d, backing name of %d bytes: %v (want accepted: %v)", c.cluster, c.n, err, c.ok)
		}
	}
}

// TestShortNonQEDFile: a file of 4 to 63 bytes that does not start with
// the magic is not a QED image (not a truncated header).
func TestShortNonQEDFile(t *testing.T) {
	fs := afero.NewMemMapFs()
	for _, n := range []int{4, 10} {
		mustNil(t, afero.WriteFile(fs, "/s/x", []byte(strings.Repeat("x", n)), 0o644))
		if _, err := ReadHeader(fs, "/s/x"); !errors.Is(err, ErrNotQED) {
			t.Errorf("%d bytes of x: %v, want ErrNotQED", n, err)
		}
	}
}

// armedFs fails operations of one file while the matching flag is set:
// Sync, WriteAt, Close (Open and OpenFile both wrap).
type armedFs struct {
	afero.Fs
	name                           string
	failSync, failWrite, failClose atomic.Bool
	syncsBeforeFail                atomic.Int64 // syncs that still pass once failSync is set
	syncs                          atomic.Int64 // syncs that passed
	failNextSyncs                  atomic.Int64 // fail this many syncs, then pass again
}

func (a *armedFs) Open(name string) (afero.File, error) { return a.OpenFile(name, os.O_RDONLY, 0) }

func (a *armedFs) OpenFile(name string, flag int, perm os.FileMode) (afero.File, error) {
	f, err := a.Fs.OpenFile(name, flag, perm)
	if err != nil || filepath.Clean(name) != a.name {
		return f, err
	}
	return armedFile{f, a}, nil
}

type armedFile struct {
	afero.File
	a *armedFs
}

func eio(op string) error { return &os.PathError{Op: op, Path: "armed", Err: syscall.EIO} }

func (f armedFile) Sync() error {
	if f.a.failSync.Load() && f.a.syncsBeforeFail.Add(-1) < 0 {
		return eio("sync")
	}
	if f.a.failNextSyncs.Add(-1) >= 0 {
		return eio("sync")
	}
	f.a.syncs.Add(1)
	return f.File.Sync()
}

func (f armedFile) WriteAt(p []byte, off int64) (int, error) {
	if f.a.failWrite.Load() {
		return 0, eio("write")
	}
	return f.File.WriteAt(p, off)
}

func (f armedFile) Close() error {
	err := f.File.Close()
	if f.a.failClose.Load() {
		return eio("close")
	}
	return err
}

// TestErrorsSurface: errors of the syncs and writes that order metadata
// (setting and clearing NEED_CHECK, growing), and of closing the image or
// its backing file, are returned, not dropped.
func TestErrorsSurface(t *testing.T) {
	newImage := func(t *testing.T, armedName string) (*armedFs, *Image) {
		mem := afero.NewMemMapFs()
		mustNil(t, afero.WriteFile(mem, "/e/base.raw", fill(cs4k, 1), 0o644))
		mustNil(t, Create(mem, "/e/img.qed", CreateOptions{Size: 8 * cs4k, ClusterSize: cs4k, BackingFile: "base.raw", BackingFormat: "raw"}))
		a := &armedFs{Fs: mem, name: armedName}
		im, err := Open(a, "/e/img.qed", OpenOptions{IdleClearDelay: -1})
		mustNil(t, err)
		return a, im
	}
	t.Run("sync setting NEED_CHECK", func(t *testing.T) {
		// Without a backing file an allocating write sets NEED_CHECK
		// (with one, its ordered writes need none).
		mem := afero.NewMemMapFs()
		mustNil(t, Create(mem, "/e/img.qed", CreateOptions{Size: 8 * cs4k, ClusterSize: cs4k}))
		a := &armedFs{Fs: mem, name: "/e/img.qed"}
		im, err := Open(a, "/e/img.qed", OpenOptions{IdleClearDelay: -1})
		mustNil(t, err)
		a.failSync.Store(true)
		if _, err := im.WriteAt(fill(cs4k, 2), 0); !errors.Is(err, syscall.EIO) {
			t.Errorf("allocating write whose NEED_CHECK sync fails: %v, want EIO", err)
		}
		a.failSync.Store(false)
		im.Close()
	})
	t.Run("sync clearing NEED_CHECK", func(t *testing.T) {
		// Close clears NEED_CHECK with syncs (the metadata, then the
		// header): whichever fails, the close fails.
		open := func() (*armedFs, *Image) {
			mem := afero.NewMemMapFs()
			mustNil(t, Create(mem, "/e/img.qed", CreateOptions{Size: 8 * cs4k, ClusterSize: cs4k}))
			a := &armedFs{Fs: mem, name: "/e/img.qed"}
			im, err := Open(a, "/e/img.qed", OpenOptions{IdleClearDelay: -1})
			mustNil(t, err)
			_, err = im.WriteAt(fill(cs4k, 2), 0)
			mustNil(t, err)
			if im.Header().Features&FeatureNeedCheck == 0 {
				t.Fatal("NEED_CHECK not set by an allocating write")
			}
			return a, im
		}
		a, im := open()
		before := a.syncs.Load()
		mustNil(t, im.Close())
		n := a.syncs.Load() - before
		if n < 2 {
			t.Fatalf("close cleared NEED_CHECK with %d syncs", n)
		}
		for pass := range n {
			a, im := open()
			a.syncsBeforeFail.Store(pass)
			a.failSync.Store(true)
			if err := im.Close(); !errors.Is(err, syscall.EIO) {
				t.Errorf("close whose sync %d of %d fails: %v, want EIO", pass+1, n, err)
			}
		}
	})
	t.Run("resize header write and sync", func(t *testing.T) {
		a, im := newImage(t, "/e/img.qed")
		a.failWrite.Store(true)
		if err := im.Resize(16 * cs4k); !errors.Is(err, syscall.EIO) {
			t.Errorf("resize whose header write fails: %v, want EIO", err)
		}
		a.failWrite.Store(false)
		a.failSync.Store(true)
		if err := im.Resize(32 * cs4k); !errors.Is(err, syscall.EIO) {
			t.Errorf("resize whose sync fails: %v, want EIO", err)
		}
		a.failSync.Store(false)
		im.Close()
	})
	t.Run("resize over a longer backing file", func(t *testing.T) {
		mem := afero.NewMemMapFs()
		mustNil(t, afero.WriteFile(mem, "/e/base.raw", fill(4*cs4k, 1), 0o644))
		mustNil(t, Create(mem, "/e/img.qed", CreateOptions{Size: cs4k, ClusterSize: cs4k, BackingFile: "base.raw", BackingFormat: "raw"}))
		a := &armedFs{Fs: mem, name: "/e/img.qed"}
		im, err := Open(a, "/e/img.qed", OpenOptions{IdleClearDelay: -1})
		mustNil(t, err)
		a.failNextSyncs.Store(1) // the zeroing's sync only; the header's passes
		if err := im.Resize(4 * cs4k); !errors.Is(err, syscall.EIO) {
			t.Errorf("resize whose zeroing of the backing tail fails to sync: %v, want EIO", err)
		}
		im.Close()
	})
	t.Run("close of the image", func(t *testing.T) {
		a, im := newImage(t, "/e/img.qed")
		a.failClose.Store(true)
		if err := im.Close(); !errors.Is(err, syscall.EIO) {
			t.Errorf("close whose file close fails: %v, want EIO", err)
		}
	})
	t.Run("close of the backing file", func(t *testing.T) {
		a, im := newImage(t, "/e/base.raw")
		a.failClose.Store(true)
		if err := im.Close(); !errors.Is(err, syscall.EIO) {
			t.Errorf("close whose backing file close fails: %v, want EIO", err)
		}
	})
}

// TestResizeEdges: a resize to the current size (0 included) is a no-op,
// not a shrink; growing over a backing file longer than the image hides
// every backing byte past the old size, to the end of the cluster that
// holds the backing file's end.
func TestResizeEdges(t *testing.T) {
	fs := afero.NewMemMapFs()
	z := mustCreate(t, fs, "/r/z.qed", CreateOptions{Size: 0, ClusterSize: cs4k}, OpenOptions{})
	mustNil(t, z.Resize(0))
	mustNil(t, z.Resize(cs4k))
	mustNil(t, z.Resize(cs4k))
	mustNil(t, z.Close())
	mustNil(t, afero.WriteFile(fs, "/r/base.raw", fill(3*cs4k+1000, 7), 0o644))
	// Old sizes on and off a cluster boundary; the unaligned one also has
	// its last cluster allocated (copy-on-write) before the grow.
	for _, old := range []int64{cs4k, cs4k + 512, 2*cs4k - 512} {
		name := fmt.Sprintf("/r/top%d.qed", old)
		im := mustCreate(t, fs, name, CreateOptions{Size: uint64(old), ClusterSize: cs4k, BackingFile: "base.raw", BackingFormat: "raw"}, OpenOptions{})
		if old == 2*cs4k-512 {
			_, err := im.WriteAt([]byte{5}, cs4k)
			mustNil(t, err)
		}
		mustNil(t, im.Resize(5*cs4k))
		want := append(fill(int(old), 7), make([]byte, 5*cs4k-old)...)
		if old == 2*cs4k-512 {
			want[cs4k] = 5
		}
		assertEqual(t, readAll(t, im), want)
		mustNil(t, im.Close())
	}
}

// TestOpenDropsPartialCluster: a writable open cuts a partial cluster at
// the end of the file (bytes no entry can validly point at), so the next
// allocation starts on a cluster boundary and reads as written.
func TestOpenDropsPartialCluster(t *testing.T) {
	fs := afero.NewMemMapFs()
	mustNil(t, Create(fs, "/p/p.qed", CreateOptions{Size: 8 * cs4k, ClusterSize: cs4k}))
	f, err := fs.OpenFile("/p/p.qed", os.O_RDWR, 0)
	mustNil(t, err)
	st, err := f.Stat()
	mustNil(t, err)
	whole := st.Size() // read now: a MemMapFs FileInfo follows the file's later growth
	_, err = f.WriteAt(fill(100, 0xee), whole)
	mustNil(t, err)
	mustNil(t, f.Close())
	// A read-only open leaves the file as it is.
	ro, err := Open(fs, "/p/p.qed", OpenOptions{ReadOnly: true})
	mustNil(t, err)
	mustNil(t, ro.Close())
	st1, err := fs.Stat("/p/p.qed")
	mustNil(t, err)
	if st1.Size() != whole+100 {
		t.Errorf("file length after a read-only open: %d, want %d", st1.Size(), whole+100)
	}
	im, err := Open(fs, "/p/p.qed", OpenOptions{})
	mustNil(t, err)
	st2, err := fs.Stat("/p/p.qed")
	mustNil(t, err)
	if st2.Size() != whole {
		t.Errorf("file length after a writable open: %d, want %d (the partial cluster cut)", st2.Size(), whole)
	}
	mustNil(t, im.Close())
}

// TestRepairedImageClosesClean: after an open-time repair that fixed every
// corruption, the image is not corrupt: Close clears NEED_CHECK.
func TestRepairedImageClosesClean(t *testing.T) {
	fs := afero.NewMemMapFs()
	im := mustCreate(t, fs, "/c/c.qed", CreateOptions{Size: 16 * cs4k, ClusterSize: cs4k}, OpenOptions{})
	_, err := im.WriteAt(fill(2*cs4k, 9), 0)
	mustNil(t, err)
	mustNil(t, im.Close())
	pokeL2(t, fs, "/c/c.qed", cs4k, 1<<30)
	setHeaderField(t, fs, "/c/c.qed", offFeatures, 8, FeatureNeedCheck)
	rw, err := Open(fs, "/c/c.qed", OpenOptions{})
	mustNil(t, err)
	_, err = rw.WriteAt(fill(cs4k, 3), 5*cs4k)
	mustNil(t, err)
	mustNil(t, rw.Close())
	if h, _ := ReadHeader(fs, "/c/c.qed"); h.Features&FeatureNeedCheck != 0 {
		t.Error("NEED_CHECK set after closing an image whose corruption was repaired")
	}
}

// TestFormatErrorNamesTheEntry: a read through an invalid L2 entry fails
// with a FormatError that names the entry's file offset and value.
func TestFormatErrorNamesTheEntry(t *testing.T) {
	fs := afero.NewMemMapFs()
	im := mustCreate(t, fs, "/f/f.qed", CreateOptions{Size: 16 * cs4k, ClusterSize: cs4k}, OpenOptions{})
	_, err := im.WriteAt(fill(4*cs4k, 9), 0)
	mustNil(t, err)
	mustNil(t, im.Close())
	pokeL2(t, fs, "/f/f.qed", 3*cs4k, 1<<30)
	ro, err := Open(fs, "/f/f.qed", OpenOptions{ReadOnly: true})
	mustNil(t, err)
	defer ro.Close()
	var fe *FormatError
	if _, err := ro.ReadAt(make([]byte, 10), 3*cs4k); !errors.As(err, &fe) {
		t.Fatalf("read through an invalid entry: %v, want a FormatError", err)
	}
	if want := int64(l1Entry(t, fs, "/f/f.qed", 0) + 3*8); fe.Offset != want || fe.Value != 1<<30 {
		t.Errorf("FormatError at offset %#x value %#x, want offset %#x value %#x", fe.Offset, fe.Value, want, uint64(1<<30))
	}
}

// TestWritePathErrorsSurface: a failing data write, a failing backing read
// during copy-on-write and a failing flush sync fail the guest operation;
// a zero-length write at any offset up to the end is fine.
func TestWritePathErrorsSurface(t *testing.T) {
	mem := afero.NewMemMapFs()
	mustNil(t, afero.WriteFile(mem, "/w/base.raw", fill(4*cs4k, 1), 0o644))
	mustNil(t, Create(mem, "/w/img.qed", CreateOptions{Size: 4 * cs4k, ClusterSize: cs4k, BackingFile: "base.raw", BackingFormat: "raw"}))
	a := &armedFs{Fs: mem, name: "/w/img.qed"}
	im, err := Open(a, "/w/img.qed", OpenOptions{IdleClearDelay: -1})
	mustNil(t, err)
	for _, off := range []int64{0, cs4k, 4 * cs4k} {
		if _, err := im.WriteAt(nil, off); err != nil {
			t.Errorf("zero-length write at %d: %v", off, err)
		}
	}
	_, err = im.WriteAt(fill(cs4k, 2), 0) // allocate cluster 0
	mustNil(t, err)
	a.failWrite.Store(true)
	if _, err := im.WriteAt(fill(100, 3), 10); !errors.Is(err, syscall.EIO) { // in place
		t.Errorf("in-place write whose data write fails: %v, want EIO", err)
	}
	if _, err := im.WriteAt(fill(100, 3), 2*cs4k+10); !errors.Is(err, syscall.EIO) { // allocating, with COW
		t.Errorf("allocating write whose data write fails: %v, want EIO", err)
	}
	a.failWrite.Store(false)
	_, err = im.WriteAt(fill(100, 4), cs4k+10)
	mustNil(t, err)
	a.failSync.Store(true)
	if err := im.Flush(); !errors.Is(err, syscall.EIO) {
		t.Errorf("flush whose sync fails: %v, want EIO", err)
	}
	a.failSync.Store(false)
	im.Close()

	// Copy-on-write reads the backing file: its read error fails the write.
	mustNil(t, Create(mem, "/w/img2.qed", CreateOptions{Size: 4 * cs4k, ClusterSize: cs4k, BackingFile: "base.raw", BackingFormat: "raw"}))
	im2, err := Open(failingFs{mem, "/w/base.raw"}, "/w/img2.qed", OpenOptions{})
	mustNil(t, err)
	if _, err := im2.WriteAt(fill(100, 5), cs4k+10); !errors.Is(err, syscall.EIO) {
		t.Errorf("partial write whose copy-on-write read fails: %v, want EIO", err)
	}
	im2.Close()
	skipFinalCheck(t, "/w/img.qed")
	skipFinalCheck(t, "/w/img2.qed")
}
