package qed

import (
	"bytes"
	"encoding/binary"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/qedtorture/qedtorture/crashsim"
	"github.com/qedtorture/qedtorture/props/check"
	"github.com/spf13/afero"
)

// TestTableMatchesSlice: a table, whole or paged, holds exactly what a
// []uint64 of its length holds under random sets, and nextNonZero and
// zero agree with it; a paged table gives storage only to pages holding
// a non-zero entry. Seeded (the seed is printed).
func TestTableMatchesSlice(t *testing.T) {
	seed := uint64(rand.Int64())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 19))
	for _, tc := range []struct {
		n     uint64
		paged bool
	}{{512, false}, {4096, false}, {64, true}, {8 * pageEntries, true}, {5*pageEntries + 64, true}} {
		tb := newTable(tc.n, tc.paged)
		ref := make([]uint64, tc.n)
		for range 300 {
			i := rng.Uint64N(tc.n)
			v := uint64(0)
			if rng.IntN(3) > 0 {
				v = rng.Uint64N(1<<40) + 1
			}
			if rng.IntN(50) == 0 {
				tb.zero()
				clear(ref)
				continue
			}
			tb.set(i, v)
			ref[i] = v
			if j := rng.Uint64N(tc.n); tb.get(j) != ref[j] {
				t.Fatalf("n=%d: get(%d) = %d, want %d", tc.n, j, tb.get(j), ref[j])
			}
			if j := rng.Uint64N(tc.n); tb.nextNonZero(j) != uint64(nonZero(ref, int(j))) {
				t.Fatalf("n=%d: nextNonZero(%d) = %d, want %d", tc.n, j, tb.nextNonZero(j), nonZero(ref, int(j)))
			}
		}
		for i := range tc.n {
			if tb.get(i) != ref[i] {
				t.Fatalf("n=%d: entry %d = %d, want %d", tc.n, i, tb.get(i), ref[i])
			}
		}
		if !tb.whole() {
			tb.zero()
			tb.set(tc.n-1, 0)
			tb.set(0, 7)
			stored := 0
			tb.nonZeroPages(func(uint64, []uint64) { stored++ })
			if stored != 1 || tb.nextNonZero(1) != tc.n {
				t.Fatalf("n=%d: %d pages hold storage after zero and one entry set, want 1", tc.n, stored)
			}
		}
		tb.release()
	}
}

// countingFile counts the bytes read and the write requests of a file,
// passing Seek through (as faultfs and the image's own guard do).
type countingFile struct {
	afero.File
	read   atomic.Int64
	writes atomic.Int64
}

func (c *countingFile) ReadAt(p []byte, off int64) (int, error) {
	c.read.Add(int64(len(p)))
	return c.File.ReadAt(p, off)
}

func (c *countingFile) WriteAt(p []byte, off int64) (int, error) {
	c.writes.Add(1)
	return c.File.WriteAt(p, off)
}

