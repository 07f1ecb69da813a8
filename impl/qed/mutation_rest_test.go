package qed

import (
	"errors"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/spf13/afero"
)

// Tests written for the last real mutants of io.go that survived the rest
// of the suite (docs/mutation.md, "Rest of io.go"): errors of the
// write-zeroes path and of table writes, the sector rounding of partial
// table writes, and Map's merging of extents.

// span1 is the guest span of one L2 table with 4 KiB clusters and
// one-cluster tables (512 entries).
const span1 = 512 * cs4k

// readBudgetFs passes reads of the file name until readsLeft reaches
// zero (a negative budget never runs out), then fails them with EIO; it
// fails the writes that overlap [failLo, failHi) and records every write
// (offset and length) to that file.
type readBudgetFs struct {
	afero.Fs
	name           string
	readsLeft      atomic.Int64
	failLo, failHi atomic.Int64
	mu             sync.Mutex
	writes         [][2]int64
}

func newReadBudgetFs(fs afero.Fs, name string) *readBudgetFs {
	r := &readBudgetFs{Fs: fs, name: name}
	r.readsLeft.Store(-1)
	return r
}

func (r *readBudgetFs) Open(name string) (afero.File, error) {
	return r.OpenFile(name, os.O_RDONLY, 0)
}

func (r *readBudgetFs) OpenFile(name string, flag int, perm os.FileMode) (afero.File, error) {
	f, err := r.Fs.OpenFile(name, flag, perm)
	if err != nil || filepath.Clean(name) != r.name {
		return f, err
	}
	return budgetFile{f, r}, nil
}

type budgetFile struct {
	afero.File
	r *readBudgetFs
}

func (f budgetFile) take() error {
	if f.r.readsLeft.Load() >= 0 && f.r.readsLeft.Add(-1) < 0 {
		return eio("read")
	}
	return nil
}

func (f budgetFile) ReadAt(p []byte, off int64) (int, error) {
	if err := f.take(); err != nil {
		return 0, err
	}
	return f.File.ReadAt(p, off)
}

func (f budgetFile) Read(p []byte) (int, error) {
	if err := f.take(); err != nil {
		return 0, err
	}
	return f.File.Read(p)
}

func (f budgetFile) WriteAt(p []byte, off int64) (int, error) {
	if off < f.r.failHi.Load() && off+int64(len(p)) > f.r.failLo.Load() {
		return 0, eio("write")
	}
	f.r.mu.Lock()
	f.r.writes = append(f.r.writes, [2]int64{off, int64(len(p))})
	f.r.mu.Unlock()
	return f.File.WriteAt(p, off)
}

