package main

import (
	"bytes"
	"crypto/sha256"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qedtorture/qedtorture/impl/qed"
	"github.com/qedtorture/qedtorture/internal/atomicfile"
	"github.com/spf13/afero"
)

// snapshot records the bytes of files, to prove a refused command left
// them byte-identical.
type snapshot map[string][32]byte

func snap(t *testing.T, paths ...string) snapshot {
	t.Helper()
	s := snapshot{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		s[p] = sha256.Sum256(b)
	}
	return s
}

func (s snapshot) unchanged(t *testing.T, what string) {
	t.Helper()
	for p, sum := range s {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Errorf("%s: %s: %v", what, p, err)
			continue
		}
		if sha256.Sum256(b) != sum {
			t.Errorf("%s: %s changed", what, p)
		}
	}
}

// noTemps fails if dir holds a temporary of internal/atomicfile.
func noTemps(t *testing.T, dir string) {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		if atomicfile.IsTemp(e.Name()) {
			t.Errorf("temporary %s left in %s", e.Name(), dir)
		}
	}
}

// chainDir makes dir/a/{base.raw, mid.qed (backing base.raw), top.qed
// (backing mid.qed)} with data in each layer, and returns dir/a.
func chainDir(t *testing.T) string {
	t.Helper()
	a := filepath.Join(t.TempDir(), "a")
	if err := os.Mkdir(a, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(a, "base.raw"), bytes.Repeat([]byte{7}, 256<<10))
	newImage(t, a, "mid.qed", qed.CreateOptions{Size: 1 << 20, BackingFile: "base.raw", BackingFormat: "raw"}, map[int64]byte{64 << 10: 8})
	newImage(t, a, "top.qed", qed.CreateOptions{Size: 1 << 20, BackingFile: "mid.qed"}, map[int64]byte{128 << 10: 9})
	return a
}

// TestConvertRefusesChainFiles: convert refuses a destination that is the
// source or any file of its backing chain, however it is named (relative,
// "..", absolute, symlink, hard link, a symlinked directory followed by
// ".."), and leaves every file byte-identical and no temporary behind.
func TestConvertRefusesChainFiles(t *testing.T) {
	a := chainDir(t)
	top := filepath.Join(a, "top.qed")
	b := filepath.Join(filepath.Dir(a), "b")
	if err := os.MkdirAll(filepath.Join(b, "c"), 0o755); err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Symlink("base.raw", filepath.Join(a, "sym.raw")))
	must(os.Link(filepath.Join(a, "base.raw"), filepath.Join(a, "hard.raw")))
	// a/lnk -> b/c, so a/lnk/../x.raw is b/x.raw, not a/x.raw; b/base.raw
	// is a hard link of a/base.raw.
	must(os.Symlink(filepath.Join(b, "c"), filepath.Join(a, "lnk")))
	must(os.Link(filepath.Join(a, "base.raw"), filepath.Join(b, "base.raw")))
	must(os.Symlink(a, filepath.Join(b, "toa")))
	files := []string{filepath.Join(a, "base.raw"), filepath.Join(a, "mid.qed"), top}
	before := snap(t, files...)
	t.Chdir(a)
	for _, dst := range []string{
		"base.raw", "./base.raw", "../a/base.raw", filepath.Join(a, "base.raw"),
		"sym.raw", "hard.raw", "lnk/../base.raw", filepath.Join(b, "toa", "mid.qed"),
		"mid.qed", "top.qed", "./top.qed",
	} {
		for _, fmtName := range []string{"raw", "qed"} {
			args := []string{"convert", "-O", fmtName, "top.qed", dst}
			r := runWant(t, exitRuntime, args...)
			if !strings.Contains(r.stderr, "qedtorture: "+dst+": ") || !strings.Contains(r.stderr, "refusing to overwrite") {
				t.Errorf("%q: stderr %q: want the refusal naming %s", args, r.stderr, dst)
			}
		}
		before.unchanged(t, "convert onto "+dst)
	}
	noTemps(t, a)
	noTemps(t, b)
	// a/lnk/../mid.qed is b/mid.qed, a new file: allowed.
	runWant(t, exitOK, "convert", "-q", "top.qed", "lnk/../mid.qed")
	if _, err := os.Stat(filepath.Join(b, "mid.qed")); err != nil {
		t.Errorf("lnk/../mid.qed did not land in b: %v", err)
	}
	before.unchanged(t, "convert onto lnk/../mid.qed")
}

