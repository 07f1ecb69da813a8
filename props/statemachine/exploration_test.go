package statemachine

import (
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spf13/afero"
	"github.com/stretchr/testify/require"

	"github.com/qedtorture/qedtorture/internal/racetest"
	"github.com/qedtorture/qedtorture/props/oracle"
	"github.com/qedtorture/qedtorture/props/target"
	"github.com/qedtorture/qedtorture/props/workload"
)

// The state machine asserts its own exploration: what its result says it
// ran (Result.Explored) is held against the configuration, and
// every disk it opened must have been closed (the final close of every
// sequence included).

// countingTarget counts the disks opened through it and those closed.
type countingTarget struct {
	Target
	opens, closes *atomic.Int64
}

func newCountingTarget(t target.Target) countingTarget {
	return countingTarget{Target: t, opens: new(atomic.Int64), closes: new(atomic.Int64)}
}

func (c countingTarget) Open(fs afero.Fs, path string, o OpenOptions) (Disk, error) {
	d, err := c.Target.Open(fs, path, o)
	if err != nil {
		return nil, err
	}
	c.opens.Add(1)
	return &countedDisk{Disk: d, closes: c.closes}, nil
}

// Rebase and Commit are the wrapped target's image commands
// (target.ImageOps): the state machine draws them only for a target that
// has them.
func (c countingTarget) Rebase(fs afero.Fs, path, backing, format string, unsafe bool) error {
	return c.Target.(target.ImageOps).Rebase(fs, path, backing, format, unsafe)
}

func (c countingTarget) Commit(fs afero.Fs, path string, o target.CommitOptions) error {
	return c.Target.(target.ImageOps).Commit(fs, path, o)
}

type countedDisk struct {
	Disk
	closes *atomic.Int64
	closed atomic.Bool
}

func (d *countedDisk) Close() error {
	if !d.closed.Swap(true) {
		d.closes.Add(1)
	}
	return d.Disk.Close()
}

// seen requires n >= 1 when the count expected is at least 15 (a binomial
// count with that mean is 0 with probability below e^-15 = 3e-7); it
// reports whether it asserted.
func seen(t *testing.T, what string, n int, expected float64) bool {
	t.Helper()
	if expected < 15 {
		t.Logf("%s: %d (expected %.1f: too few draws to require one)", what, n, expected)
		return false
	}
	if n == 0 {
		t.Errorf("%s: never exercised, although %.1f were expected", what, expected)
	}
	return true
}

