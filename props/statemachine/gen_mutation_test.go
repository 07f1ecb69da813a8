package statemachine

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/afero"

	"github.com/qedtorture/qedtorture/props/workload"
)

// Tests written for the survivors of the mutation run over the end of
// gen.go (docs/mutation.md, "props/statemachine").

// TestHotSpots: the image's start, then a cluster before each L2 table
// boundary strictly inside the image, three at most.
func TestHotSpots(t *testing.T) {
	g := workload.Geometry{ClusterSize: 4096, TableSize: 1} // one L2 table maps 2 MiB
	const l2 = 2 << 20
	for _, c := range []struct {
		size int64
		want []int64
	}{
		{0, []int64{0}},
		{l2 - 1, []int64{0}},
		{l2, []int64{0}},
		{l2 + 1, []int64{0, l2 - 4096}},
		{2 * l2, []int64{0, l2 - 4096}},
		{2*l2 + 512, []int64{0, l2 - 4096, 2*l2 - 4096}},
		{10 * l2, []int64{0, l2 - 4096, 2*l2 - 4096, 3*l2 - 4096}},
	} {
		if got := hotSpots(g, c.size); !slices.Equal(got, c.want) {
			t.Errorf("size %#x: %#x, want %#x", c.size, got, c.want)
		}
	}
	// 64 KiB clusters, 4-cluster tables: 32768 entries of 64 KiB, 2 GiB.
	big := workload.Geometry{ClusterSize: 65536, TableSize: 4}
	if got, want := hotSpots(big, 1<<40), []int64{0, 2<<30 - 65536, 4<<30 - 65536, 6<<30 - 65536}; !slices.Equal(got, want) {
		t.Errorf("64 KiB clusters, 4-cluster tables: %#x, want %#x", got, want)
	}
}

// TestWritesOps: the ops a crash or a fault is attached to are those that
// may change the image or are barriers: writes, write-zeroes, a resize
// that changes the size, flushes, reopens, groups; not reads, checks, or
// a resize to the size in force.
func TestWritesOps(t *testing.T) {
	const size = 1 << 20
	for _, c := range []struct {
		op   workload.Op
		want bool
	}{
		{workload.Op{Kind: workload.Write, Off: 0, Len: 4096, ID: 1}, true},
		{workload.Op{Kind: workload.WriteZeroes, Off: 4096, Len: 512}, true},
		{workload.Op{Kind: workload.Flush}, true},
		{workload.Op{Kind: workload.Reopen}, true},
		{workload.Op{Kind: workload.Resize, Off: 2 * size}, true},
		{workload.Op{Kind: workload.Read, Off: 0, Len: 4096}, false},
		{workload.Op{Kind: workload.Check}, false},
	} {
		if got := writes(c.op, size); got != c.want {
			t.Errorf("%v: writes %v, want %v (effect %+v)", c.op, got, c.want, c.op.Effect(size))
		}
	}
}

// noCreateTarget cannot create an image: every sequence fails in its
// setup.
type noCreateTarget struct{ Target }

func (noCreateTarget) Name() string { return "no-create" }
func (noCreateTarget) Create(afero.Fs, string, CreateOptions) error {
	return errors.New("no space for images")
}

// TestSetupFailureReported: a sequence whose setup fails (the image cannot
// be created) is a failure of kind setup before any op (op -1), found in
// the first sequence and not shrunk into another kind.
func TestSetupFailureReported(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Seed = 3
	cfg.Sequences = 5
	res := Check(noCreateTarget{QEDTarget{}}, cfg)
	if res.Passed() || res.First.Kind != "setup" || res.First.Op != -1 || !strings.Contains(res.First.Error(), "no space for images") {
		t.Fatalf("first failure %+v; want a setup failure at op -1\n%s", res.First, res.Report())
	}
	if res.Sequences != 1 || res.Shrunk == nil || res.Shrunk.Kind != "setup" || res.Shrunk.Op != -1 {
		t.Errorf("%d sequences run, shrunk %+v; want 1, the setup failure", res.Sequences, res.Shrunk)
	}
}

