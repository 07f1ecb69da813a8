package workload

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/qedtorture/qedtorture/internal/testseed"
)

// TestGenerateDistribution holds Generate to the probabilities of its
// configuration over many draws (no I/O, cheap): each count within six
// binomial standard deviations of its prediction, every drawn value in its
// range, exactly cfg.Ops ops per workload. A generator that stops drawing
// a geometry, a size class or a backing layout fails here; the campaign's
// own exploration (campaign.TestCampaignExploration) is then recounted from
// what it drew.
func TestGenerateDistribution(t *testing.T) {
	seed := testseed.Seed(t, "PROPS_SEED")
	cfg := DefaultGenConfig()
	cfg.NoExtras() // TestGenerateExtras counts them
	const n = 20000
	obs, exp := map[string]float64{}, map[string]float64{}
	add := func(k string, p float64) { exp[k] += p }
	for i := range uint64(n) {
		w := Generate(rand.New(rand.NewPCG(seed, i)), cfg)
		g := w.Geometry
		if len(w.Ops) != cfg.Ops {
			t.Fatalf("draw %d: %d ops, want %d", i, len(w.Ops), cfg.Ops)
		}
		cs := int64(g.ClusterSize)
		span := cs * int64(g.TableSize) * cs / 8
		wide := g.ClusterSize == slices.Min(cfg.ClusterSizes) && g.TableSize == slices.Min(cfg.TableSizes) && g.Size > span
		add("wide", cfg.WideChance)
		// Not wide (1-WideChance): cluster and table sizes uniform, size
		// classes zero 1/10, aligned 1/2, unaligned 2/5.
		q := 1 - cfg.WideChance
		for _, c := range cfg.ClusterSizes {
			add(fmt.Sprintf("cluster %d", c), q/float64(len(cfg.ClusterSizes)))
		}
		for _, ts := range cfg.TableSizes {
			add(fmt.Sprintf("table %d", ts), q/float64(len(cfg.TableSizes)))
		}
		add("size zero", q*0.1)
		add("size aligned", q*0.5)
		add("size unaligned", q*0.4)
		if wide {
			obs["wide"]++
			if g.Size > 2*span+cfg.MaxClusters*cs || g.Size%cs != 0 {
				t.Fatalf("draw %d: wide size %#x out of range", i, g.Size)
			}
		} else {
			obs[fmt.Sprintf("cluster %d", g.ClusterSize)]++
			obs[fmt.Sprintf("table %d", g.TableSize)]++
			switch {
			case g.Size == 0:
				obs["size zero"]++
			case g.Size%cs == 0:
				obs["size aligned"]++
				if g.Size > cfg.MaxClusters*cs {
					t.Fatalf("draw %d: size %#x over %d clusters", i, g.Size, cfg.MaxClusters)
				}
			default:
				obs["size unaligned"]++
				if g.Size < 0 || g.Size%512 != 0 || g.Size > cfg.MaxClusters*cs {
					t.Fatalf("draw %d: unaligned size %#x out of range", i, g.Size)
				}
			}
		}
		// Backing: a chain with BackingChance, of 1..MaxChain files, each
		// raw or qed with probability 1/2, 1..size/512+8 sectors long.
		add("backed", cfg.BackingChance)
		if len(g.Backing) > 0 {
			obs["backed"]++
			obs[fmt.Sprintf("chain of %d", len(g.Backing))]++
			for _, b := range g.Backing {
				obs["backing "+b.Format]++
				if b.Size < 512 || b.Size%512 != 0 || b.Size > g.Size+8*512 {
					t.Fatalf("draw %d: backing size %#x for an image of %#x", i, b.Size, g.Size)
				}
			}
		}
		for l := 1; l <= cfg.MaxChain; l++ {
			add(fmt.Sprintf("chain of %d", l), cfg.BackingChance/float64(cfg.MaxChain))
		}
		if err := w.Validate(); err != nil {
			t.Fatalf("draw %d: %v", i, err)
		}
	}
	backings := obs["backing raw"] + obs["backing qed"]
	exp["backing raw"], exp["backing qed"] = backings/2, backings/2
	for k, e := range exp {
		if math.Abs(obs[k]-e) > 6*math.Sqrt(e)+1 {
			t.Errorf("%s: drawn %.0f times, the configuration predicts %.1f", k, obs[k], e)
		}
	}
	for k := range obs {
		if _, ok := exp[k]; !ok {
			t.Errorf("%s: drawn %.0f times, never predicted", k, obs[k])
		}
	}
	t.Logf("drawn %v", obs)
}