// TestZeroesPathErrorsSurface: the errors of write-zeroes are returned —
// of re-reading the L2 table it links in (the table was evicted after the
// lookup), of the metadata write-back that an overfull cache forces, and
// of zeroing an allocated cluster in place — as are a flush's table write
// errors.
func TestZeroesPathErrorsSurface(t *testing.T) {
	mem := afero.NewMemMapFs()
	opts := CreateOptions{Size: 4 * span1, ClusterSize: cs4k, TableSize: 1}
	mustNil(t, Create(mem, "/w/img.qed", opts))

	// The link's own table read fails. With a cache of one table and a
	// dirty table A in it, the lookup reads table B, whose release evicts
	// it; the link reads B again, and that read fails.
	rb := newReadBudgetFs(mem, "/w/img.qed")
	im, err := Open(rb, "/w/img.qed", OpenOptions{IdleClearDelay: -1, L2CacheTables: 1})
	mustNil(t, err)
	for _, off := range []int64{0, span1} {
		_, err := im.WriteAt(fill(cs4k, 1), off)
		mustNil(t, err)
	}
	mustNil(t, im.Flush())
	_, err = im.WriteAt(fill(cs4k, 2), cs4k) // table A dirty again
	mustNil(t, err)
	rb.readsLeft.Store(1)
	if err := im.WriteZeroes(span1+cs4k, cs4k); !errors.Is(err, syscall.EIO) {
		t.Errorf("write-zeroes whose link cannot read its L2 table: %v, want EIO", err)
	}
	rb.readsLeft.Store(-1)
	im.Close()
	skipFinalCheck(t, "/w/img.qed")

	// An allocating write into a new table B while table A is dirty: the
	// cache of one is overfull, and writing A back fails.
	mustNil(t, Create(mem, "/w/alloc.qed", opts))
	rb = newReadBudgetFs(mem, "/w/alloc.qed")
	im, err = Open(rb, "/w/alloc.qed", OpenOptions{IdleClearDelay: -1, L2CacheTables: 1})
	mustNil(t, err)
	for _, off := range []int64{0, cs4k} {
		_, err := im.WriteAt(fill(cs4k, 1), off)
		mustNil(t, err)
		if off == 0 {
			mustNil(t, im.Flush())
		}
	}
	a := int64(im.l1.get(0))
	rb.failLo.Store(a)
	rb.failHi.Store(a + int64(im.geo.tableBytes))
	if _, err := im.WriteAt(fill(cs4k, 3), span1); !errors.Is(err, syscall.EIO) {
		t.Errorf("allocating write whose forced write-back fails: %v, want EIO", err)
	}
	rb.failLo.Store(0)
	rb.failHi.Store(0)
	im.Close()
	skipFinalCheck(t, "/w/alloc.qed")

	for _, tc := range []struct {
		name string
		op   func(im *Image) error
	}{
		// Two new tables, both dirty: the cache of one is overfull and the
		// write-back it forces fails.
		{"write-zeroes forcing a write-back", func(im *Image) error { return im.WriteZeroes(2*span1, 2*span1) }},
		// Cluster 0 is allocated: it is zeroed in place, and that write fails.
		{"write-zeroes over an allocated cluster", func(im *Image) error { return im.WriteZeroes(0, cs4k) }},
		// Cluster 1's table entry is dirty: writing it back fails.
		{"flush of a dirty table", func(im *Image) error { return im.Flush() }},
	} {
		name := "/w/" + tc.name + ".qed"
		mustNil(t, Create(mem, name, opts))
		a := &armedFs{Fs: mem, name: name}
		im, err := Open(a, name, OpenOptions{IdleClearDelay: -1, L2CacheTables: 1})
		mustNil(t, err)
		_, err = im.WriteAt(fill(cs4k, 1), 0)
		mustNil(t, err)
		mustNil(t, im.Flush())
		_, err = im.WriteAt(fill(cs4k, 1), cs4k)
		mustNil(t, err)
		a.failWrite.Store(true)
		if err := tc.op(im); !errors.Is(err, syscall.EIO) {
			t.Errorf("%s whose write fails: %v, want EIO", tc.name, err)
		}
		a.failWrite.Store(false)
		im.Close()
		skipFinalCheck(t, name)
	}
}

