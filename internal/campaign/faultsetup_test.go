package campaign

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/qedtorture/qedtorture/internal/racetest"
	"github.com/qedtorture/qedtorture/props/target"
	"github.com/qedtorture/qedtorture/props/workload"
	"github.com/spf13/afero"
	"github.com/stretchr/testify/require"
)

// setupSwept returns up to n workload indices of campaign seed whose
// fault sweep (every workload drawn and swept) is of the setup.
func setupSwept(t *testing.T, tgt target.Target, seed uint64, gen workload.GenConfig, n int) []int {
	t.Helper()
	var ws []int
	for w := 0; len(ws) < n && w < 400; w++ {
		s := WorkloadSeed(seed, w)
		sws, err := drawSweep(context.Background(), InProcess(tgt), generate(s, gen), s, 1, 0, 1, nil)
		require.NoError(t, err)
		if len(sws) > 0 && sws[0].setup {
			require.NotEmpty(t, sws[0].rules)
			ws = append(ws, w)
		}
	}
	require.Len(t, ws, n, "workloads sweeping their setup")
	return ws
}

// TestSetupFaultsJudged: every operation of a workload's setup failed in
// turn (CreateFaults): impl/qed surfaces each injected error or survives
// it, and every crash state of each failed creation passes the creation
// judge (the image absent, the complete image, or the old image; a file
// without the magic counted as absent).
func TestSetupFaultsJudged(t *testing.T) {
	racetest.Heavy(t)
	tgt := TargetOrDie(t, "impl/qed")
	gen := DefaultGenConfig()
	const seed = 21
	ws := setupSwept(t, tgt, seed, gen, 4)
	var rep Report
	for _, w := range ws {
		r, err := Run(context.Background(), Config{Seed: seed, Shard: Shard{Index: w, Count: w + 1}, Iterations: w + 1,
			Gen: gen, FaultShare: 1, FaultSweep: 1, Target: tgt, TargetName: tgt.Name()})
		require.NoError(t, err)
		require.Empty(t, r.Failures, "workload %d", w)
		rep.FaultSweeps += r.FaultSweeps
		rep.FaultSweepRuns += r.FaultSweepRuns
		rep.CreationStates += r.CreationStates
		rep.CreationAbsent += r.CreationAbsent
	}
	require.Equal(t, int64(len(ws)), rep.FaultSweeps)
	require.Greater(t, rep.FaultSweepRuns, rep.FaultSweeps)
	require.Positive(t, rep.CreationStates, "the failed creations' states are judged by the creation judge")
	require.Positive(t, rep.CreationAbsent, "some leave no image")
	require.Less(t, rep.CreationAbsent, rep.CreationStates, "some leave the image (complete, or the old one)")
}

// TestSetupFaultRecording: a setup whose creation fails under an injected
// error ends the run there: the error is the run's op error (index -1),
// every state of the run a creation state, its one mark the setup's
// (op -1); the same rule on the first operation after the setup is not a
// setup fault at all.
func TestSetupFaultRecording(t *testing.T) {
	tgt := TargetOrDie(t, "impl/qed")
	w := generate(WorkloadSeed(21, 0), DefaultGenConfig())
	dry, err := RecordWith(tgt, w, RecordOptions{Seed: 1, CreateFaults: SweepFault + "@after=" + neverFires})
	require.NoError(t, err)
	require.Len(t, dry.FaultMatches, 1)
	n := dry.FaultMatches[0]
	require.Positive(t, n)
	require.Empty(t, dry.Injected)
	require.Nil(t, dry.OpErr)
	failed := 0
	for i := uint64(1); i <= n; i++ {
		rec, err := RecordWith(tgt, w, RecordOptions{Seed: 1, CreateFaults: SweepFault + "@nth=" + itoa(i)})
		require.NoError(t, err, "operation %d of %d", i, n)
		require.Len(t, rec.Injected, 1, "operation %d of %d", i, n)
		if rec.OpErr != nil && rec.OpErr.Index < 0 {
			failed++
			require.Equal(t, -1, rec.OpErr.Index)
			require.ErrorIs(t, rec.OpErr, rec.Injected[0].Err)
			require.Greater(t, rec.CreateEnd, rec.End.K(), "the end point is a creation state")
			require.Equal(t, rec.SetupEnd, rec.Marks[0].K)
			require.Equal(t, -1, rec.Marks[0].Op, "the setup's mark names no guest op")
			require.NotNil(t, rec.EndModel)
		} else {
			require.Less(t, rec.CreateEnd, rec.End.K()+1, "operation %d: a setup that survived its fault ends its creation", i)
		}
	}
	require.Positive(t, failed, "failed creations")
}

func itoa(n uint64) string { return strconv.FormatUint(n, 10) }

// lyingCreateTarget is impl/qed whose creation, when it fails, writes the
// requested header over whatever the file holds (a creation that "makes
// sure" an image exists): an image that lies.
type lyingCreateTarget struct{ target.Target }

func (lyingCreateTarget) Name() string { return "test:lying-create" }

func (t lyingCreateTarget) Create(fs afero.Fs, path string, o target.CreateOptions) error {
	err := t.Target.Create(fs, path, o)
	if err == nil {
		return nil
	}
	mem := afero.NewMemMapFs()
	if merr := t.Target.Create(mem, "/x", o); merr != nil {
		return err
	}
	good, _ := afero.ReadFile(mem, "/x")
	f, ferr := fs.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if ferr == nil {
		f.WriteAt(good[:64], 0)
		f.Sync()
		f.Close()
	}
	return err
}

// TestSetupFaultCatchesLyingCreate: the target whose failed creation
// leaves a header over a half-made file fails a sweep of its setup (a
// state with the header over no complete image), and the artifact carries
// the setup's rule, which replay runs again.
func TestSetupFaultCatchesLyingCreate(t *testing.T) {
	racetest.Heavy(t)
	tgt := lyingCreateTarget{TargetOrDie(t, "impl/qed")}
	gen := DefaultGenConfig()
	gen.NoImageCommands()
	const seed = 21
	ws := setupSwept(t, tgt, seed, gen, 3)
	var fails []FailureReport
	for _, w := range ws {
		r, err := Run(context.Background(), Config{Seed: seed, Shard: Shard{Index: w, Count: w + 1}, Iterations: w + 1,
			Gen: gen, FaultShare: 1, FaultSweep: 1, Target: tgt, TargetName: tgt.Name(), Out: t.TempDir(), MinimizeCandidates: -1})
		require.NoError(t, err)
		fails = append(fails, r.Failures...)
	}
	require.NotEmpty(t, fails, "a failed creation leaving a lying header is caught")
	meta, err := os.ReadFile(filepath.Join(fails[0].Artifact, "meta.json"))
	require.NoError(t, err)
	var m ArtifactMeta
	require.NoError(t, json.Unmarshal(meta, &m))
	require.Empty(t, m.Faults)
	require.True(t, strings.HasPrefix(m.CreateFaults, SweepFault+"@nth="), "the artifact's setup faults: %q", m.CreateFaults)
	res, err := Replay(fails[0].Artifact, ReplayOptions{Resolve: InProcessResolver(func(string) (target.Target, error) { return tgt, nil })})
	require.NoError(t, err)
	require.True(t, res.Fails(), "replay reproduces the failure with the setup's rule")
}
