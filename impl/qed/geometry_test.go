package qed

import (
	"errors"
	"fmt"
	"io"
	"os"
	"testing"

	"github.com/qedtorture/qedtorture/internal/racetest"
	"github.com/spf13/afero"
)

// TestGeometryMatrix writes and reads back across table sizes 1..16 and
// cluster sizes 4 KiB..1 MiB, with zero, sector-aligned and unaligned
// image sizes; writes straddle table and image boundaries.
//
// MemMapFs copies whole files around, so by default the matrix stays small
// (images up to 4 MiB, 1 MiB clusters only with small tables); QED_LONG=1
// runs 1 MiB clusters with every table size and images up to 64 MiB.
func TestGeometryMatrix(t *testing.T) {
	r := newRand(t)
	long := os.Getenv("QED_LONG") != ""
	maxSize := uint64(4 << 20)
	if long {
		maxSize = 64 << 20
	}
	for _, cs := range []uint32{4 << 10, 8 << 10, 64 << 10, 1 << 20} {
		for _, ts := range []uint32{1, 2, 4, 8, 16} {
			if cs == 1<<20 && ts > 2 && !long {
				continue
			}
			span := uint64(ts) * uint64(cs) / 8 * uint64(cs) // bytes one L2 table covers
			for _, size := range []uint64{0, 512, uint64(cs) + 512, min(span+3*512, maxSize)} {
				t.Run(fmt.Sprintf("cs%d/ts%d/size%d", cs, ts, size), func(t *testing.T) {
					fs := afero.NewMemMapFs()
					im := mustCreate(t, fs, "/g.qed", CreateOptions{Size: size, ClusterSize: cs, TableSize: ts}, OpenOptions{})
					want := make([]byte, size)
					for range 4 {
						if size == 0 {
							break
						}
						off := r.Uint64N(size)
						n := min(r.Uint64N(uint64(cs))+1, size-off)
						p := fill(int(n), byte(r.IntN(255)+1))
						if _, err := im.WriteAt(p, int64(off)); err != nil {
							t.Fatal(err)
						}
						copy(want[off:], p)
					}
					if size > 0 {
						// The last byte of the image, in a partial cluster.
						if _, err := im.WriteAt([]byte{0x77}, int64(size-1)); err != nil {
							t.Fatal(err)
						}
						want[size-1] = 0x77
					}
					assertEqual(t, readAll(t, im), want)
					assertClean(t, im)
					if _, err := im.ReadAt(make([]byte, 1), int64(size)); err != io.EOF {
						t.Fatalf("read at size: %v, want EOF", err)
					}
					mustNil(t, im.Close())
					ro, err := Open(fs, "/g.qed", OpenOptions{ReadOnly: true})
					mustNil(t, err)
					assertEqual(t, readAll(t, ro), want)
					ro.Close()
				})
			}
		}
	}
}

// TestLargestClusters uses 64 MiB clusters. MemMapFs holds whole files in
// memory, so the default run only creates, opens, reads and checks (128
// MiB); QED_LONG=1 adds one allocating write (~300 MiB).
func TestLargestClusters(t *testing.T) {
	racetest.Heavy(t)
	fs := afero.NewMemMapFs()
	im := mustCreate(t, fs, "/big.qed", CreateOptions{Size: 1 << 30, ClusterSize: MaxClusterSize, TableSize: 1}, OpenOptions{})
	defer im.Close()
	q := make([]byte, 4096)
	if _, err := im.ReadAt(q, 1<<30-4096); err != nil || !isZero(q) {
		t.Fatalf("read of a fresh image: %v", err)
	}
	if rep := assertClean(t, im); rep.TotalClusters != 16 {
		t.Fatalf("total clusters %d", rep.TotalClusters)
	}
	if os.Getenv("QED_LONG") == "" {
		return
	}
	if _, err := im.WriteAt([]byte("hello"), 3<<28+7); err != nil {
		t.Fatal(err)
	}
	p := make([]byte, 5)
	if _, err := im.ReadAt(p, 3<<28+7); err != nil || string(p) != "hello" {
		t.Fatalf("read %q, %v", p, err)
	}
	assertClean(t, im)
}

