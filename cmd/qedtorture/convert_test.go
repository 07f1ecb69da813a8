package main

import (
	"bytes"
	"math/rand"
	"os"
	"path/filepath"
	"testing"

	"github.com/qedtorture/qedtorture/impl/qed"
	"github.com/spf13/afero"
)

// TestConvertRoundTrip converts a sparse raw file to QED and back and
// checks the bytes and the sparseness (only non-zero clusters allocated).
func TestConvertRoundTrip(t *testing.T) {
	seed := int64(20261125)
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewSource(seed))
	dir := t.TempDir()
	size := 3<<20 + 1000 // not a multiple of 512: QED rounds up
	raw := make([]byte, size)
	nonzero := map[int64]bool{}
	for i := 0; i < 20; i++ {
		off := rng.Intn(size - 100)
		n := 1 + rng.Intn(100)
		rng.Read(raw[off : off+n])
		for c := off / 4096; c <= (off+n-1)/4096; c++ {
			nonzero[int64(c)] = true
		}
	}
	src := filepath.Join(dir, "src.raw")
	writeFile(t, src, raw)
	q := filepath.Join(dir, "out.qed")
	runWant(t, exitOK, "convert", "-q", "-O", "qed", "-o", "cluster_size=4K,table_size=2", src, q)
	fs := afero.NewOsFs()
	im, err := qed.Open(fs, q, qed.OpenOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if im.Size() != 3<<20+1024 || im.Header().ClusterSize != 4096 || im.Header().TableSize != 2 {
		t.Errorf("converted image: size %d header %+v", im.Size(), im.Header())
	}
	got := make([]byte, im.Size())
	if _, err := im.ReadAt(got, 0); err != nil {
		t.Fatal(err)
	}
	rep, err := im.Check(false)
	im.Close()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got[:size], raw) || !bytes.Equal(got[size:], make([]byte, len(got)-size)) {
		t.Error("QED image does not read back the raw file")
	}
	if rep.Allocated != int64(len(nonzero)) || rep.Corruptions != 0 || rep.Leaks != 0 {
		t.Errorf("check %+v: want %d allocated clusters (only non-zero ones), clean", rep, len(nonzero))
	}
	// Back to raw (probed source format, default -O raw).
	back := filepath.Join(dir, "back.raw")
	runWant(t, exitOK, "convert", "-q", q, back)
	b, err := os.ReadFile(back)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != 3<<20+1024 || !bytes.Equal(b[:size], raw) {
		t.Errorf("raw round trip differs (len %d)", len(b))
	}
	// Converting onto itself is refused.
	runWant(t, exitRuntime, "convert", q, q)
}

// TestConvertChain flattens a QED overlay on a raw backing file.
func TestConvertChain(t *testing.T) {
	dir := t.TempDir()
	base := bytes.Repeat([]byte{7}, 256<<10)
	writeFile(t, filepath.Join(dir, "base.raw"), base)
	ov := newImage(t, dir, "ov.qed", qed.CreateOptions{Size: 1 << 20, BackingFile: "base.raw", BackingFormat: "raw"}, map[int64]byte{64 << 10: 9})
	out := filepath.Join(dir, "flat.raw")
	r := runWant(t, exitOK, "convert", "-f", "qed", "-O", "raw", ov, out)
	if r.stdout == "" {
		t.Error("convert without -q printed nothing")
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	want := make([]byte, 1<<20)
	copy(want, base)
	copy(want[64<<10:], bytes.Repeat([]byte{9}, 4096))
	if !bytes.Equal(b, want) {
		t.Error("flattened chain differs from backing+overlay")
	}
}
