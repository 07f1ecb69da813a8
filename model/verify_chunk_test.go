package model

import (
	"errors"
	"runtime"
	"testing"
)

// TestVerifyChunked: Verify of a range far longer than verifyChunk
// allocates about one chunk when it passes (not a buffer as long as the
// range: issue 19 goal 5's memory), and still finds a wrong byte in any
// chunk, excused ranges allowed across chunk edges.
func TestVerifyChunked(t *testing.T) {
	const size = 24 << 20
	d, err := New(size, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range [][2]int64{{1000, 3 << 20}, {5<<20 - 7, 9 << 20}, {20 << 20, 4<<20 - 512}} {
		if _, err := d.Write(w[0], w[1]); err != nil {
			t.Fatal(err)
		}
	}
	d.Excuse(verifyChunk-100, 300) // across the first chunk edge
	got := make([]byte, size)
	if err := d.ReadAt(got, 0); err != nil {
		t.Fatal(err)
	}
	for i := verifyChunk - 100; i < verifyChunk+200; i++ {
		got[i] ^= 0x5a // any value is allowed there
	}
	if err := d.Verify(0, got); err != nil { // warm the scratch pool
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	if err := d.Verify(0, got); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	// A quarter of the range: other tests' goroutines may allocate
	// meanwhile, and a scratch as long as the range is four times that.
	if n := after.TotalAlloc - before.TotalAlloc; n > size/4 {
		t.Errorf("Verify of %d MiB allocated %d bytes, want at most a quarter of that", size>>20, n)
	}
	for _, at := range []int{0, verifyChunk - 101, verifyChunk + 200, 13<<20 + 5, size - 1} {
		got[at] ^= 0x80
		var m *Mismatch
		if err := d.Verify(0, got); !errors.As(err, &m) || m.Off != int64(at) || m.Len != 1 {
			t.Errorf("byte %d flipped: Verify = %v", at, err)
		}
		got[at] ^= 0x80
	}
}
