package campaign

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"testing"

	"github.com/qedtorture/qedtorture/props/workload"
)

// pinnedWorkloads is the SHA-256 of the scripts of workloads 0 to 999 of
// campaign seed 1 under the default generator (each preceded by its index).
// Same seed, same workloads: artifacts, shards and report digests of
// earlier runs name workloads by (seed, index), so a change to how
// workloads are generated (the op types of migration step 10 included)
// must leave these scripts as they are. Change the constant only for a
// deliberate change of generation, and say so in docs/campaigns.md.
//
// Changed on purpose by issue 16.1: the hostile op (HostileChance 0.5,
// drawn after the ops and inserted at a drawn position); with it taken
// out every script is the one before (pinnedWithoutHostile); before:
// 9098d37b3e9b5466a5d3129a006c473354aaec6c8c78b9dc41ac8f8055ce890f.
//
// Changed on purpose by issue 16.2: the op kinds map, reopen-ro and
// refused (default weight 1 each) are drawn; before:
// c2d78781bd9009d51f4884956ad1e3e316149a5990b7a91e49a72ce1f743c58d.
//
// Changed on purpose by issue 18 (what was left): the image commands
// rebase, rebase-unsafe and commit have default weight 1 each (drawn
// for targets that run them); before (with the hostile op's header
// variants): ae5ce70498c34fb8fcc44f98210d21a00dc6542cbef37bcb6ae02759d444a445.
//
// Changed on purpose by issue 14.3: crafted images, big clusters, long and
// huge requests drawn after the ops (drawExtras; a workload without them
// is the same script); before:
// f94e4dacd9c5c8312eede7200c7ec44039a77c63a332fa24f21f8081c6f6d13e.
//
// Changed on purpose by issue 16.2 (coverage): an image spanning more
// than one L2 table gets a one- or two-table L2 cache (l2_cache=N,
// L2CacheChance 0.5), drawn last: with the key taken out every script
// is the one before (pinnedWithoutL2Cache); before:
// 87914042cee121bb5c12aa8b41fe7731698e249a1a8c57534fb9bee34347ac64.
//
// Changed on purpose by issue 16.2 (coverage, the commit API): a commit
// on a chain whose first file is a QED image is "commit -b N" into the
// deepest base half of the time, from the same draw: with the base depth
// taken out every script is the one before (pinnedWithoutDeepCommit).
// And the idle op (IdleChance 0.5, drawn last, inserted after the first
// op): with it and the base depth taken out, the scripts of before; with
// it alone (the depth kept):
// 2512e7a9ec31e679e197b6bf5efe7b089337a881efb1ac01257b38e54dc23fb9.
//
// Changed on purpose by issue 16.2 (coverage, big shapes): PagedChance
// and BackedLongChance, drawn last: with both 0 the workloads hash to
// the pin before them (pinnedWithoutBigShapes). Changed again when
// both shapes took a flush after them and the backed long write a
// cluster-aligned start. Changed again by a second hostile op
// (HostileAgainChance, drawn before the big shapes): with it 0,
// pinnedWithoutHostileAgain; with it and the big shapes 0,
// pinnedWithoutBigShapes. And again by the paged shape's write into
// guest cluster 1536 and its reopen (the big shapes' draws moved: the
// pin without the second hostile op too).
//
// Changed on purpose by issue 16.2 (coverage, session 12: thirteen hostile
// variants appended after the others, hostileLate and hostileAccepted):
// a hostile op's variant is drawn among 54, not 41, from the same draw,
// so every pin that keeps
// the hostile ops moved; with each hostile op's variant taken out the
// draws are those of before (props/workload's
// TestGenerateHostileVariantMasked). Before: pinnedWorkloads
// 5cc676625d0ca764ce9dbb9a53767fc8bf4ba3c9219ccef817076bc0707ccd35,
// pinnedWithoutHostileAgain bc8e01bf..., pinnedWithoutBigShapes
// 381e3638..., pinnedWithoutDeepCommit 2960135d..., pinnedWithoutL2Cache
// 87914042... (pinnedWithoutHostile, without the hostile ops, unchanged).
//
// Changed on purpose by issue 16.2 (coverage, session 12): the tail
// shape and the zero-data shape (TailChance 0.2, ZeroDataChance 0.15,
// drawn last): with both 0, pinnedWithoutTail; the pins below are taken
// with both 0.
const pinnedWorkloads = "55e66e1f998ee3a03e7015c91ca2bd34fe3387f797baff361349fed0fa7b2685"

