package campaign

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qedtorture/qedtorture/faultfs"
	"github.com/qedtorture/qedtorture/internal/racetest"
	"github.com/qedtorture/qedtorture/props/target"
	"github.com/qedtorture/qedtorture/props/workload"
	"github.com/spf13/afero"
	"github.com/stretchr/testify/require"
)

// TestFaultChosen: the share is of the workloads whose creation is not
// recorded, none of those whose creation is, and 0 draws none.
func TestFaultChosen(t *testing.T) {
	const n = 20000
	chosen, created := 0, 0
	for w := range n {
		seed := WorkloadSeed(7, w)
		c := FaultChosen(seed, 0.2, 0.25)
		if createChosen(seed, 0.25) {
			created++
			require.False(t, c, "workload %d: creation recorded and a drawn fault", w)
		}
		if c {
			chosen++
		}
		require.False(t, FaultChosen(seed, 0, 0.25))
		require.Equal(t, c, FaultChosen(seed, 0.2, 0.25), "deterministic")
	}
	share := float64(chosen) / float64(n-created)
	require.InDelta(t, 0.2, share, 0.015, "share of the workloads not created")
}

// TestDrawnFault: the rule is one of the canonical kinds, at an
// operation inside the run; every step that made an operation is drawn,
// steps that made none never; a run without one draws no rule.
func TestDrawnFault(t *testing.T) {
	// Steps: the reopen made 2 operations, op 0 none, op 1 five, op 2 one.
	bounds := []uint64{0, 2, 2, 7, 8}
	hit := map[string]int{}
	kinds := map[string]int{}
	for w := range 4000 {
		seed := WorkloadSeed(3, w)
		rule := DrawnFault(seed, bounds)
		require.Equal(t, rule, DrawnFault(seed, bounds), "deterministic")
		rs, err := faultfs.Parse(rule)
		require.NoError(t, err, rule)
		require.Len(t, rs, 1)
		r := rs[0]
		require.Equal(t, faultfs.Nth, r.Trigger, rule)
		require.True(t, strings.HasPrefix(rule, DrawnFaultKind(seed)+"@"), rule)
		kinds[DrawnFaultKind(seed)]++
		switch n := r.N; {
		case n >= 1 && n <= 2:
			hit["reopen"]++
		case n >= 3 && n <= 7:
			hit["op 1"]++
		case n == 8:
			hit["op 2"]++
		default:
			t.Fatalf("%s: past the run's 8 operations", rule)
		}
	}
	for _, step := range []string{"reopen", "op 1", "op 2"} {
		require.InDelta(t, 4000/3, hit[step], 150, "step %s drawn uniformly: %v", step, hit)
	}
	require.Len(t, kinds, len(DrawnFaultKinds), "every kind drawn")
	// A short write tears a sector no implementation can keep atomic
	// (faultshare.go): never drawn.
	require.NotContains(t, DrawnFaultKinds, "write:short")
	require.Empty(t, DrawnFault(1, []uint64{0, 0, 0}))
	require.Empty(t, DrawnFault(1, nil))
}

// TestFaultShareCampaign: with every workload chosen, the drawn faults
// fire (the dry run places them inside the run), each run is judged as a
// --fault run (no failure on impl/qed: it surfaces every error), and the
// report carries the share.
func TestFaultShareCampaign(t *testing.T) {
	racetest.Heavy(t)
	rep, err := Run(context.Background(), Config{Seed: 5, Iterations: 12, Workers: 2, FaultShare: 1,
		Target: TargetOrDie(t, "impl/qed"), TargetName: "impl/qed"})
	require.NoError(t, err)
	require.Empty(t, rep.Failures)
	require.Equal(t, int64(12), rep.Workloads)
	require.Equal(t, 1.0, rep.FaultShare)
	// Every workload whose creation is not recorded (CreateShare 0 here:
	// all) ran with a fault that fired, but for a kind the run never made
	// (a truncate in a workload that never grows).
	require.GreaterOrEqual(t, rep.Faulted, int64(9), "faulted workloads")
}

