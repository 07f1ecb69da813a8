package qed_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/qedtorture/qedtorture/impl/qed"
	"github.com/spf13/afero"
)

// Tests written for mutants of rebase.go that survived impl/qed's suite
// (docs/mutation.md, "impl/qed: the code changed since 78d146e").

// TestSetBackingNameEdges: a name of exactly MaxBackingFilenameSize bytes
// is accepted (one more is refused); a new name that ends exactly at the
// header's end, or exactly where the old name starts, fits there; the
// refusal for lack of room states the old name's length.
func TestSetBackingNameEdges(t *testing.T) {
	fs := afero.NewMemMapFs()
	mustCreate(t, fs, "/big.qed", qed.CreateOptions{Size: 1 << 20, ClusterSize: 64 << 10}, nil)
	if err := qed.SetBacking(fs, "/big.qed", strings.Repeat("n", qed.MaxBackingFilenameSize), "raw", qed.OpenOptions{}); err != nil {
		t.Errorf("a name of %d bytes: %v", qed.MaxBackingFilenameSize, err)
	}
	if err := qed.SetBacking(fs, "/big.qed", strings.Repeat("n", qed.MaxBackingFilenameSize+1), "raw", qed.OpenOptions{}); !errors.Is(err, qed.ErrInvalidOption) {
		t.Errorf("a name of %d bytes: %v, want ErrInvalidOption", qed.MaxBackingFilenameSize+1, err)
	}

	// 4 KiB header; the old name "a.raw" at [64, 69).
	afero.WriteFile(fs, "/a.raw", nil, 0o644)
	place := func(path, name string, want uint32) {
		t.Helper()
		if err := qed.SetBacking(fs, path, name, "raw", qed.OpenOptions{}); err != nil {
			t.Fatalf("SetBacking(%.20q): %v", name, err)
		}
		h, err := qed.ReadHeader(fs, path)
		if err != nil {
			t.Fatal(err)
		}
		if h.BackingFilename != name || h.BackingFilenameOffset != want {
			t.Errorf("SetBacking(%.20q): name %.20q at %d, want at %d", name, h.BackingFilename, h.BackingFilenameOffset, want)
		}
	}
	mustCreate(t, fs, "/t.qed", qed.CreateOptions{Size: 1 << 20, BackingFile: "a.raw", BackingFormat: "raw"}, nil)
	place("/t.qed", strings.Repeat("e", opsCluster-69), 69) // ends at the header's end
	mustCreate(t, fs, "/u.qed", qed.CreateOptions{Size: 1 << 20, BackingFile: "a.raw", BackingFormat: "raw"}, nil)
	place("/u.qed", "bb.raw", 69) // after the old name
	place("/u.qed", "c.raw", 64)  // ends where the old name ("bb.raw" at 69) starts

	mustCreate(t, fs, "/v.qed", qed.CreateOptions{Size: 1 << 20}, nil)
	place("/v.qed", strings.Repeat("o", 4000), 64)
	err := qed.SetBacking(fs, "/v.qed", strings.Repeat("w", 500), "raw", qed.OpenOptions{})
	if !errors.Is(err, qed.ErrInvalidOption) || !strings.Contains(err.Error(), "(4000 bytes)") {
		t.Errorf("no room for the name: %v, want ErrInvalidOption naming the old name's 4000 bytes", err)
	}
}

// faultyImageFs fails, for the file at path opened writable, every
// WriteAt at offset 0 while failHeader is set (then clears it: one
// failure), the Close when failClose is set, and counts the Syncs after a
// failed write.
type faultyImageFs struct {
	afero.Fs
	path                  string
	failHeader, failClose *bool
	syncsAfter            *int
	failed                *bool
}

func (c faultyImageFs) OpenFile(name string, flag int, perm os.FileMode) (afero.File, error) {
	f, err := c.Fs.OpenFile(name, flag, perm)
	if err != nil || filepath.Clean(name) != c.path || flag&(os.O_RDWR|os.O_WRONLY) == 0 {
		return f, err
	}
	return faultyImageFile{f, c}, nil
}

type faultyImageFile struct {
	afero.File
	c faultyImageFs
}

