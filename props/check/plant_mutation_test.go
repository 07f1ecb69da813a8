package check

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// Tests written for the survivors of plant.go's mutation run
// (docs/mutation.md, "props/check"): what Plant plants is pinned, since a
// repair finding names its plant by corruption, NEED_CHECK and seed
// (campaign.RepairFailure) and must plant the same bytes again.

// edgeImages are two more consistent images for the corrupter:
// "zero-only" has one L2 table, right after the L1 table, and no data
// cluster (guest cluster 5 a zero cluster); "before-l1" has a data cluster
// between the header and the L1 table (4 KiB clusters, one-cluster
// tables: header 0x0000, guest cluster 7 at 0x1000, L1 0x2000, L2 0x3000,
// guest clusters 3 and 0 at 0x4000 and 0x5000), which QEMU does not lay
// out but the format allows; "two" has exactly two data clusters.
func edgeImages(t *testing.T) map[string][]byte {
	zero := newTestImage(t, 4096, 1, 1, 1<<20)
	zero.zero(5)
	b := newTestImage(t, 4096, 1, 1, 1<<20)
	b.appendClusters(1)
	b.l1 = 0x2000
	b.put64(hdrL1TableOffset, b.l1)
	b.write(3, 0xa3)
	b.write(0, 0xa0)
	b.put64(b.l2Entry(7), 0x1000)
	for i := 0x1000; i < 0x2000; i++ {
		b.buf[i] = 0xa7
	}
	two := newTestImage(t, 4096, 1, 1, 1<<20)
	two.write(0, 1)
	two.write(9, 2)
	imgs := map[string][]byte{"zero-only": zero.buf, "before-l1": b.buf, "two": two.buf}
	for name, img := range imgs {
		if rep := Structure(img); !rep.IsConsistent() || rep.Leaks != 0 {
			t.Fatalf("%s: not a consistent image: %v", name, rep)
		}
	}
	return imgs
}

// TestPlantApplicable: on an image with two linked L2 tables and data in
// both (smallImage, and the 64 KiB-cluster image) every corruption
// applies, whatever the seed; on benchImage, whose only L1 entry inside
// image_size is linked, exactly the two that need a second entry inside
// image_size do not (l1-at-data, l2-tables-overlap), and the same on the
// edge images; with no data cluster (zero-only) the L2 entries' plants and
// double-ref do not either, while truncate (inside the L2 table) does; two
// data clusters are enough for double-ref.
func TestPlantApplicable(t *testing.T) {
	imgs := plantImages(t)
	for name, img := range edgeImages(t) {
		imgs[name] = img
	}
	for _, name := range []string{"small", "bench", "big", "zero-only", "before-l1", "two"} {
		for _, c := range Corruptions() {
			for seed := uint64(1); seed <= 4; seed++ {
				_, _, err := Plant(imgs[name], c, seed%2 == 0, seed)
				na := name != "small" && name != "big" && (c == CorruptL1AtData || c == CorruptL2Overlap)
				if name == "zero-only" {
					switch c {
					case CorruptL2Invalid, CorruptL2Misaligned, CorruptL2PastEOF, CorruptL2IntoHeader, CorruptL2IntoTable, CorruptDoubleRef:
						na = true
					}
				}
				if na && !errors.Is(err, ErrNotApplicable) || !na && err != nil {
					t.Errorf("%s/%v/seed %d: %v (not applicable expected: %v)", name, c, seed, err, na)
				}
			}
		}
	}
}

