package qed

import (
	"errors"
	"syscall"
	"testing"

	"github.com/spf13/afero"
)

// TestBackingProbeErrorSurfaces: a read of a qed backing file's magic
// that fails (EIO) fails the open; it is not taken for a raw backing file,
// which would read the backing file's header and tables as the guest's
// data (a campaign's fault sweep of a reopen found it: zeros read where
// the backing file's data was). A backing file too short for the magic
// is still raw.
func TestBackingProbeErrorSurfaces(t *testing.T) {
	fs := afero.NewMemMapFs()
	b := mustCreate(t, fs, "/q/base.qed", CreateOptions{Size: 2 * cs4k, ClusterSize: cs4k}, OpenOptions{})
	_, err := b.WriteAt(fill(cs4k, 5), 0)
	mustNil(t, err)
	mustNil(t, b.Close())
	mustNil(t, Create(fs, "/q/top.qed", CreateOptions{Size: 2 * cs4k, ClusterSize: cs4k, BackingFile: "base.qed"}))
	top, err := Open(failingFs{fs, "/q/base.qed"}, "/q/top.qed", OpenOptions{ReadOnly: true})
	if err == nil {
		got := make([]byte, 100)
		_, rerr := top.ReadAt(got, 0)
		top.Close()
		t.Fatalf("open over a qed backing file whose probe failed: no error (read: %v, %x...)", rerr, got[:8])
	}
	if !errors.Is(err, syscall.EIO) {
		t.Fatalf("open over a qed backing file whose probe failed: %v, want EIO", err)
	}

	mustNil(t, afero.WriteFile(fs, "/s/base", []byte{1, 2}, 0o644))
	mustNil(t, Create(fs, "/s/top.qed", CreateOptions{Size: 2 * cs4k, ClusterSize: cs4k, BackingFile: "base"}))
	top, err = Open(fs, "/s/top.qed", OpenOptions{ReadOnly: true})
	mustNil(t, err)
	got := make([]byte, 4)
	_, err = top.ReadAt(got, 0)
	mustNil(t, err)
	assertEqual(t, got, []byte{1, 2, 0, 0})
	mustNil(t, top.Close())
}
