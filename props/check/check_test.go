package check

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/afero"
)

// corruption plants one fault in smallImage by poking bytes.
type corruption struct {
	name  string
	poke  func(im *testImage)
	want  []ViolationKind // exact set of kinds (ViolNeedCheckClearButInconsistent included)
	qemu  bool            // QEMU opens the image: its check counts are comparable
	corr  int             // expected Corruptions()
	leaks uint64          // expected Leaks when walked
}

const (
	smallL2a = 0x4000
	smallL2b = 0x9000
	smallD0  = 0x6000
	smallD3  = 0xb000
)

// l2aEntry is the host offset of entry k of the first L2 table.
func l2aEntry(k uint64) uint64 { return smallL2a + k*entrySize }

var nccOnly = ViolNeedCheckClearButInconsistent

func corruptions() []corruption {
	return []corruption{
		{name: "clean", poke: func(*testImage) {}, want: nil, qemu: true},
		{name: "data-misaligned", poke: func(im *testImage) { im.put64(l2aEntry(0), smallD0+512) },
			want: []ViolationKind{ViolDataMisaligned, nccOnly}, qemu: true, corr: 1, leaks: 1},
		{name: "data-past-eof", poke: func(im *testImage) { im.put64(l2aEntry(1), 0x100000) },
			want: []ViolationKind{ViolDataPastEOF, nccOnly}, qemu: true, corr: 1, leaks: 1},
		{name: "data-at-eof", poke: func(im *testImage) { im.put64(l2aEntry(1), 0xc000) },
			want: []ViolationKind{ViolDataPastEOF, nccOnly}, qemu: true, corr: 1, leaks: 1},
		{name: "data-in-header", poke: func(im *testImage) { im.put64(l2aEntry(2), 0x1000) },
			want: []ViolationKind{ViolDataInHeader, nccOnly}, qemu: true, corr: 1, leaks: 1},
		{name: "data-data", poke: func(im *testImage) { im.put64(l2aEntry(1), smallD0) },
			want: []ViolationKind{ViolDoubleRefDataData, nccOnly}, qemu: true, corr: 1, leaks: 1},
		{name: "data-into-l2", poke: func(im *testImage) { im.put64(l2aEntry(1), smallL2b) },
			// d1 leaks; L2b collides with the data reference and is not
			// walked, so d3 leaks too.
			want: []ViolationKind{ViolDoubleRefTableData, nccOnly}, qemu: true, corr: 1, leaks: 2},
		{name: "data-into-l1", poke: func(im *testImage) { im.put64(l2aEntry(1), 0x2000) },
			want: []ViolationKind{ViolDoubleRefTableData, nccOnly}, qemu: true, corr: 1, leaks: 1},
		{name: "l2-overlaps-l2", poke: func(im *testImage) { im.put64(im.l1Entry(1), smallL2a+0x1000) },
			// [0x5000, 0x7000) overlaps L2a's second cluster and d0; L2b and d3
			// are no longer linked and leak.
			want: []ViolationKind{ViolDoubleRefTableTable, ViolDoubleRefTableData, nccOnly}, qemu: true, corr: 2, leaks: 3},
		{name: "l2-is-l1", poke: func(im *testImage) { im.put64(im.l1Entry(1), im.l1) },
			want: []ViolationKind{ViolDoubleRefTableTable, nccOnly}, qemu: true, corr: 2, leaks: 3},
		{name: "l2-over-data", poke: func(im *testImage) { im.put64(im.l1Entry(1), smallD0) },
			// The table [d0, d1] collides with two data clusters.
			want: []ViolationKind{ViolDoubleRefTableData, nccOnly}, qemu: true, corr: 2, leaks: 3},
		{name: "l1-entry-past-eof", poke: func(im *testImage) { im.put64(im.l1Entry(1), smallD3) },
			want: []ViolationKind{ViolTablePastEOF, nccOnly}, qemu: true, corr: 1, leaks: 3},
		{name: "l1-entry-misaligned", poke: func(im *testImage) { im.put64(im.l1Entry(1), smallL2b+8) },
			want: []ViolationKind{ViolTableMisaligned, nccOnly}, qemu: true, corr: 1, leaks: 3},
		{name: "l1-entry-in-header", poke: func(im *testImage) { im.put64(im.l1Entry(1), 0x1000) },
			want: []ViolationKind{ViolTableInHeader, nccOnly}, qemu: true, corr: 1, leaks: 3},
		{name: "need-check-set-dangling", poke: func(im *testImage) {
			im.put64(l2aEntry(1), 0x100000)
			im.setFeatures(featNeedCheck)
		}, want: []ViolationKind{ViolDataPastEOF}, qemu: true, corr: 1, leaks: 1},
		{name: "truncated-last-cluster", poke: func(im *testImage) { im.buf = im.buf[:0xb800] },
			want: []ViolationKind{ViolDataPastEOF, nccOnly}, qemu: true, corr: 1, leaks: 0},
		{name: "two-faults", poke: func(im *testImage) {
			im.put64(l2aEntry(0), smallD0+8)
			im.put64(smallL2b, 0x100000)
		}, want: []ViolationKind{ViolDataMisaligned, ViolDataPastEOF, nccOnly}, qemu: true, corr: 2, leaks: 2},
		// Header faults: QEMU refuses to open these images.
		{name: "bad-magic", poke: func(im *testImage) { im.buf[0] = 'X' },
			want: []ViolationKind{ViolBadMagic}},
		{name: "cluster-size-not-pow2", poke: func(im *testImage) { im.put32(hdrClusterSize, 3000) },
			want: []ViolationKind{ViolBadClusterSize, nccOnly}},
		{name: "cluster-size-too-big", poke: func(im *testImage) { im.put32(hdrClusterSize, 128<<20) },
			want: []ViolationKind{ViolBadClusterSize, nccOnly}},
		{name: "table-size-3", poke: func(im *testImage) { im.put32(hdrTableSize, 3) },
			want: []ViolationKind{ViolBadTableSize, nccOnly}},
		{name: "table-size-32", poke: func(im *testImage) { im.put32(hdrTableSize, 32) },
			want: []ViolationKind{ViolBadTableSize, nccOnly}},
		{name: "unknown-feature", poke: func(im *testImage) { im.setFeatures(0x10) },
			want: []ViolationKind{ViolUnknownFeatures, nccOnly}, leaks: 0},
		{name: "backing-name-outside-header", poke: func(im *testImage) {
			im.setFeatures(featBacking)
			im.put32(hdrBackingOffset, 8000)
			im.put32(hdrBackingSize, 1000)
		}, want: []ViolationKind{ViolBadBackingName, nccOnly}},
		{name: "backing-name-huge", poke: func(im *testImage) {
			im.setFeatures(featBacking | featNoProbe)
			im.put32(hdrBackingOffset, 0xffffffff)
			im.put32(hdrBackingSize, 0xffffffff)
		}, want: []ViolationKind{ViolBadBackingName, nccOnly}},
		{name: "no-probe-without-backing", poke: func(im *testImage) { im.setFeatures(featNoProbe) },
			want: []ViolationKind{ViolNoProbeWithoutBacking}},
		{name: "image-size-unaligned", poke: func(im *testImage) { im.put64(hdrImageSize, 8<<20+100) },
			want: []ViolationKind{ViolBadImageSize, nccOnly}},
		{name: "image-size-too-big", poke: func(im *testImage) { im.put64(hdrImageSize, 4<<30+512) },
			// 4 KiB clusters, 1024 entries: at most 1024*1024*4 KiB = 4 GiB.
			want: []ViolationKind{ViolBadImageSize, nccOnly}},
		{name: "header-size-0", poke: func(im *testImage) { im.put32(hdrHeaderSize, 0) },
			// Treated as 1 cluster: the fixture's second header cluster leaks.
			want: []ViolationKind{ViolBadHeaderSize, nccOnly}, leaks: 1},
		{name: "header-size-overflow", poke: func(im *testImage) { im.put32(hdrHeaderSize, 1<<20) },
			want: []ViolationKind{ViolBadHeaderSize, ViolTableInHeader, nccOnly}},
		{name: "l1-offset-misaligned", poke: func(im *testImage) { im.put64(hdrL1TableOffset, 0x2010) },
			want: []ViolationKind{ViolTableMisaligned, nccOnly}},
		{name: "l1-offset-past-eof", poke: func(im *testImage) { im.put64(hdrL1TableOffset, 0xffffffffffff0000) },
			want: []ViolationKind{ViolTablePastEOF, nccOnly}},
		{name: "need-check-set-bad-l1-offset", poke: func(im *testImage) {
			im.put64(hdrL1TableOffset, 0x2010)
			im.setFeatures(featNeedCheck)
		}, want: []ViolationKind{ViolTableMisaligned}},
		{name: "need-check-set-double-ref", poke: func(im *testImage) {
			im.put64(l2aEntry(1), smallD0)
			im.setFeatures(featNeedCheck)
		}, want: []ViolationKind{ViolDoubleRefDataData}, qemu: true, corr: 1, leaks: 1},
		{name: "short-file", poke: func(im *testImage) { im.buf = im.buf[:10] },
			want: []ViolationKind{ViolShortFile}},
	}
}