// TestTableReadSparse: a big table is read only where the file has data
// when the file answers SEEK_DATA (crashsim, an os.File on Linux), and
// whole (page by page) where it cannot tell (afero's in-memory files,
// whose Seek ignores the whence): the contents are the same either way,
// pages that read zeros keep no storage, and the probe tells the files
// apart. A write of sectors spanning pages, some without storage, is one
// write request with the right bytes.
func TestTableReadSparse(t *testing.T) {
	const off = 8192
	const n = 64 * pageEntries // 256 KiB
	ref0 := make([]uint64, n)
	ref0[3] = 0x10000
	ref0[20*pageEntries+7] = 0x20000
	ref0[63*pageEntries+511] = 0x30000
	img := make([]byte, n*entrySize)
	for i, v := range ref0 {
		binary.LittleEndian.PutUint64(img[i*entrySize:], v)
	}
	// The file: a header page, then the table's pages 0, 20 and 63
	// written, page 40 written as zeros, the rest holes.
	layout := func(f afero.File) {
		t.Helper()
		for _, k := range []int{0, 20, 40, 63} {
			if _, err := f.WriteAt(img[k*pageBytes:(k+1)*pageBytes], int64(off+k*pageBytes)); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := f.WriteAt([]byte("QED\x00"), 0); err != nil {
			t.Fatal(err)
		}
	}
	cfs := crashsim.New(crashsim.Options{})
	osDir := t.TempDir()
	for _, tc := range []struct {
		name     string
		fs       afero.Fs
		path     string
		seekable bool
	}{
		{"crashsim", cfs, "/t", true},
		{"os", afero.NewOsFs(), filepath.Join(osDir, "t"), runtime.GOOS == "linux"},
		{"memmap", afero.NewMemMapFs(), "/t", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ref := slices.Clone(ref0)
			f, err := tc.fs.OpenFile(tc.path, os.O_RDWR|os.O_CREATE, 0o644)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			layout(f)
			// A position that would fool a probe trusting any answer.
			if _, err := f.Seek(off+n*entrySize-1, io.SeekStart); err != nil {
				t.Fatal(err)
			}
			seek := probeSeekData(f, off+n*entrySize)
			if seek != tc.seekable {
				t.Fatalf("probeSeekData = %v, want %v", seek, tc.seekable)
			}
			cf := &countingFile{File: f}
			tb := newTable(n, true)
			defer tb.release()
			if err := tb.read(cf, off, seek); err != nil {
				t.Fatal(err)
			}
			for i := range uint64(n) {
				if tb.get(i) != ref[i] {
					t.Fatalf("entry %d = %#x, want %#x", i, tb.get(i), ref[i])
				}
			}
			stored := 0
			tb.nonZeroPages(func(uint64, []uint64) { stored++ })
			if stored != 3 {
				t.Errorf("%d pages hold storage, want 3 (those with entries)", stored)
			}
			readWant := int64(n * entrySize)
			if tc.name == "crashsim" {
				readWant = 4 * pageBytes // the written pages only
			}
			if got := cf.read.Load(); (seek && got > readWant) || (!seek && got != readWant) {
				t.Errorf("read %d bytes of the table, want %s %d", got, map[bool]string{true: "at most", false: ""}[seek], readWant)
			}

			// Entries 19*512+448 .. 21*512+64: sectors over three pages,
			// the middle one (20) stored, 19 and 21 without storage.
			tb.set(20*pageEntries+8, 0x40000)
			ref[20*pageEntries+8] = 0x40000
			first, last := uint64(19*pageEntries+448), uint64(21*pageEntries+63)
			if _, err := tb.write(cf, off, first, last-first+1); err != nil {
				t.Fatal(err)
			}
			if w := cf.writes.Load(); w != 1 {
				t.Errorf("%d write requests, want 1", w)
			}
			got := newTable(n, false)
			defer got.release()
			if err := got.read(f, off, false); err != nil {
				t.Fatal(err)
			}
			for i := range uint64(n) {
				if got.get(i) != ref[i] {
					t.Fatalf("after the write: entry %d = %#x, want %#x", i, got.get(i), ref[i])
				}
			}
		})
	}
}

// TestBigTablesHeldSparsely: with 64 MiB tables (4 MiB clusters,
// 16-cluster tables) an image holding a few clusters is opened (with the
// repair of NEED_CHECK, which walks every table), read, written and
// closed allocating a small fraction of one table (before: the L1 table,
// each L2 table read and the check's scratch tables whole, more than 192
// MiB); a repair clears an invalid entry by writing its sector, and the
// image is consistent afterwards (issue 19 goal 5).
func TestBigTablesHeldSparsely(t *testing.T) {
	fs := crashsim.New(crashsim.Options{ImplicitDirSync: true})
	const cs, ts = 4 << 20, 16
	span := uint64(cs) * cs * ts / entrySize // guest bytes one L2 table maps
	mustNil(t, Create(fs, "/big.qed", CreateOptions{Size: 3 * span, ClusterSize: cs, TableSize: ts}))
	im, err := Open(fs, "/big.qed", OpenOptions{IdleClearDelay: -1})
	mustNil(t, err)
	data := fill(4096, 0x5a)
	for _, off := range []uint64{0, 7 * cs, span + 3*cs} {
		_, err := im.WriteAt(data, int64(off))
		mustNil(t, err)
	}
	mustNil(t, im.Close())
	pokeL2(t, fs, "/big.qed", 2*cs, 12345) // invalid (unaligned)
	setHeaderField(t, fs, "/big.qed", offFeatures, 8, FeatureNeedCheck)

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	im, err = Open(fs, "/big.qed", OpenOptions{IdleClearDelay: -1})
	mustNil(t, err)
	got := make([]byte, 4096)
	_, err = im.ReadAt(got, int64(span+3*cs))
	mustNil(t, err)
	if !bytes.Equal(got, data) {
		t.Fatalf("read back %x..., want %x...", got[:4], data[:4])
	}
	_, err = im.WriteAt(data, int64(2*span+cs))
	mustNil(t, err)
	rep, err := im.Check(false)
	mustNil(t, err)
	mustNil(t, im.Close())
	runtime.ReadMemStats(&after)
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 16<<20 {
		t.Errorf("open, read, write, check and close allocated %d MiB, want at most 16 (a table is 64 MiB)", alloc>>20)
	}
	if rep.Corruptions != 0 || rep.Allocated != 4 {
		t.Errorf("after the repair: %+v, want no corruption and 4 allocated clusters", rep)
	}
	if e := l2Entry(t, fs, "/big.qed", 2*cs); e != 0 {
		t.Errorf("the invalid entry reads %d after the repair, want 0", e)
	}
	h, err := ReadHeader(fs, "/big.qed")
	mustNil(t, err)
	if h.Features&FeatureNeedCheck != 0 {
		t.Error("NEED_CHECK still set after the repair and a clean close")
	}
}

