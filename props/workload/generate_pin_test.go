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
// Changed on purpose again (issue 16.2, coverage, session 12): thirteen
// hostile variants appended (hostileLate, hostileAccepted), so a hostile
// op's variant is drawn among 54, not 41, from the same single draw:
// every pin here moved (each keeps the hostile ops), and with each
// hostile op's variant taken out the draws hash as before
// (pinnedHostileMasked, computed before and after the change). And the
// tail shape (TailChance 0.2) and the zero-data shape (ZeroDataChance
// 0.15), drawn last: with both 0 the draws hash to pinnedWithoutTail.
const (
	pinnedGenerate       = "ea23874b733b8e7e36fb1789ed46c2b12ba8e4f27a04f0108a64d17bace8a48a"
	pinnedGenerateExtras = "4051dbaef4a6ac01852df9c78f89fc6f778eaaad666f583fe2dc861a3d6a6f3c"
	pinnedGenerateOneOff = "833c1f7f72cd48ca481548511fce9d2e7a8bf451e70d8468d32ee5c3dfc32fe3"
	pinnedGenerateLong   = "b6e060ff513e74e365ebc12dc493160b280ead9d809b0ab22a3e5716a62ed70a"
)

// pinnedWithoutTail are the four pins above with TailChance and
// ZeroDataChance 0 (noTail: drawn last, so nothing else moves).
// withPaged, noIdle, noHostileAgain and noBigShapes set both to 0 too.
var pinnedWithoutTail = [4]string{
	"a1b58162d3183cc61e5612bd093a6c5bebcde516292ab4fae111ce68f2da11df",
	"df1a6907457a8b1ac0c5e50b0130e6aa10de2c569c62aacd807ee31d4e61483c",
	"c413afff3b793ae64adb8728028769d66a10a092c034accbd24293fb97a6471b",
	"334da79c3bbf82b3f81640937b29d815300520afb32a4bee08d21c67fb2a66cf",
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
	"6cd7728b1e3ffc5292c0d87027d506d56d99fbcb4334e68a8a9d4a291e546138",
	"e9a917439f4328a4015dce3a98926157a58134a84005e54d3f05d6138b95e66f",
	"e7f9584772c542ccbb968be6ad5ed8b46f4b0527effa6e9e970937f62c7967da",
	"9098672ad79298c21763b64869ed28dda869c10e020f7527dd87ff67d4961df6",
}

// pinnedWithoutIdle is the default and the extras configuration with
// IdleChance 0: a chance of 0 draws nothing, so the second hostile op and
// the big shapes, drawn after the idle op, keep the draws they have there.
const pinnedWithoutIdle = "d9478466680726edd31df3e3be2def9f14a8b2c971078dffd5811cf9197dfa57"

// pinnedWithoutPaged is the extras configuration with PagedChance 0 (the
// backed long shape, drawn after it, keeps its draws) and with PagedChance
// 1 (every image with big tables gets the paged shape).
var pinnedWithoutPaged = [2]string{"3e3660de6c239c24b4e02b9f93acff2e5639a33aa923dc5cb62a36524211f4ff", "6dfb227f4f472610eee9a28943b9034346bf743e0d381fa6da23f2cc8bad907f"}

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
	"cc4d6f150e2c510ead8fcefa005acf24ca7174bc6dd0d90982447047740c0620",
	"68801a3515415348aa9bacccdeae894e9e524479146490211f2c113cc989021b",
	"55874eac2116f67f32488683f309595250405a9171ec40e0ab9bc69522d4eef4",
	"3b60851e13f3708392782b782620ec3ab377d797715043f6b917598125acd7c1",
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
	"e719aeb850a1f9636696f736f6d95df892e8ad6c90329dfdd2e9f646fc2602b7",
	"b9128e559a7496b2aafd7a71a95283c9c6d8fec19f853ba73ac83bb8c8b92070",
	"fdcfe99a79c098b2a445d90ab3a062630cc76cc89db445a206e06274ace9afef",
	"b5ba498aca102796ca406f2ad5d371c1443463b22ab51caa39b7dc574f13779b",
}

// pinnedWithoutL2Cache are the four pins before the l2_cache key.
var pinnedWithoutL2Cache = [4]string{
	"c19393c3b02b75be1dcdec57d8fcacc38338a9456364e0e8f30115efce9bcd4e",
	"e70af36999a02aa1f49402de8ed75a14e3b43f6a35b18249a970523ce5a3d30d",
	"8e8dd097ccca3a8f15a4150b2fb44ca2d2ae55fd534d3589931db5d65c7f02ec",
	"88bd233998090f49beb0b46b82286a26535f32b32dc94f0c44148eb67240d1a7",
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
