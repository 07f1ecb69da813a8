package campaign

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/qedtorture/qedtorture/impl/qed/qedtarget"
	"github.com/qedtorture/qedtorture/internal/atomicfile"
	"github.com/qedtorture/qedtorture/internal/cleanup"
	"github.com/qedtorture/qedtorture/internal/tmpfstest"
	"github.com/stretchr/testify/require"
)

// noTemps fails if dir holds a temporary of atomicfile (a half-written
// artifact or report).
func noTemps(t *testing.T, dir string) {
	t.Helper()
	es, err := os.ReadDir(dir)
	require.NoError(t, err)
	for _, e := range es {
		require.False(t, atomicfile.IsTemp(e.Name()), "temporary left in %s: %s", dir, e.Name())
	}
}

// TestRunInterrupted: cancelling the context (a signal) stops a campaign
// within a fraction of a second, marks the report interrupted, counts
// only completed workloads, and is different from the duration running
// out.
func TestRunInterrupted(t *testing.T) {
	seed := testSeed(t)
	ctx, cancel := context.WithCancel(context.Background())
	var cancelled time.Time
	var once sync.Once
	rep, err := Run(ctx, Config{Target: qedtarget.Target{}, Seed: seed, Duration: time.Minute, Workers: 2, Gen: quickGen(), Models: quickModels,
		ProgressEvery: 10 * time.Millisecond, Progress: func(s Stats) {
			if s.Workloads > 0 {
				once.Do(func() { cancelled = time.Now(); cancel() })
			}
		}})
	require.NoError(t, err)
	require.False(t, cancelled.IsZero())
	took := time.Since(cancelled)
	require.True(t, rep.Interrupted)
	require.False(t, rep.Checkpoint)
	require.Less(t, took, 2*time.Second, "stopped %v after the cancellation", took)
	t.Logf("stopped %v after the cancellation", took)
	require.Positive(t, rep.Workloads)

	rep, err = Run(context.Background(), Config{Target: qedtarget.Target{}, Seed: seed, Duration: 200 * time.Millisecond, Gen: quickGen(), Models: quickModels[:1]})
	require.NoError(t, err)
	require.False(t, rep.Interrupted, "the duration running out is not an interruption")
}

// TestRunInterruptedKeepsFailures: failures found before an interruption
// are minimized no further, written as complete artifacts and listed in
// the (interrupted) report; nothing half-written is left in --out.
func TestRunInterruptedKeepsFailures(t *testing.T) {
	seed := testSeed(t)
	target, err := targetByName("broken:noflush")
	require.NoError(t, err)
	out := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	var once sync.Once
	cfg := Config{Seed: seed, Duration: time.Minute, Workers: 2, Gen: quickGen(), Models: quickModels, Bound: 64, Samples: 8,
		Target: target, TargetName: "broken:noflush", Out: out, MaxFailures: 1000,
		ProgressEvery: 10 * time.Millisecond, Progress: func(s Stats) {
			if s.Failures > 0 {
				once.Do(func() { time.AfterFunc(50*time.Millisecond, cancel) })
			}
		}}
	rep, err := Run(ctx, cfg)
	require.NoError(t, err)
	require.True(t, rep.Interrupted)
	require.NotEmpty(t, rep.Failures)
	require.Len(t, rep.Failures, len(rep.Signatures), "the first failure of every signature found is listed")
	for _, fr := range rep.Failures {
		require.NotEmpty(t, fr.Artifact, "%+v", fr)
		for _, f := range []string{metaFile, "workload.txt", traceFile, "verdict.txt"} {
			require.FileExists(t, filepath.Join(fr.Artifact, f))
		}
	}
	noTemps(t, out)
	require.Zero(t, cleanup.Len(), "temporaries still registered")
}

// TestRunCheckpoints: during a run the Checkpoint callback gets reports
// marked Checkpoint whose counts grow; the final report is not one.
func TestRunCheckpoints(t *testing.T) {
	seed := testSeed(t)
	var cps []*Report
	rep, err := Run(context.Background(), Config{Target: qedtarget.Target{}, Seed: seed, Duration: 600 * time.Millisecond, Gen: quickGen(), Models: quickModels,
		CheckpointEvery: 100 * time.Millisecond, Checkpoint: func(r *Report) { cps = append(cps, r) }})
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(cps), 2)
	for i, c := range cps {
		require.True(t, c.Checkpoint)
		require.Equal(t, rep.Seed, c.Seed)
		if i > 0 {
			require.GreaterOrEqual(t, c.Workloads, cps[i-1].Workloads)
		}
	}
	require.False(t, rep.Checkpoint)
	require.GreaterOrEqual(t, rep.Workloads, cps[len(cps)-1].Workloads)
}

