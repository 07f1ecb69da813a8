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
// Changed on purpose again (issue 16.2, coverage, session 12): eleven
// hostile variants appended (hostileLate, hostileAccepted), so a hostile
// op's variant is drawn among 52, not 41, from the same single draw:
// every pin here moved (each keeps the hostile ops), and with each
// hostile op's variant taken out the draws hash as before
// (pinnedHostileMasked, computed before and after the change). And the
// tail shape (TailChance 0.2) and the zero-data shape (ZeroDataChance
// 0.15), drawn last: with both 0 the draws hash to pinnedWithoutTail.
const (
	pinnedGenerate       = "fa90a67057fb8fc714f9a1290d527a431fb53a33a4ec1f5edafb516481a8da73"
	pinnedGenerateExtras = "c3b38a8f87513d808f1886d65593ed2ce7be8d326adb196c657ee4c6722b913f"
	pinnedGenerateOneOff = "689e2e85e9242c4415c54054602a2257950757f10c428f511508f418d6e0dde0"
	pinnedGenerateLong   = "32dccb301696ec80945c5d22bc3b59f395b6f4cbc04ee6f57ed3aa54d4628de7"
)

// pinnedWithoutTail are the four pins above with TailChance and
// ZeroDataChance 0 (noTail: drawn last, so nothing else moves).
// withPaged, noIdle, noHostileAgain and noBigShapes set both to 0 too.
var pinnedWithoutTail = [4]string{
	"bed2a7fe9dd6c03ae915e168c51e53878c5ca886c9871239d9db5f806a66e265",
	"3cbd70e166a9b02d23e53c429cdfaa681990b2d97f9c41e8a8c6f480813234a2",
	"2f4c1b1df221678dbdd8505e58da82e9bd3d8bd0c04154c0e6299a2966c6ccef",
	"1ecaf82795b2a388972a790a4623f9db8bfd4b028bf943c0485794e8d3a1585e",
}

// noTail is cfgs with TailChance and ZeroDataChance 0 (drawn after it).
func noTail(cfgs ...GenConfig) []GenConfig {
	out := make([]GenConfig, len(cfgs))
	for i, c := range cfgs {
		c.TailChance, c.ZeroDataChance = 0, 0
		out[i] = c
	}
	return out
}

// pinnedWithoutHostileAgain are the four pins before HostileAgainChance.
var pinnedWithoutHostileAgain = [4]string{
	"0248eb41138b400cfaee3b5d6da5671859e2e534e21d443d1e2655498c4f49ce",
	"4b77c28f4b45ae57b605155dee444ff0768381167efd3b4fb3d7eb4d37ec88a5",
	"81c37bfd7f8666912bd3982d6e2845468932abdd3c39e5b84bd1d1db711788b4",
	"a084d8725e07519d2c8c9637a7e0acc3e7bbcc9eae82d093980c2202294b9d4a",
}

// pinnedWithoutIdle is the default and the extras configuration with
// IdleChance 0: a chance of 0 draws nothing, so the second hostile op and
// the big shapes, drawn after the idle op, keep the draws they have there.
const pinnedWithoutIdle = "70d17b5808e2c481ef246b33c010467934037cb8d2bce35fde6aab989b215c86"

// pinnedWithoutPaged is the extras configuration with PagedChance 0 (the
// backed long shape, drawn after it, keeps its draws) and with PagedChance
// 1 (every image with big tables gets the paged shape).
var pinnedWithoutPaged = [2]string{"1165001bd72cd17d6a726758a54fe36c4e8d34ef666481dd2090a6f658a44be1", "1861cdfb91801fb1b829e9a595e9883a6c9e822710699a7c8c51cdb9cc3b26e6"}

// withPaged is cfgs with PagedChance p.
func withPaged(p float64, cfgs ...GenConfig) []GenConfig {
	out := make([]GenConfig, len(cfgs))
	for i, c := range cfgs {
		c.PagedChance = p
		c.TailChance, c.ZeroDataChance = 0, 0 // drawn after it
		out[i] = c
	}
	return out
}

// noIdle is cfgs with IdleChance 0.
func noIdle(cfgs ...GenConfig) []GenConfig {
	out := make([]GenConfig, len(cfgs))
	for i, c := range cfgs {
		c.IdleChance = 0
		c.TailChance, c.ZeroDataChance = 0, 0 // drawn after it
		out[i] = c
	}
	return out
}

