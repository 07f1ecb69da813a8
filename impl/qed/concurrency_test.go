package qed

import (
	"sync"
	"testing"

	"github.com/spf13/afero"
)

// TestConcurrentDisjointWrites has many goroutines write disjoint,
// unaligned ranges (so allocating and in-place writes, reads and
// write-zeroes interleave), then compares with the expected buffer. A tiny
// L2 cache forces evictions while tables are in use.
func TestConcurrentDisjointWrites(t *testing.T) {
	r := newRand(t)
	fs := afero.NewMemMapFs()
	const size = 2 << 20 // afero's MemMapFs copies the file tail on every write
	im := mustCreate(t, fs, "/c.qed", CreateOptions{Size: size, ClusterSize: cs4k, TableSize: 1}, OpenOptions{L2CacheTables: 2})
	const workers = 16
	const slot = size / workers
	want := make([]byte, size)
	seeds := make([]uint64, workers)
	for i := range seeds {
		seeds[i] = r.Uint64()
	}
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rr := newRandFrom(seeds[w])
			base := w * slot
			mine := want[base : base+slot]
			for range 60 {
				off := rr.IntN(slot)
				n := min(rr.IntN(3*cs4k)+1, slot-off)
				switch rr.IntN(4) {
				case 0:
					if err := im.WriteZeroes(int64(base+off), int64(n)); err != nil {
						errs <- err
						return
					}
					clear(mine[off : off+n])
				case 1:
					got := make([]byte, n)
					if _, err := im.ReadAt(got, int64(base+off)); err != nil {
						errs <- err
						return
					}
					for i := range got {
						if got[i] != mine[off+i] {
							t.Errorf("worker %d: read at %d differs", w, base+off+i)
							return
						}
					}
				default:
					p := make([]byte, n)
					for i := range p {
						p[i] = byte(rr.Uint32()) | 1
					}
					if _, err := im.WriteAt(p, int64(base+off)); err != nil {
						errs <- err
						return
					}
					copy(mine[off:], p)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	assertEqual(t, readAll(t, im), want)
	assertClean(t, im)
	mustNil(t, im.Close())
}

// TestConcurrentOverlappingWrites has goroutines write whole, identical
// patterns per cluster-aligned block so any interleaving leaves each block
// equal to one writer's pattern, and all writers of a block agree.
func TestConcurrentOverlappingWrites(t *testing.T) {
	fs := afero.NewMemMapFs()
	const size = 2 << 20
	im := mustCreate(t, fs, "/o.qed", CreateOptions{Size: size, ClusterSize: cs4k}, OpenOptions{L2CacheTables: 1})
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 64 {
				blk := (i*7 + w*13) % (size / 1000)
				p := fill(1000, byte(blk%251)+1)
				if _, err := im.WriteAt(p, int64(blk*1000)); err != nil {
					t.Error(err)
					return
				}
				q := make([]byte, 1000)
				if _, err := im.ReadAt(q, int64(blk*1000)); err != nil {
					t.Error(err)
					return
				}
				for _, b := range q {
					if b != byte(blk%251)+1 {
						t.Errorf("block %d read %d", blk, b)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	assertClean(t, im)
	mustNil(t, im.Close())
}

// TestPooledTablesStayPrivate: images opened and closed over and over in
// parallel draw their L1 and L2 tables and copy-on-write buffers from
// shared pools and give them back on Close. If a table or buffer were
// given back twice, or while still in use, two images would share it and
// one would read the other's mapping or data. Each worker keeps its own
// image (two L2 tables, a tiny cache so tables are evicted and reloaded)
// with its own pattern, reopening it every round, and checks every byte.
func TestPooledTablesStayPrivate(t *testing.T) {
	r := newRand(t)
	fs := afero.NewMemMapFs()
	const workers, rounds = 6, 12
	const size = 3 << 20 // 4 KiB clusters, table size 1: 2 MiB per L2 table
	seeds := make([]uint64, workers)
	for i := range seeds {
		seeds[i] = r.Uint64()
	}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rr := newRandFrom(seeds[w])
			name := "/p" + string(rune('a'+w)) + ".qed"
			mustCreate(t, fs, name, CreateOptions{Size: size, ClusterSize: cs4k, TableSize: 1}, OpenOptions{}).Close()
			want := make([]byte, size)
			for round := range rounds {
				im, err := Open(fs, name, OpenOptions{L2CacheTables: 1, ReadOnly: round%5 == 4})
				if err != nil {
					t.Error(err)
					return
				}
				if round%5 != 4 {
					for range 4 {
						off := rr.IntN(size - cs4k)
						n := rr.IntN(cs4k) + 1
						p := make([]byte, n)
						for i := range p {
							p[i] = byte(w*rounds+round) | 1
						}
						if _, err := im.WriteAt(p, int64(off)); err != nil {
							t.Error(err)
							return
						}
						copy(want[off:], p)
					}
				}
				got := make([]byte, size)
				if _, err := im.ReadAt(got, 0); err != nil {
					t.Error(err)
					return
				}
				for i := range got {
					if got[i] != want[i] {
						t.Errorf("worker %d round %d: byte %d = %#x, want %#x", w, round, i, got[i], want[i])
						return
					}
				}
				if err := im.Close(); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
}
