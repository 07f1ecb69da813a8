package check

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"syscall"
	"testing"
)

// sparseReader serves b as a sparse file: 4 KiB pages of zeros are holes
// that SEEK_DATA skips (as crashsim's files and Linux's report them), and
// it counts the bytes read. With grain set, its holes are runs of zeros
// of that granularity instead (1: SEEK_DATA answers the first non-zero
// byte itself); answers lists what SEEK_DATA answered.
type sparseReader struct {
	b       []byte
	read    int64
	grain   int64
	answers []int64
}

func (r *sparseReader) ReadAt(p []byte, off int64) (int, error) {
	if off >= int64(len(r.b)) {
		return 0, io.EOF
	}
	n := copy(p, r.b[off:])
	r.read += int64(n)
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (r *sparseReader) Seek(off int64, whence int) (int64, error) {
	if whence != seekData {
		return 0, errors.New("sparseReader: only SEEK_DATA")
	}
	g := r.grain
	if g == 0 {
		g = 4096
	}
	for pg := off / g * g; pg < int64(len(r.b)); pg += g {
		for _, c := range r.b[pg:min(pg+g, int64(len(r.b)))] {
			if c != 0 {
				r.answers = append(r.answers, max(pg, off))
				return max(pg, off), nil
			}
		}
	}
	return 0, syscall.ENXIO
}

// TestSparseTablesSkipped: with a source that reports its holes (SEEK_DATA),
// the walk reads only the pages of the tables that hold entries, and the
// report is exactly the one of the bytes read whole.
func TestSparseTablesSkipped(t *testing.T) {
	// 64 KiB clusters, 16-cluster tables: 1 MiB tables; entries set at
	// the start, middle and end of the L1 and L2 tables.
	im := newTestImage(t, 65536, 16, 1, 1<<40)
	per := im.entries()
	for _, gc := range []uint64{0, 1, per / 2, per - 1, per*per/2 + 3, per*per - 1} {
		im.write(gc, 0xab)
	}
	im.zero(7)
	want := Structure(im.buf)
	r := &sparseReader{b: im.buf}
	got, err := ReaderAt(r, int64(len(im.buf)))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("sparse walk's report differs:\n got %+v\nwant %+v", got, want)
	}
	if want.L2Tables != 3 || want.AllocatedClusters != 6 {
		t.Fatalf("test image: %d L2 tables, %d clusters; want 3 and 6", want.L2Tables, want.AllocatedClusters)
	}
	// Four tables of 1 MiB were walked; the pages holding entries are
	// at most a few chunks each.
	if limit := int64(4 * 3 * readerChunk); r.read > limit {
		t.Fatalf("read %d bytes of the tables, want at most %d (holes skipped)", r.read, limit)
	}
	t.Logf("read %d of %d bytes", r.read, len(im.buf))

	// A real sparse file (Linux answers SEEK_DATA; elsewhere the walk
	// reads everything): the same report.
	path := filepath.Join(t.TempDir(), "img.qed")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(int64(len(im.buf))); err != nil {
		t.Fatal(err)
	}
	for pg := 0; pg < len(im.buf); pg += 4096 {
		page := im.buf[pg:min(pg+4096, len(im.buf))]
		for _, c := range page {
			if c != 0 {
				if _, err := f.WriteAt(page, int64(pg)); err != nil {
					t.Fatal(err)
				}
				break
			}
		}
	}
	got, err = File(f)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("walk of a sparse os.File differs:\n got %+v\nwant %+v", got, want)
	}
}

// TestSparseDataOffBlocks: SEEK_DATA may answer any offset up to a
// table's first non-zero byte, not only a page's (a byte-exact source
// here): the walk then reads a table from that entry on, and its chunk
// ends off a 256-byte block of zeroRun's, in a buffer exactly as long
// (the first read of a fresh Checker). The report is the one of the
// bytes read whole. (Killed the mutants of zeroRun's bound,
// `j-zeroBlockLen <= len(b)` and `j+zeroBlockLen > len(b)`: both compare
// a block reaching past the chunk and panicked.)
func TestSparseDataOffBlocks(t *testing.T) {
	// 4 KiB clusters, one-cluster tables: L1 entries 1 and 2 set (entry 0
	// not), the first L2 table's entries 3 and 100, the second's last.
	im := newTestImage(t, 4096, 1, 1, 1<<30)
	per := im.entries()
	for _, gc := range []uint64{per + 3, per + 100, 3*per - 1} {
		im.write(gc, 0xab)
	}
	want := Structure(im.buf)
	if want.L2Tables != 2 || want.AllocatedClusters != 3 {
		t.Fatalf("test image: %d L2 tables, %d clusters; want 2 and 3", want.L2Tables, want.AllocatedClusters)
	}
	r := &sparseReader{b: im.buf, grain: 1}
	var c Checker
	got, err := c.CheckReaderAt(r, int64(len(im.buf)))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("report differs:\n got %+v\nwant %+v", got, want)
	}
	// The walk asked, and the answers lay off the blocks: inside L1 entry
	// 1 and L2 entry 3 of the first table.
	off := 0
	for _, a := range r.answers {
		if (a-int64(im.l1))%zeroBlockLen != 0 {
			off++
		}
	}
	if off < 2 {
		t.Fatalf("SEEK_DATA answers %v: want at least two off a 256-byte block", r.answers)
	}
}
