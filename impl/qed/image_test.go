package qed

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/spf13/afero"
)

func TestCreateLayoutMatchesQEMU(t *testing.T) {
	fs := afero.NewMemMapFs()
	if err := Create(fs, "/a.qed", CreateOptions{Size: 1 << 20}); err != nil {
		t.Fatal(err)
	}
	st, err := fs.Stat("/a.qed")
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() != 327680 {
		t.Fatalf("fresh default image is %d bytes, want 327680", st.Size())
	}
	h, err := ReadHeader(fs, "/a.qed")
	if err != nil {
		t.Fatal(err)
	}
	want := Header{Magic: Magic, ClusterSize: DefaultClusterSize, TableSize: DefaultTableSize, HeaderSize: 1,
		L1TableOffset: DefaultClusterSize, ImageSize: 1 << 20}
	if h != want {
		t.Fatalf("header %+v, want %+v", h, want)
	}
}

func TestHeaderEncodeDecodeMirror(t *testing.T) {
	h := Header{Magic: Magic, ClusterSize: 1, TableSize: 2, HeaderSize: 3, Features: 4, CompatFeatures: 5,
		AutoclearFeatures: 6, L1TableOffset: 7, ImageSize: 8, BackingFilenameOffset: 9, BackingFilenameSize: 10}
	var b [HeaderFieldsSize]byte
	encodeHeader(&h, b[:])
	if got := decodeHeader(b[:]); got != h {
		t.Fatalf("round trip %+v, want %+v", got, h)
	}
	if !bytes.Equal(b[:4], []byte("QED\x00")) {
		t.Fatalf("magic bytes %q", b[:4])
	}
}

func TestWriteReadRoundTrip(t *testing.T) {
	r := newRand(t)
	fs := afero.NewMemMapFs()
	const size = 3<<20 + 512*7
	im := mustCreate(t, fs, "/a.qed", CreateOptions{Size: size, ClusterSize: 4096, TableSize: 2}, OpenOptions{})
	want := make([]byte, size)
	for range 200 {
		off := r.IntN(size)
		n := min(r.IntN(20000)+1, size-off)
		p := make([]byte, n)
		for i := range p {
			p[i] = byte(r.Uint32())
		}
		if _, err := im.WriteAt(p, int64(off)); err != nil {
			t.Fatalf("WriteAt(%d, %d): %v", off, n, err)
		}
		copy(want[off:], p)
	}
	assertEqual(t, readAll(t, im), want)
	assertClean(t, im)
	if err := im.Close(); err != nil {
		t.Fatal(err)
	}
	im2, err := Open(fs, "/a.qed", OpenOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer im2.Close()
	if im2.Header().Features&FeatureNeedCheck != 0 {
		t.Fatalf("NEED_CHECK still set after Close")
	}
	assertEqual(t, readAll(t, im2), want)
	assertClean(t, im2)
}

func TestOutOfRange(t *testing.T) {
	fs := afero.NewMemMapFs()
	im := mustCreate(t, fs, "/a.qed", CreateOptions{Size: 8192, ClusterSize: 4096}, OpenOptions{})
	defer im.Close()
	if _, err := im.WriteAt(make([]byte, 10), 8190); !errors.Is(err, ErrOutOfRange) {
		t.Fatalf("write past end: %v, want ErrOutOfRange", err)
	}
	p := make([]byte, 10)
	n, err := im.ReadAt(p, 8190)
	if n != 2 || err != io.EOF {
		t.Fatalf("read past end: n=%d err=%v, want 2, EOF", n, err)
	}
	if err := im.Resize(4096); !errors.Is(err, ErrShrink) {
		t.Fatalf("shrink: %v, want ErrShrink", err)
	}
	if err := im.Resize(1 << 20); err != nil {
		t.Fatal(err)
	}
	if _, err := im.WriteAt([]byte{1}, 1<<20-1); err != nil {
		t.Fatalf("write after grow: %v", err)
	}
}

// TestQEMUAcceptsOurImage is a quick interop smoke test; the thorough
// suite lives in impl/qed/interop.
func TestQEMUAcceptsOurImage(t *testing.T) {
	qimg := qemuImg(t)
	r := newRand(t)
	dir := t.TempDir()
	fs := afero.NewOsFs()
	path := filepath.Join(dir, "a.qed")
	const size = 5<<20 + 512
	im := mustCreate(t, fs, path, CreateOptions{Size: size, ClusterSize: 4096, TableSize: 2}, OpenOptions{})
	want := make([]byte, size)
	for range 100 {
		off := r.IntN(size)
		n := min(r.IntN(30000)+1, size-off)
		p := bytes.Repeat([]byte{byte(r.IntN(255) + 1)}, n)
		if _, err := im.WriteAt(p, int64(off)); err != nil {
			t.Fatal(err)
		}
		copy(want[off:], p)
	}
	if err := im.WriteZeroes(4096*10, 4096*5); err != nil {
		t.Fatal(err)
	}
	clear(want[4096*10 : 4096*15])
	if err := im.Close(); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(qimg, "check", "-f", "qed", path).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img check: %v\n%s", err, out)
	}
	raw := filepath.Join(dir, "a.raw")
	if out, err := exec.Command(qimg, "convert", "-f", "qed", "-O", "raw", path, raw).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img convert: %v\n%s", err, out)
	}
	got, err := os.ReadFile(raw)
	if err != nil {
		t.Fatal(err)
	}
	assertEqual(t, got, want)
}