// TestPlantPinned: every plant of smallImage (2-cluster header, L1 at
// 0x2000, L2 tables at 0x4000 and 0x9000, guest clusters 0-2 at
// 0x6000-0x8000, 1024 at 0xb000, 5 a zero cluster, 8 MiB) with seed 1, as
// drawn: what it changed, the guest ranges it touched (whole clusters;
// an L1 entry's whole 4 MiB range), and the kinds the checker must find;
// then a digest of every plant of the three test images with seeds 1 to 4
// (NEED_CHECK set for the even ones): the bytes and the Planted.
func TestPlantPinned(t *testing.T) {
	type pin struct {
		what    string
		touched []Range
		all     bool
		want    []ViolationKind
	}
	l1r := func(i int64) Range { return Range{Off: i << 22, Len: 1 << 22} }
	cl := func(g, n int64) Range { return Range{Off: g << 12, Len: n << 12} }
	pins := map[Corruption]pin{
		CorruptL1Invalid:    {"L1[0] at 0x2000: 0x4000 -> 0x1", []Range{l1r(0)}, false, []ViolationKind{ViolTableMisaligned}},
		CorruptL1Misaligned: {"L1[0] at 0x2000: 0x4000 -> 0x4a00", []Range{l1r(0)}, false, []ViolationKind{ViolTableMisaligned}},
		CorruptL1PastEOF:    {"L1[0] at 0x2000: 0x4000 -> 0xd000", []Range{l1r(0)}, false, []ViolationKind{ViolTablePastEOF}},
		CorruptL1IntoHeader: {"L1[1] at 0x2008: 0x9000 -> 0x1000", []Range{l1r(1)}, false, []ViolationKind{ViolTableInHeader}},
		CorruptL1AtData:     {"L1[1] at 0x2008: 0x9000 -> 0x6000", []Range{cl(0, 1), l1r(1)}, false, []ViolationKind{ViolDoubleRefTableData, ViolTablePastEOF}},
		CorruptL2OntoL1:     {"L1[1] at 0x2008: 0x9000 -> 0x2000", []Range{l1r(1)}, false, []ViolationKind{ViolDoubleRefTableTable}},
		CorruptL2Overlap:    {"L1[1] at 0x2008: 0x9000 -> 0x4000", []Range{{Off: 0, Len: 8 << 20}}, false, []ViolationKind{ViolDoubleRefTableTable}},
		CorruptL2Invalid:    {"L2 entry of guest cluster 1 at 0x4008: 0x7000 -> 0xc60ce28cf5239ebf", []Range{cl(1, 1)}, false, []ViolationKind{ViolDataMisaligned, ViolDataPastEOF}},
		CorruptL2Misaligned: {"L2 entry of guest cluster 0 at 0x4000: 0x6000 -> 0x6e00", []Range{cl(0, 1)}, false, []ViolationKind{ViolDataMisaligned}},
		CorruptL2PastEOF:    {"L2 entry of guest cluster 2 at 0x4010: 0x8000 -> 0xd000", []Range{cl(2, 1)}, false, []ViolationKind{ViolDataPastEOF}},
		CorruptL2IntoHeader: {"L2 entry of guest cluster 1024 at 0x9000: 0xb000 -> 0x1000", []Range{cl(1024, 1)}, false, []ViolationKind{ViolDataInHeader}},
		CorruptL2IntoTable:  {"L2 entry of guest cluster 0 at 0x4000: 0x6000 -> 0x4000", []Range{l1r(0)}, false, []ViolationKind{ViolDoubleRefTableData}},
		CorruptDoubleRef:    {"L2 entry of guest cluster 0 at 0x4000: 0x6000 -> 0x7000", []Range{cl(0, 2)}, false, []ViolationKind{ViolDoubleRefDataData}},
		CorruptLeak:         {"3 clusters appended at 0xc000", nil, false, nil},
		CorruptTruncate:     {"file truncated from 49152 to 26112 bytes", []Range{cl(0, 3), l1r(1)}, false, []ViolationKind{ViolDataPastEOF, ViolTablePastEOF}},
		CorruptHeaderField:  {"BACKING_FILE set, backing name [8190, +1024) past the header", nil, true, []ViolationKind{ViolBadBackingName}},
	}
	small := plantImages(t)["small"]
	for _, c := range Corruptions() {
		_, p, err := Plant(small, c, true, 1)
		if err != nil {
			t.Errorf("%v: %v", c, err)
			continue
		}
		got := pin{p.What, p.Touched, p.AllTouched, p.Want}
		if want := pins[c]; !reflect.DeepEqual(got, want) {
			t.Errorf("%v, seed 1:\n got  %+v\n want %+v", c, got, want)
		}
	}

	// The truncates of before-l1: a draw of the cluster before the L1
	// table cuts the last referenced cluster (0x5000) instead, so the L1
	// table stays whole.
	edge := edgeImages(t)
	for seed, want := range map[uint64]string{
		1: "13824 bytes", 2: "20992 bytes", 3: "16384 bytes", 4: "18432 bytes", 5: "13824 bytes", 6: "22016 bytes",
		7: "19456 bytes", 8: "16384 bytes", 9: "23552 bytes", 10: "21504 bytes", 11: "23040 bytes", 12: "22016 bytes",
	} {
		if _, p, err := Plant(edge["before-l1"], CorruptTruncate, true, seed); err != nil || p.What != "file truncated from 24576 to "+want {
			t.Errorf("before-l1, truncate, seed %d: %+v, %v; want a cut to %s", seed, p, err, want)
		}
	}

	h := sha256.New()
	imgs := plantImages(t)
	for name, img := range edge {
		imgs[name] = img
	}
	for _, name := range []string{"small", "bench", "big", "zero-only", "before-l1", "two"} {
		for _, c := range Corruptions() {
			for seed := uint64(1); seed <= 4; seed++ {
				nc := seed%2 == 0
				out, p, err := Plant(imgs[name], c, nc, seed)
				fmt.Fprintf(h, "%s %v %v %d: %v %+v %x\n", name, c, nc, seed, err, p, sha256.Sum256(out))
			}
		}
	}
	const want = "999cbb9dd2707bb0692f923e1d635181b1b8a62ea44d5be15e0d891ff3273ac9"
	if got := fmt.Sprintf("%x", h.Sum(nil)); got != want {
		t.Errorf("plants of the test images changed: digest %s, want %s", got, want)
	}
}

