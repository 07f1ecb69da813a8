package workload

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/qedtorture/qedtorture/model"
	"github.com/qedtorture/qedtorture/props/target"
)

// bytesDisk is a target.Disk reading from a byte slice (reads only).
type bytesDisk struct {
	target.Disk
	b []byte
}

func (d bytesDisk) ReadAt(p []byte, off int64) (int, error) { return copy(p, d.b[off:]), nil }

// TestCheckGroupBytes: after a concurrent group, every byte a request
// covers must be one of the covering requests' values, stretch by stretch
// between the requests' edges: a read-back where overlapping writes landed
// in either order, or interleaved at a stretch's edge, passes; one byte
// that no covering request wrote (inside a long stretch, inside the
// overlap, inside a write-zeroes) fails at its offset.
func TestCheckGroupBytes(t *testing.T) {
	const size = 1 << 20
	m, err := model.New(size, nil)
	if err != nil {
		t.Fatal(err)
	}
	group := []Op{
		{Kind: Write, Off: 4096, Len: 300000, ID: 1},
		{Kind: Write, Off: 200000, Len: 300000, ID: 2},
		{Kind: WriteZeroes, Off: 600000, Len: 5000},
	}
	data := groupData(group, false)
	// img applies the group's requests in the given order.
	img := func(order ...int) []byte {
		b := make([]byte, size)
		for i := range b {
			b[i] = 0xee // outside the group: not judged
		}
		for _, j := range order {
			sub := group[j]
			if data[j] == nil {
				clear(b[sub.Off : sub.Off+sub.Len])
				continue
			}
			copy(b[sub.Off:], data[j])
		}
		return b
	}
	for _, order := range [][]int{{0, 1, 2}, {1, 0, 2}, {2, 1, 0}} {
		e := &Exec{Model: m, Disk: bytesDisk{b: img(order...)}}
		if err := e.checkGroup(group, data, false); err != nil {
			t.Fatalf("a legal read-back (order %v) failed: %v", order, err)
		}
	}
	// Interleaved inside the overlap: the first half of it from write 1,
	// the rest from write 2; each byte is one of theirs.
	mixed := img(0, 1, 2)
	copy(mixed[200000:250000], data[0][200000-4096:])
	if err := (&Exec{Model: m, Disk: bytesDisk{b: mixed}}).checkGroup(group, data, false); err != nil {
		t.Fatalf("an interleaved overlap failed: %v", err)
	}
	for _, bad := range []int64{5000, 150000, 250001, 499999, 600100} {
		b := img(0, 1, 2)
		b[bad] ^= 0xff
		err := (&Exec{Model: m, Disk: bytesDisk{b: b}}).checkGroup(group, data, false)
		if !errors.Is(err, ErrDataMismatch) || !strings.Contains(err.Error(), fmt.Sprintf("byte at %#x", bad)) {
			t.Errorf("a wrong byte at %d: %v, want ErrDataMismatch at its offset", bad, err)
		}
	}
}

// patternDisk is a bytesDisk that verifies byte patterns itself
// (target.PatternVerifier), counting what it was asked.
type patternDisk struct {
	bytesDisk
	reads, verifies *int
}

func (d patternDisk) ReadAt(p []byte, off int64) (int, error) {
	*d.reads++
	return d.bytesDisk.ReadAt(p, off)
}

func (d patternDisk) VerifyPattern(off, n int64, b byte) (bool, error) {
	*d.verifies++
	return !slices.ContainsFunc(d.b[off:off+n], func(x byte) bool { return x != b }), nil
}

// TestCheckGroupPatterns: a pattern-only group read back through a
// target.PatternVerifier has the Disk verify each stretch one value
// covers (no read), reads only a stretch that fails that or that two
// values may fill, and reaches the checker's verdicts: legal orders pass,
// one wrong byte fails at its offset.
func TestCheckGroupPatterns(t *testing.T) {
	const size = 1 << 20
	m, err := model.New(size, nil)
	if err != nil {
		t.Fatal(err)
	}
	group := []Op{
		{Kind: Write, Off: 4096, Len: 300000, ID: 1},
		{Kind: Write, Off: 200000, Len: 300000, ID: 2}, // overlaps the first
		{Kind: WriteZeroes, Off: 600000, Len: 5000},
		{Kind: Write, Off: 700000, Len: 4096, ID: 3},
	}
	data := groupData(group, true)
	img := func(order ...int) []byte {
		b := make([]byte, size)
		for i := range b {
			b[i] = 0xee
		}
		for _, j := range order {
			sub := group[j]
			if data[j] == nil {
				clear(b[sub.Off : sub.Off+sub.Len])
				continue
			}
			copy(b[sub.Off:], data[j])
		}
		return b
	}
	run := func(b []byte) (reads, verifies int, err error) {
		err = (&Exec{Model: m, Disk: patternDisk{bytesDisk{b: b}, &reads, &verifies}}).checkGroup(group, data, true)
		return reads, verifies, err
	}
	for _, order := range [][]int{{0, 1, 2, 3}, {1, 0, 3, 2}} {
		reads, verifies, err := run(img(order...))
		if err != nil {
			t.Fatalf("a legal read-back (order %v) failed: %v", order, err)
		}
		// Stretches: [4096,200000) one value, [200000,304096) two,
		// [304096,500000) one, the write-zeroes, write 3; the gaps are
		// not judged.
		if reads != 1 || verifies != 4 {
			t.Errorf("order %v: %d reads, %d verifications; want 1 (the overlap) and 4", order, reads, verifies)
		}
	}
	for _, bad := range []int64{5000, 250001, 499999, 600100, 703000} {
		b := img(0, 1, 2, 3)
		b[bad] ^= 0xff
		reads, _, err := run(b)
		if !errors.Is(err, ErrDataMismatch) || !strings.Contains(err.Error(), fmt.Sprintf("byte at %#x", bad)) {
			t.Errorf("a wrong byte at %d: %v, want ErrDataMismatch at its offset", bad, err)
		}
		if reads > 2 {
			t.Errorf("a wrong byte at %d: %d reads, want at most 2", bad, reads)
		}
	}
	// Without pattern mode the verifier is not asked.
	var reads, verifies int
	if err := (&Exec{Model: m, Disk: patternDisk{bytesDisk{b: img(0, 1, 2, 3)}, &reads, &verifies}}).checkGroup(group, groupData(group, false), false); err == nil || verifies != 0 {
		t.Errorf("pattern data judged as Fill data: %v, %d verifications", err, verifies)
	}
}