// TestCheckRunsTheSequencesAsked: a number of sequences that is not a
// multiple of the batch is run exactly (the last batch is cut short),
// and each one is seen once.
func TestCheckRunsTheSequencesAsked(t *testing.T) {
	for _, c := range []struct{ sequences, batch int }{{7, 3}, {2, 10}, {6, 3}} {
		cfg := DefaultConfig()
		cfg.Seed = 5
		cfg.Sequences, cfg.Batch, cfg.Steps, cfg.Run.Explore = c.sequences, c.batch, 4, 0
		seen := 0
		cfg.seen = func(*Sequence) { seen++ }
		res := Check(QEDTarget{}, cfg)
		if !res.Passed() {
			t.Fatal(res.Report())
		}
		if res.Sequences != c.sequences || seen != c.sequences {
			t.Errorf("%d sequences in batches of %d: %d run, %d seen", c.sequences, c.batch, res.Sequences, seen)
		}
	}
}

// TestCheckSimplifiesTheShrunkFailure: the failure Check reports as shrunk
// has been through Simplify: for a target that loses flushed data, the
// crash left in each shrunk sequence is right after its op (sync 0) under
// the weakest model, drop, and Simplify finds nothing more to do.
func TestCheckSimplifiesTheShrunkFailure(t *testing.T) {
	tg := lossyTarget{QEDTarget{}}
	for _, seed := range []int64{7, 8, 9} {
		cfg := DefaultConfig()
		cfg.Seed = seed
		cfg.Sequences = 50
		cfg.NoFaults = true
		res := Check(tg, cfg)
		if res.Passed() || res.Shrunk == nil {
			t.Fatalf("seed %d: no failure of the lossy target", seed)
		}
		crashes := 0
		for _, st := range res.Shrunk.Seq.Steps {
			if st.Fault != nil {
				t.Errorf("seed %d: a fault directive left: %v", seed, st.Fault)
			}
			if st.Crash != nil {
				crashes++
				if st.Crash.Sync != 0 || st.Crash.Model.String() != "drop" {
					t.Errorf("seed %d: crash directive %+v not simplified\n%s", seed, st.Crash, res.Shrunk.Seq)
				}
			}
		}
		if crashes != 1 {
			t.Errorf("seed %d: %d crash directives left\n%s", seed, crashes, res.Shrunk.Seq)
		}
		if again := Simplify(tg, res.Shrunk, cfg.Run, nil); again.Seq.String() != res.Shrunk.Seq.String() {
			t.Errorf("seed %d: Simplify simplifies the shrunk failure further:\n%s\nto\n%s", seed, res.Shrunk.Seq, again.Seq)
		}
	}
}

// simplifyInput fails on a target that loses flushed data: a fault
// directive that never fires on op 0, a crash at the flush's first sync
// under subset (the failing one), a crash during a later reopen.
const simplifyInput = `qedtorture-workload v1
image cluster_size=4096 table_size=1 size=65536
#! fault write:eio nth=9 then=close
write 0x0 0x1000 id=1
write 0x1000 0x1000 id=2
#! crash sync=1 model=subset choice=3
flush
write 0x2000 0x1000 id=3
#! crash sync=2 model=prefix choice=1
reopen
read 0x0 0x3000
`

// TestSimplifyDirectives: Simplify drops the directive that does not
// matter (op 0's included), moves the failing crash right after its op
// and weakens its model to drop, keeping the failure's kind and stage; an
// accept that refuses every candidate keeps the failure as it was.
func TestSimplifyDirectives(t *testing.T) {
	s, err := ParseSequence(simplifyInput)
	if err != nil {
		t.Fatal(err)
	}
	tg := lossyTarget{QEDTarget{}}
	_, f := RunSequence(tg, s, RunOptions{})
	if f == nil || f.Kind != "crash" || f.Stage != "data" || f.Op != 2 {
		t.Fatalf("the input does not fail as a crash at op 2's data stage: %v", f)
	}
	g := Simplify(tg, f, RunOptions{}, nil)
	want := "qedtorture-workload v1\nimage cluster_size=4096 table_size=1 size=65536\nwrite 0x0 0x1000 id=1\nwrite 0x1000 0x1000 id=2\n#! crash sync=0 model=drop choice=0\nflush\n"
	if got := g.Seq.String(); got != want || g.Kind != f.Kind || g.Stage != f.Stage {
		t.Errorf("simplified to (%s, %s)\n%s\nwant (%s, %s)\n%s", g.Kind, g.Stage, got, f.Kind, f.Stage, want)
	}
	calls := 0
	h := Simplify(tg, f, RunOptions{}, func(*Failure) bool { calls++; return false })
	if h != f || calls == 0 {
		t.Errorf("an accept refusing everything (%d calls): got\n%s", calls, h.Seq)
	}
}

