package statemachine

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"testing"

	"github.com/leanovate/gopter"

	"github.com/qedtorture/qedtorture/props/workload"
)

// The generators are held to the draw probabilities their doc comments
// state (genState, genCommand): many draws are cheap (no I/O), so each
// observed count must lie within six standard deviations of the count the
// probabilities predict (a false alarm about once in 10^9 checks), and
// every drawn value within its stated range. A generator that stops
// drawing a class, or draws a class outside its range (a non-positive image
// size, an op past the end), fails here.

// within6 reports whether obs is within six binomial standard deviations
// (plus one, for tiny expectations) of exp, the sum of the probabilities of
// n independent draws.
func within6(obs, exp float64) bool { return math.Abs(obs-exp) <= 6*math.Sqrt(exp)+1 }

func checkCounts(t *testing.T, what string, obs, exp map[string]float64) {
	t.Helper()
	var keys []string
	for k := range exp {
		keys = append(keys, k)
	}
	for k := range obs {
		if _, ok := exp[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !within6(obs[k], exp[k]) {
			t.Errorf("%s %s: drawn %.0f times, the stated probabilities predict %.1f", what, k, obs[k], exp[k])
		}
	}
	t.Logf("%s: drawn %v, predicted %v", what, obs, rounded(exp))
}

func rounded(m map[string]float64) map[string]float64 {
	out := map[string]float64{}
	for k, v := range m {
		out[k] = math.Round(v*10) / 10
	}
	return out
}

func geomKey(cluster, table uint32) string { return fmt.Sprintf("%dK/%d", cluster>>10, table) }

func genParams(seed int64) *gopter.GenParameters {
	return gopter.DefaultGenParameters().CloneWithSeed(seed)
}

func TestGenStateDistribution(t *testing.T) {
	seed := int64(envSeed(t, rand.Uint64()>>1))
	t.Logf("seed %d (replay: PROPS_SEED=%d)", seed, seed)
	cfg := DefaultConfig()
	cfg.fill()
	gen, params := genState(&cfg), genParams(seed)
	const n = 40000
	classes, expClasses := map[string]float64{}, map[string]float64{}
	layouts := map[string]float64{}
	geoms, expGeoms := map[string]float64{}, map[string]float64{}
	longer, expLonger := map[string]float64{}, map[string]float64{}
	models, expModels := map[string]float64{}, map[string]float64{}
	// The table size cut: cluster c and drawn table t give t, or
	// 256 KiB/c three times in four when c*t is over 256 KiB.
	for ci := range 5 {
		c := uint32(4096 << ci)
		for ti := range 5 {
			tb := uint32(1 << ti)
			key := func(tb uint32) string { return geomKey(c, tb) }
			if c*tb > 256<<10 {
				expGeoms[key(max(1, (256<<10)/c))] += n * 0.75 / 25
				expGeoms[key(tb)] += n * 0.25 / 25
			} else {
				expGeoms[key(tb)] += n / 25.0
			}
		}
	}
	for _, m := range cfg.Models {
		expModels[m.String()] = float64(n) / float64(len(cfg.Models))
	}
	for i := range n {
		v, ok := gen(params).Retrieve()
		if !ok {
			t.Fatalf("draw %d: no state", i)
		}
		s := v.(*smState)
		g := s.G
		if err := (&workload.Workload{Geometry: g}).Validate(); err != nil {
			t.Fatalf("draw %d: invalid geometry %+v: %v", i, g, err)
		}
		if s.Size != g.Size || s.cfg != &cfg {
			t.Fatalf("draw %d: state size %d, geometry size %d", i, s.Size, g.Size)
		}
		cs := int64(g.ClusterSize)
		l2Range := cs * (cs * int64(g.TableSize) / 8)
		class := SizeClass(g)
		classes[class]++
		expClasses["zero"] += 0.1
		expClasses["unaligned"] += 0.4
		if l2Range <= 4<<20 {
			expClasses["aligned"] += 0.4
			expClasses["multi-table"] += 0.1
		} else {
			expClasses["aligned"] += 0.5
		}
		bad := false
		switch class {
		case "zero":
		case "aligned":
			bad = g.Size < cs || g.Size > cfg.MaxClusters*cs
		case "unaligned":
			r := g.Size % cs
			bad = g.Size/cs >= cfg.MaxClusters || r%512 != 0 || r < 512 || r > cs-512
		case "multi-table":
			bad = l2Range > 4<<20 || g.Size > 3*l2Range+cs-512 || g.Size%512 != 0
		default:
			bad = true
		}
		if bad {
			t.Fatalf("draw %d: image size %#x (class %s) outside the stated range (cluster %d, table %d, %d clusters at most)",
				i, g.Size, class, cs, g.TableSize, cfg.MaxClusters)
		}
		geoms[geomKey(g.ClusterSize, g.TableSize)]++
		layout := BackingLayout(g.Backing)
		layouts[layout]++
		for j, b := range g.Backing {
			if b.Size < 512 || b.Size%512 != 0 || b.Size > g.Size+64*512 {
				t.Fatalf("draw %d: backing %d size %#x outside [512, image size %#x + 64 sectors]", i, j, b.Size, g.Size)
			}
			if b.Fill == 0 || b.Fill >= s.NextID {
				t.Fatalf("draw %d: backing %d fill id %d, next write id %d", i, j, b.Fill, s.NextID)
			}
			// Longer than the image by more than a sector: only the
			// "longer" draw (1/4, then 63 of its 64 lengths).
			if b.Size > g.Size+512 {
				longer[layout]++
			}
			expLonger[layout] += 0.25 * 63 / 64
		}
		models[s.Model.String()]++
	}
	checkCounts(t, "size class", classes, expClasses)
	checkCounts(t, "backing layout", layouts, map[string]float64{
		"none": n * 7 / 20.0, "raw": n / 4.0, "qed": n / 4.0, "qed+raw": n * 3 / 40.0, "qed+qed": n * 3 / 40.0})
	checkCounts(t, "geometry", geoms, expGeoms)
	checkCounts(t, "backing files longer than the image, by layout", longer, expLonger)
	checkCounts(t, "preferred crash model", models, expModels)
}

// opWeight is one op kind of genCommand's plain draws: its weight
// (commandWeights), whether it needs a non-empty image (its generator
// draws nothing on an empty one) and whether it needs a backing file in
// force (the image commands commit and rebase-unsafe).
type opWeight struct {
	kind                  workload.Kind
	w                     float64
	needData, needBacking bool
}

// drawable reports whether o can be drawn at s (the others are drawn
// again): rebase-unsafe also needs no commit before it.
func (o opWeight) drawable(s *smState) bool {
	if o.needData && s.Size == 0 {
		return false
	}
	if o.needBacking && (!s.Backing || (o.kind == workload.RebaseUnsafe && s.Committed)) {
		return false
	}
	return true
}

// opWeights lists every kind genCommand draws, from commandWeights and the
// kinds' own generators: a kind added to props/workload is in it.
func opWeights(cfg *Config) (out []opWeight, total float64) {
	weights := commandWeights(cfg)
	for _, k := range workload.Kinds() {
		if weights[k] <= 0 {
			continue
		}
		g := &workload.OpGen{Rand: rand.New(rand.NewPCG(1, 2)), ClusterSize: 4096, Backing: true}
		_, ok := g.Draw(k)
		g = &workload.OpGen{Rand: rand.New(rand.NewPCG(1, 2)), ClusterSize: 4096, Size: 1 << 20}
		_, okData := g.Draw(k)
		out = append(out, opWeight{kind: k, w: float64(weights[k]), needData: !ok, needBacking: !okData})
		total += float64(weights[k])
	}
	return out, total
}

func TestGenCommandDistribution(t *testing.T) {
	seed := int64(envSeed(t, rand.Uint64()>>1))
	t.Logf("seed %d (replay: PROPS_SEED=%d)", seed, seed)
	cfg := DefaultConfig()
	cfg.fill()
	params := genParams(seed)
	ows, _ := opWeights(&cfg)
	const sequences, steps = 1500, 20
	kinds, expKinds := map[string]float64{}, map[string]float64{}
	events, expEvents := map[string]float64{}, map[string]float64{}
	crashModels, expCrashModels := map[string]float64{}, map[string]float64{}
	syncs, rules, nths := map[string]float64{}, map[string]float64{}, map[string]float64{}
	thens, expThens := map[string]float64{}, map[string]float64{}
	crashes, faults, commands := 0.0, 0.0, 0
	// The ops crashes and faults are attached to, on non-empty images.
	crashOps, faultOps := map[workload.Kind]float64{}, map[workload.Kind]float64{}
	crashesOnData := 0.0
	for i := range sequences {
		v, _ := genState(&cfg)(params).Retrieve()
		s := v.(*smState)
		for j := range steps {
			cv, ok := genCommand(s)(params).Retrieve()
			if !ok {
				t.Fatalf("sequence %d step %d: no command", i, j)
			}
			c := cv.(*smCommand)
			if !c.PreCondition(s) {
				t.Fatalf("sequence %d step %d: generated command %v does not fit the state (size %#x, next id %d)", i, j, c, s.Size, s.NextID)
			}
			commands++
			// Which draw: crash 4/20, fault 2/20 (non-empty image), else plain.
			expEvents["crash"] += 0.2
			pFault := 0.0
			if s.Size > 0 {
				pFault = 0.1
			}
			expEvents["fault"] += pFault
			expEvents["plain"] += 0.8 - pFault
			switch {
			case c.Step.Crash != nil:
				events["crash"]++
				crashes++
				cr := c.Step.Crash
				crashModels[cr.Model.String()]++
				for _, m := range cfg.Models {
					p := 1.0 / 3 / float64(len(cfg.Models))
					if m == s.Model {
						p += 2.0 / 3
					}
					expCrashModels[m.String()] += p
				}
				syncs[string(rune('0'+cr.Sync))]++
				if cr.Sampled || cr.Choice >= 1<<20 {
					t.Fatalf("crash choice %v", cr)
				}
				if s.Size > 0 {
					crashOps[c.Op.Kind]++
					crashesOnData++
				}
			case c.Step.Fault != nil:
				events["fault"]++
				faults++
				if s.Size == 0 {
					t.Fatalf("sequence %d step %d: a fault on an empty image (%v)", i, j, c)
				}
				faultOps[c.Op.Kind]++
				f := c.Step.Fault
				rules[f.Rule]++
				nths[string(rune('0'+f.Nth))]++
				switch {
				case f.Then == nil:
					thens["close"]++
				case f.Then.Model.String() == "drop":
					thens["crash drop"]++
				default:
					thens["crash preferred"]++
				}
				expThens["close"] += 0.5
				if s.Model.String() == "drop" {
					expThens["crash drop"] += 0.5
				} else {
					expThens["crash drop"] += 0.25
					expThens["crash preferred"] += 0.25
				}
			default:
				events["plain"]++
				// Plain ops: a kind by weight among those the image
				// allows (the others are drawn again).
				total := 0.0
				for _, o := range ows {
					if o.drawable(s) {
						total += o.w
					}
				}
				for _, o := range ows {
					if o.drawable(s) {
						expKinds[o.kind.String()] += o.w / total
					}
				}
				kinds[c.Op.Kind.String()]++
			}
			if c.Op.Kind == workload.Concurrent {
				if len(c.Op.Group) == 0 || len(c.Op.Group) > 4 {
					t.Fatalf("concurrent group of %d ops", len(c.Op.Group))
				}
			}
			s = c.NextState(s).(*smState)
		}
	}
	checkCounts(t, "command", events, expEvents)
	checkCounts(t, "plain op kind", kinds, expKinds)
	checkCounts(t, "crash model", crashModels, expCrashModels)
	checkCounts(t, "crash sync", syncs, map[string]float64{"0": crashes / 4, "1": crashes / 4, "2": crashes / 4, "3": crashes / 4})
	expRules := map[string]float64{}
	for _, r := range FaultRules {
		expRules[r] = faults / float64(len(FaultRules))
	}
	checkCounts(t, "fault rule", rules, expRules)
	expNth := map[string]float64{}
	for i := 1; i <= 6; i++ {
		expNth[string(rune('0'+i))] = faults / 6
	}
	checkCounts(t, "fault nth", nths, expNth)
	checkCounts(t, "fault then", thens, expThens)
	// A crash's op is a flush 1/5, a reopen 1/5, else (3/5) drawn as a
	// fault's op is: the share q of flushes (reopens) among the faults'
	// ops estimates that draw, so crashes on non-empty images hold
	// 1/5 + 3/5 q of them, within six standard deviations of the
	// binomial and of q's estimate.
	for _, k := range []workload.Kind{workload.Flush, workload.Reopen} {
		q := faultOps[k] / faults
		p := 0.2 + 0.6*q
		exp := crashesOnData * p
		sd := math.Sqrt(crashesOnData*p*(1-p) + 0.36*crashesOnData*crashesOnData*q*(1-q)/faults)
		if math.Abs(crashOps[k]-exp) > 6*sd+1 {
			t.Errorf("crash op %v: drawn %.0f times of %.0f, the stated probabilities predict %.1f (a fault's op is one %.3f of the time)", k, crashOps[k], crashesOnData, exp, q)
		}
		t.Logf("crash op %v: drawn %.0f times of %.0f, predicted %.1f ± %.1f", k, crashOps[k], crashesOnData, exp, sd)
	}
	t.Logf("%d commands: %.0f crashes, %.0f faults", commands, crashes, faults)
}
