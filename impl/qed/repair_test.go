package qed

import (
	"encoding/binary"
	"testing"

	"github.com/spf13/afero"
)

// l1Entry reads L1[i] straight from the file.
func l1Entry(t *testing.T, fs afero.Fs, path string, i uint64) uint64 {
	t.Helper()
	h, err := ReadHeader(fs, path)
	mustNil(t, err)
	f, err := fs.Open(path)
	mustNil(t, err)
	defer f.Close()
	var b [8]byte
	_, err = f.ReadAt(b[:], int64(h.L1TableOffset+i*8))
	mustNil(t, err)
	return binary.LittleEndian.Uint64(b[:])
}

// TestRepairIsWritten: a repair writes its fixes to the file before it
// reports them (and before NEED_CHECK is cleared): right after Check(true),
// and right after an open-time repair, the invalid L1 and L2 entries read
// as 0 from the file itself, and a read-only check of the file (which reads
// every table from it) finds nothing but the leaked cluster.
func TestRepairIsWritten(t *testing.T) {
	// 4 KiB clusters, one-cluster tables: 512 entries, an L2 table maps
	// 2 MiB; the image spans L1[0..3].
	const l2Span = 512 * cs4k
	for _, how := range []string{"check", "open"} {
		t.Run(how, func(t *testing.T) {
			fs := afero.NewMemMapFs()
			path := "/r.qed"
			im := mustCreate(t, fs, path, CreateOptions{Size: 4 * l2Span, ClusterSize: cs4k, TableSize: 1}, OpenOptions{})
			_, err := im.WriteAt(fill(2*cs4k, 7), 0)
			mustNil(t, err)
			_, err = im.WriteAt(fill(cs4k, 8), l2Span)
			mustNil(t, err)
			mustNil(t, im.Close())
			// Plant: L2 entry of cluster 1 past the end, L1[1] unaligned,
			// L1[2] past the end.
			pokeL2(t, fs, path, cs4k, 1<<30)
			h, err := ReadHeader(fs, path)
			mustNil(t, err)
			setHeaderField(t, fs, path, int64(h.L1TableOffset)+8, 8, l1Entry(t, fs, path, 1)+8)
			setHeaderField(t, fs, path, int64(h.L1TableOffset)+16, 8, 1<<40)
			var rep CheckReport
			var rw *Image
			if how == "open" {
				setHeaderField(t, fs, path, offFeatures, 8, FeatureNeedCheck)
				rw, err = Open(fs, path, OpenOptions{})
				mustNil(t, err)
				if rw.Header().Features&FeatureNeedCheck != 0 {
					t.Fatal("NEED_CHECK still set after the open-time repair")
				}
			} else {
				rw, err = Open(fs, path, OpenOptions{})
				mustNil(t, err)
				rep, err = rw.Check(true)
				mustNil(t, err)
				if rep.CorruptionsFixed != 3 || rep.Corruptions != 0 {
					t.Fatalf("repair report %+v, want 3 fixed, none left", rep)
				}
			}
			// The fixes are in the file now, before any close.
			if v := l2Entry(t, fs, path, cs4k); v != 0 {
				t.Errorf("L2 entry of cluster 1 reads %#x from the file after the repair, want 0", v)
			}
			for _, i := range []uint64{1, 2} {
				if v := l1Entry(t, fs, path, i); v != 0 {
					t.Errorf("L1[%d] reads %#x from the file after the repair, want 0", i, v)
				}
			}
			if hd, _ := ReadHeader(fs, path); how == "open" && hd.Features&FeatureNeedCheck != 0 {
				t.Error("NEED_CHECK still set in the file after the open-time repair")
			}
			ro, err := Open(fs, path, OpenOptions{ReadOnly: true})
			mustNil(t, err)
			rep, err = ro.Check(false)
			mustNil(t, err)
			ro.Close()
			// Leaked now: cluster 1's data, the table L1[1] pointed to and
			// the data cluster that table mapped.
			if rep.Corruptions != 0 || rep.Leaks != 3 || rep.Allocated != 1 {
				t.Errorf("read-only check of the repaired file: %+v, want no corruption, 3 leaks, 1 allocated", rep)
			}
			mustNil(t, rw.Close())
			skipFinalCheck(t, path) // leaks remain, by design
		})
	}
}
