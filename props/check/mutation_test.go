package check

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"syscall"
	"testing"
)

// Tests written for mutants that survived the rest of the suite (see
// docs/mutation.md).

// TestKindNamesAndCounts: every kind has its own name and is listed once,
// in order, by AllViolationKinds; a kind past the table prints as a
// number and counts 0; severities print as their words.
func TestKindNamesAndCounts(t *testing.T) {
	ks := AllViolationKinds()
	if len(ks) != int(numViolationKinds)-1 {
		t.Fatalf("AllViolationKinds: %d kinds, want %d", len(ks), numViolationKinds-1)
	}
	seen := map[string]bool{}
	for i, k := range ks {
		if k != ViolationKind(i+1) {
			t.Errorf("AllViolationKinds()[%d] = %d", i, k)
		}
		if n := k.String(); n == "" || seen[n] || strings.HasPrefix(n, "ViolationKind(") {
			t.Errorf("kind %d: name %q", k, n)
		}
		seen[k.String()] = true
	}
	if got := numViolationKinds.String(); got != fmt.Sprintf("ViolationKind(%d)", numViolationKinds) {
		t.Errorf("kind past the table: %q", got)
	}
	var r Report
	if r.Count(numViolationKinds) != 0 || r.Has(numViolationKinds) {
		t.Error("a kind past the table counts")
	}
	if SeverityError.String() != "error" || SeverityWarning.String() != "warning" {
		t.Errorf("severities: %s, %s", SeverityError, SeverityWarning)
	}
}

// TestNeedCheckAtHeaderFieldsSize: a file just long enough for the header
// fields has a NEED_CHECK bit; one byte shorter has none.
func TestNeedCheckAtHeaderFieldsSize(t *testing.T) {
	r := Report{FileSize: hdrFieldsSize, Header: Header{Features: FeatureNeedCheck}}
	if !r.NeedCheck() {
		t.Error("NEED_CHECK of a file of exactly the header fields' size not seen")
	}
	r.FileSize--
	if r.NeedCheck() {
		t.Error("NEED_CHECK of a file shorter than the header fields seen")
	}
}

// TestReportWords: a violation names its first reference when it has
// one; the report says how many violations it left out; an inconsistent
// image's error names its path and its first error-severity violation
// (not a warning before it).
func TestReportWords(t *testing.T) {
	prior := Location{Kind: LocL1, TableOffset: 0x2000, Entry: 3, Offset: 0x2018}
	v := Violation{Kind: ViolDoubleRefDataData, At: Location{Kind: LocL2, TableOffset: 0x4000}, Prior: prior, Msg: "shared"}
	if s := v.String(); !strings.Contains(s, "(first referenced by "+prior.String()+")") {
		t.Errorf("violation with a prior reference: %s", s)
	}
	v.Prior = Location{}
	if s := v.String(); strings.Contains(s, "first referenced") {
		t.Errorf("violation without a prior reference: %s", s)
	}
	r := &Report{Omitted: 3}
	if s := r.String(); !strings.Contains(s, "... and 3 more violations not listed") {
		t.Errorf("omitted violations not said:\n%s", s)
	}
	if s := (&Report{}).String(); strings.Contains(s, "more violations") {
		t.Errorf("no omitted violations, yet:\n%s", s)
	}
	warn := Violation{Kind: ViolNoProbeWithoutBacking, Severity: SeverityWarning, Msg: "the warning"}
	bad := Violation{Kind: ViolDataPastEOF, Severity: SeverityError, Msg: "the error"}
	r = &Report{Violations: []Violation{warn, bad}}
	r.counts[ViolDataPastEOF] = 1
	e := &Error{Path: "/img.qed", Report: r}
	s := e.Error()
	if !strings.Contains(s, ": /img.qed [") || !strings.Contains(s, "first: "+bad.String()) || strings.Contains(s, "the warning") {
		t.Errorf("error: %s", s)
	}
	if s := (&Error{Report: r}).Error(); strings.Contains(s, "inconsistent: ") {
		t.Errorf("error without a path: %s", s)
	}
}

