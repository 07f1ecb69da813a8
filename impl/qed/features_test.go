package qed

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/spf13/afero"
)

const cs4k = 4096

func fill(n int, b byte) []byte { return bytes.Repeat([]byte{b}, n) }

// l2Entry reads the L2 entry for guest offset pos straight from the file.
func l2Entry(t *testing.T, fs afero.Fs, path string, pos uint64) uint64 {
	t.Helper()
	h, err := ReadHeader(fs, path)
	if err != nil {
		t.Fatal(err)
	}
	g := newGeometry(&h)
	f, err := fs.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var b [8]byte
	if _, err := f.ReadAt(b[:], int64(h.L1TableOffset+g.l1Index(pos)*8)); err != nil {
		t.Fatal(err)
	}
	l1e := binary.LittleEndian.Uint64(b[:])
	if l1e == 0 {
		return 0
	}
	if _, err := f.ReadAt(b[:], int64(l1e+g.l2Index(pos)*8)); err != nil {
		t.Fatal(err)
	}
	return binary.LittleEndian.Uint64(b[:])
}

func TestWriteZeroes(t *testing.T) {
	fs := afero.NewMemMapFs()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	// Backing holds 0xbb everywhere; the overlay is 8 clusters.
	f, _ := fs.Create("/base.raw")
	f.Write(fill(8*cs4k, 0xbb))
	f.Close()
	im := mustCreate(t, fs, "/top.qed", CreateOptions{Size: 8 * cs4k, ClusterSize: cs4k, BackingFile: "base.raw", BackingFormat: "raw"}, OpenOptions{})
	want := fill(8*cs4k, 0xbb)

	// Aligned over unallocated: zero clusters (L2 = 1), no data.
	must(im.WriteZeroes(cs4k, 2*cs4k))
	clear(want[cs4k : 3*cs4k])
	// Unaligned: only the covered bytes become zero; backing shows elsewhere.
	must(im.WriteZeroes(4*cs4k+100, 200))
	clear(want[4*cs4k+100 : 4*cs4k+300])
	// Over allocated data: zeros in place.
	_, err := im.WriteAt(fill(cs4k, 0x11), 6*cs4k)
	must(err)
	must(im.WriteZeroes(6*cs4k, cs4k))
	clear(want[6*cs4k : 7*cs4k])
	// Partial write into a zero cluster keeps the rest zero (not backing).
	_, err = im.WriteAt(fill(10, 0x22), cs4k+50)
	must(err)
	copy(want[cs4k+50:], fill(10, 0x22))
	assertEqual(t, readAll(t, im), want)
	assertClean(t, im)
	must(im.Close())
	if e := l2Entry(t, fs, "/top.qed", 2*cs4k); e != 1 {
		t.Fatalf("L2 entry of zeroed cluster 2 = %#x, want 1", e)
	}
	if e := l2Entry(t, fs, "/top.qed", 6*cs4k); e <= 1 {
		t.Fatalf("L2 entry of in-place zeroed cluster 6 = %#x, want a data offset", e)
	}
}

