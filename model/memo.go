package model

import "sync"

// The pattern memo (perf, issue 19 goal 5). Judging a crash state
// generates the bytes of the durable contents and of every pending write
// over the ranges it reads back (the sector rule compares them with what
// was read): with megabyte writes that was an eighth of a campaign's CPU,
// spent again on every state of a crash point, whose writes are the same.
// A pattern's bytes are a function of (id, guest offset) alone (Fill), so
// a chunk generated once may serve every later request for the same id and
// offsets, in any disk, clone or workload: the memo cannot be stale.
//
// Records' expect (the sector rule, Verify, VerifyCrash, the durable and
// current reads) goes through fillMemo: a chunk asked for a second time is
// generated whole and kept; the first request fills only what it needs
// (a single small read does not pay for a whole chunk). The memo is
// process-wide, safe for concurrent use, and bounded: at memoChunks
// chunks (memoChunks*memoChunk bytes) or memoSeen remembered first
// requests, it starts over.

// memoChunk is the granularity of the memo: guest offsets [c*memoChunk,
// (c+1)*memoChunk) of one pattern id.
const memoChunk = 64 << 10

const (
	memoChunks = 512 // 32 MiB
	memoSeen   = 1 << 14
)

type memoKey struct {
	id    uint64
	chunk int64
}

var memo struct {
	sync.Mutex
	m      map[memoKey]*[memoChunk]byte // nil value: asked for once
	chunks int
}

// fillMemo is Fill, served from the memo when it can be.
func fillMemo(p []byte, id uint64, off int64) {
	for len(p) > 0 {
		c := off / memoChunk
		at := int(off - c*memoChunk)
		n := min(len(p), memoChunk-at)
		if b := memoChunkOf(memoKey{id, c}); b != nil {
			copy(p[:n], b[at:])
		} else {
			Fill(p[:n], id, off)
		}
		p, off = p[n:], off+int64(n)
	}
}

// memoChunkOf returns the bytes of chunk k, generating and keeping them
// when k was asked for before; nil (and k remembered) the first time.
func memoChunkOf(k memoKey) *[memoChunk]byte {
	memo.Lock()
	defer memo.Unlock()
	b, seen := memo.m[k]
	if b != nil {
		return b
	}
	if memo.m == nil || memo.chunks >= memoChunks || len(memo.m) >= memoSeen {
		memo.m, memo.chunks = map[memoKey]*[memoChunk]byte{}, 0
		seen = false
	}
	if !seen {
		memo.m[k] = nil
		return nil
	}
	b = new([memoChunk]byte)
	Fill(b[:], k.id, k.chunk*memoChunk)
	memo.m[k] = b
	memo.chunks++
	return b
}
