package crashsim

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"syscall"
	"testing"
)

// Tests written for mutants of the code changed since 5b62e20 that
// survived the rest of the suite (docs/mutation.md, "crashsim: the code
// changed since 5b62e20").

// TestTornSectorsAtZero: a torn write at offset 0 (a QED header's place)
// keeps or loses each of its pieces on its own: the eight states of three
// pieces, each made of whole pieces, read through the state's overlay
// (whose torn op starts its kept runs at 0).
func TestTornSectorsAtZero(t *testing.T) {
	fs := New(Options{})
	f := mustCreate(t, fs, "/a")
	syncDir(t, fs, "/")
	mustWriteAt(t, f, strings.Repeat(".", 1200), 0)
	must(t, f.Sync())
	mustWriteAt(t, f, strings.Repeat("A", 1100), 0) // pieces [0,512) [512,1024) [1024,1100)
	want := map[string]bool{}
	for mask := range 8 {
		b := []byte(strings.Repeat(".", 1200))
		for k, r := range [][2]int{{0, 512}, {512, 1024}, {1024, 1100}} {
			if mask&(1<<k) != 0 {
				copy(b[r[0]:r[1]], strings.Repeat("A", r[1]-r[0]))
			}
		}
		want[string(b)] = true
	}
	// Each state read whole by one ReadAt (io.ReadAll's first reads are
	// shorter than a run of two pieces), then flattened by a write.
	got := map[string]bool{}
	p := fs.Crash()
	m := Model{Base: Torn, Sector: 512}
	for id, s := range p.States(m, EnumOptions{}) {
		g, err := s.OpenFile("/a", os.O_RDWR, 0)
		must(t, err)
		b := make([]byte, 1200)
		if _, err := g.ReadAt(b, 0); err != nil {
			t.Fatalf("%v: %v", id, err)
		}
		got[string(b)] = true
		mustWriteAt(t, g, ".", 1199) // flattens the overlay
		if _, err := g.ReadAt(b, 0); err != nil || !want[string(b)] {
			t.Fatalf("%v flattened: not made of whole pieces (%v)", id, err)
		}
		must(t, g.Close())
	}
	if len(got) != len(want) {
		t.Fatalf("%d torn states, want %d", len(got), len(want))
	}
	for c := range got {
		if !want[c] {
			t.Fatalf("torn state not made of whole pieces: %q", c[:16]+"..."+c[500:530]+"..."+c[1020:1030])
		}
	}
}

// keptState returns /f as the crash state that keeps every operation
// since the last sync (the prefix model's last state: a lazy overlay
// over the durable pages), after ops ran on the live file.
func keptState(t *testing.T, ops func(f *File)) *File {
	t.Helper()
	fs := New(Options{ImplicitDirSync: true})
	af := mustCreate(t, fs, "/f")
	must(t, af.Sync())
	ops(af.(*File))
	p := fs.Crash()
	n, _ := p.Count(Model{Base: Prefix})
	st, err := p.FinalState(StateID{K: p.K(), Model: Model{Base: Prefix}, Ordinal: n - 1})
	must(t, err)
	g, err := st.Open("/f")
	must(t, err)
	return g.(*File)
}

// TestSeekEdges: SeekData and SeekHole at their edges, on the live file
// and on a crash state's overlay: at exactly the size both fail with
// ErrNoData, which is ENXIO (and not EINVAL); SeekData from the end of
// the only data, at a page boundary below the size, fails (a range that
// ends there holds no data there); and a write the overlay's later
// truncate cut away entirely, starting at the new size, is no data.
func TestSeekEdges(t *testing.T) {
	ext := func(f *File) {
		mustWriteAt(t, f, strings.Repeat("d", PageSize), 0)
		must(t, f.Truncate(4*PageSize))
	}
	fs := New(Options{ImplicitDirSync: true})
	live := mustCreate(t, fs, "/f").(*File)
	ext(live)
	for name, f := range map[string]*File{"live": live, "crash state": keptState(t, ext)} {
		for _, whence := range []int{SeekData, SeekHole} {
			_, err := f.Seek(4*PageSize, whence)
			if !errors.Is(err, ErrNoData) || !errors.Is(err, syscall.ENXIO) || errors.Is(err, syscall.EINVAL) {
				t.Fatalf("%s: seek %d at the size: %v, want ErrNoData (ENXIO)", name, whence, err)
			}
		}
		if pos, err := f.Seek(PageSize, SeekData); !errors.Is(err, ErrNoData) {
			t.Fatalf("%s: SeekData at the end of the only data: %d %v, want ErrNoData", name, pos, err)
		}
		if pos, err := f.Seek(PageSize-1, SeekData); err != nil || pos != PageSize-1 {
			t.Fatalf("%s: SeekData at the last data byte: %d %v", name, pos, err)
		}
	}
	cut := keptState(t, func(f *File) {
		mustWriteAt(t, f, strings.Repeat("d", PageSize), 2*PageSize)
		must(t, f.Truncate(2*PageSize))
	})
	if pos, err := cut.Seek(0, SeekData); !errors.Is(err, ErrNoData) {
		t.Fatalf("SeekData over a write truncated away: %d %v, want ErrNoData", pos, err)
	}
	if pos, err := cut.Seek(0, SeekHole); err != nil || pos != 0 {
		t.Fatalf("SeekHole over a write truncated away: %d %v, want 0", pos, err)
	}
}

