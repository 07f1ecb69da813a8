package crashsim

import (
	"bytes"
	"math/rand/v2"
	"runtime"
	"testing"
)

// TestWritesShareTraceBytes: with the trace kept, a file's pages that a
// write covers whole point into the trace's copy of the write (one copy
// of each written byte, not two), and Replay shares the trace's bytes
// too; the shared pages are never changed in place: later writes,
// discards and truncates over them, and a Release, leave the trace, an
// earlier crash point and the replayed filesystem as they were.
func TestWritesShareTraceBytes(t *testing.T) {
	seed := testSeed(t)
	r := rand.New(rand.NewPCG(seed, 23))
	const n = 16 << 20
	data := make([]byte, n)
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	fsys := New(Options{ImplicitDirSync: true})
	f, err := fsys.Create("/f")
	if err != nil {
		t.Fatal(err)
	}
	alloc := func(do func()) uint64 {
		var a, b runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&a)
		do()
		runtime.ReadMemStats(&b)
		return b.TotalAlloc - a.TotalAlloc
	}
	if got := alloc(func() {
		if _, err := f.WriteAt(data, 1000); err != nil {
			t.Fatal(err)
		}
	}); got > n+n/4 {
		t.Errorf("a %d MiB write allocated %d bytes, want the trace's copy only", n>>20, got)
	}
	synced, want := syncAt1000(t, fsys, f, data)
	// Writes, discards and a truncate over the shared pages.
	model := bytes.Clone(want)
	scribble(t, fsys, f, r, model, 200)
	cut := int64(len(model)) - 12345
	if err := f.Truncate(cut); err != nil {
		t.Fatal(err)
	}
	model = model[:cut]
	check := func(what string, fsys *FS, want []byte) {
		t.Helper()
		if got := contentOf(t, fsys, "/f"); got != string(want) {
			t.Fatalf("%s: contents differ", what)
		}
	}
	check("live", fsys, model)
	tr := fsys.Trace()
	if !bytes.Equal(tr.Ops[1].Data, data) {
		t.Fatal("the trace's copy of the first write changed")
	}
	st := synced.Durable().NewFS(Options{})
	check("synced point", st, want)
	var rep *FS
	if got := alloc(func() {
		var err error
		if rep, err = EmptyImage().Replay(tr, int64(len(tr.Ops)), Options{}); err != nil {
			t.Fatal(err)
		}
	}); got > n/4 {
		t.Errorf("Replay allocated %d bytes: it copied the trace's %d MiB write", got, n>>20)
	}
	check("replay", rep, model)
	fsys.Release()
	check("synced point after the release", synced.Durable().NewFS(Options{}), want)
	check("replay after the release", rep, model)
	if !bytes.Equal(tr.Ops[1].Data, data) {
		t.Fatal("the trace's copy of the first write changed")
	}
}

// scribble makes n random writes and discards of up to three pages each
// over file /f of fsys (open as f), below its last three pages, and
// applies each to model, /f's expected contents.
func scribble(t *testing.T, fsys *FS, f interface {
	WriteAt([]byte, int64) (int, error)
}, r *rand.Rand, model []byte, n int) {
	t.Helper()
	for range n {
		off := r.Int64N(int64(len(model)) - 3*PageSize)
		k := 1 + r.Int64N(3*PageSize)
		if r.IntN(3) == 0 {
			if err := fsys.Apply(Op{Kind: OpDiscard, Path: "/f", Off: off, Size: k}); err != nil {
				t.Fatal(err)
			}
			clear(model[off : off+k])
			continue
		}
		b := make([]byte, k)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		if _, err := f.WriteAt(b, off); err != nil {
			t.Fatal(err)
		}
		copy(model[off:], b)
	}
}

// syncAt1000 syncs f (file /f of fsys, holding data at offset 1000 after
// 1000 zero bytes) and returns the crash point just after the sync and
// the file's expected contents.
func syncAt1000(t *testing.T, fsys *FS, f interface{ Sync() error }, data []byte) (*Point, []byte) {
	t.Helper()
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	synced, err := fsys.Point()
	if err != nil {
		t.Fatal(err)
	}
	want := make([]byte, 1000+len(data))
	copy(want[1000:], data)
	return synced, want
}
