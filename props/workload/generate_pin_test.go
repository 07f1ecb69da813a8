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
// Changed on purpose again (issue 16.2, coverage): six hostile variants
// appended (hostileLate), so a hostile op's variant is drawn among 47,
// not 41, from the same single draw: every pin here moved (each keeps
// the hostile ops), and with each hostile op's variant taken out the
// draws hash as before (pinnedHostileMasked, computed before and after
// the change).
const (
	pinnedGenerate       = "a16694092e2d801b3de7e1a372ff2e90dbe4778a5c65ddc7ab78250c499156a1"
	pinnedGenerateExtras = "454cdf2e579e1e54248e4caad6f3492077a50ad8ca599b4f0342b0ee4c9a12ce"
	pinnedGenerateOneOff = "e599715b30cc52a1115fa3815452aca843453551127e90271e753d3dd6f0f3b1"
	pinnedGenerateLong   = "88542136c65a65219f52f0131407986a0812c1499de48b402a63098b177d3fd2"
)

// pinnedWithoutHostileAgain are the four pins before HostileAgainChance.
var pinnedWithoutHostileAgain = [4]string{
	"18f9cdbb4dc7a1ef51f3fac72d9bc58d1b3b53a1654d38bc68c3fcc98262ffd9",
	"c7dfa68903f9ba39855ae0f36a7d687fa18ea2335bb1c9a68bdf4eeac2019fe0",
	"3e9f5d18e7ceb56c49192025b15baa0aa472f8dd26ed084e953721df6c460e0e",
	"98caafaaf7a3e0730ee63629887b2027dc78fd2b1337ceea7d8c16814ff76974",
}

// pinnedWithoutIdle is the default and the extras configuration with
// IdleChance 0: a chance of 0 draws nothing, so the second hostile op and
// the big shapes, drawn after the idle op, keep the draws they have there.
const pinnedWithoutIdle = "3b1dda5f60ef4c11ea6dfcfe4379a3473cd2625d099e8d0994da678ab2518e34"

// pinnedWithoutPaged is the extras configuration with PagedChance 0 (the
// backed long shape, drawn after it, keeps its draws) and with PagedChance
// 1 (every image with big tables gets the paged shape).
var pinnedWithoutPaged = [2]string{"44b4b2cb05acc03e8ada69b31bb035b68a366ef6f8f89af4330e960eb930c500", "ccba23b7cd62ac44de53ac96fad85f6dc9bb408757a72dd9e17a53b545581e6f"}

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
	"76779a9d2a69ce32a06e110a6431af68978a566452524908dfd897253802861e",
	"a324b818eeec7b7433569ec14b78666eb2cb66b43435ed02bd32522c9fe962f3",
	"0d027c35c6da3027fdf43c56881b8d8c97e1574972ef9394472f72da4e617a05",
	"7aba99c2e71b7ca5d19f95458ee7313c5ab9da6bce139d5efa51a80889bd3b85",
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
	"9099e5e9a9581d2dce3346863eb690b77c6aba0cb6c836f62b1540fa6866db3d",
	"74b46b665f6cdff714ec1242ccded3497de2dd8c8202053d09495750cec3833e",
	"97e22b67671c5beab3124495c14c6de4ef1a855f1f27adad2a68787240ad5bae",
	"3a628c2254617bf4ef13006f247e60567952a115e4a9f4c67e187533a3ac801a",
}

// pinnedWithoutL2Cache are the four pins before the l2_cache key.
var pinnedWithoutL2Cache = [4]string{
	"d6493e697a4691e8b27af9fbf6bade18cd73a4543a149fdad9fcb0f73a520d95",
	"7f5000115f830579208867661d946b8fce292df0175bdb86d287355744b6cfc9",
	"1c079e2c5bf6555b673add762b7f079e0c82d96655ceb54972ee7f5a23e4e550",
	"d0df26b664a6a2240a5ac5f60cbda1fa570103528bbfc354f57f3024213f183c",
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

// pinnedHostileMasked is the SHA-256 of the scripts of Generate(PCG(1,
// i)) for i in 0..2999 under DefaultGenConfig with every hostile op's
// variant set to 0: the same before and after hostileLate's six variants
// were appended (the variant is one draw whatever the count of variants,
// so nothing else moved).
const pinnedHostileMasked = "b12c5f5894d6c23c37c02a84248e3eec536933ed72f4d2b5abd3cfa19bc36f39"

func TestGenerateHostileVariantMasked(t *testing.T) {
	h := sha256.New()
	for i := range 3000 {
		w := Generate(rand.New(rand.NewPCG(1, uint64(i))), DefaultGenConfig())
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
