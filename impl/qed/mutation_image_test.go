package qed

import (
	"os"
	"slices"
	"testing"
	"time"

	"github.com/qedtorture/qedtorture/crashsim"
	"github.com/spf13/afero"
)

// Tests written for mutants of image.go and io.go that survived impl/qed's suite
// (docs/mutation.md, "impl/qed: the code changed since 78d146e").

// TestGrowZerosStaleTail: bytes past the image size inside the last data
// cluster (an image size that ends mid-cluster) are not guaranteed zero
// (a safe rebase none copies a partial cluster whole); a grow checks that
// very tail and zeros it, so the guest reads zeros there afterwards,
// whatever the bytes before the cluster (here an L2 table's zero
// entries) hold.
func TestGrowZerosStaleTail(t *testing.T) {
	fs := afero.NewMemMapFs()
	path := "/g.qed"
	im := mustCreate(t, fs, path, CreateOptions{Size: cs4k + cs4k/2, ClusterSize: cs4k, TableSize: 1}, OpenOptions{IdleClearDelay: -1})
	_, err := im.WriteAt(fill(cs4k/2, 0x5A), cs4k)
	mustNil(t, err)
	mustNil(t, im.Close())
	host := l2Entry(t, fs, path, cs4k)
	f, err := fs.OpenFile(path, os.O_RDWR, 0)
	mustNil(t, err)
	_, err = f.WriteAt(fill(cs4k/2, 0xEE), int64(host)+cs4k/2) // stale bytes past the size
	mustNil(t, err)
	mustNil(t, f.Close())

	im, err = Open(fs, path, OpenOptions{IdleClearDelay: -1})
	mustNil(t, err)
	mustNil(t, im.Resize(4*cs4k))
	got := make([]byte, cs4k)
	mustRead(t, im, got, cs4k)
	want := append(fill(cs4k/2, 0x5A), make([]byte, cs4k/2)...)
	assertEqual(t, got, want)
	mustNil(t, im.Close())
}

// TestGrowBackingEndsAtTableSpan: a grow over a longer backing file
// zero-marks exactly [old size, backing end) and stops there: here the
// backing file ends where an L2 table's span ends (2 MiB, with no L2
// table beyond it: one more step made an L2 table for the next span and a
// zero mark in it), or inside the span (1.5 MiB: a lookup asked for more
// clusters than that marks them to the table's end). The guest reads the
// backing file below the old size and zeros above it.
func TestGrowBackingEndsAtTableSpan(t *testing.T) {
	const span = 512 * cs4k // one L2 table: 2 MiB
	for _, bend := range []int64{span, 3 * span / 4} {
		fs := afero.NewMemMapFs()
		mustNil(t, afero.WriteFile(fs, "/b.raw", fill(int(bend), 0x3C), 0o644))
		im := mustCreate(t, fs, "/t.qed", CreateOptions{Size: span / 2, ClusterSize: cs4k, TableSize: 1, BackingFile: "b.raw", BackingFormat: "raw"}, OpenOptions{IdleClearDelay: -1})
		done := make(chan error, 1)
		go func() { done <- im.Resize(2 * span) }()
		select {
		case err := <-done:
			mustNil(t, err)
		case <-time.After(20 * time.Second):
			t.Fatal("the grow did not return")
		}
		got := make([]byte, 2*span)
		mustRead(t, im, got, 0)
		want := append(fill(span/2, 0x3C), make([]byte, 3*span/2)...)
		assertEqual(t, got, want)
		ext, err := im.Map()
		mustNil(t, err)
		wantExt := []Extent{{Start: 0, Length: span / 2, Kind: ExtentUnallocated}, {Start: span / 2, Length: bend - span/2, Kind: ExtentZero}, {Start: bend, Length: 2*span - bend, Kind: ExtentUnallocated}}
		if !slices.Equal(ext, wantExt) {
			t.Errorf("backing file of %d bytes: map after the grow %+v, want %+v", bend, ext, wantExt)
		}
		mustNil(t, im.Close())
	}
}

// TestNewBigTableAtOpenLengthNotWritten: the first L2 table a new image
// with big (paged) tables allocates for a zero mark (no data cluster
// before it) lies exactly at the file's length at open; it is written as the sectors of its entries set (the file is
// extended over the rest), never as a whole table of zeros (256 KiB for
// QEMU's default geometry, 1 GiB at most).
func TestNewBigTableAtOpenLengthNotWritten(t *testing.T) {
	fs := crashsim.New(crashsim.Options{ImplicitDirSync: true})
	const cs = 64 << 10
	mustNil(t, Create(fs, "/n.qed", CreateOptions{Size: 1 << 30, ClusterSize: cs, TableSize: 4}))
	before := len(fs.Trace().Ops)
	im, err := Open(fs, "/n.qed", OpenOptions{IdleClearDelay: -1})
	mustNil(t, err)
	if !im.geo.sparseTables {
		t.Fatal("256 KiB tables are not paged")
	}
	// A zero mark allocates the table alone: at the length at open.
	mustNil(t, im.WriteZeroes(cs, cs))
	_, err = im.WriteAt(fill(cs, 0x21), 0)
	mustNil(t, err)
	mustNil(t, im.Close())
	for _, op := range fs.Trace().Ops[before:] {
		if op.Kind == crashsim.OpWrite && len(op.Data) > cs {
			t.Errorf("a write of %d bytes at %d: the new table written whole", len(op.Data), op.Off)
		}
	}
	got := make([]byte, cs)
	im, err = Open(fs, "/n.qed", OpenOptions{ReadOnly: true})
	mustNil(t, err)
	defer im.Close()
	mustRead(t, im, got, 0)
	assertEqual(t, got, fill(cs, 0x21))
}

// TestPagedTablesReadBack: on files that answer SEEK_DATA (an OS file;
// crashsim's, which know data to the sector), an image with 256 KiB
// tables whose L2 table has entries in its first and third pages (the
// third's only from its second sector on) reads them all back after a
// reopen: pages holding data are read wherever in the page the data
// starts, only the holes between them are skipped.
func TestPagedTablesReadBack(t *testing.T) {
	const cs = 64 << 10
	for _, c := range []struct {
		name string
		fs   afero.Fs
		path string
	}{
		{"os", afero.NewOsFs(), t.TempDir() + "/p.qed"},
		{"crashsim", crashsim.New(crashsim.Options{ImplicitDirSync: true}), "/p.qed"},
	} {
		fs, path := c.fs, c.path
		mustNil(t, Create(fs, path, CreateOptions{Size: 4 << 30, ClusterSize: cs, TableSize: 4}))
		// One open each: each writeback writes only its entry's sector.
		clusters := []int64{0, 3, 1100, 1500, 1535}
		for i, cl := range clusters {
			im, err := Open(fs, path, OpenOptions{IdleClearDelay: -1})
			mustNil(t, err)
			_, err = im.WriteAt(fill(512, byte(0x40+i)), cl*cs)
			mustNil(t, err)
			mustNil(t, im.Close())
		}
		for _, ro := range []bool{true, false} {
			im, err := Open(fs, path, OpenOptions{ReadOnly: ro, IdleClearDelay: -1})
			mustNil(t, err)
			if !im.seekData {
				t.Logf("%s: the file does not answer SEEK_DATA here", c.name)
			}
			for i, cl := range clusters {
				got := make([]byte, 512)
				mustRead(t, im, got, cl*cs)
				assertEqual(t, got, fill(512, byte(0x40+i)))
			}
			assertClean(t, im)
			mustNil(t, im.Close())
		}
	}
}
