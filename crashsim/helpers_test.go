package crashsim

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"testing"

	"github.com/spf13/afero"
)

const absent = "<absent>"

// content returns a file's bytes as a string, or absent.
func contentOf(t testing.TB, fsys afero.Fs, name string) string {
	t.Helper()
	f, err := fsys.Open(name)
	if errors.Is(err, fs.ErrNotExist) {
		return absent
	}
	if err != nil {
		t.Fatalf("open %s: %v", name, err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatalf("read %s: %v", name, err)
	}
	return string(b)
}

func mustCreate(t testing.TB, fsys afero.Fs, name string) afero.File {
	t.Helper()
	f, err := fsys.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatalf("create %s: %v", name, err)
	}
	return f
}

func mustWriteAt(t testing.TB, f afero.File, s string, off int64) {
	t.Helper()
	if _, err := f.WriteAt([]byte(s), off); err != nil {
		t.Fatalf("write %s@%d: %v", f.Name(), off, err)
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func syncDir(t testing.TB, fsys afero.Fs, dir string) {
	t.Helper()
	d, err := fsys.Open(dir)
	must(t, err)
	must(t, d.Sync())
	must(t, d.Close())
}

// statesOf returns the sorted set of contents of name over every state of
// m at p (exhaustive).
func statesOf(t testing.TB, p *Point, m Model, name string) map[string]bool {
	t.Helper()
	if !p.Exhaustive(m, EnumOptions{}) {
		t.Fatalf("%s at k=%d is not exhaustive", m, p.K())
	}
	out := map[string]bool{}
	for _, s := range p.States(m, EnumOptions{}) {
		out[contentOf(t, s, name)] = true
	}
	return out
}

func set(xs ...string) map[string]bool {
	m := map[string]bool{}
	for _, x := range xs {
		m[x] = true
	}
	return m
}