func TestStateMachineExploration(t *testing.T) {
	seed := int64(envSeed(t, rand.Uint64()>>1))
	t.Logf("seed %d (replay: PROPS_SEED=%d)", seed, seed)
	cfg := DefaultConfig()
	cfg.Seed = seed
	cfg.Sequences = 200
	if racetest.Enabled {
		cfg.Sequences, cfg.Steps, cfg.Run.Explore = 20, 20, 2
	}
	// A budget that is not reached must not cut the run short.
	cfg.Budget = time.Hour
	target := newCountingTarget(QEDTarget{})
	// The sequences run, counted here on their own: the account must
	// agree with them.
	var want Exploration
	want.OpKinds, want.Crashes, want.FaultRules = map[workload.Kind]int{}, map[string]int{}, map[string]int{}
	want.ClusterSizes, want.TableSizes = map[uint32]int{}, map[uint32]int{}
	want.SizeClasses, want.Backings = map[string]int{}, map[string]int{}
	cfg.seen = func(s *Sequence) {
		g := s.W.Geometry
		want.ClusterSizes[g.ClusterSize]++
		want.TableSizes[g.TableSize]++
		want.SizeClasses[SizeClass(g)]++
		want.Backings[BackingLayout(g.Backing)]++
		for i, op := range s.W.Ops {
			want.OpKinds[op.Kind]++
			if c := s.Steps[i].Crash; c != nil {
				want.Crashes[c.Model.String()]++
			}
			if f := s.Steps[i].Fault; f != nil {
				want.FaultRules[f.Rule]++
				if f.Then != nil {
					want.Crashes[f.Then.Model.String()]++
				}
			}
		}
	}
	res := Check(target, cfg)
	require.True(t, res.Passed(), res.Report())
	t.Log(res.Report())
	x := res.Explored
	t.Logf("explored: %+v", x)
	want.StatesByModel = x.StatesByModel // counted by the runner alone
	require.Equal(t, want, x, "the exploration account vs the sequences run")

	// Sequences and commands: every sequence asked for ran, each with at
	// least Steps/4 commands (gopter's smallest size), all counted.
	require.Equal(t, cfg.Sequences, res.Sequences, "sequences run")
	minSteps := max(1, cfg.Steps/4)
	require.GreaterOrEqual(t, res.Commands, cfg.Sequences*minSteps, "commands run")
	sum := func(m map[string]int) (n int) {
		for _, v := range m {
			n += v
		}
		return n
	}
	kinds := 0
	for _, n := range x.OpKinds {
		kinds += n
	}
	require.Equal(t, res.Commands, kinds, "commands by op kind")
	for name, m := range map[string]map[string]int{"size class": x.SizeClasses, "backing layout": x.Backings} {
		require.Equal(t, res.Sequences, sum(m), "sequences by %s", name)
	}
	geoms := 0
	for _, n := range x.ClusterSizes {
		geoms += n
	}
	require.Equal(t, res.Sequences, geoms, "sequences by cluster size")
	tables := 0
	for _, n := range x.TableSizes {
		tables += n
	}
	require.Equal(t, res.Sequences, tables, "sequences by table size")
	// Every count is of something that happened: none is below 1.
	positive := func(what string, m map[string]int) {
		for k, n := range m {
			require.Positive(t, n, "%s %s counted", what, k)
		}
	}
	positive("crashes under", x.Crashes)
	positive("states judged under", x.StatesByModel)
	positive("fault rule", x.FaultRules)
	positive("size class", x.SizeClasses)
	positive("backing layout", x.Backings)
	for k, n := range x.OpKinds {
		require.Positive(t, n, "op kind %v counted", k)
	}
	for k, n := range x.ClusterSizes {
		require.Positive(t, n, "cluster size %d counted", k)
	}
	for k, n := range x.TableSizes {
		require.Positive(t, n, "table size %d counted", k)
	}

	// Every disk opened was closed: the final close of each sequence, the
	// recoveries, the oracle's own opens.
	require.Positive(t, target.opens.Load())
	require.Equal(t, target.opens.Load(), target.closes.Load(), "disks opened vs closed")

	// Crash states judged per model: each crash directive judges at least
	// the state it picks, under its own model; the counts add up.
	require.Equal(t, res.CrashStates, sum(x.StatesByModel), "crash states by model")
	for m, n := range x.Crashes {
		require.GreaterOrEqual(t, x.StatesByModel[m], n, "crash states judged under %s vs crash directives", m)
	}
	allowed := map[string]bool{"prefix": true, "drop": true} // a fault's close and then=crash
	for _, m := range oracle.DefaultModels() {
		allowed[m.String()] = true
	}
	for m := range x.StatesByModel {
		require.True(t, allowed[m], "states judged under %s, a model not configured", m)
	}
	crashes, faults := sum(x.Crashes), sum(x.FaultRules)
	require.LessOrEqual(t, res.Faults, faults, "faults fired vs fault directives")

	// Every op kind, crash model and fault rule: required once the draws
	// make it near certain (genCommand's probabilities, held by
	// TestGenCommandDistribution; lower estimates: plain commands are at
	// least 7/10 of the commands on a non-empty image, 9/10 of the images
	// are non-empty, the models are drawn uniformly at least a third of
	// the time).
	ows, total := opWeights(&cfg)
	for _, o := range ows {
		p := 0.9 * 0.7 * o.w / total
		if o.needBacking {
			p *= 0.3 // a backing file in force: 13/20 of the chains, until a rebase onto nothing (or a commit) ends it
		}
		seen(t, "op kind "+o.kind.String(), x.OpKinds[o.kind], float64(res.Commands)*p)
	}
	for _, m := range oracle.DefaultModels() {
		seen(t, "crash model "+m.String(), x.Crashes[m.String()], float64(crashes)/3/float64(len(oracle.DefaultModels())))
		seen(t, "crash states under "+m.String(), x.StatesByModel[m.String()], float64(crashes)/3/float64(len(oracle.DefaultModels())))
	}
	for _, r := range FaultRules {
		seen(t, "fault rule "+r, x.FaultRules[r], float64(faults)/float64(len(FaultRules)))
	}
	// Geometries and backing layouts (genState's probabilities, held by
	// TestGenStateDistribution).
	n := float64(res.Sequences)
	for c, p := range map[string]float64{"zero": 0.1, "aligned": 0.4, "unaligned": 0.4} {
		seen(t, "size class "+c, x.SizeClasses[c], n*p)
	}
	for l, p := range map[string]float64{"none": 7.0 / 20, "raw": 0.25, "qed": 0.25, "qed+raw": 3.0 / 40, "qed+qed": 3.0 / 40} {
		seen(t, "backing layout "+l, x.Backings[l], n*p)
	}
	for i := range 5 {
		seen(t, fmt.Sprintf("cluster size %d", 4096<<i), x.ClusterSizes[4096<<i], n/5)
	}
}

// TestStateMachineBudget: a budget stops the run between batches, after
// the first batch (which always runs); without one, or with one not
// reached, every sequence runs (TestStateMachineExploration).
func TestStateMachineBudget(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Seed = int64(envSeed(t, 1))
	cfg.Sequences, cfg.Batch, cfg.Steps = 9, 3, 8
	cfg.Budget = time.Nanosecond
	res := Check(QEDTarget{}, cfg)
	require.True(t, res.Passed(), res.Report())
	require.Equal(t, cfg.Batch, res.Sequences, "a spent budget stops the run after its first batch")
	cfg.Budget = time.Hour
	res = Check(QEDTarget{}, cfg)
	require.True(t, res.Passed(), res.Report())
	require.Equal(t, cfg.Sequences, res.Sequences)
}