// TestTableWritesWholeSectors: every write into an L1 or L2 table covers
// whole 512-byte sectors — a sector is the unit a crash leaves whole, so
// a write ending inside one could tear the entries it shares with its
// neighbours — and an update of entries in a table the file already
// holds rewrites only the sectors that hold them.
func TestTableWritesWholeSectors(t *testing.T) {
	for _, tc := range []struct {
		name      string
		size      uint64
		cs        uint32
		tableSize uint32
		// Writes of one byte, each followed by a flush; a non-negative
		// want is the table offset (the L2 table of the write's guest
		// offset or, when l1, the L1) of the one sector it must rewrite.
		steps []struct {
			off  int64
			l1   bool
			want int64
		}
	}{
		{"small tables", 128 * span1, cs4k, 1, []struct {
			off  int64
			l1   bool
			want int64
		}{
			{0, false, -1},                  // new table: entry 0 and L1[0]
			{63 * cs4k, false, 0},           // entry 63 ends its sector
			{64 * cs4k, false, 512},         // entry 64 starts the next
			{300 * cs4k, false, 2048},       // entry 300, inside sector 4
			{100 * span1, true, 512},        // L1[100]: its new table is written too
			{100*span1 + cs4k, false, 0},    // entry 1 of that table
			{127*span1 + 5*cs4k, true, 512}, // L1[127] ends L1's sector 1
		}},
		// Entries far into a big table: the sector's offset is large.
		{"big tables", 1 << 33, 64 << 10, 16, []struct {
			off  int64
			l1   bool
			want int64
		}{
			{40000 << 16, false, -1},
			{40001 << 16, false, 40001 * entrySize / SectorSize * SectorSize},
			{70000 << 16, false, 70000 * entrySize / SectorSize * SectorSize},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mem := afero.NewMemMapFs()
			mustNil(t, Create(mem, "/w/img.qed", CreateOptions{Size: tc.size, ClusterSize: tc.cs, TableSize: tc.tableSize}))
			rb := newReadBudgetFs(mem, "/w/img.qed")
			im, err := Open(rb, "/w/img.qed", OpenOptions{IdleClearDelay: -1})
			mustNil(t, err)
			defer im.Close()
			for _, st := range tc.steps {
				rb.mu.Lock()
				rb.writes = nil
				rb.mu.Unlock()
				_, err := im.WriteAt([]byte{1}, st.off)
				mustNil(t, err)
				mustNil(t, im.Flush())
				im.mu.RLock()
				l1 := int64(im.hdr.L1TableOffset)
				tb := int64(im.geo.tableBytes)
				tables := []int64{l1}
				for i := range im.l1.len() {
					if e := im.l1.get(i); e != 0 {
						tables = append(tables, int64(e))
					}
				}
				own := int64(im.l1.get(im.geo.l1Index(uint64(st.off))))
				im.mu.RUnlock()
				rb.mu.Lock()
				var got [][2]int64 // writes into tables
				for _, w := range rb.writes {
					for _, off := range tables {
						if w[0] < off+tb && w[0]+w[1] > off {
							got = append(got, w)
							if (w[0]-off)%SectorSize != 0 || w[1]%SectorSize != 0 {
								t.Errorf("write at %d: table write at %d, %d bytes (table at %d): not whole sectors", st.off, w[0], w[1], off)
							}
						}
					}
				}
				rb.mu.Unlock()
				if len(got) == 0 {
					t.Errorf("write at %d: no table write", st.off)
				}
				if st.want < 0 {
					continue
				}
				base := own
				if st.l1 {
					base = l1
				}
				found := false
				for _, w := range got {
					if w[0] >= base && w[0] < base+tb {
						if w != [2]int64{base + st.want, SectorSize} {
							t.Errorf("write at %d: table write at %d, %d bytes, want the one sector at %d", st.off, w[0], w[1], base+st.want)
						}
						found = true
					}
				}
				if !found {
					t.Errorf("write at %d: no write into the table at %d", st.off, base)
				}
			}
		})
	}
}

