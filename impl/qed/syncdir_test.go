package qed_test

import (
	"errors"
	"os"
	"syscall"
	"testing"

	"github.com/qedtorture/qedtorture/faultfs"
	"github.com/qedtorture/qedtorture/impl/qed"
	"github.com/spf13/afero"
)

// TestCreateDirOpenErrorSurfaces: an EIO opening the image's directory to
// sync it fails Create (before, it was taken for a filesystem that cannot
// sync directories: Create reported success with the new image's entry,
// and the backing files made before it, not durable; a campaign's fault
// sweep of the setup lost a rebase's backing file in a crash). EINVAL,
// a filesystem that cannot open a directory, still passes, and so does
// an in-memory filesystem's directory never made.
func TestCreateDirOpenErrorSurfaces(t *testing.T) {
	for _, c := range []struct {
		rule string
		want error
	}{
		{"open:eio@path=/d", syscall.EIO},
		{"open:eio@path=/b", syscall.EIO}, // the backing file's directory, synced first
		{"sync:eio@path=/d", syscall.EIO},
	} {
		mem := afero.NewMemMapFs()
		if err := mem.MkdirAll("/b", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := afero.WriteFile(mem, "/b/base.raw", make([]byte, 4096), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := mem.MkdirAll("/d", 0o755); err != nil {
			t.Fatal(err)
		}
		fs, err := faultfs.NewFromString(mem, 1, c.rule)
		if err != nil {
			t.Fatal(err)
		}
		err = qed.Create(fs, "/d/t.qed", qed.CreateOptions{Size: 1 << 20, BackingFile: "/b/base.raw", BackingFormat: "raw"})
		if len(fs.Log()) != 1 {
			t.Fatalf("%s: %d injections, want 1", c.rule, len(fs.Log()))
		}
		if !errors.Is(err, c.want) {
			t.Errorf("%s: Create: %v, want %v", c.rule, err, c.want)
		}
	}
	mem := afero.NewMemMapFs()
	if err := mem.MkdirAll("/d", 0o755); err != nil {
		t.Fatal(err)
	}
	inval := dirOpenFails{mem, syscall.EINVAL}
	if err := qed.Create(inval, "/d/t.qed", qed.CreateOptions{Size: 1 << 20}); err != nil {
		t.Errorf("Create where a directory cannot be opened (EINVAL): %v", err)
	}
	// afero's in-memory filesystem holds files in directories never made.
	if err := qed.Create(afero.NewMemMapFs(), "/none/t.qed", qed.CreateOptions{Size: 1 << 20}); err != nil {
		t.Errorf("Create in a directory an in-memory filesystem never made: %v", err)
	}
}

// dirOpenFails fails Open of a directory with err.
type dirOpenFails struct {
	afero.Fs
	err error
}

func (f dirOpenFails) Open(name string) (afero.File, error) {
	if st, err := f.Fs.Stat(name); err == nil && st.IsDir() {
		return nil, &os.PathError{Op: "open", Path: name, Err: f.err}
	}
	return f.Fs.Open(name)
}
