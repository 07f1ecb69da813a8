package qed

import (
	"bytes"
	"errors"
	"testing"

	"github.com/qedtorture/qedtorture/internal/racetest"
	"github.com/spf13/afero"
)

// Tests written for mutants of io.go that survived the rest of the suite
// (docs/mutation.md, "Rest of io.go"). They pin behaviours of the write
// path that only the property tests of props exercised.

// pattern returns n bytes that differ from their neighbours and from
// fill's constant runs.
func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7) ^ seed | 1
	}
	return b
}

// TestWriteAcrossEndWritesNothing: a write reaching past the image size
// fails with ErrOutOfRange and writes nothing, also its part that lands in
// an allocated cluster inside the image; a write inside it reports every
// byte written.
func TestWriteAcrossEndWritesNothing(t *testing.T) {
	fs := afero.NewMemMapFs()
	im := mustCreate(t, fs, "/w/w.qed", CreateOptions{Size: 4 * cs4k, ClusterSize: cs4k}, OpenOptions{})
	if n, err := im.WriteAt(fill(cs4k, 1), 3*cs4k); n != cs4k || err != nil {
		t.Fatalf("WriteAt of a fresh cluster = %d, %v; want %d, nil", n, err, cs4k)
	}
	if n, err := im.WriteAt(fill(2*cs4k, 2), 3*cs4k); n != 0 || !errors.Is(err, ErrOutOfRange) {
		t.Fatalf("WriteAt across the end = %d, %v; want 0, ErrOutOfRange", n, err)
	}
	// Half in place (cluster 3 is allocated), half allocating (cluster 2).
	if n, err := im.WriteAt(fill(2*cs4k, 3), 2*cs4k); n != 2*cs4k || err != nil {
		t.Fatalf("WriteAt over a fresh and an allocated cluster = %d, %v; want %d, nil", n, err, 2*cs4k)
	}
	want := append(make([]byte, 2*cs4k), fill(2*cs4k, 3)...)
	assertEqual(t, readAll(t, im), want)
	mustNil(t, im.Close())
}

// TestAllocationFills: an allocating write fills the rest of its clusters
// by copy-on-write, whatever the shape of the write: a head and a tail of
// the same length, fills of fewer than 8 bytes (the zero test's word loop
// skips them), fill bytes that are all non-zero, and an allocation larger
// than the one-buffer limit (maxCOWBuffer) with a head and a tail.
func TestAllocationFills(t *testing.T) {
	racetest.Heavy(t)
	const size = 2*maxCOWBuffer + 4*cs4k
	base := make([]byte, size)
	copy(base, "ABC")                        // non-zero bytes, then zeros
	copy(base[cs4k:], pattern(size-cs4k, 5)) // no zero word past the first cluster
	for _, c := range []struct {
		name string
		off  int64
		n    int
	}{
		{"a head and a tail of one sector each", cs4k + 512, cs4k - 1024},
		{"a 3-byte head of non-zero bytes over a zero tail", 3, 5},
		{"a 3-byte head, a 4-byte tail", 3, 1},
		{"a 3-byte head over a later zero cluster", 3 * cs4k / 2, 2},
		{"larger than one buffer, with a head and a tail", cs4k + 512, maxCOWBuffer + cs4k},
	} {
		t.Run(c.name, func(t *testing.T) {
			fs := afero.NewMemMapFs()
			mustNil(t, afero.WriteFile(fs, "/f/base.raw", base, 0o644))
			for _, backed := range []bool{false, true} {
				co := CreateOptions{Size: size, ClusterSize: cs4k}
				want := make([]byte, size)
				if backed {
					co.BackingFile, co.BackingFormat = "base.raw", "raw"
					copy(want, base)
				}
				im := mustCreate(t, fs, "/f/top.qed", co, OpenOptions{})
				data := pattern(c.n, 9)
				if n, err := im.WriteAt(data, c.off); n != c.n || err != nil {
					t.Fatalf("backed %v: WriteAt = %d, %v", backed, n, err)
				}
				copy(want[c.off:], data)
				assertEqual(t, readAll(t, im), want)
				mustNil(t, im.Close())
				im, err := Open(fs, "/f/top.qed", OpenOptions{ReadOnly: true})
				mustNil(t, err)
				assertEqual(t, readAll(t, im), want)
				rep, err := im.Check(false)
				if err != nil || rep.Corruptions+rep.Leaks+rep.CheckErrors != 0 {
					t.Errorf("backed %v: check after the write: %v, %+v", backed, err, rep)
				}
				mustNil(t, im.Close())
			}
		})
	}
}

// TestL1ChangesAccumulate: L1 entries changed before one writeback are all
// written back: new L2 tables in three L1 slots in different sectors of the
// L1 table (a table write is rounded to whole sectors), in an order that
// first widens the dirty range upwards, then downwards, survive a reopen.
func TestL1ChangesAccumulate(t *testing.T) {
	fs := afero.NewMemMapFs()
	// One-cluster tables of 4 KiB clusters: 512 entries, 2 MiB per table.
	const span = 512 * cs4k
	im := mustCreate(t, fs, "/l/l.qed", CreateOptions{Size: 512 * span, ClusterSize: cs4k, TableSize: 1}, OpenOptions{})
	offs := []int64{70 * span, 200 * span, span} // L1 sectors 1, 3, 0
	for i, off := range offs {
		if _, err := im.WriteAt(fill(cs4k, byte(i+1)), off); err != nil {
			t.Fatal(err)
		}
	}
	mustNil(t, im.Close())
	im, err := Open(fs, "/l/l.qed", OpenOptions{ReadOnly: true})
	mustNil(t, err)
	defer im.Close()
	for i, off := range offs {
		p := make([]byte, cs4k)
		_, err := im.ReadAt(p, off)
		mustNil(t, err)
		if !bytes.Equal(p, fill(cs4k, byte(i+1))) {
			t.Errorf("write %d at %d lost after reopen (L1 entry not written back)", i, off)
		}
	}
}

// TestZeroesOverLongDataRun: write-zeroes over a run of allocated clusters
// longer than its 4 MiB zero buffer (and not a multiple of it) zeroes that
// run in place, all of it and nothing past it.
func TestZeroesOverLongDataRun(t *testing.T) {
	fs := afero.NewMemMapFs()
	const size = 6 << 20
	im := mustCreate(t, fs, "/z/z.qed", CreateOptions{Size: size, ClusterSize: cs4k}, OpenOptions{})
	data := pattern(size, 3)
	if _, err := im.WriteAt(data, 0); err != nil {
		t.Fatal(err)
	}
	const zeroed = 5<<20 + 3*cs4k
	mustNil(t, im.WriteZeroes(0, zeroed))
	want := append(make([]byte, zeroed), data[zeroed:]...)
	assertEqual(t, readAll(t, im), want)
	mustNil(t, im.Close())
	im, err := Open(fs, "/z/z.qed", OpenOptions{ReadOnly: true})
	mustNil(t, err)
	defer im.Close()
	assertEqual(t, readAll(t, im), want)
}
