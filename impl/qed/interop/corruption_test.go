package interop

import (
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/qedtorture/qedtorture/impl/qed"
	"github.com/qedtorture/qedtorture/internal/qemutool"
	"github.com/qedtorture/qedtorture/props/check"
)

// corruption plants one kind of damage in a QEMU-written image.
type corruption struct {
	name  string
	plant func(t *testing.T, img string, l Layout, fileSize int64)
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// l2Of returns L1[i], the offset of an L2 table.
func l2Of(t *testing.T, img string, l Layout, i int64) uint64 {
	t.Helper()
	v, err := GetU64(img, l.L1Entry(i))
	must(t, err)
	if v == 0 {
		t.Fatalf("L1[%d] is empty in the base image", i)
	}
	return v
}

func setL2(t *testing.T, img string, l Layout, j int64, v uint64) {
	t.Helper()
	must(t, PutU64(img, l.L2Entry(l2Of(t, img, l, 0), j), v))
}

func getL2(t *testing.T, img string, l Layout, j int64) uint64 {
	t.Helper()
	v, err := GetU64(img, l.L2Entry(l2Of(t, img, l, 0), j))
	must(t, err)
	return v
}

func setNeedCheck(t *testing.T, img string, l Layout) {
	t.Helper()
	must(t, PutU64(img, 16, l.Header.Features|qed.FeatureNeedCheck))
}

// corruptions are the planted damages: invalid offsets in L1 and L2 (past
// the end, unaligned, the zero-cluster marker in L1), double references
// (data twice, data onto the L1 table, one L2 table twice), leaks (whole
// and partial trailing clusters), NEED_CHECK alone and with damage, and a
// mixture.
func corruptions() []corruption {
	cs := func(l Layout) uint64 { return uint64(l.Header.ClusterSize) }
	pastEOF := func(l Layout, fileSize int64) uint64 { return uint64(fileSize) + 16*cs(l) }
	return []corruption{
		{"l2-past-eof", func(t *testing.T, img string, l Layout, fs int64) { setL2(t, img, l, 5, pastEOF(l, fs)) }},
		{"l2-unaligned", func(t *testing.T, img string, l Layout, fs int64) { setL2(t, img, l, 6, getL2(t, img, l, 0)+512) }},
		{"l2-onto-l1", func(t *testing.T, img string, l Layout, fs int64) { setL2(t, img, l, 7, l.Header.L1TableOffset) }},
		{"l2-double-data", func(t *testing.T, img string, l Layout, fs int64) { setL2(t, img, l, 8, getL2(t, img, l, 0)) }},
		{"l1-past-eof", func(t *testing.T, img string, l Layout, fs int64) {
			must(t, PutU64(img, l.L1Entry(1), pastEOF(l, fs)))
		}},
		{"l1-unaligned", func(t *testing.T, img string, l Layout, fs int64) {
			must(t, PutU64(img, l.L1Entry(2), l2Of(t, img, l, 0)+8))
		}},
		{"l1-zero-marker", func(t *testing.T, img string, l Layout, fs int64) { must(t, PutU64(img, l.L1Entry(1), 1)) }},
		{"l1-same-table-twice", func(t *testing.T, img string, l Layout, fs int64) {
			must(t, PutU64(img, l.L1Entry(3), l2Of(t, img, l, 0)))
		}},
		{"leaks", func(t *testing.T, img string, l Layout, fs int64) { must(t, Grow(img, 3*int64(cs(l)))) }},
		{"leaks-partial-tail", func(t *testing.T, img string, l Layout, fs int64) { must(t, Grow(img, 2*int64(cs(l))+100)) }},
		{"need-check-only", func(t *testing.T, img string, l Layout, fs int64) { setNeedCheck(t, img, l) }},
		{"need-check-damaged", func(t *testing.T, img string, l Layout, fs int64) {
			setNeedCheck(t, img, l)
			setL2(t, img, l, 5, pastEOF(l, fs))
			setL2(t, img, l, 6, getL2(t, img, l, 0)+512)
		}},
		{"mixture", func(t *testing.T, img string, l Layout, fs int64) {
			setL2(t, img, l, 5, pastEOF(l, fs))
			setL2(t, img, l, 8, getL2(t, img, l, 1))
			must(t, Grow(img, int64(cs(l))))
		}},
	}
}

// baseImage makes a QEMU-written image: data in guest clusters 0, 1, 2, 4
// and 9 and a zero cluster at 3, all under L1[0].
func (r *rig) baseImage(name string, g geometry, size int64) string {
	r.t.Helper()
	img := r.path(name)
	r.img("create", "-q", "-f", "qed", "-o", fmt.Sprintf("cluster_size=%d,table_size=%d", g.cluster, g.table), img, fmt.Sprint(size))
	c := g.cluster
	r.io(img, "qed",
		fmt.Sprintf("write -P 0x01 0 %d", 3*c),
		fmt.Sprintf("write -z %d %d", 3*c, c),
		fmt.Sprintf("write -P 0x04 %d 512", 4*c),
		fmt.Sprintf("write -P 0x09 %d %d", 9*c+100, 1000))
	return img
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	in, err := os.Open(src)
	must(t, err)
	defer in.Close()
	out, err := os.Create(dst)
	must(t, err)
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	must(t, out.Close())
}

// sameCounts compares every field of the two check reports (qemutool.Check
// is all of QAPI ImageCheck), and the exit codes: the counts, the fixed
// counts, the format, and each report's filename with the file it checked.
// QEMU prints no image-end-offset for QED: ours must be the length of the
// file it checked (see impl/qed's caveats). A field of qemutool.Check this
// function does not know fails the test.
func sameCounts(t *testing.T, what, oursFile, theirsFile string, ours, theirs qemutool.Check, oursCode, theirsCode int) {
	t.Helper()
	if oursCode != theirsCode {
		t.Errorf("%s: exit code: qedtorture check %d, qemu-img check %d", what, oursCode, theirsCode)
	}
	if ours.Filename != oursFile || theirs.Filename != theirsFile {
		t.Errorf("%s: filenames %q and %q, want %q and %q", what, ours.Filename, theirs.Filename, oursFile, theirsFile)
	}
	st, err := os.Stat(oursFile)
	must(t, err)
	if ours.ImageEndOffset != st.Size() || theirs.ImageEndOffset != 0 {
		t.Errorf("%s: image-end-offset: qedtorture %d (want the file length %d), qemu-img %d (QEMU prints none for QED)",
			what, ours.ImageEndOffset, st.Size(), theirs.ImageEndOffset)
	}
	ov, qv := reflect.ValueOf(ours), reflect.ValueOf(theirs)
	for i := range ov.NumField() {
		name := ov.Type().Field(i).Name
		o, q := ov.Field(i), qv.Field(i)
		switch name {
		case "Filename", "ImageEndOffset":
			continue // compared above
		}
		switch o.Kind() {
		case reflect.String, reflect.Int64:
		case reflect.Pointer: // the *-fixed counts: absent and 0 differ
			if o.IsNil() != q.IsNil() {
				t.Errorf("%s: %s: qedtorture %v, qemu-img %v (one of them absent)", what, name, ptrString(o), ptrString(q))
				continue
			}
			if o.IsNil() {
				continue
			}
			o, q = o.Elem(), q.Elem()
		default:
			t.Fatalf("sameCounts does not know how to compare qemutool.Check.%s (%s)", name, o.Kind())
		}
		if !o.Equal(q) {
			t.Errorf("%s: %s: qedtorture %v, qemu-img %v\nours %+v\nqemu %+v", what, name, o, q, ours, theirs)
		}
	}
}

func ptrString(v reflect.Value) string {
	if v.IsNil() {
		return "absent"
	}
	return fmt.Sprint(v.Elem())
}

// TestPlantedCorruption: on each planted corruption qedtorture check and
// qemu-img check agree on every count and the exit code, read-only and
// with -r all; after -r all both repaired images carry the same NEED_CHECK
// state, read identically (qemu-img compare) and are judged alike by
// both checkers.
func TestPlantedCorruption(t *testing.T) {
	for _, g := range []geometry{{64 << 10, 4}, {4 << 10, 2}} {
		for _, c := range corruptions() {
			t.Run(fmt.Sprintf("%v/%s", g, c.name), func(t *testing.T) {
				r := newRig(t)
				base := r.baseImage("base.qed", g, 16*g.cluster+1536)
				l, err := ReadLayout(base)
				must(t, err)
				st, err := os.Stat(base)
				must(t, err)
				c.plant(t, base, l, st.Size())

				theirs, theirsCode, err := r.q.Check(base, "")
				must(t, err)
				ours, oursCode := r.checkJSONCode(base)
				sameCounts(t, "read-only check", base, base, ours, theirs, oursCode, theirsCode)
				r.compareInfo(base) // dirty-flag follows NEED_CHECK
				if c.name != "need-check-only" && theirsCode == 0 {
					t.Errorf("qemu-img finds nothing wrong with %s", c.name)
				}

				qrep, orep := r.path("qemu-repaired.qed"), r.path("ours-repaired.qed")
				copyFile(t, base, qrep)
				copyFile(t, base, orep)
				theirs, theirsCode, err = r.q.Check(qrep, "all")
				must(t, err)
				ours, oursCode = r.checkJSONCode(orep, "-r", "all")
				sameCounts(t, "check -r all", orep, qrep, ours, theirs, oursCode, theirsCode)

				qf, err := GetU64(qrep, 16)
				must(t, err)
				of, err := GetU64(orep, 16)
				must(t, err)
				if theirs.Corruptions > 0 {
					// A corruption repair cannot remove (a double
					// reference) is left: impl/qed sets NEED_CHECK,
					// QEMU clears it (TestDeviationRepairClearsNeedCheck).
					if of&qed.FeatureNeedCheck == 0 || qf&qed.FeatureNeedCheck != 0 || qf != of&^qed.FeatureNeedCheck {
						t.Errorf("features after -r all with corruption left: qemu-img %#x (want NEED_CHECK clear), qedtorture %#x (want it set)", qf, of)
					}
				} else if qf != of {
					t.Errorf("features after -r all: qemu-img %#x, qedtorture %#x", qf, of)
				}
				if res, err := r.q.RunImg("compare", "-f", "qed", "-F", "qed", qrep, orep); err != nil || res.ExitCode != 0 {
					t.Errorf("repaired images read differently: %s%s %v", res.Stdout, res.Stderr, err)
				}
				theirs, theirsCode, err = r.q.Check(orep, "")
				must(t, err)
				ours, oursCode = r.checkJSONCode(qrep)
				sameCounts(t, "cross check of the repaired images", qrep, orep, ours, theirs, oursCode, theirsCode)
			})
		}
	}
}

// TestDeviationRepairLeaksMode: qemu-img check -r leaks on a QED image
// also clears invalid offsets, because QED's check treats any repair mode
// as "fix everything". Rule (qemu-img(1)): -r leaks repairs only cluster
// leaks, -r all fixes all kinds of errors. qedtorture check -r leaks
// changes nothing (QED cannot reclaim leaks) and still reports the
// corruption with exit 2.
func TestDeviationRepairLeaksMode(t *testing.T) {
	r := newRig(t)
	g := geometry{64 << 10, 4}
	base := r.baseImage("base.qed", g, 16*g.cluster)
	l, err := ReadLayout(base)
	must(t, err)
	st, err := os.Stat(base)
	must(t, err)
	setL2(t, base, l, 5, uint64(st.Size())+16*uint64(g.cluster))
	qimg, oimg := r.path("q.qed"), r.path("o.qed")
	copyFile(t, base, qimg)
	copyFile(t, base, oimg)
	theirs, theirsCode, err := r.q.Check(qimg, "leaks")
	must(t, err)
	if theirs.CorruptionsFixed == nil || *theirs.CorruptionsFixed != 1 || theirsCode != 0 {
		t.Logf("qemu-img check -r leaks no longer repairs corruption: %+v exit %d", theirs, theirsCode)
	}
	ours, oursCode := r.checkJSONCode(oimg, "-r", "leaks")
	if oursCode != 2 || ours.Corruptions != 1 || ours.CorruptionsFixed != nil {
		t.Errorf("qedtorture check -r leaks: %+v exit %d, want the corruption reported and not fixed", ours, oursCode)
	}
	if v := getL2(t, oimg, l, 5); v == 0 {
		t.Error("qedtorture check -r leaks cleared an L2 entry")
	}
}

// TestDeviationRepairClearsNeedCheck: qemu-img check -r all (and the
// writable open's automatic check) clears NEED_CHECK although a double
// reference it cannot repair remains: the image then claims to be clean.
// Rule (docs/format.md, Flush ordering and NEED_CHECK; Check and repair):
// NEED_CHECK clear implies consistent; it is cleared after a repair only
// when no corruption remains. impl/qed keeps (or sets) NEED_CHECK. Found by
// qedtorture repair (docs/findings.md, F4).
func TestDeviationRepairClearsNeedCheck(t *testing.T) {
	r := newRig(t)
	g := geometry{64 << 10, 4}
	for _, nc := range []bool{true, false} {
		base := r.baseImage(fmt.Sprintf("base-%v.qed", nc), g, 16*g.cluster)
		l, err := ReadLayout(base)
		must(t, err)
		setL2(t, base, l, 8, getL2(t, base, l, 0)) // cluster 8 -> cluster 0's data
		if nc {
			setNeedCheck(t, base, l)
		}
		qimg, oimg := base+".q", base+".o"
		copyFile(t, base, qimg)
		copyFile(t, base, oimg)
		theirs, code, err := r.q.Check(qimg, "all")
		must(t, err)
		qf, err := GetU64(qimg, 16)
		must(t, err)
		if theirs.Corruptions != 1 || code != 2 || qf&qed.FeatureNeedCheck != 0 {
			t.Errorf("need-check %v: qemu-img check -r all: %+v exit %d features %#x; QEMU 7.2 leaves the double reference and NEED_CHECK clear (fixed upstream? flip this test)", nc, theirs, code, qf)
		}
		ours, ocode := r.checkJSONCode(oimg, "-r", "all")
		of, err := GetU64(oimg, 16)
		must(t, err)
		if ours.Corruptions != 1 || ocode != 2 || of&qed.FeatureNeedCheck == 0 {
			t.Errorf("need-check %v: qedtorture check -r all: %+v exit %d features %#x, want the double reference reported and NEED_CHECK set", nc, ours, ocode, of)
		}
	}
	// The writable open (qemu-io) clears it too.
	base := r.baseImage("open.qed", g, 16*g.cluster)
	l, err := ReadLayout(base)
	must(t, err)
	setL2(t, base, l, 8, getL2(t, base, l, 0))
	setNeedCheck(t, base, l)
	r.io(base, "qed", "flush")
	if f, _ := GetU64(base, 16); f&qed.FeatureNeedCheck != 0 {
		t.Errorf("QEMU's writable open kept NEED_CHECK (%#x) over a double reference: fixed upstream? flip this test", f)
	}
}

// TestDeviationHeaderSizeZero: QEMU 7.2 opens, checks and repairs an image
// whose header_size is 0 (qemu-img check counts the header's own cluster
// as a leak, exit 3). Rule (docs/format.md,
// Header): header_size is at least 1. impl/qed refuses it with a
// FormatError naming header_size (exit 1 from qedtorture check). Found by
// qedtorture repair (docs/findings.md, F5).
func TestDeviationHeaderSizeZero(t *testing.T) {
	r := newRig(t)
	g := geometry{64 << 10, 4}
	base := r.baseImage("h0.qed", g, 16*g.cluster)
	f, err := os.OpenFile(base, os.O_WRONLY, 0)
	must(t, err)
	_, err = f.WriteAt([]byte{0, 0, 0, 0}, 12)
	must(t, err)
	must(t, f.Close())
	theirs, code, err := r.q.Check(base, "")
	must(t, err)
	// QEMU walks it and counts the header's own cluster as a leak.
	if code != 3 || theirs.Corruptions != 0 || theirs.Leaks != 1 {
		t.Errorf("qemu-img check of header_size 0: %+v exit %d; QEMU 7.2 accepts it, the header cluster leaked (fixed upstream? flip this test)", theirs, code)
	}
	r.io(base, "qed", "read -P 0x01 0 4096")
	if _, errs, code := r.qt("check", base); code != 1 || !strings.Contains(errs, "header_size") {
		t.Errorf("qedtorture check of header_size 0: exit %d (%s), want 1 naming header_size", code, errs)
	}
}

// TestDeviationFailedOpenClearsNeedCheck: qemu-img check -r all (and a
// writable qemu-io open) on an image with NEED_CHECK set whose backing file
// cannot be opened (here: it is missing) fails (exit 1), yet clears
// NEED_CHECK on the way out; qemu-img check repairs nothing before, so the
// image is left with its invalid L1 entry and NEED_CHECK clear: it claims
// to be clean. Rule (docs/format.md, Flush ordering and NEED_CHECK):
// NEED_CHECK clear implies consistent; it is cleared only after a repair
// that left no corruption. impl/qed opens the backing chain before its
// repair and writes nothing when that fails. Found by qedtorture repair
// (docs/findings.md, F6).
func TestDeviationFailedOpenClearsNeedCheck(t *testing.T) {
	r := newRig(t)
	back := r.path("back.qed")
	r.img("create", "-q", "-f", "qed", back, "1M")
	img := r.path("top.qed")
	r.img("create", "-q", "-f", "qed", "-o", "cluster_size=65536,table_size=4", "-b", back, "-F", "qed", img, "1M")
	r.io(img, "qed", "write -P 1 0 4096")
	l, err := ReadLayout(img)
	must(t, err)
	must(t, PutU64(img, l.L1Entry(0), 1))
	must(t, PutU64(img, 16, l.Header.Features|qed.FeatureNeedCheck))
	must(t, os.Remove(back))

	_, code, err := r.q.Check(img, "all")
	must(t, err)
	f, err := GetU64(img, 16)
	must(t, err)
	e, err := GetU64(img, l.L1Entry(0))
	must(t, err)
	if code != 1 || f&qed.FeatureNeedCheck != 0 || e != 1 {
		t.Errorf("qemu-img check -r all without the backing file: exit %d, features %#x, L1[0] %#x; QEMU 7.2 fails, "+
			"clears NEED_CHECK and leaves L1[0] = 1 (fixed upstream? flip this test)", code, f, e)
	}

	// impl/qed writes nothing when the backing file is missing.
	must(t, PutU64(img, 16, l.Header.Features|qed.FeatureNeedCheck))
	if _, _, code := r.qt("check", "-r", "all", img); code != 1 {
		t.Errorf("qedtorture check -r all without the backing file: exit %d, want 1", code)
	}
	if f, _ := GetU64(img, 16); f&qed.FeatureNeedCheck == 0 {
		t.Error("qedtorture check -r all cleared NEED_CHECK although it could not open the image")
	}
}

// TestPlantedEveryKind: props/check's corrupter plants every corruption
// kind it knows, NEED_CHECK set and clear, into QEMU-written images; on each
// qemu-img check and qedtorture check agree on every count and the exit
// code, read-only and with -r all, except where a deviation above says they
// differ: a header QEMU accepts and impl/qed refuses (header_size 0, F5).
func TestPlantedEveryKind(t *testing.T) {
	for _, g := range []geometry{{64 << 10, 4}, {4 << 10, 2}} {
		rb := newRig(t)
		base := rb.baseImage(fmt.Sprintf("base-%d.qed", g.cluster), g, 16*g.cluster+1536)
		clean, err := os.ReadFile(base)
		must(t, err)
		for _, c := range check.Corruptions() {
			for _, nc := range []bool{true, false} {
				t.Run(fmt.Sprintf("%v/%v/need-check=%v", g, c, nc), func(t *testing.T) {
					r := newRig(t)
					img, p, err := check.Plant(clean, c, nc, 7)
					if errors.Is(err, check.ErrNotApplicable) {
						t.Skip("not applicable to the base image")
					}
					must(t, err)
					path := r.path(fmt.Sprintf("%d-%v-%v.qed", g.cluster, c, nc))
					must(t, os.WriteFile(path, img, 0o644))
					theirs, theirsCode, err := r.q.Check(path, "")
					must(t, err)
					if c == check.CorruptHeaderField {
						// QEMU and impl/qed both refuse a bad header (exit 1),
						// but for header_size 0 (F5).
						_, _, oursCode := r.qt("check", path)
						if oursCode != 1 || (theirsCode != 1 && !strings.Contains(p.What, "header_size = 0")) {
							t.Errorf("%s: qedtorture exit %d, qemu-img exit %d, want both 1", p.What, oursCode, theirsCode)
						}
						return
					}
					ours, oursCode := r.checkJSONCode(path)
					sameCounts(t, p.What, path, path, ours, theirs, oursCode, theirsCode)

					// With -r all, on two copies: the same counts and fixes.
					qrep, orep := path+".q", path+".o"
					copyFile(t, path, qrep)
					copyFile(t, path, orep)
					theirs, theirsCode, err = r.q.Check(qrep, "all")
					must(t, err)
					ours, oursCode = r.checkJSONCode(orep, "-r", "all")
					sameCounts(t, p.What+" (-r all)", orep, qrep, ours, theirs, oursCode, theirsCode)
				})
			}
		}
	}
}
