package crashsim

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"
	"testing"
)

// Tests written for mutants that survived the rest of the suite (see
// docs/mutation.md).

// TestDMLogLimits: the dm-log parser's limits are exact. A log at a limit
// parses, one past it is refused naming the field that is wrong (the
// hostile cases of TestDMLogHostile lie far from the limits).
func TestDMLogLimits(t *testing.T) {
	scan := func(log []byte) (int, error) {
		n := 0
		_, err := ScanDMLog(bytes.NewReader(log), int64(len(log)), func(DMLogEntry) error { n++; return nil })
		return n, err
	}
	field := func(err error) string {
		var fe *FormatError
		if errors.As(err, &fe) {
			return fe.Field
		}
		return ""
	}
	// Parses: the limits themselves.
	for _, c := range []struct {
		name string
		log  []byte
		n    int
	}{
		{"one sector, no entries", dmLog(512, 0), 0},
		{"the largest sector size", dmLog(1<<20, 0), 0},
		{"the last sector that fits, no data", dmLog(512, 1, dmEntry(512, math.MaxInt64/512, 0, DMLogFlush, nil)), 1},
		{"the longest discard that fits", dmLog(512, 1, dmEntry(512, 0, math.MaxInt64/512, DMLogDiscard, nil)), 1},
		{"a range ending one sector before the limit", dmLog(512, 1, dmEntry(512, math.MaxInt64/512-2, 1, DMLogDiscard, nil)), 1},
	} {
		if n, err := scan(c.log); err != nil || n != c.n {
			t.Errorf("%s: %d entries, %v; want %d, nil", c.name, n, err, c.n)
		}
	}
	// Refused, each naming its field.
	one := dmLog(512, 1, dmEntry(512, 2, 1, 0, make([]byte, 512))) // 3 sectors
	nr := func(v uint64) []byte {
		b := bytes.Clone(one)
		binary.LittleEndian.PutUint64(b[dmSuperNrEntries:], v)
		return b
	}
	superOnly := dmLog(512, 0)[:dmSuperLen]
	binary.LittleEndian.PutUint64(superOnly[dmSuperMagic:], 1)
	for _, c := range []struct {
		name, field string
		log         []byte
	}{
		// A super block of exactly its length is read: its bad magic is
		// what is wrong, not its size.
		{"a bad super block of exactly its length", "magic", superOnly},
		{"a sector size past 1 MiB", "sectorsize", dmLog(2<<20, 0)},
		// Three sectors hold at most three entries by the size rule (the
		// super block makes even three too many: the header is missing).
		{"nr_entries = sectors", "entry header", nr(3)},
		{"nr_entries = sectors + 1", "nr_entries", nr(4)},
		{"a range ending past the largest offset", "sector", dmLog(512, 1, dmEntry(512, math.MaxInt64/512, 1, DMLogDiscard, nil))},
		{"a range ending one sector past it", "sector", dmLog(512, 1, dmEntry(512, math.MaxInt64/512-1, 2, DMLogDiscard, nil))},
	} {
		if _, err := scan(c.log); field(err) != c.field {
			t.Errorf("%s: %v; want a FormatError of field %q", c.name, err, c.field)
		}
	}
}

// TestPointSeedRule: PointSeed is the campaign's rule, seed XOR k times
// the golden-ratio constant, so every point samples its own states.
func TestPointSeedRule(t *testing.T) {
	const golden = 0x9e3779b97f4a7c15
	seen := map[uint64]int64{}
	for k := range int64(64) {
		s := PointSeed(42, k)
		if s != 42^uint64(k)*golden {
			t.Fatalf("PointSeed(42, %d) = %#x, want %#x", k, s, 42^uint64(k)*golden)
		}
		if j, dup := seen[s]; dup {
			t.Fatalf("points %d and %d share seed %#x", j, k, s)
		}
		seen[s] = k
	}
}

// TestPointKsEmptyRun: a run with no operation after From asks for no
// sampled point (drawing from an empty range would panic) and judges the
// end alone.
func TestPointKsEmptyRun(t *testing.T) {
	o := ExploreOptions{SampledPoints: 5, Seed: 3}
	r, err := Record(func(*FS) error { return nil }, o)
	must(t, err)
	if ks := r.PointKs(o); !slices.Equal(ks, []int64{r.End.K()}) {
		t.Fatalf("empty run: points %v, want the end %d alone", ks, r.End.K())
	}
	r, err = Record(logWorkload(3, 0), o)
	must(t, err)
	o.From = r.End.K() // the run's From is the recording's
	r, err = Record(logWorkload(3, 0), o)
	must(t, err)
	if ks := r.PointKs(o); !slices.Equal(ks, []int64{r.End.K()}) {
		t.Fatalf("From at the end: points %v, want the end %d alone", ks, r.End.K())
	}
}

