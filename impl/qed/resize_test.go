package qed

import (
	"bytes"
	"testing"

	"github.com/spf13/afero"
)

// TestResizeHidesLongerBacking: growing an image whose backing file is
// longer than the old size must not make the backing file's bytes visible
// in the new space (they were never guest data of this image), for a
// cluster-aligned and an unaligned old size, and after a reopen.
func TestResizeHidesLongerBacking(t *testing.T) {
	for _, old := range []uint64{0, 8192, 4096 + 1536} {
		fs := afero.NewMemMapFs()
		base := bytes.Repeat([]byte{0xaa}, 64<<10)
		if err := afero.WriteFile(fs, "/b.raw", base, 0o644); err != nil {
			t.Fatal(err)
		}
		im := mustCreate(t, fs, "/t.qed", CreateOptions{Size: old, ClusterSize: 4096, BackingFile: "b.raw", BackingFormat: "raw"}, OpenOptions{})
		if err := im.Resize(128 << 10); err != nil {
			t.Fatalf("old size %d: %v", old, err)
		}
		check := func(im *Image) {
			got := readAll(t, im)
			want := make([]byte, 128<<10)
			copy(want, base[:old])
			assertEqual(t, got, want)
			assertClean(t, im)
		}
		check(im)
		if err := im.Close(); err != nil {
			t.Fatal(err)
		}
		im, err := Open(fs, "/t.qed", OpenOptions{})
		if err != nil {
			t.Fatal(err)
		}
		check(im)
		im.Close()
	}
}