func TestCopyOnWriteAndShortBacking(t *testing.T) {
	fs := afero.NewMemMapFs()
	// Backing (qed, probed) is 1.5 clusters; the overlay 4 clusters.
	base := mustCreate(t, fs, "/d/base.qed", CreateOptions{Size: cs4k + cs4k/2, ClusterSize: cs4k}, OpenOptions{})
	if _, err := base.WriteAt(fill(cs4k+cs4k/2, 0xaa), 0); err != nil {
		t.Fatal(err)
	}
	if err := base.Close(); err != nil {
		t.Fatal(err)
	}
	im := mustCreate(t, fs, "/d/top.qed", CreateOptions{Size: 4 * cs4k, ClusterSize: cs4k, BackingFile: "base.qed"}, OpenOptions{})
	want := make([]byte, 4*cs4k)
	copy(want, fill(cs4k+cs4k/2, 0xaa))
	assertEqual(t, readAll(t, im), want)
	// A 10-byte write in cluster 1 copies the backing's 0xaa before and
	// after it, and zeros past the backing's end.
	if _, err := im.WriteAt(fill(10, 0x33), cs4k+100); err != nil {
		t.Fatal(err)
	}
	copy(want[cs4k+100:], fill(10, 0x33))
	im.Close()
	im2, err := Open(fs, "/d/top.qed", OpenOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer im2.Close()
	// Remove the backing file's influence: read the cluster's own bytes.
	if e := l2Entry(t, fs, "/d/top.qed", cs4k); e <= 1 {
		t.Fatalf("cluster 1 not allocated: %#x", e)
	}
	assertEqual(t, readAll(t, im2), want)
	if h := im2.Header(); h.Features&FeatureNeedCheck != 0 {
		t.Fatalf("NEED_CHECK set on an image with a backing file")
	}
}

func TestBackingChainsAndProbe(t *testing.T) {
	fs := afero.NewMemMapFs()
	// A raw file whose first bytes look like a QED header.
	fake := make([]byte, 2*cs4k)
	copy(fake, "QED\x00")
	afero.WriteFile(fs, "/x/raw.img", fake, 0o644)
	noProbe := mustCreate(t, fs, "/x/np.qed", CreateOptions{Size: 2 * cs4k, ClusterSize: cs4k, BackingFile: "raw.img", BackingFormat: "raw"}, OpenOptions{ReadOnly: false})
	got := readAll(t, noProbe)
	assertEqual(t, got, fake)
	noProbe.Close()
	// Probing the same file as qed fails (it is not a valid QED image).
	if err := Create(fs, "/x/probe.qed", CreateOptions{Size: 2 * cs4k, ClusterSize: cs4k, BackingFile: "raw.img"}); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(fs, "/x/probe.qed", OpenOptions{ReadOnly: true}); err == nil {
		t.Fatalf("probing a raw file with a QED magic opened it as QED and succeeded")
	}
	// Three-level chain with relative names resolved per image directory.
	afero.WriteFile(fs, "/c/a/base.raw", fill(cs4k, 0x01), 0o644)
	mustNil(t, Create(fs, "/c/a/mid.qed", CreateOptions{Size: 3 * cs4k, ClusterSize: cs4k, BackingFile: "base.raw", BackingFormat: "raw"}))
	mid, err := Open(fs, "/c/a/mid.qed", OpenOptions{})
	mustNil(t, err)
	_, err = mid.WriteAt(fill(cs4k, 0x02), cs4k)
	mustNil(t, err)
	mustNil(t, mid.Close())
	mustNil(t, Create(fs, "/c/top.qed", CreateOptions{Size: 3 * cs4k, ClusterSize: cs4k, BackingFile: "a/mid.qed", BackingFormat: "qed"}))
	top, err := Open(fs, "/c/top.qed", OpenOptions{ReadOnly: true})
	mustNil(t, err)
	want := append(append(fill(cs4k, 1), fill(cs4k, 2)...), fill(cs4k, 0)...)
	assertEqual(t, readAll(t, top), want)
	top.Close()
	// Absolute backing names work too.
	mustNil(t, Create(fs, "/c/abs.qed", CreateOptions{Size: cs4k, ClusterSize: cs4k, BackingFile: "/c/a/base.raw", BackingFormat: "raw"}))
	abs, err := Open(fs, "/c/abs.qed", OpenOptions{ReadOnly: true})
	mustNil(t, err)
	assertEqual(t, readAll(t, abs), fill(cs4k, 1))
	abs.Close()
}

func mustNil(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestBackingLoopAndDepth(t *testing.T) {
	fs := afero.NewMemMapFs()
	mustNil(t, Create(fs, "/l/a.qed", CreateOptions{Size: cs4k, ClusterSize: cs4k, BackingFile: "b.qed"}))
	mustNil(t, Create(fs, "/l/b.qed", CreateOptions{Size: cs4k, ClusterSize: cs4k, BackingFile: "a.qed"}))
	if _, err := Open(fs, "/l/a.qed", OpenOptions{ReadOnly: true}); !errors.Is(err, ErrBackingLoop) {
		t.Fatalf("loop: %v, want ErrBackingLoop", err)
	}
	// Create refuses an image that backs itself, by any name; Open still
	// refuses one written by other means (the name patched in).
	for _, name := range []string{"./self.qed", "self.qed", "../l/self.qed", "/l/self.qed"} {
		if err := Create(fs, "/l/self.qed", CreateOptions{Size: cs4k, ClusterSize: cs4k, BackingFile: name}); !errors.Is(err, ErrBackingLoop) {
			t.Fatalf("create with backing %s: %v, want ErrBackingLoop", name, err)
		}
	}
	mustNil(t, Create(fs, "/l/self.qed", CreateOptions{Size: cs4k, ClusterSize: cs4k, BackingFile: "./selx.qed"}))
	f, err := fs.OpenFile("/l/self.qed", os.O_RDWR, 0)
	mustNil(t, err)
	_, err = f.WriteAt([]byte("./self.qed"), HeaderFieldsSize)
	mustNil(t, err)
	mustNil(t, f.Close())
	if _, err := Open(fs, "/l/self.qed", OpenOptions{}); !errors.Is(err, ErrBackingLoop) {
		t.Fatalf("self loop: %v, want ErrBackingLoop", err)
	}
	// A chain of 5 below the top: refused at depth 4, accepted at 5.
	afero.WriteFile(fs, "/d/0.raw", fill(cs4k, 7), 0o644)
	prev := "0.raw"
	for i := 1; i <= 5; i++ {
		name := string(rune('0'+i)) + ".qed"
		mustNil(t, Create(fs, "/d/"+name, CreateOptions{Size: cs4k, ClusterSize: cs4k, BackingFile: prev}))
		prev = name
	}
	if _, err := Open(fs, "/d/5.qed", OpenOptions{ReadOnly: true, MaxBackingDepth: 4}); !errors.Is(err, ErrBackingDepth) {
		t.Fatalf("depth 5 with max 4: %v, want ErrBackingDepth", err)
	}
	im, err := Open(fs, "/d/5.qed", OpenOptions{ReadOnly: true, MaxBackingDepth: 5})
	mustNil(t, err)
	assertEqual(t, readAll(t, im), fill(cs4k, 7))
	im.Close()
}

func TestNeedCheckProtocol(t *testing.T) {
	fs := afero.NewMemMapFs()
	clk := &fakeClock{now: time.Unix(0, 0)}
	im := mustCreate(t, fs, "/n.qed", CreateOptions{Size: 16 * cs4k, ClusterSize: cs4k}, OpenOptions{Clock: clk})
	needCheck := func() bool {
		h, err := ReadHeader(fs, "/n.qed")
		mustNil(t, err)
		return h.Features&FeatureNeedCheck != 0
	}
	if needCheck() {
		t.Fatal("fresh image has NEED_CHECK")
	}
	_, err := im.WriteAt([]byte{1}, 0)
	mustNil(t, err)
	if !needCheck() {
		t.Fatal("NEED_CHECK not set on disk after an allocating write without backing")
	}
	// An in-place write does not re-arm; a new allocation does.
	clk.Advance(4 * time.Second)
	_, err = im.WriteAt([]byte{2}, 5*cs4k)
	mustNil(t, err)
	clk.Advance(4 * time.Second)
	if !needCheck() {
		t.Fatal("NEED_CHECK cleared less than 5 s after the last allocating write")
	}
	clk.Advance(time.Second)
	if needCheck() {
		t.Fatal("NEED_CHECK still set 5 s after the last allocating write")
	}
	_, err = im.WriteAt([]byte{3}, 9*cs4k)
	mustNil(t, err)
	if !needCheck() {
		t.Fatal("NEED_CHECK not set again by a later allocating write")
	}
	mustNil(t, im.Close())
	if needCheck() {
		t.Fatal("NEED_CHECK still set after Close")
	}
}

// setHeaderField pokes a little-endian field of the header on disk.
func setHeaderField(t *testing.T, fs afero.Fs, path string, off int64, size int, v uint64) {
	t.Helper()
	f, err := fs.OpenFile(path, os.O_RDWR, 0)
	mustNil(t, err)
	defer f.Close()
	b := make([]byte, 8)
	binary.LittleEndian.PutUint64(b, v)
	_, err = f.WriteAt(b[:size], off)
	mustNil(t, err)
}

// pokeL2 sets the L2 entry for guest offset pos on disk (a planted
// corruption: the file is exempt from the final check).
func pokeL2(t *testing.T, fs afero.Fs, path string, pos, v uint64) {
	t.Helper()
	skipFinalCheck(t, path)
	h, err := ReadHeader(fs, path)
	mustNil(t, err)
	g := newGeometry(&h)
	f, err := fs.OpenFile(path, os.O_RDWR, 0)
	mustNil(t, err)
	defer f.Close()
	var b [8]byte
	_, err = f.ReadAt(b[:], int64(h.L1TableOffset+g.l1Index(pos)*8))
	mustNil(t, err)
	l1e := binary.LittleEndian.Uint64(b[:])
	binary.LittleEndian.PutUint64(b[:], v)
	_, err = f.WriteAt(b[:], int64(l1e+g.l2Index(pos)*8))
	mustNil(t, err)
}

func TestNeedCheckRepairOnOpen(t *testing.T) {
	fs := afero.NewMemMapFs()
	im := mustCreate(t, fs, "/r.qed", CreateOptions{Size: 16 * cs4k, ClusterSize: cs4k}, OpenOptions{})
	_, err := im.WriteAt(fill(2*cs4k, 9), 0)
	mustNil(t, err)
	mustNil(t, im.Close())
	// Simulate a crash: an L2 entry past EOF, NEED_CHECK set.
	pokeL2(t, fs, "/r.qed", cs4k, 1<<30)
	setHeaderField(t, fs, "/r.qed", offFeatures, 8, FeatureNeedCheck)

	ro, err := Open(fs, "/r.qed", OpenOptions{ReadOnly: true})
	mustNil(t, err)
	p := make([]byte, 10)
	if _, err := ro.ReadAt(p, cs4k); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("read-only read through dangling entry: %v, want ErrCorrupt", err)
	}
	var fe *FormatError
	if _, err := ro.ReadAt(p, cs4k); !errors.As(err, &fe) || fe.Value != 1<<30 {
		t.Fatalf("want a FormatError naming the value, got %v", err)
	}
	rep, err := ro.Check(false)
	mustNil(t, err)
	if rep.Corruptions != 1 || rep.Allocated != 2 {
		t.Fatalf("check of read-only image: %+v", rep)
	}
	if _, err := ro.Check(true); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("repair on read-only: %v", err)
	}
	ro.Close()

	rw, err := Open(fs, "/r.qed", OpenOptions{})
	mustNil(t, err)
	if rw.Header().Features&FeatureNeedCheck != 0 {
		t.Fatal("NEED_CHECK still set after open-time repair")
	}
	want := append(fill(cs4k, 9), make([]byte, 14*cs4k)...)
	want = append(want, 0)[:16*cs4k]
	assertEqual(t, readAll(t, rw), want)
	rep, err = rw.Check(false)
	mustNil(t, err)
	// The dropped cluster stays allocated in the file: one leak.
	if rep.Allocated != 1 || rep.Corruptions != 0 || rep.Leaks != 1 {
		t.Fatalf("after repair: %+v", rep)
	}
	mustNil(t, rw.Close())
}

