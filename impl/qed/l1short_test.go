package qed

import (
	"bytes"
	"encoding/binary"
	"os"
	"testing"

	"github.com/spf13/afero"
)

// TestReadOnlyShortL1 covers l1Entries: a read-only open keeps only the
// L1 entries below the image size, yet reads the same bytes as a writable
// open and Check still walks the whole L1 table from the file (an invalid
// entry past the image size is reported the same way).
func TestReadOnlyShortL1(t *testing.T) {
	fs := afero.NewMemMapFs()
	const cs, size = 4096, 1 << 20
	im := mustCreate(t, fs, "a.qed", CreateOptions{ClusterSize: cs, TableSize: 4, Size: size}, OpenOptions{})
	data := bytes.Repeat([]byte{0xa5}, 3*cs)
	if _, err := im.WriteAt(data, 5*cs); err != nil {
		t.Fatal(err)
	}
	if err := im.Close(); err != nil {
		t.Fatal(err)
	}
	// An invalid L1 entry far past the image size (entry 100).
	skipFinalCheck(t, "a.qed")
	f, err := fs.OpenFile("a.qed", os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	var e [8]byte
	binary.LittleEndian.PutUint64(e[:], 12345)
	if _, err := f.WriteAt(e[:], cs+100*entrySize); err != nil {
		t.Fatal(err)
	}
	f.Close()

	ro, err := Open(fs, "a.qed", OpenOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if got, want := ro.l1.len(), uint64(SectorSize/entrySize); got != want {
		t.Errorf("read-only L1 kept %d entries, want %d", got, want)
	}
	got := readAll(t, ro)
	want := make([]byte, size)
	copy(want[5*cs:], data)
	assertEqual(t, got, want)
	roRep, err := ro.Check(false)
	if err != nil {
		t.Fatal(err)
	}
	rw, err := Open(fs, "a.qed", OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer rw.Close()
	if rw.l1.len() != rw.geo.nelems {
		t.Errorf("writable L1 kept %d entries, want all %d", rw.l1.len(), rw.geo.nelems)
	}
	rwRep, err := rw.Check(false)
	if err != nil {
		t.Fatal(err)
	}
	if roRep.Corruptions != 1 || roRep.Corruptions != rwRep.Corruptions || roRep.Allocated != rwRep.Allocated || roRep.Leaks != rwRep.Leaks {
		t.Errorf("read-only check %+v, writable check %+v: want the same, with 1 corruption", roRep, rwRep)
	}
}
