package campaign

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qedtorture/qedtorture/props/workload"
	"github.com/stretchr/testify/require"
)

// editMeta rewrites fields of an artifact's meta.json (a value nil
// removes the field).
func editMeta(t *testing.T, dir string, fields map[string]any) {
	t.Helper()
	p := filepath.Join(dir, metaFile)
	mb, err := os.ReadFile(p)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(mb, &m))
	for k, v := range fields {
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
	}
	mb, err = json.Marshal(m)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(p, mb, 0o644))
}

// TestReplayNestedByTheReference: a crash during a recovery that the
// reference ran in process (meta.json's chain_judge the reference's name,
// no chain_recorder) replays without the artifact's driver, judged by the
// reference, and says so; a recovery some recorder ran needs the driver.
func TestReplayNestedByTheReference(t *testing.T) {
	art := nestedArtifact(t, InProcess(TargetOrDie(t, "broken:noflush")))
	ref := TargetOrDie(t, "impl/qed")
	editMeta(t, art, map[string]any{"chain_judge": ref.Name()})
	unavailable := func(name string) (Driver, error) { return nil, fmt.Errorf("unknown target %q", name) }
	res, err := Replay(art, ReplayOptions{Resolve: unavailable, Reference: ref})
	require.NoError(t, err)
	require.Equal(t, NestedJudgeName, res.Judge)
	require.Contains(t, strings.Join(res.Notes, "\n"), "target broken:noflush is not available here")
	editMeta(t, art, map[string]any{"chain_recorder": "qemu"})
	_, err = Replay(art, ReplayOptions{Resolve: unavailable, Reference: ref})
	require.ErrorContains(t, err, `unknown target "broken:noflush"`)
}

// flakyDriver runs every workload on good, but its failOn-th run (from 1)
// on bad: a failure that shows only in some runs, as a concurrent group's
// interleaving does. runs counts the runs.
type flakyDriver struct {
	Driver
	bad    Driver
	failOn int
	runs   *int
}

func (d flakyDriver) Record(ctx context.Context, w *workload.Workload, o RecordOptions) (*Recording, error) {
	*d.runs++
	if *d.runs == d.failOn {
		return d.bad.Record(ctx, w, o)
	}
	return d.Driver.Record(ctx, w, o)
}

// TestReplayCrashFreeRace: a crash-free failure whose workload has
// concurrent groups is run again until it fails, at most
// replayRaceAttempts times, and the notes say on which run it failed or
// how many it passed; one without concurrent groups runs once.
func TestReplayCrashFreeRace(t *testing.T) {
	seed := testSeed(t)
	// Reads drawn first: the crash-free run fails before any crash state.
	g := readsFirst()
	rep, err := Run(context.Background(), Config{Seed: seed, Iterations: 20, Gen: g, Models: quickModels[:2],
		Bound: 8, Samples: 2, Target: flipAllTarget{}, Out: t.TempDir(), MinimizeCandidates: 20})
	require.NoError(t, err)
	require.NotEmpty(t, rep.Failures)
	art := rep.Failures[0].Artifact
	require.Equal(t, string(StageWorkload), rep.Failures[0].Stage)
	var runs int
	good, bad := InProcess(TargetOrDie(t, "impl/qed")), InProcess(flipAllTarget{})
	replay := func(failOn int) *ReplayResult {
		runs = 0
		res, err := Replay(art, ReplayOptions{Resolve: func(string) (Driver, error) { return flakyDriver{good, bad, failOn, &runs}, nil }})
		require.NoError(t, err)
		return res
	}
	res := replay(2)
	require.False(t, res.Fails(), "no concurrent group: one run")
	require.Equal(t, 1, runs)
	require.Empty(t, res.Notes)

	cg := quickGen()
	cg.Weights = maps.Clone(cg.Weights)
	cg.Weights[workload.Concurrent] = 1000
	w := generate(seed, cg)
	for s := seed + 1; !hasConcurrent(w) && s < seed+100; s++ {
		w = generate(s, cg) // a draw without a group: the next seed
	}
	require.True(t, hasConcurrent(w))
	require.NoError(t, os.WriteFile(filepath.Join(art, "workload.txt"), []byte(w.String()), 0o644))
	res = replay(3)
	require.True(t, res.Fails())
	require.Equal(t, 3, runs)
	require.Equal(t, []string{fmt.Sprintf("the workload's concurrent groups interleave differently on every run: it failed on run 3 of at most %d", replayRaceAttempts)}, res.Notes)
	res = replay(1)
	require.True(t, res.Fails())
	require.Equal(t, 1, runs)
	require.Empty(t, res.Notes)
	res = replay(0)
	require.False(t, res.Fails())
	require.Equal(t, replayRaceAttempts, runs)
	require.Equal(t, []string{fmt.Sprintf("the workload's concurrent groups interleave differently on every run: it passed %d runs", replayRaceAttempts)}, res.Notes)
}

// TestReplayDiffSignatureNote: a replayed differential failure notes its
// signature only when it differs from the recorded one; ReplayOptions.On
// re-runs the artifact's side on another target and says so.
func TestReplayDiffSignatureNote(t *testing.T) {
	seed := testSeed(t)
	g := quickGen()
	g.Weights = maps.Clone(g.Weights)
	g.Weights[workload.ReopenRO] = 0
	rep, err := Run(context.Background(), Config{Target: TargetOrDie(t, "impl/qed"), Diff: InProcess(staleReadTarget{}), Seed: seed,
		Iterations: 4, Gen: g, Models: quickModels[:1], Bound: 8, Samples: 2, Out: t.TempDir(), MinimizeCandidates: 10})
	require.NoError(t, err)
	require.Len(t, rep.Failures, 1, "%+v", rep.Failures)
	art := rep.Failures[0].Artifact
	res, err := Replay(art, ReplayOptions{Resolve: diffResolver})
	require.NoError(t, err)
	require.True(t, res.Fails())
	require.Empty(t, res.Notes)
	editMeta(t, art, map[string]any{"signature": "diff/x/y"})
	res, err = Replay(art, ReplayOptions{Resolve: diffResolver})
	require.NoError(t, err)
	require.Equal(t, []string{"the difference is now diff/data/other (recorded: diff/x/y)"}, res.Notes)
	editMeta(t, art, map[string]any{"signature": nil})
	res, err = Replay(art, ReplayOptions{Resolve: diffResolver, On: TargetOrDie(t, "broken:nosync")})
	require.NoError(t, err)
	require.True(t, res.Fails())
	require.Equal(t, []string{"the workload re-run on broken:nosync (the artifact's target: impl/qed) and on test:stale-read"}, res.Notes)
}
