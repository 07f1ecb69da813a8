package workload

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/qedtorture/qedtorture/model"
	"github.com/stretchr/testify/require"
)

const sample = `qedtorture-workload v1
# a comment
image cluster_size=4096 table_size=2 size=1048576
backing qed size=524288 cluster_size=65536 table_size=4 fill=200
backing raw size=262144 fill=100
write 0x1000 0x200 id=201
zero 0x0 0x10000   # trailing comment
read 0x0 0x2000
flush
resize 0x200000
reopen
check
concurrent 2
  write 0x0 0x1000 id=202
  zero 0x800 0x1000
`

func TestParseFormatRoundTrip(t *testing.T) {
	w, err := Parse(strings.NewReader(sample))
	require.NoError(t, err)
	require.Len(t, w.Geometry.Backing, 2)
	require.Len(t, w.Ops, 8)
	require.Equal(t, Op{Kind: Write, Off: 0x1000, Len: 0x200, ID: 201}, w.Ops[0])
	require.Equal(t, Concurrent, w.Ops[7].Kind)
	require.Len(t, w.Ops[7].Group, 2)
	require.Equal(t, int64(0x200000), w.SizeAt(8))
	require.Equal(t, int64(1048576), w.SizeAt(4))

	w2, err := Parse(strings.NewReader(w.String()))
	require.NoError(t, err)
	require.Equal(t, w, w2)
	require.Equal(t, w.String(), w2.String())
	require.Equal(t, w, w.Clone())
}

func TestParseErrors(t *testing.T) {
	head := "qedtorture-workload v1\nimage cluster_size=4096 table_size=2 size=8192\n"
	cases := []struct{ script, want string }{
		{"", "missing header"},
		{"hello\n", "line 1: expected the header line"},
		{"qedtorture-workload v1\nwrite 0 1 id=1\n", "line 2: ops before the image line"},
		{"qedtorture-workload v1\nimage cluster_size=4096 size=8192\n", "line 2: missing table_size="},
		{"qedtorture-workload v1\nimage cluster_size=4096 table_size=3 size=8192\n", "table_size 3 is not a power of two"},
		{"qedtorture-workload v1\nimage cluster_size=1000 table_size=2 size=8192\n", "cluster_size 1000"},
		{head + "write 0 16 id=x\n", `line 3: write id "x" is not a number`},
		{head + "write 0 16\n", "write takes 3 argument(s)"},
		{head + "write 0x1f00 0x200 id=1\n", "outside the image size"},
		{head + "write 0 1 id=1\nwrite 0 1 id=1\n", "write id 1 must be above the previous id 1"},
		{head + "resize 0x1000\n", "must grow"},
		{head + "frobnicate\n", `line 3: unknown op "frobnicate"`},
		{head + "concurrent 2\n  write 0 1 id=1\nflush\n", "line 5: concurrent group needs 1 more"},
		{head + "concurrent 1\n  flush\n", "writes only"},
		{head + "  write 0 1 id=1\n", "outside a concurrent group"},
		{head + "backing raw size=512 fill=9\n", "unknown"}, // fine syntactically: see below
		{head + "write 0 1 id=1\nbacking raw size=512 fill=9\n", "must come before the first op"},
		{head + "read -1 5\n", "not a non-negative number"},
	}
	for _, c := range cases {
		_, err := Parse(strings.NewReader(c.script))
		if c.want == "unknown" { // a valid backing line
			require.NoError(t, err, c.script)
			continue
		}
		require.Error(t, err, c.script)
		require.Contains(t, err.Error(), c.want, c.script)
	}
}

