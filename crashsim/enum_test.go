package crashsim

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/big"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/qedtorture/qedtorture/internal/testseed"
)

// countPoint: an 8 KiB synced file, then w0 @0+512, w1 @1000+1024,
// w2 @8192+100 (extending), optionally a truncate.
func countPoint(t testing.TB, withTruncate bool) *Point {
	f := New(Options{ImplicitDirSync: true})
	h := mustCreate(t, f, "/a")
	mustWriteAt(t, h, strings.Repeat("o", 8192), 0)
	must(t, h.Sync())
	mustWriteAt(t, h, strings.Repeat("a", 512), 0)
	mustWriteAt(t, h, strings.Repeat("b", 1024), 1000)
	mustWriteAt(t, h, strings.Repeat("c", 100), 8192)
	if withTruncate {
		must(t, h.Truncate(4000))
	}
	return f.Crash()
}

func TestCounts(t *testing.T) {
	want := map[string]uint64{
		"prefix": 4, "prefix+size": 2 + 2 + 2 + 1, "drop": 1, "drop+size": 2,
		"subset": 8, "subset+size": 2 * 2 * 3,
		"torn512": 2 * 8 * 2, "torn512+garbage": 3 * 27 * 3, "torn4k": 8, "torn4k+size": 2 * 2 * 4,
		"torn4k+garbage+size": 3 * 3 * 6,
	}
	wantTrunc := map[string]uint64{"prefix": 5, "drop": 1, "subset": 16, "subset+size": 24, "torn512": 64}
	for name, n := range want {
		m, err := ParseModel(name)
		must(t, err)
		p := countPoint(t, false)
		if got, exact := p.Count(m); got != n || !exact {
			t.Errorf("%s: Count = %d (exact %v), want %d", name, got, exact, n)
		}
		// Enumeration yields exactly Count states, all buildable.
		seen := 0
		for id, s := range p.States(m, EnumOptions{}) {
			if id.Sampled || id.Ordinal != uint64(seen) {
				t.Fatalf("%s: state %d has id %s", name, seen, id)
			}
			if s == nil {
				t.Fatalf("%s: nil state", name)
			}
			seen++
		}
		if uint64(seen) != n {
			t.Errorf("%s: enumerated %d states, want %d", name, seen, n)
		}
		if _, err := p.State(StateID{K: p.K(), Model: m, Ordinal: n}); !errors.Is(err, ErrBadStateID) {
			t.Errorf("%s: ordinal %d accepted: %v", name, n, err)
		}
	}
	for name, n := range wantTrunc {
		m, _ := ParseModel(name)
		if got, _ := countPoint(t, true).Count(m); got != n {
			t.Errorf("with truncate, %s: Count = %d, want %d", name, got, n)
		}
	}
}

func TestCountSaturatesAndSamples(t *testing.T) {
	f := New(Options{ImplicitDirSync: true})
	h := mustCreate(t, f, "/a")
	mustWriteAt(t, h, strings.Repeat("x", 64*1024), 0) // 128 sectors of 512
	p := f.Crash()
	m := Model{Base: Torn, Sector: 512}
	if n, exact := p.Count(m); exact || n != ^uint64(0) {
		t.Fatalf("Count = %d exact=%v, want saturated", n, exact)
	}
	if want := new(big.Int).Lsh(big.NewInt(1), 128); p.CountBig(m).Cmp(want) != 0 {
		t.Fatalf("CountBig = %v, want 2^128", p.CountBig(m))
	}
	seed := uint64(20261125)
	t.Logf("sample seed %d", seed)
	n := 0
	for id, s := range p.States(m, EnumOptions{Samples: 20, Seed: seed}) {
		if !id.Sampled {
			t.Fatalf("id %s not sampled", id)
		}
		again, err := p.State(id)
		must(t, err)
		if contentOf(t, s, "/a") != contentOf(t, again, "/a") {
			t.Fatalf("%s does not rebuild identically", id)
		}
		n++
	}
	if n != 20 {
		t.Fatalf("sampled %d states, want 20", n)
	}
	if p.Exhaustive(m, EnumOptions{}) {
		t.Fatal("Exhaustive reported for 2^128 states")
	}
}

