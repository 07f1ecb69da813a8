package workload

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
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
const (
	pinnedGenerate       = "07e10159122f655bbf2cfd45d5c6c0e7be6aa0771da3e2465e1b3e352fac4a2f"
	pinnedGenerateExtras = "10a8491eeb78a86f1c68d8fe5d4efef9c6e8c803e8ae43262d4b94211be46713"
	pinnedGenerateOneOff = "28064f60697b45b8e3d22bb70dc54b07e94344389ac2a06a5f9fa8d01d325380"
	pinnedGenerateLong   = "8ff5164f67db66403d510992a6e0bd108c4e57fc1840fefd22bf329966d26311"
)

// extrasConfig is DefaultGenConfig with every chance of drawExtras, wide
// images and backing chains raised, so that 300 draws reach each branch.
func extrasConfig() GenConfig {
	cfg := DefaultGenConfig()
	cfg.WideChance, cfg.CraftChance, cfg.BigClusterChance, cfg.LongChance, cfg.HugeChance = 0.3, 0.6, 0.2, 0.3, 0.3
	cfg.MaxChain = 3
	return cfg
}

// oneOffConfigs are extrasConfig with each chance of drawExtras zeroed
// in turn.
func oneOffConfigs() []GenConfig {
	var cfgs []GenConfig
	for k := range 5 {
		cfg := extrasConfig()
		*[]*float64{&cfg.BigClusterChance, &cfg.LongChance, &cfg.HugeChance, &cfg.CraftChance, &cfg.HostileChance}[k] = 0
		cfgs = append(cfgs, cfg)
	}
	return cfgs
}

func generationHash(t *testing.T, draws uint64, cfgs ...GenConfig) string {
	h := sha256.New()
	for _, cfg := range cfgs {
		hashDraws(t, h, draws, cfg)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func hashDraws(t *testing.T, h io.Writer, draws uint64, cfg GenConfig) {
	for i := range draws {
		w := Generate(rand.New(rand.NewPCG(1, i)), cfg)
		if err := w.Validate(); err != nil {
			t.Fatalf("draw %d is invalid: %v\n%s", i, err, w)
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
	long := DefaultGenConfig()
	long.LongChance, long.HugeChance = 1, 1
	if got := generationHash(t, 2000, long); got != pinnedGenerateLong {
		t.Errorf("Generate's draws 0-1999 of PCG(1, i) with a long and a huge request hash to %s, pinned %s: generation changed", got, pinnedGenerateLong)
	}
}