// pinnedWithoutTail is pinnedWorkloads with TailChance and
// ZeroDataChance 0 (drawn last: nothing else moves).
const pinnedWithoutTail = "36bae3cf2172ecd8fbccad96768d34201b141676b5da0b191a63b59a31167471"

// pinnedWithoutHostileAgain is pinnedWorkloads with HostileAgainChance 0:
// the pin before it.
const pinnedWithoutHostileAgain = "483ba11f2404a62b0ac64665526665a1d037c694083b01797162cc5fadf7148f"

// pinnedWithoutBigShapes is pinnedWorkloads with PagedChance and
// BackedLongChance 0: the pin before them.
const pinnedWithoutBigShapes = "a6070505475d31409f5196098383add9b6dac77ed2c0c75d9b7cce403672d0b3"

// pinnedWithoutDeepCommit is the same hash with every idle op and every
// commit's base depth taken out: pinnedWorkloads before either.
const pinnedWithoutDeepCommit = "b73cdc34de3b458ba7a984280d7f8cfb7c6882c60147f211042b99dad43a7be2"

// pinnedWithoutL2Cache is the same hash with every l2_cache key taken
// out: pinnedWorkloads before the key.
const pinnedWithoutL2Cache = "12b740c20c1309537f5999f92d961b1095048a82049eeedd1594242b57f6d559"

// pinnedWithoutHostile is the same hash with every hostile op taken out:
// the generation before issue 16.1's hostile op (with issue 18's image
// commands drawn; before them:
// 9098d37b3e9b5466a5d3129a006c473354aaec6c8c78b9dc41ac8f8055ce890f).
const pinnedWithoutHostile = "393076e731a1945732c3b08ba0590420602d671adb02ad1b61f34ef4c8fad3ca"