// TestLayoutTableSizes: a layout is decoded for every table size the
// format allows (1 to 16), and for an image whose L1 table ends at the
// end of the file.
func TestLayoutTableSizes(t *testing.T) {
	for _, ts := range []uint32{1, 16} {
		im := newTestImage(t, 4096, ts, 1, 1<<30)
		im.write(3, 0xa0)
		l := NewLayout(im.buf)
		if l.ClusterSize() != 4096 || !strings.Contains(layoutKinds(l), "data3") {
			t.Errorf("table size %d: clusters %s", ts, layoutKinds(l))
		}
	}
	// The L1 table moved to the end of the file.
	im := smallImage(t)
	l1 := im.appendClusters(im.ts)
	copy(im.buf[l1:], im.buf[im.l1:im.l1+im.tableBytes()])
	im.put64(hdrL1TableOffset, l1)
	if k := layoutKinds(NewLayout(im.buf)); !strings.Contains(k, "0xb000:data1024") {
		t.Errorf("L1 at the end of the file: clusters %s", k)
	}
}

func layoutKinds(l *Layout) string {
	var got []string
	for _, c := range l.Clusters(0) {
		s := fmt.Sprintf("%#x:%s", c.Host, c.Kind)
		if c.Kind == "data" {
			s += fmt.Sprint(c.Guest)
		}
		got = append(got, s)
	}
	return strings.Join(got, " ")
}

// TestLayoutTableEdges: an L2 table that ends at the end of the file is
// decoded; an L1 entry pointing past it is ignored (never read).
func TestLayoutTableEdges(t *testing.T) {
	im := newTestImage(t, 4096, 1, 1, 1<<30)
	im.write(3, 0xa0)
	im.l2Table(1) // the last cluster of the file: an L2 table
	if k := layoutKinds(NewLayout(im.buf)); strings.Count(k, ":L2") != 2 {
		t.Errorf("L2 table at the end of the file: clusters %s", k)
	}
	im.put64(im.l1Entry(2), uint64(len(im.buf))) // a table past the end
	if k := layoutKinds(NewLayout(im.buf)); strings.Count(k, ":L2") != 2 {
		t.Errorf("an L1 entry past the end of the file: clusters %s", k)
	}
}

// TestShortFileBoundary: a file of exactly the header fields' size is
// read as a header (no short-file violation); one byte less is short.
func TestShortFileBoundary(t *testing.T) {
	im := newTestImage(t, 4096, 1, 1, 1<<20)
	if r := Structure(im.buf[:hdrFieldsSize]); r.Has(ViolShortFile) || r.Header.Magic != qedMagic {
		t.Errorf("%d bytes: %s", hdrFieldsSize, r)
	}
	if r := Structure(im.buf[:hdrFieldsSize-1]); !r.Has(ViolShortFile) {
		t.Errorf("%d bytes: %s", hdrFieldsSize-1, r)
	}
}

// shortReader returns n bytes of every read and err.
type shortReader struct {
	n   int
	err error
}

func (r shortReader) ReadAt(p []byte, off int64) (int, error) { return min(r.n, len(p)), r.err }

// TestShortReadErrors: a short read is an ErrRead wrapping the reader's
// error, or io.ErrUnexpectedEOF when the reader gave none.
func TestShortReadErrors(t *testing.T) {
	var buf []byte
	_, err := (&readerSource{r: shortReader{n: 3, err: syscall.EIO}}).read(&buf, 0, 8)
	if !errors.Is(err, ErrRead) || !errors.Is(err, syscall.EIO) {
		t.Errorf("short read with EIO: %v", err)
	}
	_, err = (&readerSource{r: shortReader{n: 3}}).read(&buf, 0, 8)
	if !errors.Is(err, ErrRead) || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("short read without an error: %v", err)
	}
	if b, err := (&readerSource{r: shortReader{n: 8, err: io.EOF}}).read(&buf, 0, 8); err != nil || len(b) != 8 {
		t.Errorf("a whole read ending at EOF: %v", err)
	}
}

