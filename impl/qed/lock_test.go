//go:build linux

package qed

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qedtorture/qedtorture/internal/imagelock"
	"github.com/qedtorture/qedtorture/internal/iocount"
	"github.com/qedtorture/qedtorture/internal/qemutool"
	"github.com/spf13/afero"
)

func wantLocked(t *testing.T, what string, err error, path string) {
	t.Helper()
	if !errors.Is(err, imagelock.ErrLocked) {
		t.Fatalf("%s: %v, want a lock conflict", what, err)
	}
	if n := strings.Count(err.Error(), path); n != 1 {
		t.Errorf("%s: %q names %s %d times, want once", what, err, path, n)
	}
}

// TestOpenLocksAsQEMU: opens of one OS file conflict as QEMU's do (a
// writer excludes writers and plain readers; readers coexist; force-share
// coexists with a writer; NoLock takes nothing), Create refuses an image
// open elsewhere and leaves it byte-identical, and Close releases.
func TestOpenLocksAsQEMU(t *testing.T) {
	fs := afero.NewOsFs()
	p := filepath.Join(t.TempDir(), "img.qed")
	w := mustCreate(t, fs, p, CreateOptions{Size: 1 << 20, ClusterSize: cs4k}, OpenOptions{IdleClearDelay: -1})
	if _, err := w.WriteAt(fill(cs4k, 5), 0); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(p)
	_, err := Open(fs, p, OpenOptions{})
	wantLocked(t, "second writable open", err, p)
	_, err = Open(fs, p, OpenOptions{ReadOnly: true})
	wantLocked(t, "read-only open beside a writer", err, p)
	wantLocked(t, "create over an open image", Create(fs, p, CreateOptions{Size: 4096}), p)
	if _, err := Open(fs, p, OpenOptions{ForceShare: true}); !errors.Is(err, ErrInvalidOption) {
		t.Errorf("writable force-share open: %v, want ErrInvalidOption", err)
	}
	if after, _ := os.ReadFile(p); !bytes.Equal(before, after) {
		t.Error("a refused open or create changed the file")
	}
	for _, o := range []OpenOptions{{ReadOnly: true, ForceShare: true}, {ReadOnly: true, NoLock: true}} {
		im, err := Open(fs, p, o)
		if err != nil {
			t.Fatalf("%+v beside a writer: %v", o, err)
		}
		im.Close()
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	r1, err := Open(fs, p, OpenOptions{ReadOnly: true})
	if err != nil {
		t.Fatalf("read-only open after Close: %v", err)
	}
	r2, err := Open(fs, p, OpenOptions{ReadOnly: true})
	if err != nil {
		t.Fatalf("second reader: %v", err)
	}
	_, err = Open(fs, p, OpenOptions{})
	wantLocked(t, "writer beside readers", err, p)
	r1.Close()
	r2.Close()
	// Through a wrapping Fs whose files Unwrap to *os.File, locks apply.
	cfs := iocount.New(fs)
	im, err := Open(cfs, p, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = Open(fs, p, OpenOptions{ReadOnly: true})
	wantLocked(t, "reader beside a writer opened through iocount", err, p)
	im.Close()
}

// TestBackingChainLocked: the backing chain of an open image is locked
// read-only: it cannot be opened writable or re-created while the overlay
// is open; other readers may share it.
func TestBackingChainLocked(t *testing.T) {
	fs := afero.NewOsFs()
	dir := t.TempDir()
	base := filepath.Join(dir, "base.raw")
	if err := os.WriteFile(base, fill(cs4k, 3), 0o644); err != nil {
		t.Fatal(err)
	}
	mid := filepath.Join(dir, "mid.qed")
	mustNil(t, Create(fs, mid, CreateOptions{Size: 1 << 20, ClusterSize: cs4k, BackingFile: "base.raw", BackingFormat: "raw"}))
	top := filepath.Join(dir, "top.qed")
	mustNil(t, Create(fs, top, CreateOptions{Size: 1 << 20, ClusterSize: cs4k, BackingFile: "mid.qed"}))
	im, err := Open(fs, top, OpenOptions{IdleClearDelay: -1})
	mustNil(t, err)
	defer im.Close()
	if got := im.Files(); len(got) != 3 || got[0] != top || got[1] != mid || got[2] != base {
		t.Errorf("Files() = %q, want top, mid, base", got)
	}
	_, err = Open(fs, mid, OpenOptions{})
	wantLocked(t, "writable open of a backing image in use", err, mid)
	wantLocked(t, "create over a backing image in use", Create(fs, mid, CreateOptions{Size: 4096}), mid)
	f, err := os.Open(base)
	mustNil(t, err)
	defer f.Close()
	if err := imagelock.Lock(f, base, imagelock.ReadWrite); !errors.Is(err, imagelock.ErrLocked) {
		t.Errorf("write lock on the raw backing file in use: %v", err)
	}
	ro, err := Open(fs, mid, OpenOptions{ReadOnly: true})
	mustNil(t, err)
	ro.Close()
}

// TestCrashsimFilesTakeNoLocks: files of non-OS filesystems are not
// locked (campaigns run there), so two writable opens both succeed.
func TestMemFilesTakeNoLocks(t *testing.T) {
	fs := afero.NewMemMapFs()
	a := mustCreate(t, fs, "/m.qed", CreateOptions{Size: 1 << 20, ClusterSize: cs4k}, OpenOptions{IdleClearDelay: -1})
	defer a.Close()
	b, err := Open(fs, "/m.qed", OpenOptions{IdleClearDelay: -1})
	if err != nil {
		t.Fatalf("second open on a MemMapFs: %v", err)
	}
	b.Close()
}

// TestLocksAgainstQEMU runs qemu-io against impl/qed both ways.
func TestLocksAgainstQEMU(t *testing.T) {
	tool := qemutool.Require(t)
	fs := afero.NewOsFs()
	p := filepath.Join(t.TempDir(), "img.qed")
	mustNil(t, Create(fs, p, CreateOptions{Size: 1 << 20}))
	// QEMU holds the image writable: every open but force-share is refused.
	h, err := tool.Hold(p, "-f", "qed")
	mustNil(t, err)
	before, _ := os.ReadFile(p)
	_, err = Open(fs, p, OpenOptions{})
	wantLocked(t, "writable open under qemu-io", err, p)
	_, err = Open(fs, p, OpenOptions{ReadOnly: true})
	wantLocked(t, "read-only open under qemu-io", err, p)
	wantLocked(t, "create under qemu-io", Create(fs, p, CreateOptions{Size: 4096}), p)
	if after, _ := os.ReadFile(p); !bytes.Equal(before, after) {
		t.Error("refused opens changed the image")
	}
	im, err := Open(fs, p, OpenOptions{ReadOnly: true, ForceShare: true})
	mustNil(t, err)
	im.Close()
	h.Release()
	// QEMU holds it read-only: readers coexist, writers are refused.
	h, err = tool.Hold(p, "-f", "qed", "-r")
	mustNil(t, err)
	im, err = Open(fs, p, OpenOptions{ReadOnly: true})
	mustNil(t, err)
	im.Close()
	_, err = Open(fs, p, OpenOptions{})
	wantLocked(t, "writable open beside qemu-io -r", err, p)
	h.Release()
	// We hold it writable: QEMU's writable and read-only opens are
	// refused, its -U read succeeds.
	im, err = Open(fs, p, OpenOptions{IdleClearDelay: -1})
	mustNil(t, err)
	for _, c := range []struct {
		opts []string
		ok   bool
	}{{nil, false}, {[]string{"-r"}, false}, {[]string{"-r", "-U"}, true}} {
		args := append(append([]string{"-f", "qed"}, c.opts...), "-c", "read 0 512", p)
		res, err := tool.RunIO(args...)
		mustNil(t, err)
		refused := strings.Contains(string(res.Stderr), "Failed to get")
		if refused == c.ok {
			t.Errorf("qemu-io %v beside our writable open: exit %d, %s", c.opts, res.ExitCode, res.Stderr)
		}
	}
	if res, _ := tool.RunImg("info", p); res.ExitCode == 0 {
		t.Error("qemu-img info beside our writable open succeeded")
	}
	im.Close()
	// We hold it read-only: QEMU reads, but cannot write.
	im, err = Open(fs, p, OpenOptions{ReadOnly: true})
	mustNil(t, err)
	if res, _ := tool.RunImg("info", p); res.ExitCode != 0 {
		t.Errorf("qemu-img info beside our read-only open: %s", res.Stderr)
	}
	if res, _ := tool.RunIO("-f", "qed", "-c", "write 0 512", p); !strings.Contains(string(res.Stderr), `Failed to get "write" lock`) {
		t.Errorf("qemu-io write beside our read-only open: exit %d, %s", res.ExitCode, res.Stderr)
	}
	im.Close()
}