func TestGenerateValidAndDeterministic(t *testing.T) {
	seed := uint64(20261125)
	t.Logf("seed %d", seed)
	cfg := DefaultGenConfig()
	kinds := map[Kind]int{}
	backed, zeroSize, unaligned, wide, wideWrites := 0, 0, 0, 0, 0
	for i := range uint64(2000) {
		w := Generate(rand.New(rand.NewPCG(seed, i)), cfg)
		require.NoError(t, w.Validate(), "seed %d,%d:\n%s", seed, i, w)
		again := Generate(rand.New(rand.NewPCG(seed, i)), cfg)
		require.Equal(t, w, again)
		back, err := Parse(strings.NewReader(w.String()))
		require.NoError(t, err)
		require.Equal(t, w.String(), back.String())
		for _, op := range w.Ops {
			kinds[op.Kind]++
		}
		if len(w.Geometry.Backing) > 0 {
			backed++
		}
		if w.Geometry.Size == 0 {
			zeroSize++
		}
		if w.Geometry.Size%int64(w.Geometry.ClusterSize) != 0 {
			unaligned++
		}
		cs := int64(w.Geometry.ClusterSize)
		if span := cs * int64(w.Geometry.TableSize) * cs / 8; w.Geometry.Size > span {
			wide++
			for _, op := range w.Ops {
				if op.Kind == Write && op.Off+op.Len > span {
					wideWrites++ // a write past the first L2 table's range
				}
			}
		}
	}
	for _, k := range Kinds() {
		if cfg.Weights[k] == 0 {
			continue
		}
		require.Positive(t, kinds[k], "kind %s never generated", k)
	}
	require.Positive(t, backed)
	require.Positive(t, zeroSize)
	require.Positive(t, unaligned)
	require.Positive(t, wide, "no image spans two L2 tables")
	require.Positive(t, wideWrites, "no write lands past the first L2 table")
}

// TestKindNamesRoundTrip: Kinds lists every kind of the table once, in
// the constants' order, each with a distinct keyword that KindByName
// reads back, and a positive default weight.
func TestKindNamesRoundTrip(t *testing.T) {
	want := []Kind{Write, WriteZeroes, Read, Flush, Resize, Reopen, Check, Concurrent, Rebase, RebaseUnsafe, Commit, Map, ReopenRO, Refused, Hostile, Idle}
	require.Equal(t, want, Kinds())
	require.Equal(t, []string{"write", "zero", "read", "flush", "resize", "reopen", "check", "concurrent", "rebase", "rebase-unsafe", "commit", "map", "reopen-ro", "refused", "hostile", "idle"}, KindNames())
	require.Equal(t, "Kind(0)", Kind(0).String())
	require.Equal(t, "Kind(200)", Kind(200).String())
	for _, k := range Kinds() {
		switch k {
		case Hostile, Idle: // drawn by drawExtras (HostileChance, IdleChance)
			require.Zero(t, DefaultWeights()[k], "kind %s", k)
		default:
			require.Positive(t, DefaultWeights()[k], "kind %s", k)
		}
	}
	cfg := DefaultGenConfig()
	cfg.NoImageCommands()
	for _, k := range ImageCommandKinds() {
		require.Zero(t, cfg.Weights[k], "kind %s after NoImageCommands", k)
		require.Positive(t, DefaultWeights()[k], "NoImageCommands changed the defaults")
	}
	for i, k := range Kinds() {
		name := KindNames()[i]
		if got, ok := KindByName(name); !ok || got != k {
			t.Errorf("KindByName(%q) = %v, %v; want %v", name, got, ok, k)
		}
	}
	if _, ok := KindByName("nonsense"); ok {
		t.Error("KindByName accepted an unknown keyword")
	}
}