// TestSimplifyFailureMovesEarlier: a flaky target (QEMU under load) can
// report a failure at a later op than the one a rerun fails at. Simplify
// then shortens the sequence under its own loop (a failure's sequence ends
// at its failing op): here the failure handed in claims op 4, and the
// first candidate, without op 4's crash, fails at op 2 already, two ops
// earlier. Simplify must go on over the shorter sequence, not index past
// its end, and return that failure, simplified.
func TestSimplifyFailureMovesEarlier(t *testing.T) {
	// The input up to and with the reopen and its crash directive (op 4).
	in, ok := strings.CutSuffix(simplifyInput, "read 0x0 0x3000\n")
	if !ok {
		t.Fatal("simplifyInput no longer ends with its read")
	}
	s, err := ParseSequence(in)
	if err != nil {
		t.Fatal(err)
	}
	if s.Len() != 5 || s.Steps[4].Crash == nil {
		t.Fatalf("op 4 of the input has no crash directive:\n%s", s)
	}
	tg := lossyTarget{QEDTarget{}}
	f := &Failure{Op: 4, Seq: s, Kind: "crash", Stage: "data", Err: errors.New("as a flaky target reported it")}
	var g *Failure
	func() {
		defer func() {
			if p := recover(); p != nil {
				t.Fatalf("Simplify panicked on a failure that moved two ops earlier: %v", p)
			}
		}()
		g = Simplify(tg, f, RunOptions{}, nil)
	}()
	if g.Op != 2 || g.Seq.Len() != 3 || g.Kind != "crash" || g.Stage != "data" {
		t.Fatalf("got a %s failure at op %d (stage %s) of %d ops, want the crash at op 2's data stage:\n%s", g.Kind, g.Op, g.Stage, g.Seq.Len(), g.Seq)
	}
	if c := g.Seq.Steps[2].Crash; c == nil || c.Sync != 0 || c.Model.String() != "drop" {
		t.Errorf("op 2's crash not simplified: %+v\n%s", c, g.Seq)
	}
}

// TestKeepShrunk: while gopter shrinks, the failure kept is the shortest
// of the first failure's kind, and of equally short ones the later (gopter
// tries smaller values of the same length later); another kind never
// replaces it, the first failure is kept whatever its kind.
func TestKeepShrunk(t *testing.T) {
	seq := func(n int) *Sequence {
		return &Sequence{W: &workload.Workload{Ops: make([]workload.Op, n)}, Steps: make([]Step, n)}
	}
	first := &Failure{Kind: "crash", Seq: seq(5)}
	shorter := &Failure{Kind: "crash", Seq: seq(3)}
	same := &Failure{Kind: "crash", Seq: seq(3)}
	longer := &Failure{Kind: "crash", Seq: seq(4)}
	other := &Failure{Kind: "op", Seq: seq(1)}
	for _, c := range []struct {
		name    string
		kept, f *Failure
		want    *Failure
	}{
		{"the first failure", nil, other, other},
		{"a shorter one", first, shorter, shorter},
		{"an equally short later one", shorter, same, same},
		{"a longer one", shorter, longer, shorter},
		{"another kind, shorter", shorter, other, shorter},
	} {
		if got := keepShrunk(c.kept, c.f, "crash"); got != c.want {
			t.Errorf("%s: kept the wrong failure (%s of %d ops)", c.name, got.Kind, got.Seq.Len())
		}
	}
}