// noHostileAgain is cfgs with HostileAgainChance 0.
func noHostileAgain(cfgs ...GenConfig) []GenConfig {
	out := make([]GenConfig, len(cfgs))
	for i, c := range cfgs {
		c.HostileAgainChance = 0
		c.TailChance, c.ZeroDataChance = 0, 0 // drawn after it
		out[i] = c
	}
	return out
}

// pinnedWithoutBigShapes are the four pins before PagedChance and
// BackedLongChance (and HostileAgainChance).
var pinnedWithoutBigShapes = [4]string{
	"71ba5e85913e387cb559214d09a5f68edadb5cb6caeea745adfc28696a0e3235",
	"88d90a957bb0d1da5d2a55544d71037985d1ce4813ceea228e2ff3fc442b6024",
	"7a900120df225df5a1920573441d232a645c9cbca81bde521a107a9530a994a1",
	"6d226cc2df2a986745e838f54fbb7f260d8588a74ab450e9512cadcc2a126e75",
}

// noBigShapes is cfgs with PagedChance and BackedLongChance 0 (and
// HostileAgainChance, which came after them).
func noBigShapes(cfgs ...GenConfig) []GenConfig {
	out := make([]GenConfig, len(cfgs))
	for i, c := range cfgs {
		c.PagedChance, c.BackedLongChance, c.HostileAgainChance = 0, 0, 0
		c.TailChance, c.ZeroDataChance = 0, 0
		out[i] = c
	}
	return out
}

// pinnedWithoutDeepCommit are the four pins before commit -b was drawn.
var pinnedWithoutDeepCommit = [4]string{
	"46a14954d49dc267035955755d8de27de7f4631e0266bd8bd1c4936ac3bf93ac",
	"253ce8984d1c6a6de06322ca52e6d9cee796aef817774ea296f832834e5aa2e7",
	"5def9e0da04cf6cdba15adf3968073d0a4c7bac0c6777348dd8028bbff135eea",
	"b2cde0d1a1a1f6ac7ef38cb83898d4717955078fb40860620aab8098ea76d9e7",
}

// pinnedWithoutL2Cache are the four pins before the l2_cache key.
var pinnedWithoutL2Cache = [4]string{
	"96e516ddd3cd86d4153a1c25044fe218e0e8414542b6851b8111bda24d1f1da0",
	"b44bae296c57a4502e0b808a134aaa79f160755a32b854c8f5c37fc5b2819dc9",
	"8b7a0957324a0ac727a1fb636c916b9b62572423361db459207b063aac1caf8a",
	"8a3f00063f9db130a013cc057e5f71c405f0a2b2327bd10f3cba329843c7c7d4",
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
		generationHash(t, 300, noTail(DefaultGenConfig())...),
		generationHash(t, 300, noTail(extrasConfig())...),
		generationHash(t, 300, noTail(oneOffConfigs()...)...),
		generationHash(t, 2000, noTail(long)...),
	} {
		if got != pinnedWithoutTail[i] {
			t.Errorf("pin %d without the tail shape: %s, pinned %s: the other draws changed", i, got, pinnedWithoutTail[i])
		}
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

// pinnedHostileMasked is the SHA-256 of the scripts of Generate(PCG(1,
// i)) for i in 0..2999 under DefaultGenConfig (TailChance 0, which came
// later) with every hostile op's
// variant set to 0: the same before and after hostileLate's six variants
// were appended (the variant is one draw whatever the count of variants,
// so nothing else moved).
const pinnedHostileMasked = "b12c5f5894d6c23c37c02a84248e3eec536933ed72f4d2b5abd3cfa19bc36f39"

func TestGenerateHostileVariantMasked(t *testing.T) {
	h := sha256.New()
	for i := range 3000 {
		w := Generate(rand.New(rand.NewPCG(1, uint64(i))), noTail(DefaultGenConfig())[0])
		for j := range w.Ops {
			if w.Ops[j].Kind == Hostile {
				w.Ops[j].Off = 0
			}
		}
		fmt.Fprintf(h, "# %d\n", i)
		if err := w.Format(h); err != nil {
			t.Fatal(err)
		}
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != pinnedHostileMasked {
		t.Fatalf("Generate's draws 0-2999 of PCG(1, i) with the hostile variants masked hash to %s, pinned %s: generation changed", got, pinnedHostileMasked)
	}
}
