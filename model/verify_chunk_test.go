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
	// The least of several runs: other tests' goroutines may allocate
	// meanwhile, and under -race sync.Pool drops items at random, so one
	// run may count another's bytes or a fresh chunk. A scratch as long as
	// the range would show in every run.
	least := uint64(1 << 62)
	for range 5 {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		if err := d.Verify(0, got); err != nil {
			t.Fatal(err)
		}
		runtime.ReadMemStats(&after)
		least = min(least, after.TotalAlloc-before.TotalAlloc)
	}
	if least > size/4 {
		t.Errorf("Verify of %d MiB allocated at least %d bytes in each of 5 runs, want at most a quarter of the range", size>>20, least)
	}
	// What the pool keeps is one chunk, not the range.
	sp := scratchPool.Get().(*[]byte)
	if cap(*sp) > verifyChunk {
		t.Errorf("the scratch pool keeps %d bytes after Verify of %d MiB, want at most one chunk (%d)", cap(*sp), size>>20, verifyChunk)
	}
	scratchPool.Put(sp)
	for _, at := range []int{0, verifyChunk - 101, verifyChunk + 200, 13<<20 + 5, size - 1} {
		got[at] ^= 0x80
		var m *Mismatch
		if err := d.Verify(0, got); !errors.As(err, &m) || m.Off != int64(at) || m.Len != 1 {
			t.Errorf("byte %d flipped: Verify = %v", at, err)
		}
		got[at] ^= 0x80
	}
}
