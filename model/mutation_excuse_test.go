package model

import (
	"slices"
	"testing"
)

// Tests written for mutants of disk.go that survived model's suite
// (docs/mutation.md, "model: the code changed since 78d146e").

// TestExcuseCountsAndRecords: an excusal is one op, recorded over the
// clipped range [off, min(off+n, size)) with that length; an empty or
// out-of-range one changes nothing (no op, the disk not marked excused).
func TestExcuseCountsAndRecords(t *testing.T) {
	d, _ := New(4096, nil)
	mustWrite(t, d, 0, 4096)
	ops := d.Ops()
	for _, c := range [][2]int64{{100, 0}, {4096, 10}, {5000, 10}, {-1, 10}} {
		d.Excuse(c[0], c[1])
		if d.Ops() != ops || d.excused {
			t.Fatalf("Excuse(%d, %d): ops %d (was %d), excused %v: an empty excusal changed the disk", c[0], c[1], d.Ops(), ops, d.excused)
		}
	}
	d.Excuse(4000, 200) // clipped to [4000, 4096)
	if d.Ops() != ops+1 || !d.excused {
		t.Fatalf("Excuse(4000, 200): ops %d, want %d; excused %v", d.Ops(), ops+1, d.excused)
	}
	for _, m := range []extentMap{d.current, d.durable} {
		i := m.search(4000)
		if i >= len(m) || m[i].off != 4000 || m[i].end != 4096 || m[i].rec.Kind != KindUnknown || m[i].rec.Off != 4000 || m[i].rec.Len != 96 || m[i].rec.Op != ops+1 {
			t.Fatalf("the excusal's extent %+v (record %+v), want [4000, 4096) of 96 bytes at op %d", m[i], *m[i].rec, ops+1)
		}
	}
}

// TestPatternMemoBounded: the pattern memo keeps at most memoChunks
// chunks (32 MiB): asking twice for more distinct chunks than that (each
// generated and kept the second time) never holds more.
func TestPatternMemoBounded(t *testing.T) {
	for i := range memoChunks + 50 {
		k := memoKey{id: 0xbeef0000 + uint64(i), chunk: 3}
		memoChunkOf(k)
		if memoChunkOf(k) == nil {
			t.Fatalf("chunk %d asked for twice not kept", i)
		}
		memo.Lock()
		kept := 0
		for _, b := range memo.m {
			if b != nil {
				kept++
			}
		}
		n := memo.chunks
		memo.Unlock()
		if kept > memoChunks || n != kept {
			t.Fatalf("after %d chunks: %d kept, counted %d (at most %d)", i+1, kept, n, memoChunks)
		}
	}
}

// TestExcuseSurvivesRecoverUnderPendingWrite: excused bytes stay excused
// after a recovery even where a pending write explained the sector they
// share with bytes the write changed (the write chosen for the sector
// covers them too), and an excusal past the recovered size is not put
// back (oracle.go's Recover, docs/mutation.md: 421:13, 421:34, 421:58).
func TestExcuseSurvivesRecoverUnderPendingWrite(t *testing.T) {
	d, _ := New(4096, nil)
	d.Excuse(0, 100)
	mustWrite(t, d, 0, 512) // pending over the excused bytes' sector
	crashed := make([]byte, 4096)
	if err := d.ReadAt(crashed, 0); err != nil {
		t.Fatal(err)
	}
	if err := d.Recover(4096, (&crashDisk{data: crashed}).read); err != nil {
		t.Fatal(err)
	}
	got := slices.Clone(crashed)
	got[10] ^= 0xff // still excused
	if err := d.Verify(0, got); err != nil {
		t.Fatalf("an excused byte under the recovered write: %v", err)
	}
	got[200] ^= 0xff // the write's, not excused
	if err := d.Verify(0, got); err == nil {
		t.Fatal("a byte of the recovered write outside the excusal changed: Verify passed")
	}

	// An excusal of a grown range that the recovery does not keep (the
	// grow was pending): nothing of it comes back when the disk grows again.
	d, _ = New(4096, nil)
	if err := d.Grow(8192); err != nil {
		t.Fatal(err)
	}
	d.Excuse(4096, 4096)
	if err := d.Recover(4096, (&crashDisk{data: make([]byte, 4096)}).read); err != nil {
		t.Fatal(err)
	}
	if err := d.Grow(8192); err != nil {
		t.Fatal(err)
	}
	got = make([]byte, 8192)
	got[5000] = 1
	if err := d.Verify(0, got); err == nil {
		t.Fatal("the grown range after a recovery that dropped the excused grow allows any value")
	}
}