// TestGeometryLimits: a geometry that addresses exactly 2^64 bytes (4
// MiB clusters, table_size 4) accepts any image size; the clusters of an
// image size that ends inside a cluster count that cluster.
func TestGeometryLimits(t *testing.T) {
	im := newTestImage(t, 4<<20, 4, 1, 1<<62)
	if r := Structure(im.buf); r.Has(ViolBadImageSize) {
		t.Errorf("2^62 bytes on a geometry of 2^64: %s", r)
	}
	im = newTestImage(t, 4096, 1, 1, 10*4096+512)
	if r := Structure(im.buf); r.TotalClusters != 11 {
		t.Errorf("image of 10 clusters and a sector: %d clusters", r.TotalClusters)
	}
}

// TestNeedCheckClearMessageCounts: the message of an image marked clean
// but inconsistent counts its errors, not its warnings.
func TestNeedCheckClearMessageCounts(t *testing.T) {
	im := smallImage(t)
	im.put64(im.l2Entry(1), 0x7000+512) // two misaligned data clusters
	im.put64(im.l2Entry(2), 0x8000+512)
	im.setFeatures(featNoProbe) // a warning: NO_PROBE without a backing file
	r := Structure(im.buf)
	if !r.Has(ViolNoProbeWithoutBacking) || !r.Has(ViolNeedCheckClearButInconsistent) {
		t.Fatalf("%s", r)
	}
	for _, v := range r.Violations {
		if v.Kind == ViolNeedCheckClearButInconsistent && !strings.Contains(v.Msg, "has 2 errors") {
			t.Errorf("message: %s", v.Msg)
		}
	}
}

// TestHeaderLocation: a header field's violation is located at the field
// (its name and host offset), entry -1.
func TestHeaderLocation(t *testing.T) {
	im := newTestImage(t, 4096, 1, 1, 1000) // image_size not a multiple of 512
	r := Structure(im.buf)
	for _, v := range r.Violations {
		if v.Kind == ViolBadImageSize {
			if v.At != (Location{Kind: LocHeader, Field: "image_size", Entry: -1, Offset: hdrImageSize}) {
				t.Errorf("location %+v", v.At)
			}
			return
		}
	}
	t.Fatalf("no bad-image-size: %s", r)
}

// TestTablesListed: with the Mapped option the L1 table is listed first,
// with index -1, then each L2 table with the L1 index linking it.
func TestTablesListed(t *testing.T) {
	im := smallImage(t)
	r := (&Checker{Mapped: true}).Check(im.buf)
	want := []TableRef{{Host: 0x2000, Index: -1}, {Host: 0x4000, Index: 0}, {Host: 0x9000, Index: 1}}
	if fmt.Sprint(r.Tables) != fmt.Sprint(want) {
		t.Errorf("tables %v, want %v", r.Tables, want)
	}
}

// TestMappedCounts: smallImage's map (the Mapped option) lists its data
// clusters and its zero clusters (touching ones merged), and its contiguous clusters are not
// counted as fragmented.
func TestMappedCounts(t *testing.T) {
	im := smallImage(t)
	im.zero(6)    // with 5: one range
	im.zero(1031) // in the second table
	r := (&Checker{Mapped: true}).Check(im.buf)
	if want := []Range{{Off: 5 << 12, Len: 2 << 12}, {Off: 1031 << 12, Len: 4096}}; fmt.Sprint(r.Zeroed) != fmt.Sprint(want) {
		t.Errorf("zeroed %v, want %v", r.Zeroed, want)
	}
	if want := []Range{{Off: 0, Len: 3 << 12}, {Off: 1024 << 12, Len: 4096}}; fmt.Sprint(r.Mapped) != fmt.Sprint(want) {
		t.Errorf("mapped %v, want %v", r.Mapped, want)
	}
	if r.FragmentedClusters != 0 || r.AllocatedClusters != 4 || r.ZeroClusters != 3 {
		t.Errorf("fragmented %d, allocated %d, zero %d", r.FragmentedClusters, r.AllocatedClusters, r.ZeroClusters)
	}
	im.write(3, 0xa4) // appended after d3: fragmented after d2
	if r := Structure(im.buf); r.FragmentedClusters != 1 {
		t.Errorf("fragmented %d, want 1", r.FragmentedClusters)
	}
}

