package workload

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"testing"
)

// Generation pinned in the package itself: a campaign names its
// workloads by (seed, index) (artifacts, shards, report digests), so the
// same rng state must keep drawing the same workload
// (internal/campaign's TestGenerationPinned pins the campaign's seeds of
// the default configuration; this one pins the generator's own draws so
// that the package's tests see a change too, mutation testing included).
// Change a constant only for a deliberate change of generation, together
// with internal/campaign's pins, and say so in docs/campaigns.md.
//
// pinnedGenerate is the SHA-256 of the scripts of Generate(PCG(1, i)) for
// i in 0..299 under DefaultGenConfig, each preceded by its index;
// pinnedGenerateExtras the same under extrasConfig (every extra of
// drawExtras and wide images drawn often); pinnedGenerateOneOff the same
// under extrasConfig with each chance of drawExtras set to 0 in turn (a
// chance of 0 consumes no draw, so the draws after it stay as they
// were); pinnedGenerateLong draws 0..1999 with a long and a huge request
// in every workload (their rare corners: a long request ending on a
// sector boundary).
//
// Changed on purpose by issue 16.2 (coverage): the small L2 cache
// (l2_cache=N, L2CacheChance 0.5 of the images spanning more than one L2
// table) drawn last in drawExtras, and zeroed in turn by oneOffConfigs
// too; with the key taken out, the draws hash to the pins before it
// (pinnedWithoutL2Cache: the same draws, the five one-off configurations
// of before). Changed on purpose again (session 6): a crafted long
// backing name leaves room for the workload's first rebase-unsafe name
// when that is longer than sector 0 can hold (TestCraftedNameLeavesRoom):
// the extras and one-off pins (with and without the key) moved.
// Changed on purpose again (issue 16.2, coverage): a commit on a chain
// whose first file is a QED image draws "commit -b N" into the deepest
// base half of the time, from the same draw (no randomness more): with
// the base depth taken out, the draws hash to the pins before it
// (pinnedWithoutDeepCommit), and without it and the l2_cache key to
// pinnedWithoutL2Cache. And again: the idle op (IdleChance 0.5, drawn
// last in drawExtras, inserted after the first op): with it and the base
// depth taken out, the draws hash to pinnedWithoutDeepCommit (oneOffConfigs
// leave IdleChance as it is). And again: the big shapes (PagedChance
// 0.1, BackedLongChance 0.02, drawn after the idle op): with both
// chances 0 the draws hash to pinnedWithoutBigShapes, the pins before
// them, and every check below runs with them 0. And again: a second
// hostile op (HostileAgainChance 0.5, drawn after the idle op, before
// the big shapes): with it 0 the draws hash to pinnedWithoutHostileAgain;
// with it and the big shapes 0 (noBigShapes), to pinnedWithoutBigShapes.
const (
	pinnedGenerate       = "d30dcfbc9a8776ca4d25c3a784d0e0e9bee63d0232de993e798bd0e95144ed34"
	pinnedGenerateExtras = "f7e1f35b9b134f1b6ac15b278ffd712c286baa3fd5459352018c60009aa2d0e5"
	pinnedGenerateOneOff = "8fde2ee22887aa403639a4251f55dde93ecc494504b11cbbfd4aba9f0daa0419"
	pinnedGenerateLong   = "62a88840d9e0cc325b6484c4bac72dbe5c469caa6d01b9b63ef8db40c9beb4f1"
)

// pinnedWithoutHostileAgain are the four pins before HostileAgainChance.
var pinnedWithoutHostileAgain = [4]string{
	"632e0769ca379eb5ae6dc9c49e91fb4773529d5840dde0777704085be05c6c8b",
	"4129a38f99c71dea9b86d408fee5d81f888c980c09c0999cb8a5f0a578d19834",
	"f77366e9bcea05617099f51260f5e83b4745ef7334b02c3cb65c86ddbe05db68",
	"fe20087f57238aaf95626d19968891774b2155b0b27fcf5ac2ae6332c4856e6e",
}

// pinnedWithoutIdle is the default and the extras configuration with
// IdleChance 0: a chance of 0 draws nothing, so the second hostile op and
// the big shapes, drawn after the idle op, keep the draws they have there.
const pinnedWithoutIdle = "d3498ce07a2bc1ea3181ceb2e98b84268460904cdbb122028a27789e93161513"

// pinnedWithoutPaged is the extras configuration with PagedChance 0 (the
// backed long shape, drawn after it, keeps its draws) and with PagedChance
// 1 (every image with big tables gets the paged shape).
var pinnedWithoutPaged = [2]string{"1906dd02eae27e3206a28eaee141c4006d3e3f3b77f849ba756fabe973f79c4a", "0e452e5d8af1ca1ba4b8277733c3a9b053f83a5204b3b02664c953cde37e90f6"}

// withPaged is cfgs with PagedChance p.
func withPaged(p float64, cfgs ...GenConfig) []GenConfig {
	out := make([]GenConfig, len(cfgs))
	for i, c := range cfgs {
		c.PagedChance = p
		out[i] = c
	}
	return out
}