// TestMapMergesLikeRuns: Map merges neighbouring ranges of the same kind —
// across L2 tables too — and data ranges only when their host clusters
// are contiguous as well.
func TestMapMergesLikeRuns(t *testing.T) {
	mem := afero.NewMemMapFs()
	size := int64(4 * span1)
	mustNil(t, Create(mem, "/w/img.qed", CreateOptions{Size: uint64(size), ClusterSize: cs4k, TableSize: 1}))
	im, err := Open(mem, "/w/img.qed", OpenOptions{IdleClearDelay: -1})
	mustNil(t, err)
	defer im.Close()
	// Guest clusters 0-1 in one write (host contiguous), then 3, then 2:
	// 2 lies right after 3 in the file, not after 1.
	for _, w := range []struct{ off, n int64 }{{0, 2 * cs4k}, {3 * cs4k, cs4k}, {2 * cs4k, cs4k}} {
		_, err := im.WriteAt(fill(int(w.n), 1), w.off)
		mustNil(t, err)
	}
	mustNil(t, im.WriteZeroes(4*cs4k, 2*cs4k))
	// Zero clusters spanning two tables.
	mustNil(t, im.WriteZeroes(2*span1-cs4k, 2*cs4k))
	got, err := im.Map()
	mustNil(t, err)
	if len(got) < 3 {
		t.Fatalf("Map: %+v", got)
	}
	h := got[0].HostOffset
	h3 := got[2].HostOffset // guest cluster 3 was allocated before 2
	want := []Extent{
		{Start: 0, Length: 2 * cs4k, Kind: ExtentData, HostOffset: h},
		{Start: 2 * cs4k, Length: cs4k, Kind: ExtentData, HostOffset: h3 + cs4k},
		{Start: 3 * cs4k, Length: cs4k, Kind: ExtentData, HostOffset: h3},
		{Start: 4 * cs4k, Length: 2 * cs4k, Kind: ExtentZero},
		{Start: 6 * cs4k, Length: 2*span1 - 7*cs4k, Kind: ExtentUnallocated},
		{Start: 2*span1 - cs4k, Length: 2 * cs4k, Kind: ExtentZero},
		{Start: 2*span1 + cs4k, Length: size - 2*span1 - cs4k, Kind: ExtentUnallocated},
	}
	if len(got) != len(want) {
		t.Fatalf("Map: %d extents %+v, want %d %+v", len(got), got, len(want), want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("extent %d: %+v, want %+v", i, got[i], want[i])
		}
	}
}

// TestGrowHidesBackingTailWhole: a grow hides the whole of a longer
// backing file's tail — up to its last byte, when that byte starts a
// cluster (the end is rounded up to a whole cluster), and across an L2
// table boundary, where the zeroing takes more than one step.
func TestGrowHidesBackingTailWhole(t *testing.T) {
	for _, tc := range []struct {
		name                  string
		old, backing, newSize int64
	}{
		{"last byte starts a cluster", cs4k, 2*cs4k + 1, 4 * cs4k},
		{"tail across two tables", span1 - cs4k, span1 + 2*cs4k, span1 + 4*cs4k},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := afero.NewMemMapFs()
			mustNil(t, afero.WriteFile(fs, "/g/base.raw", fill(int(tc.backing), 7), 0o644))
			im := mustCreate(t, fs, "/g/top.qed", CreateOptions{Size: uint64(tc.old), ClusterSize: cs4k, TableSize: 1, BackingFile: "base.raw", BackingFormat: "raw"}, OpenOptions{})
			mustNil(t, im.Resize(tc.newSize))
			got := make([]byte, tc.newSize-tc.old)
			_, err := im.ReadAt(got, tc.old)
			mustNil(t, err)
			for i, b := range got {
				if b != 0 {
					t.Fatalf("byte %d after the grow from %d: %d, want 0 (the backing file's tail shows)", tc.old+int64(i), tc.old, b)
				}
			}
			mustNil(t, im.Close())
		})
	}
}

// TestCleanFlushSyncErrorSurfaces: closing an image with no metadata to
// write back (after an in-place write) still syncs before clearing
// NEED_CHECK, and that sync's error is returned: a later sync that
// passes does not make the earlier write durable.
func TestCleanFlushSyncErrorSurfaces(t *testing.T) {
	mem := afero.NewMemMapFs()
	mustNil(t, Create(mem, "/w/img.qed", CreateOptions{Size: 4 * cs4k, ClusterSize: cs4k}))
	a := &armedFs{Fs: mem, name: "/w/img.qed"}
	im, err := Open(a, "/w/img.qed", OpenOptions{IdleClearDelay: -1})
	mustNil(t, err)
	_, err = im.WriteAt(fill(cs4k, 1), 0)
	mustNil(t, err)
	mustNil(t, im.Flush())
	_, err = im.WriteAt(fill(100, 2), 10) // in place: no metadata changes
	mustNil(t, err)
	a.failNextSyncs.Store(1)
	if err := im.Close(); !errors.Is(err, syscall.EIO) {
		t.Errorf("close after an in-place write whose sync fails: %v, want EIO", err)
	}
	skipFinalCheck(t, "/w/img.qed")
}