// TestRunArtifactNotWritten: a failure whose artifact cannot be written
// (--out is a regular file) is still in the report, with the reason, and
// Run says so.
func TestRunArtifactNotWritten(t *testing.T) {
	seed := testSeed(t)
	target, err := targetByName("broken:noflush")
	require.NoError(t, err)
	out := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(out, []byte("x"), 0o644))
	rep, err := Run(context.Background(), Config{Seed: seed, Iterations: 30, Gen: quickGen(), Models: quickModels,
		Bound: 64, Samples: 8, Target: target, TargetName: "broken:noflush", Out: out})
	require.Error(t, err)
	require.NotNil(t, rep)
	require.Len(t, rep.Failures, 1)
	require.Empty(t, rep.Failures[0].Artifact)
	require.Contains(t, rep.Failures[0].ArtifactError, out)
}

// TestWriteArtifactFullDisk: an artifact that does not fit leaves nothing
// in --out (no directory with a cut trace.bin or without workload.txt),
// and the error names the artifact and the cause.
func TestWriteArtifactFullDisk(t *testing.T) {
	seed := testSeed(t)
	target, err := targetByName("broken:noflush")
	require.NoError(t, err)
	rep, err := Run(context.Background(), Config{Seed: seed, Iterations: 30, Gen: quickGen(), Models: quickModels,
		Bound: 64, Samples: 8, Target: target, TargetName: "broken:noflush", Out: t.TempDir()})
	require.NoError(t, err)
	require.Len(t, rep.Failures, 1)
	// Rebuild the failure from its artifact, then write it to a full disk.
	res, err := Replay(rep.Failures[0].Artifact, ReplayOptions{Resolve: InProcessResolver(targetByName)})
	require.NoError(t, err)
	require.NotNil(t, res.Failure)
	res.Failure.Index = rep.Failures[0].Workload
	// An artifact of the same name (an earlier run's) is kept: the new one
	// gets "-2".
	again, err := WriteArtifact(filepath.Dir(rep.Failures[0].Artifact), res.Failure, ArtifactMeta{CampaignSeed: seed, Target: "broken:noflush"})
	require.NoError(t, err)
	require.Equal(t, rep.Failures[0].Artifact+"-2", again)
	require.FileExists(t, filepath.Join(rep.Failures[0].Artifact, metaFile))
	require.FileExists(t, filepath.Join(again, metaFile))

	out := tmpfstest.Mount(t, "size=64k")
	tmpfstest.Fill(t, out)
	_, err = WriteArtifact(out, res.Failure, ArtifactMeta{CampaignSeed: seed, Target: "broken:noflush"})
	require.Error(t, err)
	require.True(t, errors.Is(err, syscall.ENOSPC), "%v", err)
	require.Contains(t, err.Error(), filepath.Join(out, "failure-"))
	es, err := os.ReadDir(out)
	require.NoError(t, err)
	require.Len(t, es, 1, "only the filler is left: %v", es)
	require.Zero(t, cleanup.Len())
}

// TestReplayRefusesTemporary: the temporary of an artifact (left by a
// killed campaign) is not replayed as if it were one.
func TestReplayRefusesTemporary(t *testing.T) {
	tmp, err := atomicfile.MkdirTemp(filepath.Join(t.TempDir(), "failure-1-w0-data"))
	require.NoError(t, err)
	defer atomicfile.RemoveTemp(tmp)
	_, err = Replay(tmp, ReplayOptions{Resolve: InProcessResolver(targetByName)})
	require.ErrorIs(t, err, ErrArtifact)
	require.ErrorContains(t, err, "never completed")
}

// TestMergePartial: a merge lists the shards no report covers and the
// shards whose report was a checkpoint or interrupted.
func TestMergePartial(t *testing.T) {
	mk := func(i int) *Report {
		return &Report{Version: ReportVersion, Seed: 1, Shard: Shard{i, 3}.String(), ShardCount: 3, ShardsDone: []int{i},
			Target: "impl/qed", Workloads: 2, PerModel: map[string]int64{}, Digest: formatDigest(uint64(i + 1))}
	}
	m, err := Merge(mk(0), mk(2))
	require.NoError(t, err)
	require.False(t, m.Complete())
	require.Equal(t, []int{1}, m.MissingShards)
	require.False(t, m.Interrupted || m.Checkpoint)

	a, b, c := mk(0), mk(1), mk(2)
	b.Interrupted, c.Checkpoint = true, true
	m, err = Merge(a, b, c)
	require.NoError(t, err)
	require.True(t, m.Complete())
	require.True(t, m.Interrupted)
	require.True(t, m.Checkpoint)
	require.Equal(t, []int{1, 2}, m.Partial)
	require.EqualValues(t, 6, m.Workloads)
}