func TestGenerationPinned(t *testing.T) {
	h, without, noCache, noDeep, nb, nh := sha256.New(), sha256.New(), sha256.New(), sha256.New(), sha256.New(), sha256.New()
	gen := workload.DefaultGenConfig()
	noAgain := gen
	noAgain.HostileAgainChance = 0
	noAgain.TailChance, noAgain.ZeroDataChance = 0, 0 // drawn after it
	noTail := gen
	noTail.TailChance, noTail.ZeroDataChance = 0, 0
	nt := sha256.New()
	noBig := noAgain
	noBig.PagedChance, noBig.BackedLongChance = 0, 0
	hostile, small, deep, idle := 0, 0, 0, 0
	for w := range 1000 {
		wl := generate(WorkloadSeed(1, w), gen)
		if err := wl.Validate(); err != nil {
			t.Fatalf("workload %d of seed 1 is invalid: %v", w, err)
		}
		fmt.Fprintf(h, "# %d\n", w)
		if err := wl.Format(h); err != nil {
			t.Fatal(err)
		}
		wl = generate(WorkloadSeed(1, w), noTail) // the tail shape came last
		fmt.Fprintf(nt, "# %d\n", w)
		if err := wl.Format(nt); err != nil {
			t.Fatal(err)
		}
		wl = generate(WorkloadSeed(1, w), noAgain) // the second hostile op came after the big shapes
		fmt.Fprintf(nh, "# %d\n", w)
		if err := wl.Format(nh); err != nil {
			t.Fatal(err)
		}
		wl = generate(WorkloadSeed(1, w), noBig) // and the big shapes
		fmt.Fprintf(nb, "# %d\n", w)
		if err := wl.Format(nb); err != nil {
			t.Fatal(err)
		}
		n0 := len(wl.Ops) // the idle op and commit -b's depth came last
		wl.Ops = slices.DeleteFunc(wl.Ops, func(op workload.Op) bool { return op.Kind == workload.Idle })
		idle += n0 - len(wl.Ops)
		for i, op := range wl.Ops {
			if op.Kind == workload.Commit && op.Off > 0 {
				wl.Ops[i].Off = 0
				deep++
			}
		}
		fmt.Fprintf(noDeep, "# %d\n", w)
		if err := wl.Format(noDeep); err != nil {
			t.Fatal(err)
		}
		if wl.Geometry.L2Cache != 0 {
			small++
		}
		nc := wl.Clone()
		nc.Geometry.L2Cache = 0
		fmt.Fprintf(noCache, "# %d\n", w)
		if err := nc.Format(noCache); err != nil {
			t.Fatal(err)
		}
		n := len(wl.Ops)
		wl.Ops = slices.DeleteFunc(wl.Ops, func(op workload.Op) bool { return op.Kind == workload.Hostile })
		hostile += n - len(wl.Ops)
		wl.Geometry.L2Cache = 0 // drawn after the hostile op: the key came later
		fmt.Fprintf(without, "# %d\n", w)
		if err := wl.Format(without); err != nil {
			t.Fatal(err)
		}
	}
	if got := hex.EncodeToString(nt.Sum(nil)); got != pinnedWithoutTail {
		t.Fatalf("workloads 0-999 of seed 1 without the tail shape hash to %s, pinned %s", got, pinnedWithoutTail)
	}
	if got := hex.EncodeToString(nh.Sum(nil)); got != pinnedWithoutHostileAgain {
		t.Fatalf("workloads 0-999 of seed 1 without the second hostile op hash to %s, pinned %s", got, pinnedWithoutHostileAgain)
	}
	if got := hex.EncodeToString(nb.Sum(nil)); got != pinnedWithoutBigShapes {
		t.Fatalf("workloads 0-999 of seed 1 without the big shapes hash to %s, pinned %s", got, pinnedWithoutBigShapes)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != pinnedWorkloads {
		t.Fatalf("workloads 0-999 of seed 1 hash to %s, pinned %s: generation changed", got, pinnedWorkloads)
	}
	if got := hex.EncodeToString(noDeep.Sum(nil)); got != pinnedWithoutDeepCommit {
		t.Fatalf("workloads 0-999 of seed 1 without idle ops and commit -b hash to %s, pinned %s", got, pinnedWithoutDeepCommit)
	}
	if deep < 5 {
		t.Fatalf("%d commit -b in 1000 workloads of seed 1", deep)
	}
	t.Logf("commit -b: %d in 1000 workloads", deep)
	if idle < 400 || idle > 600 {
		t.Fatalf("%d idle ops in 1000 workloads, want about 500 (IdleChance 0.5)", idle)
	}
	if got := hex.EncodeToString(noCache.Sum(nil)); got != pinnedWithoutL2Cache {
		t.Fatalf("workloads 0-999 of seed 1 without their l2_cache keys hash to %s, pinned %s", got, pinnedWithoutL2Cache)
	}
	if small < 40 || small > 150 {
		t.Fatalf("%d workloads of 1000 with a small L2 cache, want about 90 (L2CacheChance 0.5 of the images spanning two tables or more)", small)
	}
	if got := hex.EncodeToString(without.Sum(nil)); got != pinnedWithoutHostile {
		t.Fatalf("workloads 0-999 of seed 1 without their hostile ops hash to %s, pinned %s", got, pinnedWithoutHostile)
	}
	if hostile < 400 || hostile > 600 {
		t.Fatalf("%d hostile ops in 1000 workloads, want about 500 (HostileChance 0.5)", hostile)
	}
}