func TestSubsetExactStates(t *testing.T) {
	f := New(Options{ImplicitDirSync: true})
	h := mustCreate(t, f, "/a")
	mustWriteAt(t, h, "....", 0)
	must(t, h.Sync())
	for i := range 4 {
		mustWriteAt(t, h, string(rune('A'+i)), int64(i))
	}
	p := f.Crash()
	for ord := range uint64(16) {
		s, err := p.State(StateID{K: p.K(), Model: Model{Base: Subset}, Ordinal: ord})
		must(t, err)
		want := []byte("....")
		for i := range 4 {
			if ord>>i&1 == 1 {
				want[i] = byte('A' + i)
			}
		}
		if got := contentOf(t, s, "/a"); got != string(want) {
			t.Errorf("ordinal %d: %q, want %q", ord, got, want)
		}
	}
}

func TestTornStates(t *testing.T) {
	f := New(Options{ImplicitDirSync: true})
	h := mustCreate(t, f, "/a")
	old := strings.Repeat("o", 1024)
	mustWriteAt(t, h, old, 0)
	must(t, h.Sync())
	mustWriteAt(t, h, strings.Repeat("n", 1024), 0)
	p := f.Crash()
	O, N := strings.Repeat("o", 512), strings.Repeat("n", 512)
	got := statesOf(t, p, Model{Base: Torn, Sector: 512}, "/a")
	if want := set(O+O, N+O, O+N, N+N); len(got) != 4 || !equalSets(got, want) {
		t.Fatalf("torn512 states: %d, want the 4 sector mixes", len(got))
	}
	if got := statesOf(t, p, Model{Base: Torn, Sector: 4096}, "/a"); !equalSets(got, set(O+O, N+N)) {
		t.Fatalf("torn4k tore inside a 4k block")
	}
	// With garbage: 9 states, garbage sectors neither old nor new, and the
	// same garbage every time.
	g := Model{Base: Torn, Sector: 512, Garbage: true}
	got = statesOf(t, p, g, "/a")
	if len(got) != 9 {
		t.Fatalf("torn512+garbage: %d distinct states, want 9", len(got))
	}
	for s := range got {
		for _, half := range []string{s[:512], s[512:]} {
			if half != O && half != N && strings.Count(half, "o") > 32 {
				t.Fatalf("garbage sector looks like data")
			}
		}
	}
	if !equalSets(got, statesOf(t, p, g, "/a")) {
		t.Fatal("garbage is not deterministic")
	}
}

func equalSets(a, b map[string]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if !b[k] {
			return false
		}
	}
	return true
}

// TestStateIDRoundTrip: every state of every model rebuilds bit for bit
// from its printed identity.
func TestStateIDRoundTrip(t *testing.T) {
	p := countPoint(t, true)
	for _, m := range append(Models(), Model{Base: Prefix, Size: true}, Model{Base: Torn, Sector: 512, Garbage: true, Size: true}) {
		for id, s := range p.States(m, EnumOptions{Bound: 300, Samples: 50, Seed: 7}) {
			parsed, err := ParseStateID(id.String())
			must(t, err)
			if parsed != id {
				t.Fatalf("ParseStateID(%q) = %+v, want %+v", id, parsed, id)
			}
			again, err := p.State(parsed)
			must(t, err)
			if a, b := digest(t, s), digest(t, again); a != b {
				t.Fatalf("%s rebuilt differently", id)
			}
		}
	}
	for _, bad := range []string{"", "k=1/subset", "x=1/subset/0", "k=-1/subset/0", "k=1/bogus/0",
		"k=1/subset/seed=x", "k=1/subset/-3", "k=1/subset+garbage/0", "k=1/torn100/0", "k=1/subset+size+size/0"} {
		if _, err := ParseStateID(bad); !errors.Is(err, ErrBadStateID) {
			t.Errorf("ParseStateID(%q) = %v, want ErrBadStateID", bad, err)
		}
	}
	if _, err := p.State(StateID{K: p.K() + 1, Model: Model{Base: Drop}}); !errors.Is(err, ErrBadStateID) {
		t.Errorf("state of another point accepted: %v", err)
	}
}

func digest(t testing.TB, f *FS) string {
	h := sha256.New()
	for _, name := range f.Start().Paths() {
		b, _ := f.Start().ReadFile(name)
		fmt.Fprintf(h, "%s %d\n", name, len(b))
		h.Write(b)
	}
	return fmt.Sprintf("%x", h.Sum(nil))
}

