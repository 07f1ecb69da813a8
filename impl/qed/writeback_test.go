package qed

import (
	"path/filepath"
	"testing"

	"github.com/qedtorture/qedtorture/internal/iocount"
	"github.com/spf13/afero"
)

// TestAllocatingWriteIOEconomy: an allocating write issues one write
// request and no sync; the table updates go out at the next Flush, which
// serves all pending allocations at once; with a backing file the data is
// synced before them (the ordering itself: TestOrderingWithBacking).
func TestAllocatingWriteIOEconomy(t *testing.T) {
	for _, back := range []bool{false, true} {
		cfs := iocount.New(afero.NewMemMapFs())
		co := CreateOptions{Size: 64 * cs4k, ClusterSize: cs4k}
		if back {
			mustNil(t, afero.WriteFile(cfs, "/b.raw", fill(64*cs4k, 0x5a), 0o644))
			co.BackingFile, co.BackingFormat = "b.raw", "raw"
		}
		im := mustCreate(t, cfs, "/e.qed", co, OpenOptions{IdleClearDelay: -1})
		// The first allocation sets NEED_CHECK (without backing) and makes
		// the L2 table; the writeback links it.
		_, err := im.WriteAt(fill(512, 1), 0)
		mustNil(t, err)
		mustNil(t, im.Flush())
		before := cfs.Counts("/e.qed")
		const n = 20
		for i := 1; i <= n; i++ {
			_, err := im.WriteAt(fill(512, byte(i)), int64(i*2*cs4k+100))
			mustNil(t, err)
		}
		got := cfs.Counts("/e.qed").Sub(before)
		if got.Writes != n || got.Syncs != 0 {
			t.Errorf("backing=%v: %d allocating writes issued %d writes and %d syncs, want %d and 0", back, n, got.Writes, got.Syncs, n)
		}
		before = cfs.Counts("/e.qed")
		mustNil(t, im.Flush())
		got = cfs.Counts("/e.qed").Sub(before)
		// One L2 write (the dirty range), at most 3 syncs.
		if got.Writes != 1 || got.Syncs < 1 || got.Syncs > 3 {
			t.Errorf("backing=%v: Flush issued %+v, want 1 table write and 1..3 syncs", back, got)
		}
		// The data reads back, COW fill included.
		for i := 1; i <= n; i++ {
			p := make([]byte, cs4k)
			_, err := im.ReadAt(p, int64(i*2*cs4k))
			mustNil(t, err)
			for j, c := range p {
				want := byte(0)
				if back {
					want = 0x5a
				}
				if j >= 100 && j < 612 {
					want = byte(i)
				}
				if c != want {
					t.Fatalf("backing=%v: guest byte %d of cluster %d = %#x, want %#x", back, j, 2*i, c, want)
				}
			}
		}
		mustNil(t, im.Close())
		im, err = Open(cfs, "/e.qed", OpenOptions{})
		mustNil(t, err)
		assertClean(t, im)
		mustNil(t, im.Close())
	}
}

// TestWriteBackCacheBounded: with a tiny L2 cache and allocations spread
// over many L2 tables, dirty tables are written back when the cache
// overflows instead of growing it, and nothing is lost (the data reads
// back, before and after reopening).
func TestWriteBackCacheBounded(t *testing.T) {
	rng := newRand(t)
	fs := afero.NewOsFs()
	path := filepath.Join(t.TempDir(), "c.qed")
	// 4 KiB clusters, 1-cluster tables: one L2 table maps 2 MiB.
	const tables = 24
	size := uint64(tables * 2 << 20)
	im := mustCreate(t, fs, path, CreateOptions{Size: size, ClusterSize: cs4k, TableSize: 1}, OpenOptions{L2CacheTables: 2, IdleClearDelay: -1})
	want := make([]byte, size)
	for range 300 {
		off := rng.Uint64N(size - 600)
		p := make([]byte, 1+rng.IntN(600))
		for j := range p {
			p[j] = byte(rng.Uint32())
		}
		_, err := im.WriteAt(p, int64(off))
		mustNil(t, err)
		copy(want[off:], p)
		if n := im.cache.len(); n > 2 {
			t.Fatalf("L2 cache holds %d tables, bound 2", n)
		}
	}
	assertEqual(t, readAll(t, im), want)
	mustNil(t, im.Close())
	im, err := Open(fs, path, OpenOptions{ReadOnly: true})
	mustNil(t, err)
	defer im.Close()
	assertEqual(t, readAll(t, im), want)
	assertClean(t, im)
}

// TestFreshClusterTailReadsZeros: a write into a fresh cluster skips the
// zero fill, so the file ends inside the cluster until the writeback; the
// rest of the cluster still reads as zeros, before and after Flush.
func TestFreshClusterTailReadsZeros(t *testing.T) {
	for _, fs := range []afero.Fs{afero.NewMemMapFs(), afero.NewOsFs()} {
		path := filepath.Join(t.TempDir(), "z.qed")
		im := mustCreate(t, fs, path, CreateOptions{Size: 16 * cs4k, ClusterSize: cs4k}, OpenOptions{IdleClearDelay: -1})
		_, err := im.WriteAt(fill(10, 7), 3*cs4k+5)
		mustNil(t, err)
		want := make([]byte, 16*cs4k)
		copy(want[3*cs4k+5:], fill(10, 7))
		assertEqual(t, readAll(t, im), want)
		mustNil(t, im.Flush())
		st, err := fs.Stat(path)
		mustNil(t, err)
		if st.Size()%cs4k != 0 {
			t.Errorf("%s: file length %d after Flush is not whole clusters", fs.Name(), st.Size())
		}
		assertEqual(t, readAll(t, im), want)
		mustNil(t, im.Close())
	}
}