func TestCheckStructureCorruptions(t *testing.T) {
	for _, tc := range corruptions() {
		t.Run(tc.name, func(t *testing.T) {
			im := smallImage(t)
			tc.poke(im)
			rep := Structure(im.buf)
			if got := rep.Kinds(); !slices.Equal(got, tc.want) {
				t.Fatalf("kinds = %v, want %v\n%s", got, tc.want, rep)
			}
			if got := rep.Corruptions(); got != tc.corr {
				t.Errorf("Corruptions() = %d, want %d\n%s", got, tc.corr, rep)
			}
			if rep.Walked && rep.Leaks != tc.leaks {
				t.Errorf("Leaks = %d, want %d\n%s", rep.Leaks, tc.leaks, rep)
			}
			wantConsistent := len(tc.want) == 0 || slices.Equal(tc.want, []ViolationKind{ViolNoProbeWithoutBacking})
			if rep.IsConsistent() != wantConsistent {
				t.Errorf("IsConsistent() = %v, want %v", rep.IsConsistent(), wantConsistent)
			}
			wantRepairable := wantConsistent || tc.name == "need-check-set-dangling"
			if rep.RepairableByCheck() != wantRepairable {
				t.Errorf("RepairableByCheck() = %v, want %v", rep.RepairableByCheck(), wantRepairable)
			}
			if err := rep.Err(); (err == nil) != wantConsistent || (err != nil && !errors.Is(err, ErrInconsistent)) {
				t.Errorf("Err() = %v", err)
			}
			// Every stored violation names a location and explains itself.
			for _, v := range rep.Violations {
				if v.At.Kind == LocNone || v.Msg == "" || !strings.Contains(rep.String(), v.Kind.String()) {
					t.Errorf("violation lacks location or message, or is missing from String(): %+v", v)
				}
				if v.Kind.isDoubleRef() && v.Prior.Kind == LocNone {
					t.Errorf("double reference without its first reference: %v", v)
				}
				if v.Repairable != (rep.NeedCheck() && v.Kind.isEntryKind() && v.At.Kind != LocHeader) {
					t.Errorf("Repairable = %v for %v with NEED_CHECK %v", v.Repairable, v, rep.NeedCheck())
				}
			}
			// The io.ReaderAt and afero paths find exactly the same.
			assertSameReports(t, im.buf, rep)
		})
	}
}