// TestFileEdges: the afero.File methods at their edges behave as *os.File
// does: O_APPEND writes go to the end (and only with it), a seek to 0 and
// a truncate to 0 are allowed, a read at the end is io.EOF.
func TestFileEdges(t *testing.T) {
	fs := New(Options{})
	f := mustCreate(t, fs, "/a")
	mustWriteAt(t, f, "0123", 0)
	if n, err := f.Seek(0, io.SeekStart); n != 0 || err != nil {
		t.Fatalf("Seek(0) = %d, %v", n, err)
	}
	if n, err := f.Seek(-4, io.SeekEnd); n != 0 || err != nil {
		t.Fatalf("Seek(-4, end) of a 4-byte file = %d, %v", n, err)
	}
	if _, err := f.Seek(-5, io.SeekEnd); err == nil {
		t.Fatal("a seek before the start allowed")
	}
	if _, err := f.Write([]byte("ab")); err != nil { // no O_APPEND: at 0
		t.Fatal(err)
	}
	if got := contentOf(t, fs, "/a"); got != "ab23" {
		t.Fatalf("a write without O_APPEND after Seek(0): %q, want ab23", got)
	}
	p := make([]byte, 2)
	if n, err := f.ReadAt(p, 4); n != 0 || err != io.EOF {
		t.Fatalf("ReadAt at the end = %d, %v; want 0, EOF", n, err)
	}
	if n, err := f.ReadAt(p, 3); n != 1 || err != io.EOF {
		t.Fatalf("ReadAt across the end = %d, %v; want 1, EOF", n, err)
	}
	if n, err := f.ReadAt(nil, 4); n != 0 || err != nil {
		t.Fatalf("an empty ReadAt at the end = %d, %v; want 0, nil", n, err)
	}
	must(t, f.Truncate(0))
	if got := contentOf(t, fs, "/a"); got != "" {
		t.Fatalf("after Truncate(0): %q", got)
	}
	if err := f.Truncate(-1); err == nil {
		t.Fatal("Truncate(-1) allowed")
	}
	must(t, f.Close())
	g, err := fs.OpenFile("/a", os.O_WRONLY|os.O_APPEND, 0)
	must(t, err)
	mustWriteAt(t, g, "xy", 0) // WriteAt ignores O_APPEND here (crashsim's rule)
	if _, err := g.Seek(0, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	if _, err := g.Write([]byte("z")); err != nil {
		t.Fatal(err)
	}
	if got := contentOf(t, fs, "/a"); got != "xyz" {
		t.Fatalf("an O_APPEND write after Seek(0): %q, want xyz", got)
	}
}

// TestReaddirChunks: Readdir(n > 0) hands out the entries in chunks of at
// most n and then io.EOF; Readdir(n <= 0) hands out the rest at once with
// a nil error, also when nothing is left.
func TestReaddirChunks(t *testing.T) {
	fs := New(Options{})
	for _, name := range []string{"/c", "/a", "/b"} {
		must(t, mustCreate(t, fs, name).Close())
	}
	names := func(n int, d interface {
		Readdirnames(int) ([]string, error)
	}) (string, error) {
		s, err := d.Readdirnames(n)
		b := ""
		for _, x := range s {
			b += x
		}
		return b, err
	}
	d, err := fs.Open("/")
	must(t, err)
	for i, want := range []string{"ab", "c"} {
		if got, err := names(2, d); got != want || err != nil {
			t.Fatalf("Readdirnames(2) #%d = %q, %v; want %q, nil", i, got, err, want)
		}
	}
	if got, err := names(2, d); got != "" || err != io.EOF {
		t.Fatalf("Readdirnames(2) past the end = %q, %v; want EOF", got, err)
	}
	if got, err := names(0, d); got != "" || err != nil {
		t.Fatalf("Readdirnames(0) past the end = %q, %v; want nothing, nil", got, err)
	}
	must(t, d.Close())
	for _, n := range []int{0, -1} {
		d, err := fs.Open("/")
		must(t, err)
		if got, err := names(n, d); got != "abc" || err != nil {
			t.Fatalf("Readdirnames(%d) = %q, %v; want abc, nil", n, got, err)
		}
		if got, err := names(n, d); got != "" || err != nil {
			t.Fatalf("Readdirnames(%d) again = %q, %v; want nothing, nil", n, got, err)
		}
		must(t, d.Close())
	}
}

// TestCreatePerm: OpenFile and Mkdir keep the permission bits they are
// given (Stat reports them); perm 0 keeps the default mode.
func TestCreatePerm(t *testing.T) {
	fs := New(Options{})
	f, err := fs.OpenFile("/a", os.O_RDWR|os.O_CREATE, 0o600)
	must(t, err)
	must(t, f.Close())
	must(t, fs.Mkdir("/d", 0o700))
	f, err = fs.OpenFile("/b", os.O_RDWR|os.O_CREATE, 0)
	must(t, err)
	must(t, f.Close())
	must(t, fs.Mkdir("/e", 0))
	for name, want := range map[string]os.FileMode{"/a": 0o600, "/d": os.ModeDir | 0o700, "/b": defaultMode(false), "/e": defaultMode(true)} {
		fi, err := fs.Stat(name)
		must(t, err)
		if fi.Mode() != want {
			t.Errorf("%s: mode %v, want %v", name, fi.Mode(), want)
		}
	}
}

// TestRemoveAllOnlyBelow: RemoveAll(p) removes p and what lies below it,
// not a sibling whose name starts with p's.
func TestRemoveAllOnlyBelow(t *testing.T) {
	fs := New(Options{})
	must(t, fs.Mkdir("/a", 0))
	must(t, mustCreate(t, fs, "/a/x").Close())
	must(t, mustCreate(t, fs, "/ab").Close())
	must(t, fs.RemoveAll("/a"))
	if got := contentOf(t, fs, "/ab"); got != "" {
		t.Fatalf("/ab after RemoveAll(/a): %q, want it kept (empty)", got)
	}
	if got := contentOf(t, fs, "/a/x"); got != absent {
		t.Fatalf("/a/x after RemoveAll(/a): %q", got)
	}
	must(t, fs.RemoveAll("/"))
	if got := contentOf(t, fs, "/ab"); got != absent {
		t.Fatalf("/ab after RemoveAll(/): %q", got)
	}
}

// TestApplyEdges: Apply (and so Replay) takes what a recording can hold at
// its edges: a truncate to 0, a discard at offset 0 and a discard of 0
// bytes; it refuses negative ones.
func TestApplyEdges(t *testing.T) {
	img, err := NewImage(map[string][]byte{"/f": []byte("0123456789")})
	must(t, err)
	fs := img.NewFS(Options{})
	for _, o := range []Op{
		{Kind: OpDiscard, Path: "/f", Off: 0, Size: 2},
		{Kind: OpDiscard, Path: "/f", Off: 5, Size: 0},
		{Kind: OpTruncate, Path: "/f", Size: 4},
	} {
		if err := fs.Apply(o); err != nil {
			t.Fatalf("Apply(%v): %v", o, err)
		}
	}
	if got := contentOf(t, fs, "/f"); got != "\x00\x0023" {
		t.Fatalf("after discard and truncate: %q", got)
	}
	must(t, fs.Apply(Op{Kind: OpTruncate, Path: "/f", Size: 0}))
	if got := contentOf(t, fs, "/f"); got != "" {
		t.Fatalf("after a truncate to 0: %q", got)
	}
	for _, o := range []Op{
		{Kind: OpTruncate, Path: "/f", Size: -1},
		{Kind: OpDiscard, Path: "/f", Off: -1, Size: 1},
		{Kind: OpDiscard, Path: "/f", Off: 0, Size: -1},
	} {
		if err := fs.Apply(o); !errors.Is(err, ErrReplay) {
			t.Errorf("Apply(%v) = %v, want ErrReplay", o, err)
		}
	}
}

// TestExtendsFlag: a recorded write or truncate is marked Extends exactly
// when it makes the file longer (a write ending at the end does not).
func TestExtendsFlag(t *testing.T) {
	fs := New(Options{})
	f := mustCreate(t, fs, "/a")
	mustWriteAt(t, f, "0123", 0) // extends
	mustWriteAt(t, f, "45", 2)   // ends at the end
	mustWriteAt(t, f, "6", 4)    // extends by one
	must(t, f.Truncate(5))       // same length
	must(t, f.Truncate(8))       // longer
	must(t, f.Truncate(3))       // shorter
	var got []bool
	for _, o := range fs.Trace().Ops {
		if o.Kind == OpWrite || o.Kind == OpTruncate {
			got = append(got, o.Extends)
		}
	}
	if want := []bool{true, false, true, false, true, false}; !slices.Equal(got, want) {
		t.Fatalf("Extends of the writes and truncates: %v, want %v", got, want)
	}
}

// TestOverlayReadAtOffset: a content whose crash-state overlay clears a
// range (a discard, a truncate) reads right at any offset, not only from
// its start (TestOverlayMatchesTree reads from 0).
func TestOverlayReadAtOffset(t *testing.T) {
	gen := newGen()
	var c content
	c.writeAt([]byte("abcdefghij"), 0, gen)
	overlayChoice(&c, &Op{Kind: OpDiscard, Off: 2, Size: 4}, choice{mode: choiceFull}, 512)
	overlayChoice(&c, &Op{Kind: OpTruncate, Size: 9}, choice{mode: choiceFull}, 512)
	for off := range int64(9) {
		for n := int64(1); off+n <= 9; n++ {
			p := make([]byte, n)
			c.readAt(p, off)
			if want := "ab\x00\x00\x00\x00ghi"[off : off+n]; string(p) != want {
				t.Fatalf("readAt(%d bytes at %d) = %q, want %q", n, off, p, want)
			}
		}
	}
}

// TestPrefixSizeOrdinals pins the ordinal order of the prefix model with
// the size effect (a StateID names a state by its ordinal, so artifacts
// of earlier runs depend on it): prefix length j ascending, then the size
// bits of the lost extending writes, the first lost write's bit lowest, a
// set bit keeping the write's new length.
func TestPrefixSizeOrdinals(t *testing.T) {
	fs := New(Options{})
	f := mustCreate(t, fs, "/a")
	syncDir(t, fs, "/")
	must(t, f.Sync())
	mustWriteAt(t, f, "AA", 0)
	mustWriteAt(t, f, "BB", 2)
	p := fs.Crash()
	m := Model{Base: Prefix, Size: true}
	z := func(n int) string { return string(make([]byte, n)) }
	want := []string{"", z(2), z(4), z(4), "AA", "AA" + z(2), "AABB"}
	if n, ok := p.Count(m); !ok || n != uint64(len(want)) {
		t.Fatalf("Count = %d, %v; want %d", n, ok, len(want))
	}
	for ord, w := range want {
		s, err := p.State(StateID{K: p.K(), Model: m, Ordinal: uint64(ord)})
		must(t, err)
		if got := contentOf(t, s, "/a"); got != w {
			t.Errorf("ordinal %d: %q, want %q", ord, got, w)
		}
	}
}

// TestSampledStatesBelongToModel: above the bound, the sampled states of a
// model are states of that model (the prefix model samples prefixes only)
// and reach beyond the prefixes where the model does (subset).
func TestSampledStatesBelongToModel(t *testing.T) {
	fs := New(Options{})
	f := mustCreate(t, fs, "/a")
	syncDir(t, fs, "/")
	mustWriteAt(t, f, "....", 0)
	must(t, f.Sync())
	mustWriteAt(t, f, "D", 0)
	mustWriteAt(t, f, "M", 3)
	p := fs.Crash()
	for _, m := range []Model{{Base: Prefix}, {Base: Subset}} {
		all := statesOf(t, p, m, "/a")
		sampled := map[string]bool{}
		for id, s := range p.States(m, EnumOptions{Bound: 1, Samples: 64, Seed: 5}) {
			if !id.Sampled {
				t.Fatalf("%s: state %s not sampled above a bound of 1", m, id)
			}
			sampled[contentOf(t, s, "/a")] = true
		}
		for c := range sampled {
			if !all[c] {
				t.Errorf("%s: sampled content %q is not a state of the model (%v)", m, c, all)
			}
		}
		if m.Base == Subset && !sampled["...M"] {
			t.Errorf("subset: 64 samples never dropped the first write: %v", sampled)
		}
	}
}

// TestSampledStatesPinned pins which state a sampled StateID names (its
// seed picks the choices: an artifact of an earlier run replays its state
// only while the draw stays the same), for the torn model with the size
// effect. The contents are those of this package when the test was
// written; a change of the sampling rule must change them deliberately.
func TestSampledStatesPinned(t *testing.T) {
	fs := New(Options{})
	f := mustCreate(t, fs, "/a")
	syncDir(t, fs, "/")
	mustWriteAt(t, f, "..", 0)
	must(t, f.Sync())
	mustWriteAt(t, f, strings.Repeat("A", 1000), 100) // extends, two sectors
	mustWriteAt(t, f, "B", 1)
	p := fs.Crash()
	m := Model{Base: Torn, Sector: 512, Size: true}
	var got []string
	for _, s := range p.States(m, EnumOptions{Bound: 1, Samples: 12, Seed: 9}) {
		c := contentOf(t, s, "/a")
		got = append(got, fmt.Sprintf("%d:%d:%d", len(c), strings.Count(c, "A"), strings.Count(c, "B")))
	}
	if want := "1100:76:0 2:0:0 512:412:0 2:0:1 1100:924:1 1100:1000:1 2:0:0 1100:1000:0 1100:488:1 1100:1000:0 1100:1000:1 2:0:0"; strings.Join(got, " ") != want {
		t.Fatalf("sampled states (length:As:Bs) %s, want %s", strings.Join(got, " "), want)
	}
}

// TestTornSectorsAtOffset: a torn write that starts inside a sector keeps
// or loses each of the sectors it touches on its own, its first and last
// pieces partial (the tests of TestDurability tear writes at offset 0).
func TestTornSectorsAtOffset(t *testing.T) {
	fs := New(Options{})
	f := mustCreate(t, fs, "/a")
	syncDir(t, fs, "/")
	mustWriteAt(t, f, strings.Repeat(".", 1200), 0)
	must(t, f.Sync())
	mustWriteAt(t, f, strings.Repeat("A", 1000), 100) // pieces [100,512) [512,1024) [1024,1100)
	want := map[string]bool{}
	for mask := range 8 {
		b := []byte(strings.Repeat(".", 1200))
		for k, r := range [][2]int{{100, 512}, {512, 1024}, {1024, 1100}} {
			if mask&(1<<k) != 0 {
				copy(b[r[0]:r[1]], strings.Repeat("A", r[1]-r[0]))
			}
		}
		want[string(b)] = true
	}
	got := statesOf(t, fs.Crash(), Model{Base: Torn, Sector: 512}, "/a")
	if len(got) != len(want) {
		t.Fatalf("%d torn states, want %d", len(got), len(want))
	}
	for c := range got {
		if !want[c] {
			t.Fatalf("torn state not made of whole pieces: %d As", strings.Count(c, "A"))
		}
	}
}

// TestGarbageSectors: a trashed piece of a torn write holds pseudo-random
// bytes (neither zeros nor either content) over that piece only, also
// once the state is written to (its overlay flattened).
func TestGarbageSectors(t *testing.T) {
	fs := New(Options{})
	f := mustCreate(t, fs, "/a")
	syncDir(t, fs, "/")
	mustWriteAt(t, f, strings.Repeat(".", 1200), 0)
	must(t, f.Sync())
	mustWriteAt(t, f, strings.Repeat("A", 1000), 100) // pieces [100,512) [512,1024) [1024,1100)
	p := fs.Crash()
	m := Model{Base: Torn, Sector: 512, Garbage: true}
	n, ok := p.Count(m)
	if !ok || n != 27 {
		t.Fatalf("Count = %d, %v; want 27 (3 pieces, 3 choices each)", n, ok)
	}
	found := false
	for id, s := range p.States(m, EnumOptions{}) {
		c := contentOf(t, s, "/a")
		first := c[100:512]
		if strings.Count(first, ".") > 8 || strings.Count(first, "A") > 8 || strings.Count(first, "\x00") > 8 {
			continue // the first piece is not trashed
		}
		if c[512:] != strings.Repeat(".", 688) {
			continue // only the first piece trashed: the rest as it was
		}
		found = true
		g, err := p.State(id)
		must(t, err)
		h, err := g.OpenFile("/a", os.O_RDWR, 0)
		must(t, err)
		mustWriteAt(t, h, "x", 1199) // flattens the overlay
		must(t, h.Close())
		if got := contentOf(t, g, "/a"); got != c[:1199]+"x" {
			t.Fatalf("%s: after a write the state changed outside it: %q", id, got[500:530])
		}
	}
	if !found {
		t.Fatal("no state trashes the first piece alone")
	}
}

// TestBoundIsInclusive: a point with exactly Bound states is enumerated
// whole; with one state more it is sampled.
func TestBoundIsInclusive(t *testing.T) {
	fs := New(Options{})
	f := mustCreate(t, fs, "/a")
	syncDir(t, fs, "/")
	mustWriteAt(t, f, "ab", 0)
	must(t, f.Sync())
	mustWriteAt(t, f, "c", 0)
	mustWriteAt(t, f, "d", 1)
	p := fs.Crash()
	m := Model{Base: Subset}
	n, _ := p.Count(m)
	for _, c := range []struct {
		bound   uint64
		sampled bool
	}{{n, false}, {n - 1, true}} {
		var ids []StateID
		for id := range p.IDs(m, EnumOptions{Bound: c.bound, Samples: 3}) {
			ids = append(ids, id)
		}
		for _, id := range ids {
			if id.Sampled != c.sampled {
				t.Fatalf("count %d, bound %d: state %s sampled=%v", n, c.bound, id, id.Sampled)
			}
		}
		if !c.sampled && uint64(len(ids)) != n {
			t.Fatalf("bound %d: %d states enumerated, want %d", c.bound, len(ids), n)
		}
		if p.Exhaustive(m, EnumOptions{Bound: c.bound}) == c.sampled {
			t.Fatalf("bound %d: Exhaustive disagrees with IDs", c.bound)
		}
	}
}

// TestOpKindBounds: OpKind names only the kinds there are (others print
// their number), and a trace holding an op of no kind does not encode.
func TestOpKindBounds(t *testing.T) {
	for k, want := range map[OpKind]string{0: "OpKind(0)", OpCreate: "create", OpRename: "rename", opKindEnd: fmt.Sprintf("OpKind(%d)", opKindEnd)} {
		if got := k.String(); got != want {
			t.Errorf("OpKind(%d).String() = %q, want %q", k, got, want)
		}
	}
	for _, k := range []OpKind{0, opKindEnd} {
		tr := &Trace{Ops: []Op{{Kind: k, Path: "/a"}}}
		if _, err := tr.MarshalBinary(); err == nil {
			t.Errorf("a trace with an op of kind %d encoded", k)
		}
	}
}

// TestTraceDecodeLimits: the trace decoder refuses, naming the field, an
// input of the magic alone, a count larger than a quarter of the input
// (each op takes at least 4 bytes), an operation kind past the last and a
// file id past MaxInt64.
func TestTraceDecodeLimits(t *testing.T) {
	field := func(b []byte) string {
		var tr Trace
		var fe *FormatError
		if err := tr.UnmarshalBinary(b); errors.As(err, &fe) {
			return fe.Field
		} else if err != nil {
			return "not a FormatError: " + err.Error()
		}
		return "accepted"
	}
	magic := []byte(traceMagic)
	good, err := (&Trace{Ops: []Op{{Kind: OpSync, Path: "/a"}}}).MarshalBinary()
	must(t, err)
	if got := field(good); got != "accepted" {
		t.Fatalf("a good trace: %s", got)
	}
	badKind := bytes.Clone(good)
	badKind[len(magic)+1] = byte(opKindEnd) // count (1 byte), then the kind
	bigFile, err := (&Trace{Ops: []Op{{Kind: OpSync, File: 1 << 63, Path: "/a"}}}).MarshalBinary()
	must(t, err)
	for _, c := range []struct {
		name, field string
		b           []byte
	}{
		{"the magic alone", "count", magic},
		{"a count past a quarter of the input", "count", append(bytes.Clone(magic), 4, 0, 0, 0, 0)},
		{"a kind past the last", "kind", badKind},
		{"a file id past MaxInt64", "file", bigFile},
	} {
		if got := field(c.b); got != c.field {
			t.Errorf("%s: error field %q, want %q", c.name, got, c.field)
		}
	}
}

// TestPointKsHonoursOptionsFrom: Run.PointKs (and so Run.Explore) starts at
// the later of the run's From and the options' From: a caller that records
// once and explores from a later operation (the campaign's exhaustive mode,
// past its prefix) gets no point before it.
func TestPointKsHonoursOptionsFrom(t *testing.T) {
	r, err := Record(logWorkload(6, 0), ExploreOptions{})
	must(t, err)
	end := r.End.K()
	if end < 4 {
		t.Fatalf("workload too short: end %d", end)
	}
	o := ExploreOptions{AllPoints: true, From: end - 2}
	if ks := r.PointKs(o); !slices.Equal(ks, []int64{end - 2, end - 1, end}) {
		t.Fatalf("options' From %d: points %v", end-2, ks)
	}
	o = ExploreOptions{SampledPoints: 50, Seed: 9, From: end - 2}
	for _, k := range r.PointKs(o) {
		if k < end-2 {
			t.Fatalf("options' From %d: sampled point %d before it", end-2, k)
		}
	}
}
