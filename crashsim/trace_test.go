package crashsim

import (
	"errors"
	"reflect"
	"testing"
)

// recordAll runs a workload touching every operation kind.
func recordAll(t testing.TB) *FS {
	f := New(Options{})
	must(t, f.MkdirAll("/d", 0o755))
	h := mustCreate(t, f, "/d/a")
	mustWriteAt(t, h, "hello", 0)
	must(t, h.Sync())
	syncDir(t, f, "/d")
	syncDir(t, f, "/")
	mustWriteAt(t, h, "XY", 8) // extending
	must(t, h.Truncate(3))
	g := mustCreate(t, f, "/d/b")
	mustWriteAt(t, g, "bee", 0)
	must(t, g.Sync())
	must(t, f.Rename("/d/b", "/d/c"))
	syncDir(t, f, "/d")
	mustWriteAt(t, g, "!", 3)
	must(t, f.Apply(Op{Kind: OpDiscard, Path: "/d/a", Off: 1, Size: 1}))
	must(t, f.Remove("/d/a"))
	return f
}

func TestTraceRoundTripAndReplay(t *testing.T) {
	f := recordAll(t)
	tr := f.Trace()
	kinds := map[OpKind]bool{}
	for i, o := range tr.Ops {
		if o.Index != int64(i) {
			t.Fatalf("op %d has index %d", i, o.Index)
		}
		kinds[o.Kind] = true
	}
	if len(kinds) != int(opKindEnd-1) {
		t.Fatalf("workload covers %d kinds, want all %d", len(kinds), opKindEnd-1)
	}
	b, err := tr.MarshalBinary()
	must(t, err)
	var back Trace
	must(t, back.UnmarshalBinary(b))
	if !reflect.DeepEqual(tr.Ops, back.Ops) {
		t.Fatalf("round trip differs:\n%v\n%v", tr.Ops, back.Ops)
	}
	// Replaying to every k gives the same crash states as recording did.
	for k := int64(0); k <= int64(len(tr.Ops)); k++ {
		live := New(Options{})
		live.CrashAt(k)
		replayVia(live, tr)
		want := live.Crash()
		rf, err := f.Start().Replay(&back, k, Options{})
		must(t, err)
		got := rf.Crash()
		if got.K() != want.K() {
			t.Fatalf("k=%d: replayed point K=%d, recorded %d", k, got.K(), want.K())
		}
		for _, m := range []Model{{Base: Subset, Size: true}, {Base: Prefix}} {
			for id := range want.IDs(m, EnumOptions{}) {
				a, err := want.State(id)
				must(t, err)
				b, err := got.State(id)
				must(t, err)
				if digest(t, a) != digest(t, b) {
					t.Fatalf("%s differs between recording and replay", id)
				}
			}
		}
	}
}

// replayVia applies the trace to a live FS until it crashes.
func replayVia(f *FS, tr *Trace) {
	for _, o := range tr.Ops {
		if err := f.Apply(o); err != nil {
			return
		}
	}
}

func TestTraceDecodeHostile(t *testing.T) {
	tr := recordAll(t).Trace()
	b, err := tr.MarshalBinary()
	must(t, err)
	for n := range len(b) {
		var x Trace
		err := x.UnmarshalBinary(b[:n])
		var fe *FormatError
		if !errors.As(err, &fe) || !errors.Is(err, ErrFormat) {
			t.Fatalf("truncated to %d bytes: err %v, want *FormatError", n, err)
		}
	}
	var x Trace
	if err := x.UnmarshalBinary(append(b, 0)); err == nil {
		t.Fatal("trailing byte accepted")
	}
	huge := append([]byte(traceMagic), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f)
	err = x.UnmarshalBinary(huge)
	var fe *FormatError
	if !errors.As(err, &fe) || fe.Field != "count" {
		t.Fatalf("huge count: %v", err)
	}
	bad := append([]byte(traceMagic), 1, 42) // one op of kind 42
	if err := x.UnmarshalBinary(bad); !errors.As(err, &fe) || fe.Field != "kind" || fe.Entry != 0 {
		t.Fatalf("bad kind: %v", err)
	}
}

func TestApplyRejectsForeignTrace(t *testing.T) {
	f := New(Options{})
	if err := f.Apply(Op{Kind: OpWrite, Path: "/missing", Data: []byte("x")}); !errors.Is(err, ErrReplay) {
		t.Fatalf("write to missing file: %v", err)
	}
	if err := f.Apply(Op{Kind: OpCreate, Path: "/a", File: 99}); !errors.Is(err, ErrReplay) {
		t.Fatalf("create with foreign id: %v", err)
	}
	if _, err := EmptyImage().Replay(&Trace{}, 1, Options{}); !errors.Is(err, ErrReplay) {
		t.Fatalf("k past the trace: %v", err)
	}
}