// TestPagesAgainstModel drives the page tree with random writes,
// truncates and snapshots and compares every snapshot with a plain byte
// slice model.
func TestPagesAgainstModel(t *testing.T) {
	seed := testSeed(t)
	r := rand.New(rand.NewPCG(seed, 1))
	type snap struct {
		c    content
		want []byte
	}
	var snaps []snap
	var c content
	var model []byte
	gen := newGen()
	for step := range 3000 {
		switch r.IntN(12) {
		case 0:
			size := r.Int64N(300_000)
			c.truncate(size, gen)
			if int64(len(model)) > size {
				model = model[:size]
			} else {
				model = append(model, make([]byte, size-int64(len(model)))...)
			}
		case 1:
			if r.IntN(10) != 0 {
				break
			}
			snaps = append(snaps, snap{c, bytes.Clone(model)})
			gen = newGen()
		case 2:
			off, n := r.Int64N(300_000), r.Int64N(20_000)
			applyDiscard(&c, off, n, gen)
			for i := off; i < min(off+n, int64(len(model))); i++ {
				model[i] = 0
			}
		default:
			off := r.Int64N(300_000)
			if r.IntN(20) == 0 {
				off += 2 << 20 // far sparse write
			}
			data := make([]byte, r.IntN(10_000))
			for i := range data {
				data[i] = byte(r.Uint32())
			}
			c.writeAt(data, off, gen)
			if end := off + int64(len(data)); end > int64(len(model)) {
				model = append(model, make([]byte, end-int64(len(model)))...)
			}
			copy(model[off:], data)
		}
		if int64(len(model)) != c.size {
			t.Fatalf("step %d: size %d, model %d", step, c.size, len(model))
		}
		if int64(len(model)) > 1<<20 { // keep the model small
			c.truncate(100_000, gen)
			model = model[:100_000]
		}
	}
	snaps = append(snaps, snap{c, model})
	for i, s := range snaps {
		got := make([]byte, s.c.size)
		s.c.readAt(got, 0)
		if !bytes.Equal(got, s.want) {
			t.Fatalf("snapshot %d differs from the model", i)
		}
	}
}

func TestSparseHugeOffset(t *testing.T) {
	f := New(Options{})
	h := mustCreate(t, f, "/a")
	const off = 1 << 40
	mustWriteAt(t, h, "far", off)
	fi, err := h.Stat()
	must(t, err)
	if fi.Size() != off+3 {
		t.Fatalf("size %d", fi.Size())
	}
	b := make([]byte, 8)
	if _, err := h.ReadAt(b, off-5); err != nil && err.Error() != "EOF" {
		t.Fatal(err)
	}
	if string(b[:8]) != "\x00\x00\x00\x00\x00far" {
		t.Fatalf("read %q", b)
	}
	must(t, h.Truncate(off-1))
	must(t, h.Truncate(off+3))
	if _, err := h.ReadAt(b[:3], off); err != nil || string(b[:3]) != "\x00\x00\x00" {
		t.Fatalf("after shrink and regrow: %q %v", b[:3], err)
	}
}

