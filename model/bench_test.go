package model

import (
	"fmt"
	"testing"
)

// benchDisk returns a 1 TiB disk with n flushed 4 KiB writes 64 KiB apart,
// pending more writes over the first read target, and a valid crash state
// of the 4 KiB at off (durable data, with one pending sector kept when
// torn).
func benchDisk(b *testing.B, n int, torn bool) (d *Disk, off int64, got []byte) {
	d, err := New(1<<40, nil)
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < n; i++ {
		if _, err := d.Write(int64(i)*65536, 4096); err != nil {
			b.Fatal(err)
		}
	}
	d.Flush()
	off = int64(n/2) * 65536
	for i := 0; i < 4; i++ {
		if _, err := d.Write(off+int64(i)*1024, 512); err != nil {
			b.Fatal(err)
		}
	}
	got = make([]byte, 4096)
	Fill(got, uint64(n/2+1), off)
	if torn {
		Fill(got[1024:1536], uint64(n+2), off+1024)
	}
	if err := d.VerifyCrash(off, got); err != nil {
		b.Fatal(err)
	}
	return d, off, got
}

func BenchmarkVerifyCrash4K(b *testing.B) {
	for _, n := range []int{10, 100000} {
		for _, torn := range []bool{false, true} {
			b.Run(fmt.Sprintf("extents=%d/torn=%v", n, torn), func(b *testing.B) {
				d, off, got := benchDisk(b, n, torn)
				b.SetBytes(int64(len(got)))
				b.ReportAllocs()
				b.ResetTimer()
				for range b.N {
					if err := d.VerifyCrash(off, got); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

func BenchmarkVerify4K(b *testing.B) {
	for _, n := range []int{10, 100000} {
		b.Run(fmt.Sprintf("extents=%d", n), func(b *testing.B) {
			d, off, _ := benchDisk(b, n, false)
			got := make([]byte, 4096)
			if err := d.ReadAt(got, off); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(got)))
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if err := d.Verify(off, got); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDisk1TiB100Writes reports (as B/op) the memory allocated to
// build a 1 TiB disk and apply 100 writes spread over it, with a flush
// every 10: an upper bound on what the model keeps.
func BenchmarkDisk1TiB100Writes(b *testing.B) {
	b.ReportAllocs()
	for range b.N {
		d, err := New(1<<40, nil)
		if err != nil {
			b.Fatal(err)
		}
		for i := int64(0); i < 100; i++ {
			if _, err := d.Write(i*(1<<40/100)&^511, 1<<20); err != nil {
				b.Fatal(err)
			}
			if i%10 == 9 {
				d.Flush()
			}
		}
	}
}

// BenchmarkRecover measures a collapse after a crash with 32 pending 4 KiB
// writes on a 64 MiB disk, including making the disk and the writes.
func BenchmarkRecover(b *testing.B) {
	b.ReportAllocs()
	for range b.N {
		d, _ := New(64<<20, nil)
		for i := int64(0); i < 32; i++ {
			d.Write(i*(2<<20), 4096)
		}
		if err := d.Recover(64<<20, func(p []byte, off int64) error {
			Fill(p, uint64(off/(2<<20)+1), off)
			return nil
		}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFill64K generates 64 KiB of a write's pattern (what the crash
// oracle's sector rule and Verify do for every pending write it compares).
func BenchmarkFill64K(b *testing.B) {
	p := make([]byte, 64<<10)
	b.SetBytes(int64(len(p)))
	for b.Loop() {
		Fill(p, 7, 0x10000)
	}
}