// TestPlantHeaderFieldVariants: the six header-field plants (one drawn per
// seed) each damage their field as they say, and the checker finds the
// kind promised; the first seed of each variant on smallImage is pinned.
func TestPlantHeaderFieldVariants(t *testing.T) {
	small := plantImages(t)["small"]
	first := map[ViolationKind]string{}
	for seed := uint64(1); seed <= 40; seed++ {
		out, p, err := Plant(small, CorruptHeaderField, false, seed)
		if err != nil || len(p.Want) != 1 || !p.AllTouched {
			t.Fatalf("seed %d: %+v, %v", seed, p, err)
		}
		if rep := Structure(out); !rep.Has(p.Want[0]) {
			t.Errorf("seed %d (%s): checker found %v, want %v", seed, p.What, rep.Kinds(), p.Want)
		}
		if _, ok := first[p.Want[0]]; !ok {
			first[p.Want[0]] = fmt.Sprintf("%d: %s", seed, p.What)
		}
	}
	want := map[ViolationKind]string{
		ViolBadBackingName:  "1: BACKING_FILE set, backing name [8190, +1024) past the header",
		ViolBadClusterSize:  "2: cluster_size = 7680",
		ViolBadHeaderSize:   "3: header_size = 0",
		ViolBadTableSize:    "4: table_size = 0",
		ViolUnknownFeatures: "5: unknown incompatible feature bit 0x400000000000",
		ViolBadImageSize:    "8: image_size = 8388706",
	}
	if !reflect.DeepEqual(first, want) {
		t.Errorf("first seed of each variant:\n got  %v\n want %v", first, want)
	}
}

// TestPlantUnknownCorruption: a corruption past the catalogue is an error
// naming it, and prints as its number.
func TestPlantUnknownCorruption(t *testing.T) {
	small := plantImages(t)["small"]
	for _, c := range []Corruption{numCorruptions, numCorruptions + 1, 255} {
		if _, _, err := Plant(small, c, true, 1); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("unknown corruption %d", c)) {
			t.Errorf("Plant(%d): %v", c, err)
		}
		if s, want := c.String(), fmt.Sprintf("Corruption(%d)", uint8(c)); s != want {
			t.Errorf("String of %d: %q, want %q", c, s, want)
		}
	}
	if s := (numCorruptions - 1).String(); s != "header-field" {
		t.Errorf("the last corruption prints %q", s)
	}
}

// TestUntouchedEdges: a range touching a touched range's start or end
// without overlapping it is untouched; one byte of overlap is not.
func TestUntouchedEdges(t *testing.T) {
	p := &Planted{Touched: []Range{{Off: 4096, Len: 4096}}}
	for _, c := range []struct {
		off, n int64
		want   bool
	}{
		{0, 4096, true}, {8192, 4096, true}, {0, 4097, false}, {8191, 1, false}, {4096, 1, false}, {4095, 1, true}, {8192, 1, true},
	} {
		if got := p.Untouched(c.off, c.n); got != c.want {
			t.Errorf("Untouched(%d, %d) = %v, want %v", c.off, c.n, got, c.want)
		}
	}
	if (&Planted{AllTouched: true}).Untouched(0, 1) {
		t.Error("AllTouched: a range untouched")
	}
}

// TestPlantIntoLongHeader: with a header of four clusters, l1-into-header
// and l2-into-header aim at a whole header cluster other than 0 (1, 2 or
// 3, each drawn by some seed), which the checker reports as in the header.
func TestPlantIntoLongHeader(t *testing.T) {
	im := newTestImage(t, 4096, 1, 4, 1<<20)
	im.write(0, 1)
	im.write(3, 2)
	hits := map[uint64]int{}
	for seed := uint64(1); seed <= 24; seed++ {
		for _, c := range []Corruption{CorruptL1IntoHeader, CorruptL2IntoHeader} {
			out, p, err := Plant(im.buf, c, true, seed)
			if err != nil {
				t.Fatalf("%v, seed %d: %v", c, seed, err)
			}
			want := ViolTableInHeader
			if c == CorruptL2IntoHeader {
				want = ViolDataInHeader
			}
			if len(p.Want) != 1 || p.Want[0] != want || !Structure(out).Has(want) {
				t.Errorf("%v, seed %d (%s): want %v, checker found %v", c, seed, p.What, p.Want, Structure(out).Kinds())
			}
			var v uint64
			if _, err := fmt.Sscanf(p.What[strings.Index(p.What, "-> ")+3:], "0x%x", &v); err != nil {
				t.Fatalf("%q: %v", p.What, err)
			}
			hits[v]++
		}
	}
	if len(hits) != 3 || hits[0x1000] == 0 || hits[0x2000] == 0 || hits[0x3000] == 0 {
		t.Errorf("offsets planted: %v, want header clusters 1, 2 and 3", hits)
	}
}