func TestFeatureBits(t *testing.T) {
	fs := afero.NewMemMapFs()
	mustNil(t, Create(fs, "/f.qed", CreateOptions{Size: cs4k, ClusterSize: cs4k}))
	// Unknown incompatible feature: refused, named in hex.
	setHeaderField(t, fs, "/f.qed", offFeatures, 8, 0x100)
	_, err := Open(fs, "/f.qed", OpenOptions{ReadOnly: true})
	if !errors.Is(err, ErrUnsupportedFeature) || !bytes.Contains([]byte(err.Error()), []byte("0x100")) {
		t.Fatalf("unknown feature: %v", err)
	}
	setHeaderField(t, fs, "/f.qed", offFeatures, 8, 0)
	// Unknown compat: tolerated and preserved.
	setHeaderField(t, fs, "/f.qed", offCompatFeatures, 8, 0x8)
	// Unknown autoclear: kept read-only, cleared writable.
	setHeaderField(t, fs, "/f.qed", offAutoclearFeatures, 8, 0x30)
	ro, err := Open(fs, "/f.qed", OpenOptions{ReadOnly: true})
	mustNil(t, err)
	ro.Close()
	h, _ := ReadHeader(fs, "/f.qed")
	if h.AutoclearFeatures != 0x30 {
		t.Fatalf("read-only open changed autoclear to %#x", h.AutoclearFeatures)
	}
	rw, err := Open(fs, "/f.qed", OpenOptions{})
	mustNil(t, err)
	_, err = rw.WriteAt([]byte{1}, 0)
	mustNil(t, err)
	mustNil(t, rw.Close())
	h, _ = ReadHeader(fs, "/f.qed")
	if h.AutoclearFeatures != 0 || h.CompatFeatures != 0x8 {
		t.Fatalf("after writable open: autoclear %#x compat %#x, want 0 and 0x8", h.AutoclearFeatures, h.CompatFeatures)
	}
}