// TestOverlayMatchesTree: a crash state's lazy overlay reads the same as
// applying the kept operations to the tree, before and after flattening,
// and building again from a state with an overlay leaves it untouched.
func TestOverlayMatchesTree(t *testing.T) {
	seed := testSeed(t)
	r := rand.New(rand.NewPCG(seed, 2))
	for round := range 200 {
		var base content
		gen := newGen()
		base.writeAt(bytes.Repeat([]byte{0xaa}, r.IntN(20000)), 0, gen)
		direct, lazy := base, base
		gen2 := newGen()
		for i := range 1 + r.IntN(10) {
			o := Op{Index: int64(i)}
			switch r.IntN(4) {
			case 0:
				o.Kind, o.Size = OpTruncate, r.Int64N(30000)
			case 1:
				o.Kind, o.Off, o.Size = OpDiscard, r.Int64N(30000), r.Int64N(5000)
			default:
				o.Kind, o.Off = OpWrite, r.Int64N(30000)
				o.Data = bytes.Repeat([]byte{byte(i + 1)}, 1+r.IntN(6000))
			}
			if o.Kind == OpWrite && r.IntN(2) == 0 {
				// Torn: the kept sectors only, as one overlay op.
				g := []int{512, 4096}[r.IntN(2)]
				secs := make([]uint8, pieces(o.Off, o.end(), int64(g)))
				for k := range secs {
					secs[k] = uint8(r.IntN(2))
				}
				for k, s := range secs {
					lo := max(o.Off, (o.Off/int64(g)+int64(k))*int64(g))
					hi := min(o.end(), (o.Off/int64(g)+int64(k)+1)*int64(g))
					if s == 1 {
						direct.writeAt(o.Data[lo-o.Off:hi-o.Off], lo, gen2)
					}
				}
				overlayChoice(&lazy, &o, choice{mode: choiceTorn, sectors: secs}, g)
				continue
			}
			switch o.Kind {
			case OpWrite:
				direct.writeAt(o.Data, o.Off, gen2)
			case OpTruncate:
				direct.truncate(o.Size, gen2)
			case OpDiscard:
				applyDiscard(&direct, o.Off, o.Size, gen2)
			}
			overlayChoice(&lazy, &o, choice{mode: choiceFull}, 512)
		}
		read := func(c content) []byte {
			b := make([]byte, c.size)
			c.readAt(b, 0)
			return b
		}
		want := read(direct)
		if lazy.size != direct.size || !bytes.Equal(read(lazy), want) {
			t.Fatalf("round %d: overlay differs (size %d vs %d)", round, lazy.size, direct.size)
		}
		flat := lazy
		flat.ovl = slices.Clip(flat.ovl)
		flat.flatten(newGen())
		if len(flat.ovl) != 0 || !bytes.Equal(read(flat), want) {
			t.Fatalf("round %d: flattened overlay differs", round)
		}
		// Writes, discards and truncates over the overlay trim it instead
		// of flattening it: the same bytes as on the tree, and the shared
		// overlay unchanged.
		trimmed := lazy
		trimmed.ovl = slices.Clip(trimmed.ovl)
		gen3, gen4 := newGen(), newGen()
		for i := range 1 + r.IntN(6) {
			off := r.Int64N(30000)
			if r.IntN(4) == 0 {
				direct.truncate(off, gen3)
				trimmed.truncate(off, gen4)
			} else if r.IntN(3) == 0 {
				n := r.Int64N(5000)
				applyDiscard(&direct, off, n, gen3)
				applyDiscard(&trimmed, off, n, gen4)
			} else {
				b := bytes.Repeat([]byte{byte(0x40 + i)}, 1+r.IntN(6000))
				direct.writeAt(b, off, gen3)
				trimmed.writeAt(b, off, gen4)
			}
			if trimmed.size != direct.size || !bytes.Equal(read(trimmed), read(direct)) {
				t.Fatalf("round %d: write %d over the overlay differs from the tree", round, i)
			}
		}
		grow := trimmed.size + int64(r.IntN(9000))
		trimmed.truncate(grow, gen4) // grows with zeros
		direct.truncate(grow, gen3)
		if !bytes.Equal(read(trimmed), read(direct)) {
			t.Fatalf("round %d: truncate after trimmed writes differs", round)
		}
		if !bytes.Equal(read(lazy), want) {
			t.Fatalf("round %d: flattening or trimming changed the shared overlay", round)
		}
	}
}

// testSeed returns a fresh seed, or CRASHSIM_SEED when set, and logs it.
func testSeed(t *testing.T) uint64 {
	t.Helper()
	return testseed.Seed(t, "CRASHSIM_SEED")
}

// TestTruncatedStateExtendsWithZeros: a crash state that kept an unsynced
// shrinking truncate holds nothing past the new length: extending the
// file again (a write past its end) reads zeros in the gap, not the bytes
// the truncate dropped.
func TestTruncatedStateExtendsWithZeros(t *testing.T) {
	fs := New(Options{ImplicitDirSync: true})
	f, err := fs.Create("/a")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(bytes.Repeat([]byte{7}, 3*PageSize), 0); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(PageSize + 100); err != nil {
		t.Fatal(err)
	}
	p, err := fs.Point()
	if err != nil {
		t.Fatal(err)
	}
	kept := 0
	for _, m := range []Model{{Base: Prefix}, {Base: Subset}} {
		for id := range p.IDs(m, EnumOptions{}) {
			st, err := p.State(id)
			if err != nil {
				t.Fatal(err)
			}
			g, err := st.OpenFile("/a", os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			fi, _ := g.Stat()
			if fi.Size() != PageSize+100 {
				continue // the truncate was lost
			}
			kept++
			if _, err := g.WriteAt([]byte{1}, 3*PageSize); err != nil {
				t.Fatal(err)
			}
			b := make([]byte, 3*PageSize-(PageSize+100))
			if _, err := g.ReadAt(b, PageSize+100); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(b, make([]byte, len(b))) {
				t.Errorf("%s: the bytes the truncate dropped show again after the file grew", id)
			}
		}
	}
	if kept == 0 {
		t.Fatal("no state kept the truncate")
	}
}