// TestSeekHoleExact: SeekHole skips exactly the data: the tree's pages
// (a live file's granularity) and, in a crash state, the overlay's
// ranges, chained in any order (a range that starts where the walk
// stands, one that an earlier range leads to, a page below them), and
// stops at the first offset in none of them.
func TestSeekHoleExact(t *testing.T) {
	fs := New(Options{ImplicitDirSync: true})
	live := mustCreate(t, fs, "/f").(*File)
	mustWriteAt(t, live, strings.Repeat("d", PageSize+904), 0) // pages 0 and 1
	must(t, live.Truncate(4*PageSize))
	for _, c := range [][2]int64{{0, 2 * PageSize}, {5000, 2 * PageSize}, {2*PageSize - 1, 2 * PageSize}, {2 * PageSize, 2 * PageSize}, {3 * PageSize, 3 * PageSize}} {
		if h, err := live.Seek(c[0], SeekHole); err != nil || h != c[1] {
			t.Fatalf("live: SeekHole(%d) = %d %v, want %d", c[0], h, err, c[1])
		}
	}
	st := keptState(t, func(f *File) {
		mustWriteAt(t, f, strings.Repeat("d", PageSize), 0)
		must(t, f.Sync()) // page 0 durable: the state's tree
		mustWriteAt(t, f, strings.Repeat("e", 3000), 6000)
		mustWriteAt(t, f, strings.Repeat("f", 1904), PageSize) // [4096, 6000)
		must(t, f.Truncate(4*PageSize))
	})
	for _, c := range [][2]int64{{0, 9000}, {100, 9000}, {PageSize, 9000}, {6000, 9000}, {8999, 9000}, {9000, 9000}, {10000, 10000}} {
		if h, err := st.Seek(c[0], SeekHole); err != nil || h != c[1] {
			t.Fatalf("crash state: SeekHole(%d) = %d %v, want %d", c[0], h, err, c[1])
		}
	}
}

// TestSeekDataExact: SeekData finds exactly the next page of the tree
// (a live file's data, found through empty subtrees and past the tree's
// capacity) or range of a crash state's overlay, and fails past the
// last.
func TestSeekDataExact(t *testing.T) {
	fs := New(Options{ImplicitDirSync: true})
	live := mustCreate(t, fs, "/f").(*File)
	mustWriteAt(t, live, "d", 5*PageSize+7)
	mustWriteAt(t, live, "d", 40*PageSize)
	must(t, live.Truncate(2000*PageSize)) // past the tree's capacity (32^2 pages)
	for _, c := range [][2]int64{{0, 5 * PageSize}, {5*PageSize + 100, 5*PageSize + 100}, {6 * PageSize, 40 * PageSize}, {40*PageSize + 1, 40*PageSize + 1}, {41 * PageSize, -1}, {1500 * PageSize, -1}} {
		d, err := live.Seek(c[0], SeekData)
		if c[1] < 0 {
			if !errors.Is(err, ErrNoData) {
				t.Fatalf("live: SeekData(%d) = %d %v, want ErrNoData", c[0], d, err)
			}
			continue
		}
		if err != nil || d != c[1] {
			t.Fatalf("live: SeekData(%d) = %d %v, want %d", c[0], d, err, c[1])
		}
	}
	st := keptState(t, func(f *File) {
		mustWriteAt(t, f, "d", 2*PageSize)
		must(t, f.Sync()) // page 2 durable: the state's tree
		mustWriteAt(t, f, strings.Repeat("e", 1000), 20000)
		must(t, f.Truncate(16*PageSize))
	})
	for _, c := range [][2]int64{{0, 2 * PageSize}, {3 * PageSize, 20000}, {20500, 20500}, {21000, -1}} {
		d, err := st.Seek(c[0], SeekData)
		if c[1] < 0 {
			if !errors.Is(err, ErrNoData) {
				t.Fatalf("crash state: SeekData(%d) = %d %v, want ErrNoData", c[0], d, err)
			}
			continue
		}
		if err != nil || d != c[1] {
			t.Fatalf("crash state: SeekData(%d) = %d %v, want %d", c[0], d, err, c[1])
		}
	}
}

