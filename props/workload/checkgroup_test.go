package workload

import (
	"errors"
	"fmt"
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
		if err := e.checkGroup(group, data); err != nil {
			t.Fatalf("a legal read-back (order %v) failed: %v", order, err)
		}
	}
	// Interleaved inside the overlap: the first half of it from write 1,
	// the rest from write 2; each byte is one of theirs.
	mixed := img(0, 1, 2)
	copy(mixed[200000:250000], data[0][200000-4096:])
	if err := (&Exec{Model: m, Disk: bytesDisk{b: mixed}}).checkGroup(group, data); err != nil {
		t.Fatalf("an interleaved overlap failed: %v", err)
	}
	for _, bad := range []int64{5000, 150000, 250001, 499999, 600100} {
		b := img(0, 1, 2)
		b[bad] ^= 0xff
		err := (&Exec{Model: m, Disk: bytesDisk{b: b}}).checkGroup(group, data)
		if !errors.Is(err, ErrDataMismatch) || !strings.Contains(err.Error(), fmt.Sprintf("byte at %#x", bad)) {
			t.Errorf("a wrong byte at %d: %v, want ErrDataMismatch at its offset", bad, err)
		}
	}
}
