package workload

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/qedtorture/qedtorture/props/target"
)

// Tests written for mutants of op_hostile.go's untouched-read helpers
// that survived the package's suite (docs/mutation.md).

// clusterReadDisk is a target.Disk over b whose reads of the cluster at
// failAt fail (failAt < 0: none).
type clusterReadDisk struct {
	target.Disk
	b      []byte
	failAt int64
}

func (d clusterReadDisk) Size() int64 { return int64(len(d.b)) }

func (d clusterReadDisk) ReadAt(p []byte, off int64) (int, error) {
	if d.failAt >= 0 && off == d.failAt {
		return 0, errors.New("injected")
	}
	if off >= int64(len(d.b)) {
		return 0, io.EOF
	}
	n := copy(p, d.b[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// TestGuestClusters: a guest of two and a half clusters reads as each
// cluster's bytes (the last one only its half) followed by a 0 byte, a
// cluster that fails to read as 0xff bytes followed by a 1 byte; and
// mismatchAt names the first cluster where two reads differ, -1 for
// none, the end of the shorter one when one is a prefix.
func TestGuestClusters(t *testing.T) {
	b := bytes.Repeat([]byte{7}, 2*hostileCS+hostileCS/2)
	b[2*hostileCS+5] = 9
	got := guestClusters(clusterReadDisk{b: b, failAt: -1})
	var want []byte
	want = append(append(want, b[:hostileCS]...), 0)
	want = append(append(want, b[hostileCS:2*hostileCS]...), 0)
	want = append(append(want, b[2*hostileCS:]...), 0)
	if !bytes.Equal(got, want) {
		t.Fatalf("guestClusters: %d bytes, want %d (the clusters, each with a 0 byte)", len(got), len(want))
	}
	failed := guestClusters(clusterReadDisk{b: b, failAt: hostileCS})
	wantF := append(append(append([]byte{}, want[:hostileCS+1]...), bytes.Repeat([]byte{0xff}, hostileCS)...), 1)
	wantF = append(wantF, want[2*(hostileCS+1):]...)
	if !bytes.Equal(failed, wantF) {
		t.Fatal("guestClusters: a failing cluster does not read as 0xff bytes and a 1 byte")
	}
	for _, c := range []struct {
		a, b []byte
		want int64
	}{
		{got, got, -1},
		{got, failed, hostileCS},
		{got, got[:2*(hostileCS+1)], 2 * hostileCS},
		{got[:hostileCS+1], got, hostileCS},
	} {
		if at := mismatchAt(c.a, c.b); at != c.want {
			t.Errorf("mismatchAt(%d bytes, %d bytes) = %d, want %d", len(c.a), len(c.b), at, c.want)
		}
	}
	changed := bytes.Clone(got)
	changed[2*(hostileCS+1)+5] = 8
	if at := mismatchAt(got, changed); at != 2*hostileCS {
		t.Errorf("mismatchAt with the last cluster changed = %d, want %d", at, 2*hostileCS)
	}
}