func TestCheckCounts(t *testing.T) {
	fs := afero.NewMemMapFs()
	im := mustCreate(t, fs, "/c.qed", CreateOptions{Size: 64 * cs4k, ClusterSize: cs4k}, OpenOptions{})
	for _, c := range []int64{0, 1, 2, 10, 3} {
		_, err := im.WriteAt([]byte{byte(c + 1)}, c*cs4k)
		mustNil(t, err)
	}
	rep := assertClean(t, im)
	// Data clusters 0,1,2 contiguous (L2 table follows cluster 0), so
	// allocation order: c0, L2 (4 clusters), c1, c2, c10, c3.
	if rep.Allocated != 5 || rep.TotalClusters != 64 {
		t.Fatalf("counts %+v", rep)
	}
	// In L2 order: c1 does not follow c0 (the L2 table is between), c3
	// does not follow c2 (c10 is between), c10 does not follow c3.
	if rep.Fragmented != 3 {
		t.Fatalf("fragmented %d, want 3", rep.Fragmented)
	}
	mustNil(t, im.Close())
	// A double reference and a leak.
	e1 := l2Entry(t, fs, "/c.qed", 1*cs4k)
	pokeL2(t, fs, "/c.qed", 2*cs4k, e1)
	ro, err := Open(fs, "/c.qed", OpenOptions{ReadOnly: true})
	mustNil(t, err)
	rep, err = ro.Check(false)
	mustNil(t, err)
	if rep.Corruptions != 1 || rep.Leaks != 1 {
		t.Fatalf("double ref + leak: %+v", rep)
	}
	ro.Close()
}

