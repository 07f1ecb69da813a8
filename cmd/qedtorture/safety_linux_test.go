//go:build linux

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qedtorture/qedtorture/impl/qed"
	"github.com/qedtorture/qedtorture/internal/imagelock"
	"github.com/qedtorture/qedtorture/internal/qemutool"
	"github.com/qedtorture/qedtorture/internal/tmpfstest"
	"github.com/spf13/afero"
)

const (
	writeLockMsg  = `Failed to get "write" lock: is another process using the image [`
	sharedLockMsg = `Failed to get shared "write" lock: is another process using the image [`
)

// TestUtilitiesAgainstQEMULocks runs the image utilities beside qemu-io
// holding the image (as a running VM would): writable opens of ours are
// refused and change nothing, read-only ones are refused beside a writer
// unless -U, and coexist with a reader.
func TestUtilitiesAgainstQEMULocks(t *testing.T) {
	tool := qemutool.Require(t)
	dir := t.TempDir()
	t.Chdir(dir)
	img := newImage(t, dir, "img.qed", qed.CreateOptions{Size: 1 << 20}, map[int64]byte{0: 1})
	writeFile(t, "src.raw", make([]byte, 1<<20))
	h, err := tool.Hold("img.qed", "-f", "qed")
	if err != nil {
		t.Fatal(err)
	}
	before := snap(t, img)
	for _, c := range []struct {
		args []string
		msg  string
	}{
		{[]string{"create", "img.qed", "1M"}, writeLockMsg + "img.qed]?"},
		{[]string{"check", "-r", "all", "img.qed"}, sharedLockMsg + "img.qed]?"},
		{[]string{"convert", "-f", "raw", "src.raw", "img.qed"}, writeLockMsg + "img.qed]?"},
		{[]string{"convert", "-f", "raw", "-O", "qed", "src.raw", "img.qed"}, writeLockMsg + "img.qed]?"},
		{[]string{"bench", "-q", "-w", "-c", "1", "img.qed"}, writeLockMsg + "img.qed]?"},
		{[]string{"info", "img.qed"}, sharedLockMsg + "img.qed]?"},
		{[]string{"check", "img.qed"}, sharedLockMsg + "img.qed]?"},
		{[]string{"map", "img.qed"}, sharedLockMsg + "img.qed]?"},
		{[]string{"convert", "img.qed", "out.raw"}, sharedLockMsg + "img.qed]?"},
		{[]string{"bench", "-q", "-c", "1", "img.qed"}, sharedLockMsg + "img.qed]?"},
	} {
		r := runWant(t, exitRuntime, c.args...)
		if want := "qedtorture: " + c.msg + "\n"; r.stderr != want {
			t.Errorf("%q beside qemu-io:\n got %q\nwant %q", c.args, r.stderr, want)
		}
	}
	before.unchanged(t, "commands refused beside qemu-io")
	noTemps(t, dir)
	// -U reads beside the writer.
	for _, args := range [][]string{
		{"info", "-U", "img.qed"}, {"check", "-U", "img.qed"}, {"map", "-U", "img.qed"},
		{"convert", "-q", "-U", "img.qed", "out.raw"}, {"bench", "-q", "-U", "-c", "1", "img.qed"},
	} {
		runWant(t, exitOK, args...)
	}
	runWant(t, exitUsage, "check", "-U", "-r", "all", "img.qed")
	runWant(t, exitUsage, "bench", "-U", "-w", "img.qed")
	h.Release()

	// qemu-io reading: our readers coexist, writers are refused.
	h, err = tool.Hold("img.qed", "-f", "qed", "-r")
	if err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"info", "img.qed"}, {"check", "img.qed"}, {"map", "img.qed"}, {"convert", "-q", "img.qed", "out2.raw"}} {
		runWant(t, exitOK, args...)
	}
	for _, args := range [][]string{{"create", "img.qed", "1M"}, {"check", "-r", "all", "img.qed"}} {
		if r := runWant(t, exitRuntime, args...); !strings.Contains(r.stderr, writeLockMsg) {
			t.Errorf("%q beside qemu-io -r: %q", args, r.stderr)
		}
	}
	before.unchanged(t, "writers refused beside qemu-io -r")
	h.Release()

	// An overlay open in QEMU locks its backing file: create over it and
	// convert onto it are refused.
	runWant(t, exitOK, "create", "-q", "-b", "img.qed", "ov.qed")
	h, err = tool.Hold("ov.qed", "-f", "qed")
	if err != nil {
		t.Fatal(err)
	}
	// QEMU reads a backing file and does not share writing it.
	if err := qemutool.WaitLocked("img.qed", imagelock.ReadOnly); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"create", "img.qed", "1M"}, {"convert", "-f", "raw", "src.raw", "img.qed"}} {
		if r := runWant(t, exitRuntime, args...); !strings.Contains(r.stderr, writeLockMsg+"img.qed]?") {
			t.Errorf("%q beside qemu-io on the overlay: %q", args, r.stderr)
		}
	}
	before.unchanged(t, "backing file of an overlay in QEMU")
	h.Release()
}

