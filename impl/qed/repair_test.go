package qed

import (
	"encoding/binary"
	"errors"
	"math/rand/v2"
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

// TestRepairLeavingCorruptionSetsNeedCheck (issue 15, found by qedtorture
// repair): a repair that cannot remove a corruption (a double reference) on
// an image whose NEED_CHECK was clear sets NEED_CHECK, durably, so that the
// image no longer claims to be clean; before the fix the flag stayed clear
// over a doubly referenced cluster (format.md: NEED_CHECK clear implies
// consistent).
func TestRepairLeavingCorruptionSetsNeedCheck(t *testing.T) {
	fs := afero.NewMemMapFs()
	path := "/d.qed"
	im := mustCreate(t, fs, path, CreateOptions{Size: 64 * cs4k, ClusterSize: cs4k, TableSize: 1}, OpenOptions{})
	_, err := im.WriteAt(fill(2*cs4k, 7), 0)
	mustNil(t, err)
	mustNil(t, im.Close())
	skipFinalCheck(t, path)
	// Cluster 1's entry now points at cluster 0's data.
	pokeL2(t, fs, path, cs4k, l2Entry(t, fs, path, 0))
	rw, err := Open(fs, path, OpenOptions{IdleClearDelay: -1})
	mustNil(t, err)
	rep, err := rw.Check(true)
	mustNil(t, err)
	if rep.Corruptions != 1 || rep.CheckErrors != 0 {
		t.Fatalf("repair report %+v, want the double reference left and no check error", rep)
	}
	if h, _ := ReadHeader(fs, path); h.Features&FeatureNeedCheck == 0 {
		t.Error("NEED_CHECK clear in the file right after a repair that left a corruption")
	}
	mustNil(t, rw.Close())
	if h, _ := ReadHeader(fs, path); h.Features&FeatureNeedCheck == 0 {
		t.Error("NEED_CHECK clear after closing an image a repair left corrupt")
	}
}

// TestHeaderSizeZeroRefused (issue 15): header_size 0 is not a QED header
// (format.md: at least 1); an open refuses it with a FormatError naming the
// field, instead of opening (and repairing) it as QEMU 7.2 does.
func TestHeaderSizeZeroRefused(t *testing.T) {
	fs := afero.NewMemMapFs()
	path := "/h.qed"
	im := mustCreate(t, fs, path, CreateOptions{Size: 64 * cs4k, ClusterSize: cs4k}, OpenOptions{})
	mustNil(t, im.Close())
	skipFinalCheck(t, path)
	setHeaderField(t, fs, path, offHeaderSize, 4, 0)
	for _, ro := range []bool{false, true} {
		_, err := Open(fs, path, OpenOptions{ReadOnly: ro})
		var fe *FormatError
		if !errors.As(err, &fe) || fe.Field != "header_size" {
			t.Errorf("open (read-only %v) of header_size 0: %v, want a header_size FormatError", ro, err)
		}
	}
}

// TestNonZero: the check's zero-run skip finds the same entries as a plain
// scan, at every start, on tables with runs of every length.
func TestNonZero(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 200 {
		tbl := make([]uint64, rng.IntN(40))
		for i := range tbl {
			if rng.IntN(6) == 0 {
				tbl[i] = 1 + rng.Uint64N(3)
			}
		}
		for i := 0; i <= len(tbl); i++ {
			want := i
			for want < len(tbl) && tbl[want] == 0 {
				want++
			}
			if got := nonZero(tbl, i); got != want {
				t.Fatalf("nonZero(%v, %d) = %d, want %d", tbl, i, got, want)
			}
		}
	}
}