// TestRepairPagedTables: with QEMU's default geometry (64 KiB clusters,
// 4-cluster tables: 256 KiB tables, held in pages) a repair clears
// invalid L2 entries in two pages of one table (two of them in one
// sector) and an invalid L1 entry by writing only their sectors (one
// 512-byte write each), keeps every
// valid mapping, and leaves the image consistent.
func TestRepairPagedTables(t *testing.T) {
	fs := crashsim.New(crashsim.Options{ImplicitDirSync: true})
	const cs = 64 << 10
	span := uint64(cs) * cs * 4 / entrySize
	mustNil(t, Create(fs, "/r.qed", CreateOptions{Size: 2 * span, ClusterSize: cs, TableSize: 4}))
	im, err := Open(fs, "/r.qed", OpenOptions{IdleClearDelay: -1})
	mustNil(t, err)
	if !im.geo.sparseTables || im.l1.whole() {
		t.Fatal("256 KiB tables are not held in pages")
	}
	data := fill(512, 0x77)
	for _, c := range []uint64{0, 1, 600, 601} {
		_, err := im.WriteAt(data, int64(c*cs))
		mustNil(t, err)
	}
	mustNil(t, im.Close())
	pokeL2(t, fs, "/r.qed", 1*cs, 3)   // page 0 of the L2 table
	pokeL2(t, fs, "/r.qed", 2*cs, 7)   // the same sector: written once
	pokeL2(t, fs, "/r.qed", 601*cs, 5) // page 1
	h, err := ReadHeader(fs, "/r.qed")
	mustNil(t, err)
	setHeaderField(t, fs, "/r.qed", int64(h.L1TableOffset)+8, 8, 1<<40) // L1[1]: past the end
	setHeaderField(t, fs, "/r.qed", offFeatures, 8, FeatureNeedCheck)

	before := len(fs.Trace().Ops)
	im, err = Open(fs, "/r.qed", OpenOptions{IdleClearDelay: -1})
	mustNil(t, err)
	mustNil(t, im.Close())
	var writes []int
	for _, op := range fs.Trace().Ops[before:] {
		if op.Kind == crashsim.OpWrite {
			writes = append(writes, len(op.Data))
		}
	}
	// Three repaired sectors, then the header (NEED_CHECK cleared).
	if len(writes) != 4 || writes[0] != 512 || writes[1] != 512 || writes[2] != 512 {
		t.Errorf("repair writes %v, want three 512-byte sectors and the header", writes)
	}
	for c, want := range map[uint64]uint64{1: 0, 2: 0, 601: 0, 0: 1, 600: 1} {
		if e := l2Entry(t, fs, "/r.qed", c*cs); (e != 0) != (want != 0) {
			t.Errorf("L2 entry of cluster %d = %d after the repair, want %s", c, e, map[bool]string{true: "a mapping", false: "0"}[want != 0])
		}
	}
	if e := l2Entry(t, fs, "/r.qed", span); e != 0 {
		t.Errorf("the invalid L1 entry still maps %d", e)
	}
	f, err := fs.Open("/r.qed")
	mustNil(t, err)
	defer f.Close()
	rep, err := check.File(f)
	if err != nil || !rep.IsConsistent() {
		t.Fatalf("not consistent after the repair: %v %v", err, rep.Err())
	}
}