// TestEveryKindRoundTrips: each kind of the table generates an op that
// validates and whose script line parses back to the same op, so the
// per-kind generator, bounds, printer and parser agree.
func TestEveryKindRoundTrips(t *testing.T) {
	for _, k := range Kinds() {
		next := uint32(2) // above the backing file's fill id
		gs := &genState{rng: rand.New(rand.NewPCG(1, uint64(k))), size: 1 << 20, cs: 4096, hot: []int64{0},
			id: func() uint32 { next++; return next - 1 }, backing: true}
		op, ok := k.spec().gen(gs)
		require.True(t, ok, "kind %s drew nothing on a 1 MiB image", k)
		require.Equal(t, k, op.Kind)
		w := &Workload{Geometry: Geometry{ClusterSize: 4096, TableSize: 1, Size: 1 << 20,
			Backing: []Backing{{Format: "raw", Size: 1 << 19, Fill: 1}}}, Ops: []Op{op}}
		require.NoError(t, w.Validate(), "kind %s: %s", k, op)
		w2, err := Parse(strings.NewReader(w.String()))
		require.NoError(t, err, "kind %s:\n%s", k, w)
		require.Equal(t, w, w2, "kind %s", k)
	}
}

// TestEffects: what each kind says it does to the guest disk, which the
// campaign's fault damage and QEMU's clipping rely on.
func TestEffects(t *testing.T) {
	r := func(off, n int64) []model.Range { return []model.Range{{Off: off, Len: n}} }
	cases := []struct {
		op   Op
		want Effect
	}{
		{Op{Kind: Write, Off: 0x1000, Len: 0x200, ID: 5}, Effect{Ranged: true, Changes: r(0x1000, 0x200)}},
		{Op{Kind: WriteZeroes, Off: 0, Len: 0x10}, Effect{Ranged: true, Changes: r(0, 0x10)}},
		{Op{Kind: Read, Off: 0x10, Len: 0x20}, Effect{Ranged: true, Reads: true}},
		{Op{Kind: Flush}, Effect{Barrier: true}},
		{Op{Kind: Resize, Off: 0x3000}, Effect{Changes: r(0x2000, 0x1000)}},
		// To the size in force: no guest byte changes, but the empty
		// range keeps it among the ops that may change the image (the
		// state machine's writes: crashes are attached to it), which
		// it is: impl/qed rewrites its header. (Killed the mutant
		// `op.Off <= size` in resizeKind.effect.)
		{Op{Kind: Resize, Off: 0x2000}, Effect{Changes: r(0x2000, 0)}},
		{Op{Kind: Reopen}, Effect{Barrier: true}},
		{Op{Kind: Check}, Effect{}},
		{Op{Kind: Concurrent, Group: []Op{{Kind: Write, Off: 0, Len: 1, ID: 6}, {Kind: WriteZeroes, Off: 0x800, Len: 0x10}}},
			Effect{Barrier: true, Changes: []model.Range{{Off: 0, Len: 1}, {Off: 0x800, Len: 0x10}}}},
		{Op{Kind: Rebase, Off: 0x1000, Len: 0x1000, ID: 7}, Effect{Barrier: true}},
		{Op{Kind: RebaseUnsafe, Len: 700}, Effect{Barrier: true}},
		{Op{Kind: Commit}, Effect{Barrier: true}},
		{Op{Kind: Map}, Effect{}},
		{Op{Kind: ReopenRO, Off: 0x10, Len: 0x20}, Effect{Ranged: true, Reads: true, Barrier: true}},
		{Op{Kind: Refused, Off: 2}, Effect{}},
		{Op{Kind: Hostile, Off: 3, Len: 9}, Effect{}},
		{Op{Kind: Idle}, Effect{}}, // not a barrier: an image with nothing to clear writes nothing
		{Op{Kind: Kind(99)}, Effect{}},
	}
	covered := map[Kind]bool{}
	for _, c := range cases {
		require.Equal(t, c.want, c.op.Effect(0x2000), "%s", c.op)
		covered[c.op.Kind] = true
	}
	for _, k := range Kinds() {
		require.True(t, covered[k], "kind %s has no effect case", k)
	}
}