// assertSameReports checks img through bytes.Reader and an afero.File
// and compares with want (the []byte path).
func assertSameReports(t *testing.T, img []byte, want *Report) {
	t.Helper()
	rep, err := ReaderAt(bytes.NewReader(img), int64(len(img)))
	if err != nil {
		t.Fatalf("ReaderAt: %v", err)
	}
	if !reflect.DeepEqual(rep, want) {
		t.Fatalf("ReaderAt report differs from []byte report:\n%s\nvs\n%s", rep, want)
	}
	mem := afero.NewMemMapFs()
	if err := afero.WriteFile(mem, "img.qed", img, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := mem.Open("img.qed")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rep, err = File(f) // an afero.File is a FileReader
	if err != nil {
		t.Fatalf("File: %v", err)
	}
	if !reflect.DeepEqual(rep, want) {
		t.Fatalf("afero report differs from []byte report:\n%s\nvs\n%s", rep, want)
	}
}

// TestCheckStructureBuiltImages checks fresh and written images of many
// geometries built byte by byte: consistent, counts exact.
func TestCheckStructureBuiltImages(t *testing.T) {
	for _, cs := range []uint32{4096, 8192, 65536} {
		for _, ts := range []uint32{1, 2, 4, 8, 16} {
			for _, hs := range []uint32{1, 3} {
				im := newTestImage(t, cs, ts, hs, 1<<30)
				rep := Structure(im.buf)
				if !rep.IsConsistent() || !rep.Walked || rep.Leaks != 0 || rep.L2Tables != 0 || len(rep.Violations) != 0 {
					t.Fatalf("cs %d ts %d hs %d fresh:\n%s", cs, ts, hs, rep)
				}
				n := im.entries()
				for _, gc := range []uint64{0, 1, n - 1, n, 3*n + 7} {
					im.write(gc, 1)
				}
				im.zero(2)
				im.appendClusters(2) // leaked
				rep = Structure(im.buf)
				if !rep.IsConsistent() || rep.AllocatedClusters != 5 || rep.ZeroClusters != 1 || rep.Leaks != 2 || rep.L2Tables != 3 ||
					rep.TotalClusters != (1<<30)/uint64(cs) {
					t.Fatalf("cs %d ts %d hs %d written:\n%s", cs, ts, hs, rep)
				}
			}
		}
	}
}

// TestCheckStructureHostile feeds images whose sizes and offsets are
// chosen to provoke huge allocations, overflows and loops.
func TestCheckStructureHostile(t *testing.T) {
	t.Run("huge-geometry-small-file", func(t *testing.T) {
		im := newTestImage(t, 4096, 1, 1, 0)
		im.put32(hdrClusterSize, maxClusterSize)
		im.put32(hdrTableSize, maxTableSize)
		im.put64(hdrImageSize, 1<<63)
		im.put64(hdrL1TableOffset, maxClusterSize)
		rep := Structure(im.buf)
		// 2^80 maximum: any image_size is allowed; the L1 table is past EOF.
		if got, want := rep.Kinds(), []ViolationKind{ViolTablePastEOF, nccOnly}; !slices.Equal(got, want) {
			t.Fatalf("kinds %v, want %v\n%s", got, want, rep)
		}
	})
	t.Run("offset-overflow", func(t *testing.T) {
		im := smallImage(t)
		im.put64(im.l1Entry(1), 0xffffffffffffe000) // offset+table wraps around
		im.put64(l2aEntry(1), 0xfffffffffffff000)
		rep := Structure(im.buf)
		if got, want := rep.Kinds(), []ViolationKind{ViolTablePastEOF, ViolDataPastEOF, nccOnly}; !slices.Equal(got, want) {
			t.Fatalf("kinds %v, want %v\n%s", got, want, rep)
		}
	})
	t.Run("every-l1-entry-same-table", func(t *testing.T) {
		im := newTestImage(t, 4096, 1, 1, 1<<30)
		l2 := im.l2Table(0)
		for i := uint64(0); i < im.entries(); i++ {
			im.put64(im.l1Entry(i), l2)
		}
		for k := uint64(0); k < im.entries(); k++ {
			im.put64(l2+k*entrySize, l2) // every entry points at its own table
		}
		var c Checker
		c.ViolationLimit = 10
		rep := c.Check(im.buf)
		// 512 table/data (each entry names the table itself), then 511
		// table/table for the other L1 entries; the crash invariant too.
		if rep.Count(ViolDoubleRefTableData) != 512 || rep.Count(ViolDoubleRefDataData) != 0 ||
			rep.Count(ViolDoubleRefTableTable) != 511 || len(rep.Violations) != 10 || rep.Omitted != 1014 ||
			rep.Corruptions() != 1023 || rep.L2Tables != 1 {
			t.Fatalf("counts wrong:\n%s", rep)
		}
		for _, v := range rep.Violations {
			if v.Kind.isDoubleRef() && v.Prior.Kind == LocNone {
				t.Fatalf("no prior: %v", v)
			}
		}
	})
	t.Run("too-large", func(t *testing.T) {
		im := newTestImage(t, 4096, 1, 1, 1<<30)
		size := int64(MaxCheckedClusters+1) * 4096
		_, err := ReaderAt(zeroTail{im.buf}, size)
		if !errors.Is(err, ErrTooLarge) {
			t.Fatalf("err = %v, want ErrTooLarge", err)
		}
	})
	t.Run("read-error", func(t *testing.T) {
		im := smallImage(t)
		_, err := ReaderAt(failAt{bytes.NewReader(im.buf), smallL2b}, int64(len(im.buf)))
		if !errors.Is(err, ErrRead) || !strings.Contains(err.Error(), "offset 36864") {
			t.Fatalf("err = %v, want ErrRead naming offset 0x9000", err)
		}
	})
	// File's errors name the file: by its Name method when it has one
	// (*os.File, afero.File), else generically; a failed read still wraps
	// ErrRead.
	t.Run("file-read-error", func(t *testing.T) {
		im := smallImage(t)
		f := namedFile{failAt{bytes.NewReader(im.buf), smallL2b}, int64(len(im.buf)), "crashed.qed", nil}
		_, err := File(f)
		if !errors.Is(err, ErrRead) || !strings.Contains(err.Error(), "crashed.qed") || !strings.Contains(err.Error(), "offset 36864") {
			t.Fatalf("err = %v, want ErrRead naming crashed.qed and offset 0x9000", err)
		}
	})
	t.Run("file-stat-error", func(t *testing.T) {
		statErr := errors.New("injected stat failure")
		f := namedFile{failAt{bytes.NewReader(nil), -1}, 0, "nope.qed", statErr}
		_, err := File(f)
		if !errors.Is(err, statErr) || !strings.Contains(err.Error(), "nope.qed") {
			t.Fatalf("err = %v, want the stat error naming nope.qed", err)
		}
		_, err = File(struct{ FileReader }{f}) // no Name method
		if !errors.Is(err, statErr) || !strings.Contains(err.Error(), "the image file") {
			t.Fatalf("err = %v, want the stat error naming the image file", err)
		}
	})
	t.Run("os-file", func(t *testing.T) {
		im := smallImage(t)
		p := filepath.Join(t.TempDir(), "img.qed")
		if err := os.WriteFile(p, im.buf, 0o644); err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		rep, err := File(f)
		if err != nil || !reflect.DeepEqual(rep, Structure(im.buf)) {
			t.Fatalf("File(*os.File) = %v, %v; want the []byte report", rep, err)
		}
	})
}

// namedFile is a FileReader with a name, a size and an optional Stat error.
type namedFile struct {
	io.ReaderAt
	size    int64
	name    string
	statErr error
}

func (f namedFile) Name() string { return f.name }

func (f namedFile) Stat() (fs.FileInfo, error) {
	if f.statErr != nil {
		return nil, f.statErr
	}
	return fileInfo{f.name, f.size}, nil
}

type fileInfo struct {
	name string
	size int64
}

func (i fileInfo) Name() string       { return i.name }
func (i fileInfo) Size() int64        { return i.size }
func (i fileInfo) Mode() fs.FileMode  { return 0o644 }
func (i fileInfo) ModTime() time.Time { return time.Time{} }
func (i fileInfo) IsDir() bool        { return false }
func (i fileInfo) Sys() any           { return nil }

// zeroTail reads as b followed by zeros, of any claimed size.
type zeroTail struct{ b []byte }

func (z zeroTail) ReadAt(p []byte, off int64) (int, error) {
	clear(p)
	if off < int64(len(z.b)) {
		copy(p, z.b[off:])
	}
	return len(p), nil
}

// failAt fails every read that covers offset bad.
type failAt struct {
	r   *bytes.Reader
	bad int64
}

func (f failAt) ReadAt(p []byte, off int64) (int, error) {
	if off <= f.bad && f.bad < off+int64(len(p)) {
		return 0, errors.New("injected EIO")
	}
	return f.r.ReadAt(p, off)
}

func TestViolationKindStrings(t *testing.T) {
	seen := map[string]bool{}
	for _, k := range AllViolationKinds() {
		s := k.String()
		if s == "" || seen[s] || strings.HasPrefix(s, "ViolationKind(") {
			t.Fatalf("kind %d has bad or duplicate name %q", k, s)
		}
		seen[s] = true
	}
	if got := ViolationKind(200).String(); got != "ViolationKind(200)" {
		t.Fatalf("unknown kind renders as %q", got)
	}
}