// noIdle is cfgs with IdleChance 0.
func noIdle(cfgs ...GenConfig) []GenConfig {
	out := make([]GenConfig, len(cfgs))
	for i, c := range cfgs {
		c.IdleChance = 0
		out[i] = c
	}
	return out
}

// noHostileAgain is cfgs with HostileAgainChance 0.
func noHostileAgain(cfgs ...GenConfig) []GenConfig {
	out := make([]GenConfig, len(cfgs))
	for i, c := range cfgs {
		c.HostileAgainChance = 0
		out[i] = c
	}
	return out
}

// pinnedWithoutBigShapes are the four pins before PagedChance and
// BackedLongChance (and HostileAgainChance).
var pinnedWithoutBigShapes = [4]string{
	"8c456b859a222f4dc4b375857f2d3c707e4e0c9170701000920afbb8c8379b5f",
	"9e52aa9702ce2a37cb64ed27ec60e2c92aae22e74b73026250e131227a7856d2",
	"c01e0d204256cba02c55b5a37e4467851a51bddc6590c00e45426c6e3180843e",
	"a5e95d1bd9248eecbb3b9c95abf42a9299ba61019ea703cc4da170c2d460e73c",
}

// noBigShapes is cfgs with PagedChance and BackedLongChance 0 (and
// HostileAgainChance, which came after them).
func noBigShapes(cfgs ...GenConfig) []GenConfig {
	out := make([]GenConfig, len(cfgs))
	for i, c := range cfgs {
		c.PagedChance, c.BackedLongChance, c.HostileAgainChance = 0, 0, 0
		out[i] = c
	}
	return out
}

// pinnedWithoutDeepCommit are the four pins before commit -b was drawn.
var pinnedWithoutDeepCommit = [4]string{
	"d57daabbb34d807db6b2b0d471566b890ce1a575dfe69b309c079e252af1339a",
	"395deb392658e99b0b6b8719b91b3385fa377173844a9a79758ae2a0f0d99ea4",
	"f7485ccbf2a88a77b0068a204aefd9803556b600ac1fb2d929a504a56192cc32",
	"e1bbcaeb02f68064fbe591c19304de0e6d6ac1b26234b59beca2c2ed7b932c5e",
}

// pinnedWithoutL2Cache are the four pins before the l2_cache key.
var pinnedWithoutL2Cache = [4]string{
	"07e10159122f655bbf2cfd45d5c6c0e7be6aa0771da3e2465e1b3e352fac4a2f",
	"64a3f0c005b147f86a968e470732bb49ed79ffdfe85d6fe4313ce793a3b88ff4",
	"9765a6083dfa156310cf39458222e13b3ba1767efd777cddb9cf96921bc22c20",
	"8ff5164f67db66403d510992a6e0bd108c4e57fc1840fefd22bf329966d26311",
}

// extrasConfig is DefaultGenConfig with every chance of drawExtras, wide
// images and backing chains raised, so that 300 draws reach each branch.
func extrasConfig() GenConfig {
	cfg := DefaultGenConfig()
	cfg.WideChance, cfg.CraftChance, cfg.BigClusterChance, cfg.LongChance, cfg.HugeChance = 0.3, 0.6, 0.2, 0.3, 0.3
	cfg.PagedChance, cfg.BackedLongChance = 0.5, 0.3
	cfg.MaxChain = 3
	return cfg
}

// oneOffConfigs are extrasConfig with each chance of drawExtras zeroed
// in turn.
func oneOffConfigs() []GenConfig {
	var cfgs []GenConfig
	for k := range 6 {
		cfg := extrasConfig()
		*[]*float64{&cfg.BigClusterChance, &cfg.LongChance, &cfg.HugeChance, &cfg.CraftChance, &cfg.HostileChance, &cfg.L2CacheChance}[k] = 0
		cfgs = append(cfgs, cfg)
	}
	return cfgs
}

func generationHash(t *testing.T, draws uint64, cfgs ...GenConfig) string {
	return generationHashStrip(t, draws, 0, cfgs...)
}

// What generationHashStrip takes out of every draw.
const (
	stripL2Cache    = 1 << iota // the l2_cache key
	stripDeepCommit             // commit -b N (Op.Off of a commit)
	stripIdle                   // the idle ops
)