// TestUnrepairableKeepsNeedCheck: a double reference cannot be repaired;
// the writable open succeeds (as in QEMU) but NEED_CHECK survives Close.
func TestUnrepairableKeepsNeedCheck(t *testing.T) {
	fs := afero.NewMemMapFs()
	im := mustCreate(t, fs, "/u.qed", CreateOptions{Size: 16 * cs4k, ClusterSize: cs4k}, OpenOptions{})
	_, err := im.WriteAt(fill(2*cs4k, 9), 0)
	mustNil(t, err)
	mustNil(t, im.Close())
	pokeL2(t, fs, "/u.qed", 3*cs4k, l2Entry(t, fs, "/u.qed", 0))
	setHeaderField(t, fs, "/u.qed", offFeatures, 8, FeatureNeedCheck)
	rw, err := Open(fs, "/u.qed", OpenOptions{})
	mustNil(t, err)
	rep, err := rw.Check(false)
	mustNil(t, err)
	if rep.Corruptions != 1 {
		t.Fatalf("double reference not counted: %+v", rep)
	}
	mustNil(t, rw.Close())
	h, _ := ReadHeader(fs, "/u.qed")
	if h.Features&FeatureNeedCheck == 0 {
		t.Fatal("NEED_CHECK cleared although a double reference remains")
	}
}