// TestGenerateExtras: the default generator draws every kind of crafted
// image, big clusters, long requests and images above 4 GiB (issue 14,
// part 3) at about their chances, every workload valid; the long request
// is unaligned at both ends and longer than 4 MiB. The big shapes
// (issue 16) too: a paged table's write across guest clusters 511 and
// 512 at about PagedChance of the paged geometries, the long requests
// of BackedLongChance on the backed images (from a cluster boundary),
// each followed by a flush.
func TestGenerateExtras(t *testing.T) {
	seed := testseed.Seed(t, "PROPS_SEED")
	cfg := DefaultGenConfig()
	const n = 20000
	seen := map[string]int{}
	for i := range uint64(n) {
		w := Generate(rand.New(rand.NewPCG(seed, i)), cfg)
		if err := w.Validate(); err != nil {
			t.Fatalf("draw %d: %v\n%s", i, err, w)
		}
		g := w.Geometry
		c := g.Craft
		for k, on := range map[string]bool{"compat": c.Compat != 0, "autoclear": c.Autoclear != 0, "need_check": c.NeedCheck,
			"header_size": c.HeaderSize > 1, "l1_gap": c.L1Gap > 0, "backing_name": c.BackingName > 0, "probe": c.Probe, "tail": c.Tail > 0,
			"crafted": !c.IsZero(), "big": g.ClusterSize > 65536} {
			if on {
				seen[k]++
			}
		}
		cs := int64(g.ClusterSize)
		paged := cs*int64(g.TableSize) > 64<<10 && pageEntries*cs+cs <= MaxGuestSize(g.ClusterSize, g.TableSize)
		if paged {
			seen["paged geometry"]++
		}
		if len(g.Backing) > 0 {
			seen["backed"]++
		}
		nh := 0
		for _, op := range w.Ops {
			if op.Kind == Hostile {
				nh++
			}
		}
		seen["hostile"] += nh
		if nh == 2 {
			seen["two hostile"]++
		}
		flushed := func(j int) bool { return j+1 < len(w.Ops) && w.Ops[j+1].Kind == Flush }
		for j, op := range w.Ops {
			// (Not the huge image's write across 4 GiB: for 8 MiB clusters
			// the page boundary.)
			across4G := op.Off < 4<<30 && op.Off+op.Len > 4<<30
			if b := pageEntries * cs; paged && !across4G && op.Kind == Write && op.Off < b && op.Off >= b-32<<10 && op.Off+op.Len > b && op.Off+op.Len <= b+32<<10 {
				seen["page boundary"]++
				if j+1 < len(w.Ops) && w.Ops[j+1].Kind == Write && w.Ops[j+1].Off >= 3*b && w.Ops[j+1].Off+w.Ops[j+1].Len <= 3*b+cs {
					seen["empty page between"]++
					j++ // the flush after the write into cluster 1536
				}
				if !flushed(j) {
					t.Fatalf("draw %d: the page boundary's write %#x+%#x not flushed", i, op.Off, op.Len)
				}
			}
			// ZeroDataChance's write (ops 0 to 2: a write, a reopen, a
			// write-zeroes of the same range) is a cluster or two up to
			// the image's size; it is long only when big clusters are
			// clipped to a size over 4 MiB, and it is no long request.
			zeroData := j == 0 && len(w.Ops) > 2 && w.Ops[1].Kind == Reopen && w.Ops[2].Kind == WriteZeroes && w.Ops[2].Off == op.Off && w.Ops[2].Len == op.Len
			if op.Kind == Write && op.Len > 4<<20 && !zeroData {
				seen["long"]++
				// LongChance's: unaligned at both ends; BackedLongChance's:
				// a whole first cluster, a flush after it.
				aligned := op.Off%cs == 0 && len(g.Backing) > 0 && flushed(j)
				if aligned {
					seen["long from a cluster"]++
				}
				if (op.Off%512 == 0 && !aligned) || (op.Off+op.Len)%512 == 0 {
					t.Fatalf("draw %d: long write %#x+%#x aligned at an end", i, op.Off, op.Len)
				}
			}
			if op.Kind == Write && op.Off+op.Len > 4<<30 && op.Off < 4<<30 {
				seen["across 4 GiB"]++
			}
		}
	}
	t.Logf("%v", seen)
	near := func(k string, p, slack float64) {
		if got := float64(seen[k]) / n; got < p/slack || got > p*slack {
			t.Errorf("%s: %.4f of draws, want about %.4f", k, got, p)
		}
	}
	near("crafted", cfg.CraftChance, 1.3)
	near("big", cfg.BigClusterChance, 2)
	// Long requests: LongChance's on every image, BackedLongChance's on
	// the backed ones.
	if got, p := float64(seen["long"])/n, cfg.LongChance+cfg.BackedLongChance*float64(seen["backed"])/n; got < p/1.5 || got > p*1.5 {
		t.Errorf("long: %.4f of draws, want about %.4f", got, p)
	}
	// Hostile ops: HostileChance's and HostileAgainChance's, apart.
	near("hostile", cfg.HostileChance+cfg.HostileAgainChance, 1.1)
	near("two hostile", cfg.HostileChance*cfg.HostileAgainChance, 1.2)
	if got, p := float64(seen["long from a cluster"]), cfg.BackedLongChance*float64(seen["backed"]); got < p/1.5 || got > p*1.5 {
		t.Errorf("long writes from a cluster boundary: %.0f, want about %.0f", got, p)
	}
	// Half of them with a write into guest cluster 1536 (3 of 4
	// geometries have room: 4 KiB clusters and 64 KiB tables are not
	// paged, so every paged one addresses 1537 clusters).
	if got, p := float64(seen["empty page between"]), float64(seen["page boundary"])/2; got < p/1.5 || got > p*1.5 {
		t.Errorf("writes into guest cluster 1536: %.0f of %d page boundaries, want about %.0f", got, seen["page boundary"], p)
	}
	// A write across a page boundary: PagedChance of the paged
	// geometries (the main draw's ops never reach guest cluster 511).
	if got, p := float64(seen["page boundary"]), cfg.PagedChance*float64(seen["paged geometry"]); got < p/1.5 || got > p*1.5 {
		t.Errorf("page boundary writes: %.0f of %d paged geometries, want about %.0f", got, seen["paged geometry"], p)
	}
	for _, k := range []string{"compat", "autoclear", "need_check", "header_size", "l1_gap", "backing_name", "probe", "tail", "across 4 GiB"} {
		if seen[k] == 0 {
			t.Errorf("%s never drawn in %d workloads", k, n)
		}
	}
}

// TestCraftNoCompatWithRebase: a workload that changes its backing file
// (rebase, rebase -u) never gets an unknown compat bit, which makes
// impl/qed and QEMU refuse the change (TestFaultsImageCommands drew one).
func TestCraftNoCompatWithRebase(t *testing.T) {
	cfg := DefaultGenConfig()
	cfg.CraftChance = 1
	cfg.Weights[Rebase], cfg.Weights[RebaseUnsafe] = 20, 20
	cfg.BackingChance = 1
	compat := 0
	for i := range uint64(3000) {
		w := Generate(rand.New(rand.NewPCG(7, i)), cfg)
		if w.Geometry.Craft.Compat == 0 {
			continue
		}
		compat++
		for _, op := range w.Ops {
			if op.Kind == Rebase || op.Kind == RebaseUnsafe {
				t.Fatalf("draw %d: compat %#x with %s", i, w.Geometry.Craft.Compat, op.Kind)
			}
		}
	}
	t.Logf("%d compat crafts without a rebase", compat)
}
