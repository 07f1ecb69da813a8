package check

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"testing"
)

// plantImages are consistent images of several geometries for the
// corrupter: smallImage (2-cluster header, two L2 tables), benchImage (one
// L2 table, 1-cluster header) and a 64 KiB-cluster image with a partial
// tail.
func plantImages(t *testing.T) map[string][]byte {
	big := newTestImage(t, 64<<10, 1, 1, 1<<30)
	for _, g := range []uint64{0, 1, 7, 8192 - 1, 8192, 9000} {
		big.write(g, byte(g))
	}
	big.zero(3)
	big.buf = append(big.buf, make([]byte, 1000)...)
	return map[string][]byte{
		"small": smallImage(t).buf,
		"bench": benchImage(t, 40).buf,
		"big":   big.buf,
	}
}

// TestPlantEveryKindFound: for every corruption, image, NEED_CHECK state
// and seed, the checker finds a violation of a kind the plant promised (or
// more leaks for CorruptLeak), reports NEED_CHECK clear but inconsistent
// exactly when NEED_CHECK is clear and the image is damaged, the input is
// unchanged, the plant is deterministic, and every guest cluster outside
// Touched maps to the same host cluster as before.
func TestPlantEveryKindFound(t *testing.T) {
	seeds := []uint64{1, 2, 3, 42, 1 << 40}
	for name, img := range plantImages(t) {
		before := Structure(img)
		orig := append([]byte(nil), img...)
		for _, c := range Corruptions() {
			for _, nc := range []bool{true, false} {
				for _, seed := range seeds {
					what := fmt.Sprintf("%s/%v/need-check=%v/seed=%d", name, c, nc, seed)
					out, p, err := Plant(img, c, nc, seed)
					if errors.Is(err, ErrNotApplicable) {
						t.Logf("%s: not applicable", what)
						continue
					}
					if err != nil {
						t.Fatalf("%s: %v", what, err)
					}
					if !bytes.Equal(img, orig) {
						t.Fatalf("%s: Plant changed its input", what)
					}
					out2, p2, err := Plant(img, c, nc, seed)
					if err != nil || !bytes.Equal(out, out2) || fmt.Sprint(p) != fmt.Sprint(p2) {
						t.Fatalf("%s: not deterministic", what)
					}
					rep := (&Checker{Mapped: true}).Check(out)
					if rep.NeedCheck() != nc {
						t.Errorf("%s: NEED_CHECK %v, want %v", what, rep.NeedCheck(), nc)
					}
					if c == CorruptLeak {
						if rep.Leaks <= before.Leaks || !rep.IsConsistent() {
							t.Errorf("%s: leaks %d (before %d), consistent %v\n%v", what, rep.Leaks, before.Leaks, rep.IsConsistent(), rep)
						}
						continue
					}
					if !slices.ContainsFunc(p.Want, rep.Has) {
						t.Errorf("%s (%s): checker found %v, want one of %v\n%v", what, p.What, rep.Kinds(), p.Want, rep)
					}
					if rep.Has(ViolNeedCheckClearButInconsistent) == nc {
						t.Errorf("%s: need-check-clear-but-inconsistent reported %v with NEED_CHECK %v", what, !nc, nc)
					}
					if p.AllTouched {
						continue
					}
					mappedSame(t, what, img, out, p)
				}
			}
		}
	}
}

// mappedSame checks that every guest cluster outside p.Touched has the same
// mapping (host cluster, zero cluster or none) in both images, as far as
// the checker walks them.
func mappedSame(t *testing.T, what string, a, b []byte, p *Planted) {
	t.Helper()
	ra := (&Checker{Mapped: true}).Check(a)
	rb := (&Checker{Mapped: true}).Check(b)
	cs := int64(ra.Header.ClusterSize)
	ma, mb := clusterMap(ra, cs), clusterMap(rb, cs)
	for g, h := range ma {
		if p.Untouched(g*cs, cs) && mb[g] != h {
			t.Errorf("%s (%s): untouched guest cluster %d mapped at 0x%x, was 0x%x", what, p.What, g, mb[g], h)
		}
	}
	for g, h := range mb {
		if _, ok := ma[g]; !ok && p.Untouched(g*cs, cs) {
			t.Errorf("%s (%s): untouched guest cluster %d newly mapped at 0x%x", what, p.What, g, h)
		}
	}
}

func clusterMap(r *Report, cs int64) map[int64]uint64 {
	m := map[int64]uint64{}
	for i, rg := range r.Mapped {
		for o := int64(0); o < rg.Len; o += cs {
			m[(rg.Off+o)/cs] = r.MappedHost[i] + uint64(o)
		}
	}
	for _, rg := range r.Zeroed {
		for o := int64(0); o < rg.Len; o += cs {
			m[(rg.Off+o)/cs] = 1
		}
	}
	return m
}

// TestPlantRefusesInconsistent: the corrupter starts from a consistent
// image only; anything else is a clear error.
func TestPlantRefusesInconsistent(t *testing.T) {
	im := smallImage(t)
	im.put64(l2aEntry(0), 0x100000)
	if _, _, err := Plant(im.buf, CorruptLeak, true, 1); err == nil || errors.Is(err, ErrNotApplicable) {
		t.Fatalf("Plant on an inconsistent image: %v", err)
	}
	if _, _, err := Plant([]byte("short"), CorruptLeak, true, 1); err == nil {
		t.Fatal("Plant on a short file: no error")
	}
	for _, c := range Corruptions() {
		got, err := ParseCorruption(c.String())
		if err != nil || got != c {
			t.Errorf("ParseCorruption(%q) = %v, %v", c, got, err)
		}
	}
	if _, err := ParseCorruption("nope"); err == nil {
		t.Error("ParseCorruption(nope): no error")
	}
}