// generationHashStrip is generationHash, what strip says taken out of
// every draw.
func generationHashStrip(t *testing.T, draws uint64, strip int, cfgs ...GenConfig) string {
	h := sha256.New()
	for _, cfg := range cfgs {
		hashDraws(t, h, draws, cfg, strip)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func hashDraws(t *testing.T, h io.Writer, draws uint64, cfg GenConfig, strip int) {
	for i := range draws {
		w := Generate(rand.New(rand.NewPCG(1, i)), cfg)
		if err := w.Validate(); err != nil {
			t.Fatalf("draw %d is invalid: %v\n%s", i, err, w)
		}
		if strip&stripL2Cache != 0 {
			w.Geometry.L2Cache = 0
		}
		if strip&stripIdle != 0 {
			w.Ops = slices.DeleteFunc(w.Ops, func(op Op) bool { return op.Kind == Idle })
		}
		if strip&stripDeepCommit != 0 {
			for i := range w.Ops {
				if w.Ops[i].Kind == Commit {
					w.Ops[i].Off = 0
				}
			}
		}
		fmt.Fprintf(h, "# %d\n", i)
		if err := w.Format(h); err != nil {
			t.Fatal(err)
		}
	}
}

func TestGeneratePinned(t *testing.T) {
	if got := generationHash(t, 300, DefaultGenConfig()); got != pinnedGenerate {
		t.Errorf("Generate's draws 0-299 of PCG(1, i) under DefaultGenConfig hash to %s, pinned %s: generation changed", got, pinnedGenerate)
	}
	if got := generationHash(t, 300, extrasConfig()); got != pinnedGenerateExtras {
		t.Errorf("Generate's draws 0-299 of PCG(1, i) with every extra hash to %s, pinned %s: generation changed", got, pinnedGenerateExtras)
	}
	if got := generationHash(t, 300, oneOffConfigs()...); got != pinnedGenerateOneOff {
		t.Errorf("Generate's draws 0-299 of PCG(1, i) with one extra's chance 0 in turn hash to %s, pinned %s: generation changed", got, pinnedGenerateOneOff)
	}
	if got := generationHash(t, 300, noIdle(DefaultGenConfig(), extrasConfig())...); got != pinnedWithoutIdle {
		t.Errorf("Generate's draws 0-299 of PCG(1, i) with IdleChance 0 hash to %s, pinned %s: generation changed", got, pinnedWithoutIdle)
	}
	for i, p := range []float64{0, 1} {
		if got := generationHash(t, 300, withPaged(p, extrasConfig())...); got != pinnedWithoutPaged[i] {
			t.Errorf("Generate's draws 0-299 of PCG(1, i) with every extra and PagedChance %v hash to %s, pinned %s: generation changed", p, got, pinnedWithoutPaged[i])
		}
	}
	long := DefaultGenConfig()
	long.LongChance, long.HugeChance = 1, 1
	if got := generationHash(t, 2000, long); got != pinnedGenerateLong {
		t.Errorf("Generate's draws 0-1999 of PCG(1, i) with a long and a huge request hash to %s, pinned %s: generation changed", got, pinnedGenerateLong)
	}
	for i, got := range [4]string{
		generationHash(t, 300, noHostileAgain(DefaultGenConfig())...),
		generationHash(t, 300, noHostileAgain(extrasConfig())...),
		generationHash(t, 300, noHostileAgain(oneOffConfigs()...)...),
		generationHash(t, 2000, noHostileAgain(long)...),
	} {
		if got != pinnedWithoutHostileAgain[i] {
			t.Errorf("pin %d without the second hostile op: %s, pinned %s: the other draws changed", i, got, pinnedWithoutHostileAgain[i])
		}
	}
	for i, got := range [4]string{
		generationHash(t, 300, noBigShapes(DefaultGenConfig())...),
		generationHash(t, 300, noBigShapes(extrasConfig())...),
		generationHash(t, 300, noBigShapes(oneOffConfigs()...)...),
		generationHash(t, 2000, noBigShapes(long)...),
	} {
		if got != pinnedWithoutBigShapes[i] {
			t.Errorf("pin %d without the big shapes: %s, pinned %s: the other draws changed", i, got, pinnedWithoutBigShapes[i])
		}
	}
	// Without commit -b's depth, the draws of before; without it and
	// the l2_cache key (drawn last), the draws of before that.
	for i, got := range [4]string{
		generationHashStrip(t, 300, stripDeepCommit|stripIdle, noBigShapes(DefaultGenConfig())...),
		generationHashStrip(t, 300, stripDeepCommit|stripIdle, noBigShapes(extrasConfig())...),
		generationHashStrip(t, 300, stripDeepCommit|stripIdle, noBigShapes(oneOffConfigs()...)...),
		generationHashStrip(t, 2000, stripDeepCommit|stripIdle, noBigShapes(long)...),
	} {
		if got != pinnedWithoutDeepCommit[i] {
			t.Errorf("pin %d without commit -b and idle: %s, pinned %s: the other draws changed", i, got, pinnedWithoutDeepCommit[i])
		}
	}
	for i, got := range [4]string{
		generationHashStrip(t, 300, stripL2Cache|stripDeepCommit|stripIdle, noBigShapes(DefaultGenConfig())...),
		generationHashStrip(t, 300, stripL2Cache|stripDeepCommit|stripIdle, noBigShapes(extrasConfig())...),
		generationHashStrip(t, 300, stripL2Cache|stripDeepCommit|stripIdle, noBigShapes(oneOffConfigs()[:5]...)...),
		generationHashStrip(t, 2000, stripL2Cache|stripDeepCommit|stripIdle, noBigShapes(long)...),
	} {
		if got != pinnedWithoutL2Cache[i] {
			t.Errorf("pin %d without the l2_cache key, commit -b and idle: %s, pinned %s: the other draws changed", i, got, pinnedWithoutL2Cache[i])
		}
	}
}