func (f faultyImageFile) WriteAt(p []byte, off int64) (int, error) {
	if off == 0 && *f.c.failHeader {
		*f.c.failHeader, *f.c.failed = false, true
		return 0, &os.PathError{Op: "write", Path: f.Name(), Err: syscall.EIO}
	}
	return f.File.WriteAt(p, off)
}

func (f faultyImageFile) Sync() error {
	if *f.c.failed {
		*f.c.syncsAfter++
	}
	return f.File.Sync()
}

func (f faultyImageFile) Close() error {
	err := f.File.Close()
	if *f.c.failClose {
		return &os.PathError{Op: "close", Path: f.Name(), Err: syscall.EIO}
	}
	return err
}

// TestRebaseErrorsSurface: Rebase reports a failed header rewrite and the
// image's failed close; SetBacking's failed header write is undone and
// the undo made durable (a sync after it).
func TestRebaseErrorsSurface(t *testing.T) {
	for _, how := range []string{"header", "close"} {
		mem := afero.NewMemMapFs()
		afero.WriteFile(mem, "/a.raw", []byte("same"), 0o644)
		afero.WriteFile(mem, "/b.raw", []byte("same"), 0o644)
		mustCreate(t, mem, "/t.qed", qed.CreateOptions{Size: 1 << 20, BackingFile: "a.raw", BackingFormat: "raw"}, nil)
		header, closeFails, failed, syncs := how == "header", how == "close", false, 0
		fs := faultyImageFs{mem, "/t.qed", &header, &closeFails, &syncs, &failed}
		if err := qed.Rebase(fs, "/t.qed", "b.raw", "raw", qed.RebaseOptions{}); !errors.Is(err, syscall.EIO) {
			t.Errorf("Rebase with the image's %s failing: %v, want its EIO", how, err)
		}
	}

	mem := afero.NewMemMapFs()
	mustCreate(t, mem, "/t.qed", qed.CreateOptions{Size: 1 << 20}, nil)
	header, closeFails, failed, syncs := true, false, false, 0
	fs := faultyImageFs{mem, "/t.qed", &header, &closeFails, &syncs, &failed}
	if err := qed.SetBacking(fs, "/t.qed", "x.raw", "raw", qed.OpenOptions{NoLock: true}); !errors.Is(err, syscall.EIO) {
		t.Fatalf("SetBacking with its header write failing: %v, want its EIO", err)
	}
	if syncs == 0 {
		t.Error("the undo of the failed header write was not synced")
	}
	if h, err := qed.ReadHeader(mem, "/t.qed"); err != nil || h.BackingFilename != "" {
		t.Errorf("after the failed SetBacking the header names %q (%v), want no backing file", h.BackingFilename, err)
	}
}

// TestRebaseSameContentCopiesNothing: a safe rebase onto a backing file
// that reads the same as the old one copies nothing into the image: a
// raw file with the same bytes, or a QED image (format probed) with the
// same guest data.
func TestRebaseSameContentCopiesNothing(t *testing.T) {
	for _, newName := range []string{"b.raw", "b.qed"} {
		fs := afero.NewMemMapFs()
		data := pattern(14, 3*opsCluster)
		afero.WriteFile(fs, "/a.raw", data, 0o644)
		afero.WriteFile(fs, "/b.raw", data, 0o644)
		mustCreate(t, fs, "/b.qed", qed.CreateOptions{Size: 4 * opsCluster}, map[int64][]byte{0: data})
		mustCreate(t, fs, "/t.qed", qed.CreateOptions{Size: 4 * opsCluster, BackingFile: "a.raw", BackingFormat: "raw"}, nil)
		format := "raw"
		if newName == "b.qed" {
			format = ""
		}
		if err := qed.Rebase(fs, "/t.qed", newName, format, qed.RebaseOptions{}); err != nil {
			t.Fatal(err)
		}
		im, err := qed.Open(fs, "/t.qed", qed.OpenOptions{ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		ext, err := im.Map()
		im.Close()
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range ext {
			if x.Kind != qed.ExtentUnallocated {
				t.Errorf("the rebase onto %s copied %+v", newName, x)
			}
		}
	}
}
