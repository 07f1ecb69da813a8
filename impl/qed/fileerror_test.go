package qed

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/spf13/afero"
)

// TestErrorsNameTheFileOnce: the errors of Open, Create and ReadHeader
// name the file once, first, keep the OS error and the sentinel matchable.
func TestErrorsNameTheFileOnce(t *testing.T) {
	fs_ := afero.NewOsFs()
	dir := t.TempDir()
	missing := filepath.Join(dir, "nonexist.qed")
	text := filepath.Join(dir, "text.qed")
	if err := os.WriteFile(text, []byte("this is not a QED image, just text long enough for a header..........."), 0o644); err != nil {
		t.Fatal(err)
	}
	ov := filepath.Join(dir, "ov.qed")
	mustNil(t, Create(fs_, ov, CreateOptions{Size: 1 << 20, BackingFile: "gone.raw", BackingFormat: "raw"}))
	_, errOpen := Open(fs_, missing, OpenOptions{ReadOnly: true})
	_, errHdr := ReadHeader(fs_, missing)
	_, errNotQED := Open(fs_, text, OpenOptions{ReadOnly: true})
	_, errBacking := Open(fs_, ov, OpenOptions{ReadOnly: true})
	for _, c := range []struct {
		err  error
		want string
		is   error
	}{
		{errOpen, missing + ": open: no such file or directory", fs.ErrNotExist},
		{errHdr, missing + ": open: no such file or directory", fs.ErrNotExist},
		{Create(fs_, filepath.Join(dir, "no", "x.qed"), CreateOptions{Size: 4096}), filepath.Join(dir, "no", "x.qed") + ": open: no such file or directory", fs.ErrNotExist},
		{errNotQED, text + ": magic = 0x73696874 at offset 0: not a QED image", ErrNotQED},
		{errBacking, ov + ": backing file: " + filepath.Join(dir, "gone.raw") + ": open: no such file or directory", fs.ErrNotExist},
	} {
		if c.err == nil || c.err.Error() != c.want {
			t.Errorf("error %q, want %q", c.err, c.want)
		}
		if !errors.Is(c.err, c.is) {
			t.Errorf("error %q does not match %v", c.err, c.is)
		}
	}
}

// TestBackingLoopThroughHardLink: a chain that comes back to one of its
// files under another name (a hard link, a symlink) is a loop, found by
// device and inode, not a chain too deep.
func TestBackingLoopThroughHardLink(t *testing.T) {
	fs_ := afero.NewOsFs()
	dir := t.TempDir()
	a := filepath.Join(dir, "a.qed")
	mustNil(t, Create(fs_, a, CreateOptions{Size: 1 << 20, BackingFile: "b.qed"}))
	mustNil(t, os.Link(a, filepath.Join(dir, "b.qed")))
	mustNil(t, os.Symlink("a.qed", filepath.Join(dir, "c.qed")))
	for _, p := range []string{a, filepath.Join(dir, "c.qed")} {
		_, err := Open(fs_, p, OpenOptions{ReadOnly: true})
		if !errors.Is(err, ErrBackingLoop) {
			t.Errorf("open %s: %v, want ErrBackingLoop", p, err)
		}
	}
}