// TestTrimLeavesNoEmptyOp: a discard over the whole of an overlay write
// (a crash state's file replaying a trace's discard) removes the write
// from the overlay: no empty operation is left at its end for SeekData
// to report as data, and the page there stays a hole.
func TestTrimLeavesNoEmptyOp(t *testing.T) {
	data := []byte(strings.Repeat("w", PageSize))
	c := &content{size: 16 * PageSize, ovl: []ovlOp{{off: 2 * PageSize, n: PageSize, data: data}}}
	applyDiscard(c, 2*PageSize, PageSize, newGen())
	if len(c.ovl) != 0 {
		t.Fatalf("overlay after the discard: %+v", c.ovl)
	}
	if d := c.nextData(0); d != -1 {
		t.Fatalf("nextData(0) = %d after the only write was discarded, want -1", d)
	}
}

// TestAppendPiecesTornAtOffset: the pieces of a torn write at an offset
// other than 0 (three sectors' pieces, [100,512) [512,1024) [1024,1100))
// in every state of the torn model are its kept runs: each holds Len
// bytes, the op's own, Data == op.Data[Off-op.Off:][:Len], and together
// they are the kept pieces of the state.
func TestAppendPiecesTornAtOffset(t *testing.T) {
	fs := New(Options{})
	f := mustCreate(t, fs, "/a")
	syncDir(t, fs, "/")
	mustWriteAt(t, f, strings.Repeat(".", 1200), 0)
	must(t, f.Sync())
	data := []byte(strings.Repeat("A", 400) + strings.Repeat("B", 512) + strings.Repeat("C", 88))
	mustWriteAt(t, f, string(data), 100)
	p := fs.Crash()
	m := Model{Base: Torn, Sector: 512}
	seen := map[int64]int{}
	for id, s := range p.States(m, EnumOptions{}) {
		pieces, err := p.AppendPieces(nil, id)
		must(t, err)
		kept := 0
		for _, pc := range pieces {
			o := p.Unsynced()[pc.Op]
			if o.Kind != OpWrite {
				continue
			}
			if int64(len(pc.Data)) != pc.Len || !bytes.Equal(pc.Data, o.Data[pc.Off-o.Off:][:pc.Len]) {
				t.Fatalf("%v: piece at %d of %d bytes holds %q", id, pc.Off, pc.Len, pc.Data)
			}
			kept += int(pc.Len)
		}
		c := contentOf(t, s, "/a")
		if n := 1200 - strings.Count(c, "."); n != kept {
			t.Fatalf("%v: %d bytes of the write in the state, %d in its pieces", id, n, kept)
		}
		seen[int64(kept)]++
	}
	if len(seen) < 5 {
		t.Fatalf("kept lengths seen: %v", seen)
	}
}

// TestDiscardAtTheEndKeepsNoOp: a crash state that keeps a discard
// starting exactly at the file's end (a trace's discard past the data)
// holds nothing for it: once a later write extends the file, SeekData
// from below finds that write, not the discard's offset.
func TestDiscardAtTheEndKeepsNoOp(t *testing.T) {
	st := keptState(t, func(f *File) {
		must(t, f.Truncate(PageSize))
		must(t, f.Sync())
		must(t, f.fs.Apply(Op{Kind: OpDiscard, Path: "/f", Off: PageSize, Size: PageSize}))
		mustWriteAt(t, f, "w", 3*PageSize)
	})
	if d, err := st.Seek(0, SeekData); err != nil || d != 3*PageSize {
		t.Fatalf("SeekData(0) = %d %v, want %d (the write)", d, err, 3*PageSize)
	}
}
