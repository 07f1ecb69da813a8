package statemachine

import (
	"fmt"
	"math"
	"sync"
	"testing"

	"github.com/spf13/afero"
	"github.com/stretchr/testify/require"

	"github.com/qedtorture/qedtorture/crashsim"
	"github.com/qedtorture/qedtorture/faultfs"
	"github.com/qedtorture/qedtorture/internal/racetest"
	"github.com/qedtorture/qedtorture/model"
	"github.com/qedtorture/qedtorture/props/oracle"
	"github.com/qedtorture/qedtorture/props/workload"
)

// The conformance sweeps assert their own exploration: the crash sweep
// judges exactly the states its crash points and models have (counted
// independently here), the fault sweep runs once per fault position it
// promises and its fault fires in every run.

// sweepPoints runs w as CheckCrashSweep does and returns the number of
// crash points it must judge (every file sync from the first op on, the
// final close's included, and the end of the run when it is not a sync)
// and the number of states it must judge at them under models and enum
// (each point's states seeded with crashsim.PointSeed).
func sweepPoints(t *testing.T, w *workload.Workload, models []crashsim.Model, enum crashsim.EnumOptions) (points, states int) {
	t.Helper()
	fs := crashsim.New(crashsim.Options{ImplicitDirSync: true, DiscardTrace: true})
	e, err := workload.NewExec(QEDTarget{}, fs, "/w", w)
	require.NoError(t, err)
	started := false
	e.Snapshot = func(int, *model.Disk) { started = true }
	count := func(p *crashsim.Point) {
		points++
		o := enum
		o.Seed = crashsim.PointSeed(enum.Seed, p.K())
		for _, m := range models {
			for range p.IDs(m, o) {
				states++
			}
		}
	}
	last := int64(-1)
	fs.OnSync(func(p *crashsim.Point) bool {
		if started {
			count(p)
			last = p.K()
		}
		return false
	})
	require.NoError(t, e.RunAll())
	require.NoError(t, e.Disk.Close())
	fs.OnSync(nil)
	end, err := fs.Point()
	require.NoError(t, err)
	if end.K() != last {
		count(end)
	}
	return points, states
}

func TestCrashSweepExploration(t *testing.T) {
	models := oracle.DefaultModels()
	enum := crashsim.EnumOptions{Bound: 6, Samples: 3, Seed: 7}
	if racetest.Enabled {
		models = models[:3]
	}
	for name, w := range FaultSweepWorkloads() {
		// Every flush and every close (the reopens', the final one)
		// syncs at least once.
		minSyncs := 1
		for _, op := range w.Ops {
			if op.Kind == workload.Flush || op.Kind == workload.Reopen || op.Kind == workload.Concurrent {
				minSyncs++
			}
		}
		syncs, want := sweepPoints(t, w, models, enum)
		require.GreaterOrEqual(t, syncs, minSyncs, "%s: crash points", name)
		require.GreaterOrEqual(t, want, syncs*len(models), "%s: at least one state per point and model", name)
		fails, states, err := CheckCrashSweep(QEDTarget{}, w, models, enum, oracle.Options{}, 1)
		require.NoError(t, err)
		require.Empty(t, fails)
		require.Equal(t, want, states, "%s: crash states judged at %d points under %d models", name, syncs, len(models))
		t.Logf("%s: %d points, %d states", name, syncs, states)
	}
}

// faultCountingTarget keeps the fault layer of every image it creates.
type faultCountingTarget struct {
	Target
	mu     sync.Mutex
	layers []*faultfs.FS
}

func (f *faultCountingTarget) Create(fs afero.Fs, path string, o CreateOptions) error {
	if ffs, ok := fs.(*faultfs.FS); ok {
		f.mu.Lock()
		f.layers = append(f.layers, ffs)
		f.mu.Unlock()
	}
	return f.Target.Create(fs, path, o)
}

func TestFaultSweepExploration(t *testing.T) {
	w := FaultSweepWorkloads()["raw-backing"]
	for _, rule := range FaultRules {
		for _, maxRuns := range []int{0, 4} {
			if maxRuns == 0 && (racetest.Enabled || rule != "sync:eio") {
				continue // every position of every rule: the conformance sweeps' job
			}
			t.Run(fmt.Sprintf("%s/max%d", rule, maxRuns), func(t *testing.T) {
				target := &faultCountingTarget{Target: QEDTarget{}}
				fails := CheckFaultSweep(target, w, rule, maxRuns, oracle.Options{})
				require.Empty(t, fails)
				require.NotEmpty(t, target.layers)
				dry := target.layers[0]
				count := dry.Matches(0)
				// The workload writes and syncs its image many times over.
				require.GreaterOrEqual(t, count, uint64(3), "%s matches in the dry run", rule)
				require.Zero(t, dry.Injected(), "the dry run injects nothing")
				step := uint64(1)
				if maxRuns > 0 && count > uint64(maxRuns) {
					step = uint64(math.Ceil(float64(count) / float64(maxRuns)))
				}
				runs := (count-1)/step + 1
				require.EqualValues(t, 1+runs, len(target.layers), "runs of the sweep (dry run + one per fault position; %d matches, step %d)", count, step)
				for i, l := range target.layers[1:] {
					require.Equal(t, 1, l.Injected(), "run %d (fault at match %d): the fault must fire once", i+1, uint64(i)*step+1)
				}
			})
		}
	}
}
