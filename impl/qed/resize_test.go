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

// TestResizeAfterRebaseNoneReadsZeros: the regression of PROPS_SEED
// 1950462680711793124 (props/statemachine). A safe `rebase none` of an
// image whose size ends inside a cluster copies the partial last cluster
// in with an allocating write, whose copy-on-write fills the cluster's
// tail past the size from the (longer) backing file. With the backing
// file gone, a grow must still zero that tail: the new space reads zeros,
// not the old backing file's bytes; after a reopen too.
func TestResizeAfterRebaseNoneReadsZeros(t *testing.T) {
	const old, grown = 8192 + 1536, 16384 + 2048
	fs := afero.NewMemMapFs()
	base := bytes.Repeat([]byte{0xaa}, 64<<10)
	if err := afero.WriteFile(fs, "/b.raw", base, 0o644); err != nil {
		t.Fatal(err)
	}
	im := mustCreate(t, fs, "/t.qed", CreateOptions{Size: old, ClusterSize: 4096, BackingFile: "b.raw", BackingFormat: "raw"}, OpenOptions{})
	if err := im.Close(); err != nil {
		t.Fatal(err)
	}
	if err := Rebase(fs, "/t.qed", "", "", RebaseOptions{}); err != nil {
		t.Fatal(err)
	}
	im, err := Open(fs, "/t.qed", OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := im.Resize(grown); err != nil {
		t.Fatal(err)
	}
	want := make([]byte, grown)
	copy(want, base[:old])
	for _, reopen := range []bool{false, true} {
		if reopen {
			if err := im.Close(); err != nil {
				t.Fatal(err)
			}
			if im, err = Open(fs, "/t.qed", OpenOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		assertEqual(t, readAll(t, im), want)
		assertClean(t, im)
	}
	im.Close()
}
