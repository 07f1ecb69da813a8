package crashsim

import (
	"bytes"
	"io"
	"math/rand/v2"
	"runtime"
	"testing"
)

// TestWriteAtFrozen: a frozen write is recorded and read back as a plain
// one, keeps the caller's bytes themselves (no copy: the trace's data is
// the caller's slice, and the write allocates a small fraction of its
// length), and nothing the filesystem does afterwards changes them:
// writes, discards and truncates over them, with the trace kept and
// with DiscardTrace. The crash point taken at the sync holds the
// frozen write whole.
func TestWriteAtFrozen(t *testing.T) {
	seed := testSeed(t)
	for _, opts := range []Options{{ImplicitDirSync: true}, {ImplicitDirSync: true, DiscardTrace: true}} {
		r := rand.New(rand.NewPCG(seed, 29))
		const n = 4 << 20
		data := make([]byte, n)
		for i := range data {
			data[i] = byte(r.Uint32())
		}
		orig := bytes.Clone(data)
		fsys := New(opts)
		fl, err := fsys.Create("/f")
		if err != nil {
			t.Fatal(err)
		}
		f := fl.(*File)
		var a, b runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&a)
		if _, err := f.WriteAtFrozen(data, 1000); err != nil {
			t.Fatal(err)
		}
		runtime.ReadMemStats(&b)
		if got := b.TotalAlloc - a.TotalAlloc; got > n/8 {
			t.Errorf("%+v: a %d MiB frozen write allocated %d bytes, want no copy", opts, n>>20, got)
		}
		if !opts.DiscardTrace {
			tr := fsys.Trace()
			if d := tr.Ops[len(tr.Ops)-1].Data; len(d) != n || &d[0] != &data[0] {
				t.Errorf("the trace holds a copy of the frozen bytes, not them")
			}
		}
		synced, want := syncAt1000(t, fsys, f, orig)
		durable := bytes.Clone(want)
		scribble(t, fsys, f, r, want, 100)
		if err := f.Truncate(int64(len(want)) - 5000); err != nil {
			t.Fatal(err)
		}
		want = want[:len(want)-5000]
		got := make([]byte, len(want)+10)
		if k, err := f.ReadAt(got, 0); k != len(want) || err != io.EOF || !bytes.Equal(got[:k], want) {
			t.Fatalf("%+v: the file reads %d bytes (%v), not what was written over the frozen write", opts, k, err)
		}
		if !bytes.Equal(data, orig) {
			t.Fatalf("%+v: the frozen bytes were changed by later operations", opts)
		}
		if g, err := synced.Durable().ReadFile("/f"); err != nil || !bytes.Equal(g, durable) {
			t.Fatalf("%+v: the crash point at the sync does not hold the frozen write (%v)", opts, err)
		}
	}
}