// TestCursor: Step accepts what Validate accepts at that point, moves past
// it (size, last id), and leaves the cursor alone on an invalid op.
func TestCursor(t *testing.T) {
	c := Cursor{Size: 0x2000, LastID: 4}
	require.NoError(t, c.Step(0, Op{Kind: Write, Off: 0x1000, Len: 0x1000, ID: 5}))
	require.Equal(t, Cursor{Size: 0x2000, LastID: 5}, c)
	require.NoError(t, c.Step(1, Op{Kind: Resize, Off: 0x4000}))
	require.Equal(t, Cursor{Size: 0x4000, LastID: 5}, c)
	require.NoError(t, c.Step(2, Op{Kind: Concurrent, Group: []Op{{Kind: Write, Off: 0, Len: 1, ID: 7}, {Kind: WriteZeroes, Off: 0x3000, Len: 0x1000}}}))
	require.Equal(t, Cursor{Size: 0x4000, LastID: 7}, c)
	for _, bad := range []Op{
		{Kind: Write, Off: 0, Len: 1, ID: 7},           // id not fresh
		{Kind: Read, Off: 0x3fff, Len: 2},              // past the size
		{Kind: Resize, Off: 0x2000},                    // shrinks
		{Kind: Concurrent, Group: []Op{{Kind: Flush}}}, // not a write
		{Kind: Concurrent, Group: []Op{{Kind: Write, Off: 0, Len: 1, ID: 9}, {Kind: Write, Off: 0, Len: 1, ID: 8}}}, // ids decrease
	} {
		err := c.Step(3, bad)
		require.ErrorIs(t, err, ErrInvalid, "%s", bad)
		require.Contains(t, err.Error(), "op 3", "%s", bad)
		require.Equal(t, Cursor{Size: 0x4000, LastID: 7}, c, "%s moved the cursor", bad)
	}
}

// TestOpGen: OpGen.Draw is each kind's own generator (Generate draws
// through it, TestGenerationPinned holds that): every op it draws is
// valid at the state it was drawn from, writes take fresh ids from
// NextID, a resize grows Size, ranged kinds are refused on an empty image,
// and the same state draws the same op.
func TestOpGen(t *testing.T) {
	for _, k := range Kinds() {
		for seed := range uint64(200) {
			g := &OpGen{Rand: rand.New(rand.NewPCG(seed, uint64(k))), Size: 1 << 20, ClusterSize: 4096, Hot: []int64{0, 1<<19 - 4096}, NextID: 7, Backing: true}
			twin := *g
			twin.Rand = rand.New(rand.NewPCG(seed, uint64(k)))
			op, ok := g.Draw(k)
			if !ok {
				t.Fatalf("%s, seed %d: nothing drawn on a 1 MiB image", k, seed)
			}
			if op.Kind != k {
				t.Fatalf("%s, seed %d: drew a %s", k, seed, op.Kind)
			}
			cur := Cursor{Size: 1 << 20, LastID: 6, Backing: true}
			if err := cur.Step(0, op); err != nil {
				t.Fatalf("%s, seed %d: drew %v, invalid: %v", k, seed, op, err)
			}
			if cur.Size != g.Size || cur.LastID+1 != g.NextID || cur.Backing != g.Backing || cur.Committed != g.Committed {
				t.Fatalf("%s, seed %d: drew %v; the generator's state is size %#x, next id %d; the op's, %#x and %d", k, seed, op, g.Size, g.NextID, cur.Size, cur.LastID+1)
			}
			if again, _ := twin.Draw(k); again.String() != op.String() {
				t.Fatalf("%s, seed %d: the same state drew %v, then %v", k, seed, op, again)
			}
		}
		empty := &OpGen{Rand: rand.New(rand.NewPCG(1, 2)), ClusterSize: 4096, NextID: 1}
		if op, ok := empty.Draw(k); ok && op.Effect(0).Ranged {
			t.Errorf("%s: drew the ranged %v on an empty image", k, op)
		}
	}
	if _, ok := (&OpGen{}).Draw(Kind(200)); ok {
		t.Error("an unknown kind was drawn")
	}
}
