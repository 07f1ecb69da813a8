package qed

import (
	"bytes"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/qedtorture/qedtorture/faultfs"
	"github.com/spf13/afero"
)

// slowBackingImage creates, in a temporary directory of the OS file system
// (positional I/O in parallel), a raw backing file of size bytes holding
// 0xB0 and an image over it with 4 KiB clusters, and opens the image
// through faultfs with every read of the backing file delayed by delay.
func slowBackingImage(t *testing.T, size int64, delay time.Duration, oo OpenOptions) (*Image, afero.Fs, string) {
	t.Helper()
	dir := t.TempDir()
	osfs := afero.NewOsFs()
	back := filepath.Join(dir, "back.raw")
	if err := afero.WriteFile(osfs, back, bytes.Repeat([]byte{0xB0}, int(size)), 0o644); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(dir, "img.qed")
	if err := Create(osfs, img, CreateOptions{Size: uint64(size), ClusterSize: cs4k, BackingFile: back, BackingFormat: "raw"}); err != nil {
		t.Fatal(err)
	}
	fs, err := faultfs.New(osfs, 1, faultfs.RuleSet{{Ops: faultfs.Ops(faultfs.OpRead), Fault: faultfs.FaultDelay, Arg: int64(delay), Path: "back.raw"}})
	if err != nil {
		t.Fatal(err)
	}
	im, err := Open(fs, img, oo)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { finalCheck(t, osfs, img) })
	return im, osfs, img
}

// parallelAllocations has 16 goroutines allocate 16 different clusters at
// once over a backing file with delay per read, each writing 512 bytes of
// its own value at offset 512 of its cluster, and returns how long they
// took and the first cluster whose bytes differ from the write over the
// backing file's (-1 if none).
func parallelAllocations(t *testing.T, delay time.Duration) (time.Duration, int) {
	im, _, _ := slowBackingImage(t, 1<<20, delay, OpenOptions{})
	var wg sync.WaitGroup
	start := time.Now()
	for i := range 16 {
		wg.Go(func() {
			if _, err := im.WriteAt(fill(512, byte(i+1)), int64(i)*cs4k+512); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	bad := -1
	for i := range 16 {
		want := bytes.Repeat([]byte{0xB0}, cs4k)
		copy(want[512:], fill(512, byte(i+1)))
		got := make([]byte, cs4k)
		mustRead(t, im, got, int64(i)*cs4k)
		if bad < 0 && !bytes.Equal(got, want) {
			bad = i
		}
	}
	mustNil(t, im.Close())
	return elapsed, bad
}

// TestConcurrentAllocationsOverlapBackingReads: allocating writes into
// different clusters run their copy-on-write reads in parallel. 16 writes
// over a backing file with 40 ms per read take far less than 16 reads one
// after the other (with allocations serialised under one lock they took
// 16 x 40 ms), and each cluster holds its own write over the backing
// file's bytes (TestDefectConcurrentSharedCOWBuffer shows this failing
// with the seeded defect that shares one buffer between them).
func TestConcurrentAllocationsOverlapBackingReads(t *testing.T) {
	const delay = 40 * time.Millisecond
	elapsed, bad := parallelAllocations(t, delay)
	if elapsed >= 8*delay {
		t.Errorf("16 concurrent allocations over a %v backing file took %v, want < %v (they did not overlap)", delay, elapsed, 8*delay)
	}
	if bad >= 0 {
		t.Errorf("cluster %d does not hold its write over the backing file's bytes", bad)
	}
}

// sameClusterWrites has 4 goroutines write disjoint 512-byte sectors of
// one unallocated cluster over a slow backing file at once, and reports
// what the image holds: the cluster's bytes, and the leaked clusters of a
// check (0: only one write allocated the cluster).
func sameClusterWrites(t *testing.T) (got, want []byte, leaks int64) {
	im, _, _ := slowBackingImage(t, 1<<20, 20*time.Millisecond, OpenOptions{})
	const cl = 5 * cs4k
	want = bytes.Repeat([]byte{0xB0}, cs4k)
	var wg sync.WaitGroup
	for i := range 4 {
		p := fill(512, byte(0x10+i))
		copy(want[i*1024:], p)
		wg.Go(func() {
			if _, err := im.WriteAt(p, cl+int64(i)*1024); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	got = make([]byte, cs4k)
	mustRead(t, im, got, cl)
	rep, err := im.Check(false)
	mustNil(t, err)
	mustNil(t, im.Close())
	return got, want, rep.Leaks
}

// TestConcurrentAllocationsSameCluster: concurrent writes into one
// unallocated cluster do not both allocate it: the later ones wait for the
// first to link it and write in place, so every write's data is there, the
// rest of the cluster is the backing file's, and nothing leaks (the
// cluster was allocated once).
func TestConcurrentAllocationsSameCluster(t *testing.T) {
	got, want, leaks := sameClusterWrites(t)
	if !bytes.Equal(got, want) {
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("byte %d of the cluster is %#x, want %#x: a concurrent write was lost", i, got[i], want[i])
			}
		}
	}
	if leaks != 0 {
		t.Errorf("%d leaked clusters: the cluster was allocated more than once", leaks)
	}
}

// TestQuietOperationsWaitForAllocations: WriteZeroes and Close wait for an
// allocation in flight. A write into cluster 3 is held in its copy-on-write
// read (200 ms); a WriteZeroes of the whole cluster issued meanwhile must
// come after it (zeros everywhere), never interleave (the write's link
// after the zeroing would bring back the backing file's bytes around the
// data); Close then waits for a second write in flight, whose data is
// flushed and read back after reopening.
func TestQuietOperationsWaitForAllocations(t *testing.T) {
	im, osfs, img := slowBackingImage(t, 1<<20, 200*time.Millisecond, OpenOptions{})
	var wg sync.WaitGroup
	wg.Go(func() {
		if _, err := im.WriteAt(fill(512, 0x33), 3*cs4k+1024); err != nil {
			t.Error(err)
		}
	})
	time.Sleep(50 * time.Millisecond)
	mustNil(t, im.WriteZeroes(3*cs4k, cs4k))
	wg.Wait()
	got := make([]byte, cs4k)
	mustRead(t, im, got, 3*cs4k)
	assertEqual(t, got, make([]byte, cs4k))

	wg.Go(func() {
		if _, err := im.WriteAt(fill(512, 0x44), 7*cs4k); err != nil {
			t.Error(err)
		}
	})
	time.Sleep(50 * time.Millisecond)
	mustNil(t, im.Close())
	wg.Wait()
	im2, err := Open(osfs, img, OpenOptions{ReadOnly: true})
	mustNil(t, err)
	defer im2.Close()
	want := bytes.Repeat([]byte{0xB0}, cs4k)
	copy(want, fill(512, 0x44))
	mustRead(t, im2, got, 7*cs4k)
	assertEqual(t, got, want)
}

func mustRead(t *testing.T, im *Image, p []byte, off int64) {
	t.Helper()
	if _, err := im.ReadAt(p, off); err != nil {
		t.Fatalf("ReadAt(%d bytes at %d): %v", len(p), off, err)
	}
}