func TestMap(t *testing.T) {
	fs := afero.NewMemMapFs()
	im := mustCreate(t, fs, "/m.qed", CreateOptions{Size: 10*cs4k + 512, ClusterSize: cs4k}, OpenOptions{})
	defer im.Close()
	_, err := im.WriteAt(fill(2*cs4k, 1), 2*cs4k) // clusters 2,3 contiguous
	mustNil(t, err)
	mustNil(t, im.WriteZeroes(5*cs4k, 2*cs4k))
	_, err = im.WriteAt([]byte{1}, 10*cs4k) // the partial last cluster
	mustNil(t, err)
	exts, err := im.Map()
	mustNil(t, err)
	mustNil(t, im.Flush()) // L2 entries reach the file at the metadata writeback
	h2 := int64(l2Entry(t, fs, "/m.qed", 2*cs4k))
	h10 := int64(l2Entry(t, fs, "/m.qed", 10*cs4k))
	want := []Extent{
		{Start: 0, Length: 2 * cs4k, Kind: ExtentUnallocated},
		{Start: 2 * cs4k, Length: 2 * cs4k, Kind: ExtentData, HostOffset: h2},
		{Start: 4 * cs4k, Length: cs4k, Kind: ExtentUnallocated},
		{Start: 5 * cs4k, Length: 2 * cs4k, Kind: ExtentZero},
		{Start: 7 * cs4k, Length: 3 * cs4k, Kind: ExtentUnallocated},
		{Start: 10 * cs4k, Length: 512, Kind: ExtentData, HostOffset: h10},
	}
	if fmt.Sprint(exts) != fmt.Sprint(want) {
		t.Fatalf("Map:\n got %v\nwant %v", exts, want)
	}
}

func TestReadOnlyNeverReadsThroughInvalidOffsets(t *testing.T) {
	for _, tc := range []struct {
		name string
		v    uint64
	}{{"past EOF", 1 << 30}, {"misaligned", 6*cs4k + 16}, {"into header", 0x200}} {
		t.Run(tc.name, func(t *testing.T) {
			fs := afero.NewMemMapFs()
			im := mustCreate(t, fs, "/i.qed", CreateOptions{Size: 8 * cs4k, ClusterSize: cs4k}, OpenOptions{})
			_, err := im.WriteAt(fill(2*cs4k, 3), 0)
			mustNil(t, err)
			mustNil(t, im.Close())
			pokeL2(t, fs, "/i.qed", cs4k, tc.v)
			ro, err := Open(fs, "/i.qed", OpenOptions{ReadOnly: true})
			mustNil(t, err)
			defer ro.Close()
			_, err = ro.ReadAt(make([]byte, 10), cs4k+5)
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("read: %v, want ErrCorrupt", err)
			}
			if _, err := ro.Map(); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("map: %v, want ErrCorrupt", err)
			}
		})
	}
}

func TestCacheNeverEvictsPinned(t *testing.T) {
	c := newL2Cache(1)
	a := c.insert(&l2Table{offset: 100, entries: newTable(1, false)})
	b := c.insert(&l2Table{offset: 200, entries: newTable(1, false)})
	if got := c.get(100); got != a {
		t.Fatal("pinned table evicted")
	}
	c.release(a)
	c.release(a)
	c.release(b)
	if c.len() != 1 {
		t.Fatalf("cache holds %d tables, want 1 after unpinning", c.len())
	}
	// Same offset inserted twice: the first one wins.
	x := c.insert(&l2Table{offset: 300})
	y := c.insert(&l2Table{offset: 300})
	if x != y {
		t.Fatal("duplicate insert returned a different table")
	}
	c.release(x)
	c.release(y)
}

func TestZeroSizeImage(t *testing.T) {
	fs := afero.NewMemMapFs()
	im := mustCreate(t, fs, "/z.qed", CreateOptions{Size: 0}, OpenOptions{})
	if n, err := im.ReadAt(nil, 0); n != 0 || err != nil {
		t.Fatalf("empty read: %d %v", n, err)
	}
	if _, err := im.WriteAt([]byte{1}, 0); !errors.Is(err, ErrOutOfRange) {
		t.Fatalf("write into empty image: %v", err)
	}
	exts, err := im.Map()
	if err != nil || len(exts) != 0 {
		t.Fatalf("map of empty image: %v %v", exts, err)
	}
	rep := assertClean(t, im)
	if rep.TotalClusters != 0 {
		t.Fatalf("total clusters %d", rep.TotalClusters)
	}
	mustNil(t, im.Close())
	if err := im.Close(); !errors.Is(err, ErrClosed) {
		t.Fatalf("double close: %v", err)
	}
	_ = os.ErrClosed
}