// TestQEMUAgainstOurLocks: an image held open by this process (impl/qed,
// as a qedtorture command holds it) refuses qemu-img's and qemu-io's
// writable opens; read-only ones coexist with our reader, and -U with our
// writer.
func TestQEMUAgainstOurLocks(t *testing.T) {
	tool := qemutool.Require(t)
	dir := t.TempDir()
	img := newImage(t, dir, "img.qed", qed.CreateOptions{Size: 1 << 20}, map[int64]byte{0: 1})
	im, err := qed.Open(afero.NewOsFs(), img, qed.OpenOptions{IdleClearDelay: -1})
	if err != nil {
		t.Fatal(err)
	}
	before := snap(t, img)
	for _, args := range [][]string{
		{"create", "-f", "qed", img, "1M"},
		{"check", "-r", "all", img},
		{"info", img},
		{"convert", "-O", "qed", filepath.Join(dir, "nothing.raw"), img},
	} {
		if args[0] == "convert" {
			writeFile(t, args[3], make([]byte, 4096))
		}
		res, err := tool.RunImg(args...)
		if err != nil {
			t.Fatal(err)
		}
		if res.ExitCode == 0 || !strings.Contains(string(res.Stderr), "lock") {
			t.Errorf("qemu-img %q beside our writer: exit %d, %s", args, res.ExitCode, res.Stderr)
		}
	}
	if res, _ := tool.RunImg("info", "-U", img); res.ExitCode != 0 {
		t.Errorf("qemu-img info -U beside our writer: %s", res.Stderr)
	}
	im.Close()
	before.unchanged(t, "qemu-img refused beside our writer")
	// Our reader: QEMU reads too, cannot write.
	im, err = qed.Open(afero.NewOsFs(), img, qed.OpenOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if res, _ := tool.RunImg("check", img); res.ExitCode != 0 {
		t.Errorf("qemu-img check beside our reader: %s", res.Stderr)
	}
	if res, _ := tool.RunIO("-f", "qed", "-c", "write 0 512", img); !strings.Contains(string(res.Stderr), `Failed to get "write" lock`) {
		t.Errorf("qemu-io write beside our reader: %s", res.Stderr)
	}
	im.Close()
	before.unchanged(t, "qemu-io refused beside our reader")
}

// TestConvertOntoFullFileSystem: a convert whose output does not fit
// exits 1 with one line naming the destination and the cause, and leaves
// neither the output nor a temporary; an existing destination keeps its
// contents.
func TestConvertOntoFullFileSystem(t *testing.T) {
	full := tmpfstest.Mount(t, "size=1m")
	src := filepath.Join(t.TempDir(), "src.raw")
	data := make([]byte, 4<<20)
	for i := range data {
		data[i] = byte(i*7 + 1) // no zero granule: everything must be written
	}
	writeFile(t, src, data)
	keep := filepath.Join(full, "keep.raw")
	writeFile(t, keep, []byte("previous contents"))
	before := snap(t, keep)
	for _, c := range []struct{ fmt, dst string }{
		{"raw", filepath.Join(full, "out.raw")},
		{"qed", filepath.Join(full, "out.qed")},
		{"raw", keep},
		{"qed", keep},
	} {
		args := []string{"convert", "-q", "-f", "raw", "-O", c.fmt, src, c.dst}
		r := runWant(t, exitRuntime, args...)
		if !strings.HasPrefix(r.stderr, "qedtorture: "+c.dst+": ") || !strings.HasSuffix(r.stderr, ": no space left on device\n") ||
			strings.Count(r.stderr, c.dst) != 1 || strings.Contains(r.stderr, ".tmp-") {
			t.Errorf("%q: stderr %q: want one line naming %s once and ENOSPC", args, r.stderr, c.dst)
		}
	}
	es, err := os.ReadDir(full)
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 1 || es[0].Name() != "keep.raw" {
		var names []string
		for _, e := range es {
			names = append(names, e.Name())
		}
		t.Errorf("full file system holds %q, want only keep.raw", names)
	}
	before.unchanged(t, "convert onto a full file system")
}
