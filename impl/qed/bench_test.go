package qed

import (
	"path/filepath"
	"testing"

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