// TestCreateRefusesOwnChain: create refuses an image that would be its
// own backing file, or a file of its backing file's chain (by any name),
// and leaves the file untouched.
func TestCreateRefusesOwnChain(t *testing.T) {
	a := chainDir(t)
	c := newImage(t, a, "c.qed", qed.CreateOptions{Size: 1 << 20}, map[int64]byte{0: 3})
	if err := os.Link(c, filepath.Join(a, "c-hard.qed")); err != nil {
		t.Fatal(err)
	}
	before := snap(t, c, filepath.Join(a, "base.raw"), filepath.Join(a, "mid.qed"), filepath.Join(a, "top.qed"))
	t.Chdir(a)
	for _, args := range [][]string{
		{"create", "-b", "c.qed", "c.qed"},
		{"create", "-b", "./c.qed", "c.qed"},
		{"create", "-b", "c-hard.qed", "c.qed"},
		{"create", "-b", "c.qed", "-F", "qed", "c.qed", "1M"},
		{"create", "-u", "-b", "c.qed", "c.qed", "1M"},
		{"create", "-u", "-b", "../a/c.qed", "c.qed", "1M"},
		{"create", "-b", "c.qed", "-F", "raw", "c-hard.qed"},
		{"create", "-b", "top.qed", "mid.qed"},
		{"create", "-b", "top.qed", "base.raw"},
		{"create", "-b", "mid.qed", "base.raw", "2M"},
	} {
		r := runWant(t, exitRuntime, args...)
		if !strings.Contains(r.stderr, "backing") {
			t.Errorf("%q: %q does not say why", args, r.stderr)
		}
		before.unchanged(t, strings.Join(args, " "))
	}
}

// TestErrorLinesNameTheFileOnce asserts whole error lines of every image
// utility: the file is named once.
func TestErrorLinesNameTheFileOnce(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	writeFile(t, "text.qed", []byte("this is not a QED image, just text long enough for a header..........."))
	const enoent = "open: no such file or directory"
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"info", "nonexist.qed"}, "nonexist.qed: " + enoent},
		{[]string{"info", "text.qed"}, "text.qed: magic = 0x73696874 at offset 0: not a QED image"},
		{[]string{"check", "nonexist.qed"}, "nonexist.qed: check failed: " + enoent},
		{[]string{"check", "-r", "all", "nonexist.qed"}, "nonexist.qed: check failed: " + enoent},
		{[]string{"map", "nonexist.qed"}, "nonexist.qed: " + enoent},
		{[]string{"map", "text.qed"}, "text.qed: magic = 0x73696874 at offset 0: not a QED image"},
		{[]string{"convert", "nonexist.qed", "out.raw"}, "nonexist.qed: " + enoent},
		{[]string{"convert", "-f", "qed", "nonexist.qed", "out.raw"}, "nonexist.qed: " + enoent},
		{[]string{"convert", "-f", "raw", "nonexist.qed", "out.raw"}, "nonexist.qed: " + enoent},
		{[]string{"bench", "-q", "nonexist.qed"}, "nonexist.qed: " + enoent},
		{[]string{"bench", "-q", "-f", "raw", "nonexist.qed"}, "nonexist.qed: " + enoent},
		{[]string{"create", "no/such/dir.qed", "1M"}, "no/such/dir.qed: " + enoent},
		{[]string{"create", "-b", "nonexist.qed", "ov.qed"}, "ov.qed: backing file nonexist.qed: " + enoent},
	} {
		r := runWant(t, exitRuntime, c.args...)
		if want := "qedtorture: " + c.want + "\n"; r.stderr != want {
			t.Errorf("%q:\n got %q\nwant %q", c.args, r.stderr, want)
		}
	}
	if _, err := os.Stat("out.raw"); err == nil {
		t.Error("a failed convert left out.raw")
	}
	noTemps(t, dir)
}

// TestConvertKeepsDestinationOnError: a convert that fails midway (an I/O
// error reading the source) leaves an existing destination as it was and
// a new one absent, with no temporary, and says which file failed.
func TestConvertKeepsDestinationOnError(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src.raw")
	writeFile(t, src, bytes.Repeat([]byte{5}, 4<<20))
	old := filepath.Join(dir, "old.raw")
	writeFile(t, old, []byte("previous contents"))
	before := snap(t, old)
	fs := &failingFs{Fs: afero.NewOsFs(), failFrom: 2 << 20}
	for _, dst := range []string{old, filepath.Join(dir, "new.qed")} {
		for _, f := range []string{"raw", "qed"} {
			args := []string{"convert", "-f", "raw", "-O", f, src, dst}
			r := runWithFs(fs, args...)
			r.wantExit(t, exitRuntime, args...)
			if want := "qedtorture: " + src + ": read at 2097152: injected I/O error\n"; r.stderr != want {
				t.Errorf("%q: stderr %q, want %q", args, r.stderr, want)
			}
		}
	}
	before.unchanged(t, "failed convert")
	if _, err := os.Stat(filepath.Join(dir, "new.qed")); err == nil {
		t.Error("a failed convert left new.qed")
	}
	noTemps(t, dir)
	// The same conversions without the fault replace old.raw whole.
	runWant(t, exitOK, "convert", "-q", "-f", "raw", src, old)
	if b, _ := os.ReadFile(old); !bytes.Equal(b, bytes.Repeat([]byte{5}, 4<<20)) {
		t.Error("convert onto an existing file did not replace it")
	}
	noTemps(t, dir)
}
