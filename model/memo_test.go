package model

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/qedtorture/qedtorture/internal/racetest"
)

// TestFillMemo: fillMemo gives Fill's bytes for any id, offset and
// length, first asked, asked again (from a kept chunk), across chunk
// boundaries and across the memo's resets.
func TestFillMemo(t *testing.T) {
	racetest.Heavy(t)
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 1))
	for i := range 3000 {
		id := 1 + r.Uint64N(40)
		off := r.Int64N(8 << 20)
		n := 1 + r.IntN(3*memoChunk)
		if i%3 == 0 {
			n = 1 + r.IntN(600)
		}
		want, got := make([]byte, n), make([]byte, n)
		Fill(want, id, off)
		for range 2 {
			fillMemo(got, id, off)
			if !bytes.Equal(got, want) {
				t.Fatalf("id %d [%#x,+%#x): fillMemo differs from Fill", id, off, n)
			}
		}
	}
	memo.Lock()
	chunks := memo.chunks
	memo.Unlock()
	if chunks == 0 {
		t.Fatal("no chunk kept: the memo was not exercised")
	}
}