// swallowFlushTarget is impl/qed behind a Disk that reports every
// flush as done, even one whose sync failed (the fsyncgate bug: the
// data it was to make durable may never be).
type swallowFlushTarget struct{ target.Target }

func (swallowFlushTarget) Name() string { return "test:swallow-flush-error" }

func (t swallowFlushTarget) Open(fs afero.Fs, path string, o target.OpenOptions) (target.Disk, error) {
	d, err := t.Target.Open(fs, path, o)
	if err != nil {
		return nil, err
	}
	return swallowFlushDisk{d}, nil
}

type swallowFlushDisk struct{ target.Disk }

func (d swallowFlushDisk) Flush() error {
	_ = d.Disk.Flush()
	return nil
}

// TestFaultShareCatchesSwallowedError: a target that hides a failed
// sync passes the campaign without drawn faults and fails it with them;
// the failure's artifact names the drawn rule, and replay reproduces it.
func TestFaultShareCatchesSwallowedError(t *testing.T) {
	racetest.Heavy(t)
	tgt := swallowFlushTarget{TargetOrDie(t, "impl/qed")}
	gen := DefaultGenConfig()
	gen.Weights[workload.Flush] = 8 // flushes to fail
	// Workloads whose drawn fault is a failing sync.
	const seed = 11
	var shard []int
	for w := 0; len(shard) < 6; w++ {
		if s := WorkloadSeed(seed, w); FaultChosen(s, 1, 0) && DrawnFaultKind(s) == "sync:eio" {
			shard = append(shard, w)
		}
	}
	run := func(share float64) *Report {
		rep := &Report{}
		for _, w := range shard {
			out := t.TempDir()
			r, err := Run(context.Background(), Config{Seed: seed, Shard: Shard{Index: w, Count: w + 1}, Iterations: w + 1,
				Gen: gen, FaultShare: share, Target: tgt, TargetName: tgt.Name(), Out: out, MinimizeCandidates: -1})
			require.NoError(t, err)
			rep.Workloads += r.Workloads
			rep.Failures = append(rep.Failures, r.Failures...)
		}
		return rep
	}
	require.Empty(t, run(0).Failures, "without faults the swallowed error never happens")
	rep := run(1)
	require.NotEmpty(t, rep.Failures, "a drawn sync:eio catches the swallowed flush error")
	f := rep.Failures[0]
	meta, err := os.ReadFile(filepath.Join(f.Artifact, "meta.json"))
	require.NoError(t, err)
	var m ArtifactMeta
	require.NoError(t, json.Unmarshal(meta, &m))
	require.True(t, strings.HasPrefix(m.Faults, "sync:eio@nth="), "the artifact's faults are the drawn rule: %q", m.Faults)
	res, err := Replay(f.Artifact, ReplayOptions{Resolve: InProcessResolver(func(string) (target.Target, error) { return tgt, nil })})
	require.NoError(t, err)
	require.True(t, res.Fails(), "replay reproduces the failure with the drawn rule")
}

// TestFaultShareConfig: the share is refused out of [0,1] and where it
// cannot apply.
func TestFaultShareConfig(t *testing.T) {
	base := func() Config {
		return Config{Seed: 1, Iterations: 1, FaultShare: 0.5, Target: TargetOrDie(t, "impl/qed")}
	}
	for name, c := range map[string]func(*Config){
		"share above 1": func(c *Config) { c.FaultShare = 1.5 },
		"negative":      func(c *Config) { c.FaultShare = -0.1 },
		"with faults":   func(c *Config) { c.Faults = "write:eio@nth=1" },
		"with diff":     func(c *Config) { c.Diff = InProcess(TargetOrDie(t, "impl/qed")) },
		"exhaustive":    func(c *Config) { c.Exhaustive = workload.NewExhaustive(1) },
	} {
		cfg := base()
		c(&cfg)
		_, err := Run(context.Background(), cfg)
		require.ErrorIs(t, err, ErrConfig, name)
	}
}