// TestViolationLocations: an invalid L2 entry is located at its entry of
// its table (index, host offset), an invalid L1 entry at its entry of the
// L1 table, a double reference at the later entry, with the first as its
// prior.
func TestViolationLocations(t *testing.T) {
	im := smallImage(t)
	im.put64(im.l2Entry(1026), 0x7000+512) // L2b (0x9000) entry 2
	im.put64(im.l1Entry(3), 0x5000+8)      // L1 entry 3: a misaligned table
	im.put64(im.l2Entry(1027), 0x6000)     // L2b entry 3: d0 again
	r := Structure(im.buf)
	got := map[ViolationKind]Location{}
	for _, v := range r.Violations {
		got[v.Kind] = v.At
		if v.Kind == ViolDoubleRefDataData {
			got[ViolNone] = v.Prior
		}
	}
	if want := (Location{Kind: LocL2, TableIndex: 1, TableOffset: 0x9000, Entry: 3, Offset: 0x9018}); got[ViolDoubleRefDataData] != want {
		t.Errorf("double-ref-data-data at %+v, want %+v", got[ViolDoubleRefDataData], want)
	}
	if want := (Location{Kind: LocL2, TableIndex: 0, TableOffset: 0x4000, Entry: 0, Offset: 0x4000}); got[ViolNone] != want {
		t.Errorf("double-ref-data-data first referenced at %+v, want %+v", got[ViolNone], want)
	}
	if want := (Location{Kind: LocL2, TableIndex: 1, TableOffset: 0x9000, Entry: 2, Offset: 0x9010}); got[ViolDataMisaligned] != want {
		t.Errorf("data-misaligned at %+v, want %+v", got[ViolDataMisaligned], want)
	}
	if want := (Location{Kind: LocL1, TableOffset: 0x2000, Entry: 3, Offset: 0x2018}); got[ViolTableMisaligned] != want {
		t.Errorf("table-misaligned at %+v, want %+v", got[ViolTableMisaligned], want)
	}
}

// TestLocationsPastFirstChunk: read through a ReaderAt, a table larger
// than one read (readerChunk) locates the entries of its later chunks at
// their own offsets.
func TestLocationsPastFirstChunk(t *testing.T) {
	im := newTestImage(t, 65536, 4, 1, 1<<30)
	d0 := im.write(0, 0xa0)
	const e = 12000 // entry 12000: 96000 bytes into the L2 table
	im.put64(im.l2Entry(e), d0)
	r, err := (&Checker{}).CheckReaderAt(bytes.NewReader(im.buf), int64(len(im.buf)))
	if err != nil {
		t.Fatal(err)
	}
	l2 := im.l2Table(0)
	for _, v := range r.Violations {
		if v.Kind == ViolDoubleRefDataData {
			if want := (Location{Kind: LocL2, TableOffset: l2, Entry: e, Offset: l2 + e*entrySize}); v.At != want {
				t.Errorf("at %+v, want %+v", v.At, want)
			}
			return
		}
	}
	t.Fatalf("no double reference: %s", r)
}

// TestMaxCheckedClustersAllowed: a file of exactly MaxCheckedClusters
// whole clusters is walked (a larger one is refused: the "too-large" case
// of TestReaderAtErrors). The file is 16 TiB of 4 KiB clusters whose
// reads fail past the header cluster, so the walk, once its two cluster
// bitmaps are made (512 MiB each, never touched: the first read fails),
// stops with ErrRead at the L1 table instead of ErrTooLarge. A fresh
// Checker, so that the bitmaps are not kept in the pool. (Killed the
// mutant `FileClusters >= MaxCheckedClusters`.)
func TestMaxCheckedClustersAllowed(t *testing.T) {
	if math.MaxInt == math.MaxInt32 {
		t.Skip("two 512 MiB bitmaps need a 64-bit address space")
	}
	im := newTestImage(t, 4096, 1, 1, 1<<30)
	var c Checker
	_, err := c.CheckReaderAt(bytes.NewReader(im.buf[:im.l1]), int64(MaxCheckedClusters)*4096)
	if !errors.Is(err, ErrRead) || errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "offset 4096") {
		t.Fatalf("err = %v, want ErrRead at the L1 table (offset 4096): walked, not refused", err)
	}
}
