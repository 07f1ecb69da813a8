package qed

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/qedtorture/qedtorture/internal/iocount"
	"github.com/spf13/afero"
)

// benchImage creates an image on the OS filesystem: afero's MemMapFs
// copies the file's tail on every WriteAt and would dominate the numbers.
func benchImage(b *testing.B, size int64) *Image {
	b.Helper()
	fs := afero.NewOsFs()
	im := mustCreate(b, fs, filepath.Join(b.TempDir(), "b.qed"), CreateOptions{Size: uint64(size), ClusterSize: 64 << 10}, OpenOptions{IdleClearDelay: -1})
	b.Cleanup(func() { im.Close() })
	return im
}

// BenchmarkWriteInPlace4K rewrites 4 KiB blocks of an allocated image.
func BenchmarkWriteInPlace4K(b *testing.B) {
	const size = 16 << 20
	im := benchImage(b, size)
	p := make([]byte, 4096)
	if _, err := im.WriteAt(make([]byte, size), 0); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(4096)
	b.ResetTimer()
	for i := range b.N {
		if _, err := im.WriteAt(p, int64(i*4096)%size); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReadParallel4K reads 4 KiB blocks from many goroutines.
func BenchmarkReadParallel4K(b *testing.B) {
	const size = 16 << 20
	im := benchImage(b, size)
	if _, err := im.WriteAt(make([]byte, size), 0); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(4096)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		p := make([]byte, 4096)
		i := 0
		for pb.Next() {
			if _, err := im.ReadAt(p, int64(i*4096)%size); err != nil {
				b.Error(err)
				return
			}
			i += 7
		}
	})
}

// BenchmarkAllocatingWrite64K writes fresh whole clusters (no backing).
func BenchmarkAllocatingWrite64K(b *testing.B) {
	const size = 1 << 40
	im := benchImage(b, size)
	p := make([]byte, 64<<10)
	b.SetBytes(int64(len(p)))
	b.ResetTimer()
	for i := range b.N {
		if _, err := im.WriteAt(p, int64(i)*(64<<10)*3); err != nil {
			b.Fatal(err)
		}
	}
}

// allocBench creates a fresh image (4 GiB guest, 64 KiB clusters) on the
// OS file system through an I/O counter, optionally over a sparse raw
// backing file of the same size, and returns it with the counter.
func allocBench(b *testing.B, withBacking bool) (*Image, *iocount.FS, string) {
	b.Helper()
	dir := b.TempDir()
	cfs := iocount.New(afero.NewOsFs())
	path := filepath.Join(dir, "a.qed")
	co := CreateOptions{Size: 4 << 30, ClusterSize: 64 << 10}
	if withBacking {
		bp := filepath.Join(dir, "back.raw")
		if err := os.Truncate(bp, 0); err != nil && !os.IsNotExist(err) {
			b.Fatal(err)
		}
		f, err := os.Create(bp)
		if err != nil {
			b.Fatal(err)
		}
		if err := f.Truncate(4 << 30); err != nil {
			b.Fatal(err)
		}
		f.Close()
		co.BackingFile, co.BackingFormat = "back.raw", "raw"
	}
	im := mustCreate(b, cfs, path, co, OpenOptions{})
	b.Cleanup(func() { im.Close() })
	cfs.Reset()
	return im, cfs, path
}

// reportIO adds the write requests, bytes and syncs per operation that
// reached the image file, the measure of the I/O-economy goal.
func reportIO(b *testing.B, cfs *iocount.FS, path string, ops int) {
	c := cfs.Counts(path)
	b.ReportMetric(float64(c.Writes)/float64(ops), "writes/op")
	b.ReportMetric(float64(c.WriteBytes)/float64(ops), "wbytes/op")
	b.ReportMetric(float64(c.Syncs)/float64(ops), "syncs/op")
}

// BenchmarkAllocating4K is the allocation-heavy workload of
// docs/performance.md: 4 KiB writes at a 64 KiB step into a fresh image,
// each allocating one cluster, at queue depth 1 and 16 (goroutines), with
// and without a raw backing file. The counts include a final Flush, as the
// bench command counts from open to close.
func BenchmarkAllocating4K(b *testing.B) {
	for _, back := range []bool{false, true} {
		for _, depth := range []int{1, 16} {
			name := fmt.Sprintf("backing=%v/depth=%d", back, depth)
			b.Run(name, func(b *testing.B) {
				im, cfs, path := allocBench(b, back)
				p := make([]byte, 4096)
				const step = 64 << 10
				maxOps := int64(4<<30) / step
				var next atomic.Int64
				b.SetBytes(4096)
				b.ResetTimer()
				var wg sync.WaitGroup
				for range depth {
					wg.Go(func() {
						for {
							i := next.Add(1) - 1
							if i >= int64(b.N) {
								return
							}
							if _, err := im.WriteAt(p, (i%maxOps)*step); err != nil {
								b.Error(err)
								return
							}
						}
					})
				}
				wg.Wait()
				if err := im.Flush(); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				reportIO(b, cfs, path, b.N)
			})
		}
	}
}

// BenchmarkSeqRead1M reads a fully allocated image in 1 MiB requests from
// 16 goroutines (the seq-r1m workload of docs/performance.md): the format's
// cost per request is one lookup of a host-contiguous run and one pread.
func BenchmarkSeqRead1M(b *testing.B) {
	const size = 64 << 20
	im := benchImage(b, size)
	if _, err := im.WriteAt(make([]byte, size), 0); err != nil {
		b.Fatal(err)
	}
	var next atomic.Int64
	b.SetBytes(1 << 20)
	b.ResetTimer()
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			p := make([]byte, 1<<20)
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				if _, err := im.ReadAt(p, (i<<20)%size); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}
