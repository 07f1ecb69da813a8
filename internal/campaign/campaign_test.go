package campaign

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/qedtorture/qedtorture/crashsim"
	"github.com/qedtorture/qedtorture/impl/qed/qedtarget"
	"github.com/qedtorture/qedtorture/internal/testseed"
	"github.com/qedtorture/qedtorture/props/oracle"
	"github.com/qedtorture/qedtorture/props/target"
	"github.com/qedtorture/qedtorture/props/workload"
	"github.com/stretchr/testify/require"
)

// testSeed returns CAMPAIGN_SEED when set, else a random seed; it is logged.
func testSeed(t testing.TB) uint64 {
	t.Helper()
	return testseed.Seed(t, "CAMPAIGN_SEED")
}

// quickGen is a small, deterministic workload shape: no concurrent groups
// (their interleaving is up to the scheduler), no backing chains.
func quickGen() workload.GenConfig {
	g := DefaultGenConfig()
	g.Ops = 8
	g.MaxClusters = 8
	g.ClusterSizes = []uint32{4096, 16384}
	g.BackingChance = 0
	delete(g.Weights, workload.Concurrent)
	g.NoExtras() // the shape the pinned campaigns were drawn with
	return g
}

var quickModels = []crashsim.Model{{Base: crashsim.Drop}, {Base: crashsim.Prefix}, {Base: crashsim.Subset}, {Base: crashsim.Torn, Sector: 4096}}

func TestCampaignPassesOnQED(t *testing.T) {
	seed := testSeed(t)
	var last Stats
	rep, err := Run(context.Background(), Config{Target: qedtarget.Target{}, Seed: seed, Iterations: 4, Workers: 2, Gen: quickGen(), Models: quickModels,
		Bound: 16, Samples: 4, SampledPoints: 2, Progress: func(s Stats) { last = s }, ProgressEvery: time.Second})
	require.NoError(t, err)
	require.Empty(t, rep.Failures, "%+v", rep.Failures)
	require.EqualValues(t, 4, rep.Workloads)
	require.Positive(t, rep.CrashStates)
	require.Positive(t, rep.CrashPoints)
	require.Equal(t, rep.CrashStates, last.States, "the final progress call sees the final counts")
	require.InEpsilon(t, float64(last.States)/last.Elapsed.Seconds(), last.StatesPerSecond, 1e-9, "the progress's rate")
	var sum int64
	for _, m := range quickModels {
		require.Positive(t, rep.PerModel[m.String()], m.String())
		sum += rep.PerModel[m.String()]
	}
	require.Equal(t, rep.CrashStates, sum)
	t.Logf("%d workloads, %d points, %d states in %.2fs (%.0f states/s)", rep.Workloads, rep.CrashPoints, rep.CrashStates, rep.Seconds, rep.StatesPerSecond)
}

// TestBrokenTargetCaught: a target whose guest flush does nothing loses
// flushed data at a crash; the campaign finds it, minimizes it, writes an
// artifact, and Replay reproduces the same verdict.
func TestBrokenTargetCaught(t *testing.T) {
	for _, name := range []string{"broken:noflush", "broken:nosync"} {
		t.Run(name, func(t *testing.T) {
			seed := testSeed(t)
			target, err := targetByName(name)
			require.NoError(t, err)
			out := t.TempDir()
			rep, err := Run(context.Background(), Config{Seed: seed, Iterations: 30, Gen: quickGen(), Models: quickModels,
				Bound: 64, Samples: 8, Target: target, TargetName: name, Out: out})
			require.NoError(t, err)
			require.Len(t, rep.Failures, 1)
			fr := rep.Failures[0]
			t.Logf("%+v", fr)
			require.LessOrEqual(t, fr.Ops, fr.OriginalOps)
			// A missing flush needs a write, a flush and a crash; the
			// minimizer's result is 1-minimal (no single op can go), not
			// the smallest: a failure that shows an overwritten write's
			// bytes (write, flush, overwrite, flush) stays at 4 ops
			// (CAMPAIGN_SEED=12661680946213201922, broken:noflush).
			require.LessOrEqual(t, fr.Ops, 4, "a missing flush needs a write, a flush and a crash, or an overwrite of it")
			require.NotEmpty(t, fr.State)
			for _, f := range []string{"meta.json", "workload.txt", "workload.orig.txt", "seed", "crash.txt", "verdict.txt",
				"expected-vs-read.txt", "explain.txt", "trace.bin", "image/image.qed"} {
				require.FileExists(t, filepath.Join(fr.Artifact, f))
			}
			explain, err := os.ReadFile(filepath.Join(fr.Artifact, "explain.txt"))
			require.NoError(t, err)
			require.Contains(t, string(explain), fr.State)

			res, err := Replay(fr.Artifact, ReplayOptions{Resolve: InProcessResolver(targetByName)})
			require.NoError(t, err)
			require.True(t, res.Fails(), "replay must reproduce the failure")
			require.Equal(t, fr.Stage, string(res.Failure.Stage))
			require.Equal(t, fr.State, res.Failure.State.String())
			require.Empty(t, res.Notes)
			verdict, err := os.ReadFile(filepath.Join(fr.Artifact, "verdict.txt"))
			require.NoError(t, err)
			require.Equal(t, string(verdict), verdictText(res.Failure, res.Meta.Target)+"\n", "replay prints the same verdict")

			// A damaged artifact is an ErrArtifact, never a panic.
			for _, c := range []struct{ file, old, new string }{
				{"meta.json", fr.State, "k=99999/subset/0"},
				{"meta.json", fr.State, "k=1/bogus/0"},
				{"meta.json", fr.State, fmt.Sprintf("k=%d/subset/999999999", fr.CrashPoint)},
				{"workload.txt", "qedtorture-workload v1", "nope"},
			} {
				bad := t.TempDir()
				require.NoError(t, os.CopyFS(bad, os.DirFS(fr.Artifact)))
				b, err := os.ReadFile(filepath.Join(bad, c.file))
				require.NoError(t, err)
				require.NoError(t, os.WriteFile(filepath.Join(bad, c.file), bytes.Replace(b, []byte(c.old), []byte(c.new), 1), 0o644))
				_, err = Replay(bad, ReplayOptions{Resolve: InProcessResolver(targetByName)})
				require.ErrorIs(t, err, ErrArtifact, "%s: %s -> %s", c.file, c.old, c.new)
			}
		})
	}
}

func TestReplayPassesOnFixedTarget(t *testing.T) {
	seed := testSeed(t)
	out := t.TempDir()
	target, _ := targetByName("broken:noflush")
	rep, err := Run(context.Background(), Config{Seed: seed, Iterations: 30, Gen: quickGen(), Models: quickModels[:2],
		Bound: 8, Samples: 2, Target: target, TargetName: "broken:noflush", Out: out})
	require.NoError(t, err)
	require.Len(t, rep.Failures, 1)
	dir := rep.Failures[0].Artifact
	// "Fix" the implementation: point the artifact at impl/qed.
	mb, err := os.ReadFile(filepath.Join(dir, "meta.json"))
	require.NoError(t, err)
	mb = bytes.Replace(mb, []byte(`"broken:noflush"`), []byte(`"impl/qed"`), 1)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "meta.json"), mb, 0o644))
	res, err := Replay(dir, ReplayOptions{Resolve: InProcessResolver(targetByName)})
	require.NoError(t, err)
	require.False(t, res.Fails(), "%v", res.Failure)
	require.NotEmpty(t, res.Notes, "the fixed target issues other I/O: every state is re-checked")
}

func TestReplayBadArtifact(t *testing.T) {
	_, err := Replay(t.TempDir(), ReplayOptions{Resolve: InProcessResolver(targetByName)})
	require.ErrorIs(t, err, ErrArtifact)
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "meta.json"), []byte(`{"version":1,"target":"nope"}`), 0o644))
	_, err = Replay(dir, ReplayOptions{Resolve: InProcessResolver(targetByName)})
	require.ErrorContains(t, err, "unknown target", "the resolver's error, as it is")
}

// TestShardMergeEquivalence: two shards plus a merge check the same
// workloads with the same crash-state counts as one unsharded run.
func TestShardMergeEquivalence(t *testing.T) {
	seed := testSeed(t)
	// At least one of the 6 workloads records its creation (at a share of
	// 0.5 none does for about one campaign seed in 64).
	for !slices.ContainsFunc([]int{0, 1, 2, 3, 4, 5}, func(w int) bool { return createChosen(WorkloadSeed(seed, w), 0.5) }) {
		seed++
		t.Logf("no creation drawn: campaign seed %d", seed)
	}
	cfg := Config{Target: qedtarget.Target{}, Seed: seed, Iterations: 6, Workers: 2, Gen: quickGen(), Models: quickModels[:3], Bound: 8, Samples: 2, SampledPoints: 1,
		NestedDepth: 2, CreateShare: 0.5}
	all, err := Run(context.Background(), cfg)
	require.NoError(t, err)
	var shards []*Report
	for i := range 2 {
		c := cfg
		c.Shard = Shard{i, 2}
		r, err := Run(context.Background(), c)
		require.NoError(t, err)
		require.Equal(t, []int{i}, r.ShardsDone)
		require.EqualValues(t, 3, r.Workloads)
		shards = append(shards, r)
	}
	require.NotEqual(t, shards[0].Digest, shards[1].Digest)
	m, err := Merge(shards[1], shards[0])
	require.NoError(t, err)
	require.Equal(t, all.Workloads, m.Workloads)
	require.Equal(t, all.CrashPoints, m.CrashPoints)
	require.Equal(t, all.CrashStates, m.CrashStates)
	require.Equal(t, all.PerModel, m.PerModel)
	require.Equal(t, all.Digest, m.Digest)
	require.Positive(t, all.NestedStates)
	require.Positive(t, all.CreationStates)
	require.Equal(t, all.NestedDepth, m.NestedDepth)
	require.Equal(t, all.NestedStates, m.NestedStates, "crashes during recovery add up")
	require.Equal(t, all.CreationStates, m.CreationStates, "crashes during creation add up")
	require.Equal(t, all.CreationAbsent, m.CreationAbsent)
	require.NotEqual(t, shards[0].WorkloadDigest, shards[1].WorkloadDigest)
	require.Equal(t, all.WorkloadDigest, m.WorkloadDigest, "the workloads' digest merges like the shards")
	require.Equal(t, "all/2", m.Shard)
	require.Equal(t, []int{0, 1}, m.ShardsDone)

	_, err = Merge(shards[0], shards[0])
	require.ErrorIs(t, err, ErrMerge)
	other := *shards[1]
	other.Seed++
	_, err = Merge(shards[0], &other)
	require.ErrorIs(t, err, ErrMerge)
	require.ErrorContains(t, err, "seed")
}

func TestReportJSON(t *testing.T) {
	rep, err := Run(context.Background(), Config{Target: qedtarget.Target{}, Seed: 7, Iterations: 1, Gen: quickGen(), Models: quickModels[:1]})
	require.NoError(t, err)
	var buf bytes.Buffer
	require.NoError(t, rep.WriteJSON(&buf))
	var m map[string]any
	require.NoError(t, json.Unmarshal(buf.Bytes(), &m))
	for _, k := range []string{"seed", "shard", "workloads", "crash_states", "crash_points", "failures", "seconds",
		"states_per_second", "per_model", "digest", "models", "target"} {
		require.Contains(t, m, k)
	}
	require.EqualValues(t, 7, m["seed"])
	require.Equal(t, "0/1", m["shard"])
	back, err := ReadReport(&buf)
	require.NoError(t, err)
	require.Equal(t, rep, back)
	_, err = ReadReport(bytes.NewReader([]byte(`{"version":9}`)))
	require.Error(t, err)
}

// TestMinimizeDeterministic: the same failure minimizes to the same case.
func TestMinimizeDeterministic(t *testing.T) {
	seed := testSeed(t)
	target, _ := targetByName("broken:noflush")
	var got []string
	for range 2 {
		rep, err := Run(context.Background(), Config{Seed: seed, Iterations: 30, Gen: quickGen(), Models: quickModels,
			Bound: 64, Samples: 8, Target: target, TargetName: "broken:noflush", Out: t.TempDir()})
		require.NoError(t, err)
		require.Len(t, rep.Failures, 1)
		w, err := os.ReadFile(filepath.Join(rep.Failures[0].Artifact, "workload.txt"))
		require.NoError(t, err)
		got = append(got, rep.Failures[0].State+"\n"+string(w))
	}
	require.Equal(t, got[0], got[1])
}

// TestFaultsAreExpected: injected I/O errors stop a workload without being
// a failure; the state after the fault is still judged.
func TestFaultsAreExpected(t *testing.T) {
	seed := testSeed(t)
	rep, err := Run(context.Background(), Config{Target: qedtarget.Target{}, Seed: seed, Iterations: 6, Gen: quickGen(), Models: quickModels[:3],
		Bound: 32, Samples: 4, Faults: "write:eio@nth=4"})
	require.NoError(t, err)
	require.Empty(t, rep.Failures, "%+v", rep.Failures)
	require.EqualValues(t, 6, rep.Workloads)
	require.Equal(t, "write:eio@nth=4", rep.Faults)
	require.Positive(t, rep.Faulted, "the rule fires in some workloads")
	require.Positive(t, rep.CrashStates)
}

func TestRecordMarks(t *testing.T) {
	w := benchWorkload(4096, 64<<10, 4, 2)
	rec, err := Record(qedtarget.Target{}, w, 1, "")
	require.NoError(t, err)
	require.Nil(t, rec.OpErr)
	require.Equal(t, -1, rec.Marks[0].Op)
	require.Equal(t, len(w.Ops)+1, len(rec.Marks))
	require.NotEmpty(t, rec.Syncs)
	for k := range rec.Syncs {
		require.GreaterOrEqual(t, k, rec.SetupEnd)
	}
	ks := rec.PointKs(3)
	require.Equal(t, rec.End.K(), ks[len(ks)-1])
	// A point rebuilt from the trace equals the captured one.
	for k, p := range rec.Syncs {
		q, err := PointFromTrace(rec.Trace, k)
		require.NoError(t, err)
		require.Equal(t, len(p.Unsynced()), len(q.Unsynced()))
	}
	require.Equal(t, len(w.Ops), rec.GuestOpAt(rec.End.K()))
	require.Contains(t, []int{-1, 0}, rec.GuestOpAt(rec.SetupEnd), "op 0 issued no I/O yet")
}

func TestConfigParsing(t *testing.T) {
	sh, err := ParseShard("3/8")
	require.NoError(t, err)
	require.Equal(t, Shard{3, 8}, sh)
	require.True(t, sh.Has(11))
	require.False(t, sh.Has(12))
	require.Equal(t, 3, Shard{3, 8}.ShardWorkloads(20))
	for _, bad := range []string{"8/8", "-1/2", "x", "1/0", "1/2/3"} {
		_, err := ParseShard(bad)
		require.ErrorIs(t, err, ErrConfig, bad)
	}
	t.Setenv("JOB_COMPLETION_INDEX", "2")
	sh, ok, err := ShardFromEnv(4)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, Shard{2, 4}, sh)
	_, _, err = ShardFromEnv(2)
	require.ErrorIs(t, err, ErrConfig)

	ms, err := ParseModels("torn,drop,torn4k")
	require.NoError(t, err)
	require.Len(t, ms, 3)
	ms, err = ParseModels("all")
	require.NoError(t, err)
	for _, m := range ms {
		require.False(t, m.Garbage)
	}
	wts, err := ParseWeights("concurrent=0, write=20", workload.DefaultGenConfig().Weights)
	require.NoError(t, err)
	require.NotContains(t, wts, workload.Concurrent)
	require.Equal(t, 20, wts[workload.Write])
	require.Equal(t, 3, wts[workload.Flush])
	for _, bad := range []string{"write", "bogus=1", "write=-1", "write=x"} {
		_, err = ParseWeights(bad, nil)
		require.ErrorIs(t, err, ErrConfig, bad)
	}
	_, err = ParseWeights("write=0", map[workload.Kind]int{workload.Write: 1})
	require.ErrorIs(t, err, ErrConfig)
	_, err = ParseModels("subset,bogus")
	require.ErrorIs(t, err, ErrConfig)
	require.NotEqual(t, WorkloadSeed(1, 0), WorkloadSeed(1, 1))
	require.NotEqual(t, WorkloadSeed(1, 0), WorkloadSeed(2, 0))
	_, err = Run(context.Background(), Config{Target: qedtarget.Target{}, Shard: Shard{2, 2}})
	require.ErrorIs(t, err, ErrConfig)
	// The engine knows no implementation: the target is required.
	_, err = Run(context.Background(), Config{Iterations: 1})
	require.ErrorIs(t, err, ErrConfig)
	require.ErrorContains(t, err, "no target")
	_, err = Run(context.Background(), Config{Target: qedtarget.Target{}, Iterations: 1, Samples: -1})
	require.ErrorIs(t, err, ErrConfig, "the explorer refuses negative samples: a configuration error, not a failing setup")
}

// TestDurableCacheSameVerdicts: oracle.Options.Durable (used by the
// campaign) changes no verdict: every state of a broken target's run gets
// the same stage and the same first bad offset with and without it.
func TestDurableCacheSameVerdicts(t *testing.T) {
	target, _ := targetByName("broken:noflush")
	w := benchWorkload(4096, 64<<10, 6, 2)
	rec, err := Record(target, w, 1, "")
	require.NoError(t, err)
	failing := 0
	for _, k := range rec.PointKs(4) {
		p, err := rec.Point(k)
		require.NoError(t, err)
		m := rec.ModelAt(k)
		d, err := oracle.NewDurable(m)
		require.NoError(t, err)
		for id := range p.IDs(crashsim.Model{Base: crashsim.Subset}, crashsim.EnumOptions{Bound: 64, Samples: 8, Seed: 1}) {
			s1, err := p.State(id)
			require.NoError(t, err)
			s2, err := p.State(id)
			require.NoError(t, err)
			v1 := oracle.Judge(target, s1, ImagePath, m.Clone(), oracle.Options{})
			v2 := oracle.Judge(target, s2, ImagePath, m.Clone(), oracle.Options{Durable: d})
			require.Equal(t, v1.Stage, v2.Stage, id.String())
			if v1.Mismatch != nil {
				failing++
				require.NotNil(t, v2.Mismatch)
				require.Equal(t, v1.Mismatch.Off, v2.Mismatch.Off, id.String())
			}
		}
	}
	require.Positive(t, failing, "the broken target must fail some states")
}

// TargetOrDie returns the named target.
func TargetOrDie(t testing.TB, name string) target.Target {
	t.Helper()
	tgt, err := targetByName(name)
	require.NoError(t, err)
	return tgt
}

// TestReplayOnAnotherTarget: an artifact of a target that is not
// available (a resolver that knows none) says what it needs; with On the
// recorded crash state is judged by the oracle recovering with On, and
// the artifact names its judge and signature (layout version 2) with a
// readable trace.txt.
func TestReplayOnAnotherTarget(t *testing.T) {
	seed := testSeed(t)
	out := t.TempDir()
	tgt, _ := targetByName("broken:nosync")
	rep, err := Run(context.Background(), Config{Seed: seed, Iterations: 30, Gen: quickGen(), Models: quickModels[:2],
		Bound: 8, Samples: 2, Target: tgt, Out: out})
	require.NoError(t, err)
	require.NotEmpty(t, rep.Failures)
	dir := rep.Failures[0].Artifact
	meta, err := ReadArtifactMeta(dir)
	require.NoError(t, err)
	require.Equal(t, ArtifactVersion, meta.Version)
	require.Equal(t, rep.Failures[0].Signature, meta.Signature)
	require.NotEmpty(t, meta.Signature)
	tt, err := os.ReadFile(filepath.Join(dir, "trace.txt"))
	require.NoError(t, err)
	require.Contains(t, string(tt), "filesystem operations")

	none := func(name string) (Driver, error) { return nil, fmt.Errorf("target %q is not in this build", name) }
	_, err = Replay(dir, ReplayOptions{Resolve: none, Reference: qedtarget.Target{}})
	require.ErrorContains(t, err, "not in this build")
	if meta.State != "" {
		require.ErrorContains(t, err, "replay --target impl/qed")
	}
	res, err := Replay(dir, ReplayOptions{Resolve: none, On: qedtarget.Target{}})
	require.NoError(t, err)
	require.Equal(t, "impl/qed", res.Judge)
	require.NotEmpty(t, res.Notes)

	// The artifact's target fixed since (impl/qed under the recorded
	// name): its I/O differs (it syncs), so the recorded state no longer
	// exists and every crash state is judged again, under the artifact's
	// own models, not the default ones.
	fixed := func(string) (Driver, error) { return InProcess(renamedTarget{qedtarget.Target{}, meta.Target}), nil }
	res, err = Replay(dir, ReplayOptions{Resolve: fixed})
	require.NoError(t, err)
	require.False(t, res.Fails(), "the fixed target fails: %v", res.Failure)
	require.Equal(t, []string{"drop", "prefix"}, meta.Models)
	require.Contains(t, strings.Join(res.Notes, "\n"), "checked again instead of the recorded one, under the artifact's crash models: drop,prefix")
}

// renamedTarget is a target under another name (an implementation changed
// since an artifact named it).
type renamedTarget struct {
	target.Target
	name string
}

func (r renamedTarget) Name() string { return r.name }

// TestSignaturesAndPerJudgeCounts: every failed workload is counted under
// its signature, the failures listed have distinct signatures (the first
// of each, minimized), the oracle judge's count is the states judged, and
// a merge adds the new counts up.
func TestSignaturesAndPerJudgeCounts(t *testing.T) {
	seed := testSeed(t)
	tgt, _ := targetByName("broken:noflush")
	cfg := Config{Seed: seed, Iterations: 40, Gen: quickGen(), Models: quickModels[:2], Bound: 8, Samples: 2,
		Target: tgt, MaxFailures: 3, MinimizeCandidates: 5, Shard: Shard{0, 2}}
	rep, err := Run(context.Background(), cfg)
	require.NoError(t, err)
	require.NotEmpty(t, rep.Failures)
	var sum int64
	for _, n := range rep.Signatures {
		sum += n
	}
	require.Equal(t, rep.FailedWorkloads, sum)
	seen := map[string]bool{}
	for _, f := range rep.Failures {
		require.NotEmpty(t, f.Signature)
		require.False(t, seen[f.Signature], "one failure per signature: %s twice", f.Signature)
		seen[f.Signature] = true
		if f.Judge != "" {
			require.Equal(t, "broken:noflush", f.Judge)
		}
	}
	require.Equal(t, rep.OracleRuns, rep.Judged["broken:noflush"])
	cfg.Shard = Shard{1, 2}
	rep2, err := Run(context.Background(), cfg)
	require.NoError(t, err)
	m, err := Merge(rep, rep2)
	require.NoError(t, err)
	require.Equal(t, rep.OracleRuns+rep2.OracleRuns, m.Judged["broken:noflush"])
	require.Equal(t, rep.FailedWorkloads+rep2.FailedWorkloads, func() (n int64) {
		for _, x := range m.Signatures {
			n += x
		}
		return n
	}())
}

// TestKnownFailures: failures whose signature a --known entry matches are
// counted (Report.Known), not minimized nor listed, and do not stop the
// campaign; a bad pattern is a configuration error naming the line.
func TestKnownFailures(t *testing.T) {
	seed := testSeed(t)
	tgt, _ := targetByName("broken:noflush")
	known, err := ParseKnown(strings.NewReader("# comment\n\nbroken:noflush/*  the flush that does nothing\n"), "known.txt")
	require.NoError(t, err)
	rep, err := Run(context.Background(), Config{Seed: seed, Iterations: 20, Gen: quickGen(), Models: quickModels[:2], Bound: 8, Samples: 2,
		Target: tgt, Known: known, Out: t.TempDir()})
	require.NoError(t, err)
	require.Empty(t, rep.Failures, "known failures are not listed")
	require.Positive(t, rep.FailedWorkloads)
	require.Equal(t, rep.FailedWorkloads, rep.Known["the flush that does nothing"])
	require.Equal(t, int64(20), rep.Workloads+rep.FailedWorkloads+rep.Skipped, "known failures do not stop the run")

	_, err = ParseKnown(strings.NewReader("ok/sig\n[bad  x\n"), "k.txt")
	require.ErrorIs(t, err, ErrConfig)
	require.ErrorContains(t, err, "k.txt:2")

	f, err := os.Open("../../testdata/known/qemu-7.2.txt")
	require.NoError(t, err)
	defer f.Close()
	q, err := ParseKnown(f, "qemu-7.2.txt")
	require.NoError(t, err)
	name, ok := q.Match("raw/structure-before-recovery/data-past-eof+need-check-clear-but-inconsistent")
	require.True(t, ok)
	require.Contains(t, name, "F1")
	_, ok = q.Match("impl/qed/structure-after-recovery/leak")
	require.False(t, ok)
	// F3 under the exec target: its signature starts with the command.
	for _, sig := range []string{"exec:qemu-io -f qed/workload", "exec:/usr/bin/qemu-io -f qed/workload"} {
		name, ok = q.Match(sig)
		require.True(t, ok, sig)
		require.Contains(t, name, "F3", sig)
	}
	// F2 and F10 in a crash-free read, not every wrong crash-free read.
	for _, sig := range []string{"qemu/workload/data/backing-for-zeros", "exec:qemu-io -f qed/workload/data/backing-for-zeros"} {
		name, ok = q.Match(sig)
		require.True(t, ok, sig)
		require.Contains(t, name, "F2 or F10", sig)
	}
	_, ok = q.Match("qemu/workload/data")
	require.False(t, ok, "any crash-free data mismatch through QEMU is known")
	name, ok = q.Match("diff/data/target") // run --diff's signature: diff/KEY/SIDE
	require.True(t, ok)
	require.Contains(t, name, "F2")
	_, ok = q.Match("diff/data/other")
	require.False(t, ok, "impl/qed deviating is not QEMU's F2")
	for _, sig := range []string{"exec/data", "exec/data-after-reopen", "depth2/impl/qed/data"} { // F2 through the exec target's own recovery
		name, ok = q.Match(sig)
		require.True(t, ok, sig)
		require.Contains(t, name, "F2", sig)
	}
	_, ok = q.Match("exec:qedtorture io/workload")
	require.False(t, ok, "another program's workload failure is not QEMU's F3")
}

// TestArtifactOneNumbering: expected-vs-read.txt and the report's message
// name the operations
// that wrote a range by their 0-based workload line (the model's own
// count is not shown), explain.txt names the artifact's own directory in
// its replay command, and never calls a broken:nosync image that is not
// QED a NEED_CHECK promise broken.
func TestArtifactOneNumbering(t *testing.T) {
	seed := testSeed(t)
	for _, name := range []string{"broken:noflush", "broken:nosync"} {
		tgt, _ := targetByName(name)
		rep, err := Run(context.Background(), Config{Seed: seed, Iterations: 30, Gen: quickGen(), Models: quickModels[:2],
			Bound: 8, Samples: 2, Target: tgt, Out: t.TempDir(), MaxFailures: 3})
		require.NoError(t, err)
		require.NotEmpty(t, rep.Failures)
		for _, fr := range rep.Failures {
			require.NotRegexp(t, `\(op \d+`, fr.Message, "the report's message")
			evr, err := os.ReadFile(filepath.Join(fr.Artifact, "expected-vs-read.txt"))
			require.NoError(t, err)
			require.NotRegexp(t, `\(op \d+`, string(evr))
			if fr.Stage == "data" {
				require.Contains(t, string(evr), "first differing guest offset")
				require.Contains(t, string(evr), "^^")
			}
			ex, err := os.ReadFile(filepath.Join(fr.Artifact, "explain.txt"))
			require.NoError(t, err)
			require.Contains(t, string(ex), "qedtorture replay "+fr.Artifact)
			if strings.Contains(fr.Signature, "short-file") {
				require.NotContains(t, string(ex), "a metadata update reached the disk before")
				require.Contains(t, string(ex), "not a QED image")
			}
			t.Logf("%s: %s", fr.Signature, evr)
		}
	}
}

// TestReportRate: a report samples the run's progress (Report.Rate): from
// the start, in time order, counters never decreasing, the last sample at
// the report's own counters; thinning keeps the first sample and every
// other one, so the samples stay spread over the whole run.
func TestReportRate(t *testing.T) {
	seed := testSeed(t)
	rep, err := Run(context.Background(), Config{Seed: seed, Duration: 2500 * time.Millisecond, Gen: quickGen(),
		Models: quickModels[:2], Bound: 8, Samples: 2, Target: qedtarget.Target{}, Workers: 1})
	require.NoError(t, err)
	rs := rep.Rate
	require.GreaterOrEqual(t, len(rs), 3, "%+v", rs)
	require.LessOrEqual(t, len(rs), MaxRateSamples)
	require.Zero(t, rs[0].Seconds)
	for i := 1; i < len(rs); i++ {
		require.Greater(t, rs[i].Seconds, rs[i-1].Seconds, "%+v", rs)
		require.GreaterOrEqual(t, rs[i].States, rs[i-1].States, "%+v", rs)
		require.GreaterOrEqual(t, rs[i].Workloads, rs[i-1].Workloads, "%+v", rs)
	}
	last := rs[len(rs)-1]
	require.Equal(t, rep.CrashStates, last.States)
	require.Equal(t, rep.Workloads, last.Workloads)
	require.InDelta(t, rep.Seconds, last.Seconds, 1e-9)

	s := make([]RateSample, MaxRateSamples)
	for i := range s {
		s[i].Seconds = float64(i)
	}
	th := thinOut(s)
	require.Len(t, th, MaxRateSamples/2)
	for i, x := range th {
		require.Equal(t, float64(2*i), x.Seconds)
	}
	m, err := Merge(rep)
	require.NoError(t, err)
	require.Empty(t, m.Rate, "a merged report has no rate samples")
}

// TestShardWorkloads: a shard's workloads below an iteration count are
// the indices congruent to its index (every one without sharding).
func TestShardWorkloads(t *testing.T) {
	for _, sh := range []Shard{{0, 0}, {0, 1}, {0, 2}, {1, 2}, {2, 3}, {3, 8}, {7, 8}} {
		for it := range 20 {
			want := 0
			for w := range it {
				if sh.Count <= 1 || w%sh.Count == sh.Index {
					want++
				}
			}
			require.Equal(t, want, sh.ShardWorkloads(it), "shard %d/%d, %d iterations", sh.Index, sh.Count, it)
		}
	}
}

// TestCheckpointEveryZero: a checkpoint function with no interval is
// never called (0 turns checkpoints off, as on the command line).
func TestCheckpointEveryZero(t *testing.T) {
	calls := 0
	_, err := Run(context.Background(), Config{Target: qedtarget.Target{}, Seed: 3, Iterations: 2, Gen: quickGen(), Models: quickModels[:1],
		Bound: 8, Samples: 2, Checkpoint: func(*Report) { calls++ }})
	require.NoError(t, err)
	require.Zero(t, calls)
}

// cancelDriver cancels the campaign once it has recorded a workload.
type cancelDriver struct {
	Driver
	cancel context.CancelFunc
}

func (d cancelDriver) Record(ctx context.Context, w *workload.Workload, o RecordOptions) (*Recording, error) {
	rec, err := d.Driver.Record(ctx, w, o)
	d.cancel()
	return rec, err
}

// TestFailureFoundAsTheCampaignStops: a workload that fails while the
// campaign stops (here: interrupted during its recording) is reported: a
// finding is kept, whenever it was found.
func TestFailureFoundAsTheCampaignStops(t *testing.T) {
	w, err := workload.Parse(strings.NewReader("qedtorture-workload v1\nimage cluster_size=4096 table_size=1 size=65536\nwrite 0 4096 id=1\nread 0 4096\n"))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rep, err := Run(ctx, Config{Driver: cancelDriver{InProcess(flipAllTarget{}), cancel}, TargetName: "test:flip-all", Seed: 1, Iterations: 1,
		Workload: w, Models: quickModels[:1], Bound: 8, Samples: 2, Workers: 1})
	require.NoError(t, err)
	require.Len(t, rep.Failures, 1, "the failure found as the campaign stopped")
	require.EqualValues(t, StageWorkload, rep.Failures[0].Stage)
}

// killedJudge stands for a judge whose processes die with the campaign's
// context: once called, it stops the campaign and fails its state with
// the context's error, as a killed qemu-io would.
type killedJudge struct{ cancel context.CancelFunc }

func (killedJudge) Name() string { return "killed" }

func (killedJudge) Budget() int { return -1 }

func (j killedJudge) Judge(ctx context.Context, _ *State) (*oracle.Verdict, error) {
	j.cancel()
	<-ctx.Done()
	return &oracle.Verdict{Stage: oracle.StageRecovery, Err: fmt.Errorf("recovery: qemu-io: %w", ctx.Err())}, nil
}

// TestStopIsNoFinding: a verdict whose error is the campaign's own stop
// (a judge's process killed with the context) is not a failure: the
// workload is abandoned, the report interrupted, nothing found. A real
// finding made while the campaign stops is kept
// (TestFailureFoundAsTheCampaignStops).
func TestStopIsNoFinding(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rep, err := Run(ctx, Config{Target: qedtarget.Target{}, Judges: []Judge{killedJudge{cancel}}, Seed: 1, Iterations: 4, Gen: quickGen(),
		Models: quickModels[:1], Bound: 8, Samples: 2, Workers: 1})
	require.NoError(t, err)
	require.True(t, rep.Interrupted)
	require.Empty(t, rep.Failures, "the stop is not a finding")
	require.Zero(t, rep.FailedWorkloads)
}

// minimizeWaitDriver holds the workload runs after the first (the
// minimizer's) until released.
type minimizeWaitDriver struct {
	Driver
	runs    *atomic.Int64
	release <-chan struct{}
}

func (d minimizeWaitDriver) Record(ctx context.Context, w *workload.Workload, o RecordOptions) (*Recording, error) {
	if d.runs.Add(1) > 1 {
		select {
		case <-d.release:
		case <-time.After(time.Minute):
			return nil, errors.New("minimizeWaitDriver: no progress call saw the minimization in a minute")
		}
	}
	return d.Driver.Record(ctx, w, o)
}

// TestProgressCountsMinimizing: while a failure is minimized the progress
// counts it (Stats.Minimizing 1, MinimizingFor positive), and once it is
// done the last progress call counts none: a minimization is counted
// once and forgotten when it ends.
func TestProgressCountsMinimizing(t *testing.T) {
	w, err := workload.Parse(strings.NewReader("qedtorture-workload v1\nimage cluster_size=4096 table_size=1 size=65536\nwrite 0 4096 id=1\nread 0 4096\nwrite 4096 4096 id=2\nread 4096 4096\n"))
	require.NoError(t, err)
	release := make(chan struct{})
	var once sync.Once
	var mu sync.Mutex
	var seen []Stats
	rep, err := Run(context.Background(), Config{Driver: minimizeWaitDriver{InProcess(flipAllTarget{}), new(atomic.Int64), release},
		TargetName: "test:flip-all", Seed: 1, Iterations: 1, Workload: w, Models: quickModels[:1], Bound: 8, Samples: 2, Workers: 1,
		ProgressEvery: time.Millisecond, Progress: func(st Stats) {
			mu.Lock()
			seen = append(seen, st)
			mu.Unlock()
			if st.Minimizing > 0 {
				once.Do(func() { close(release) })
			}
		}})
	require.NoError(t, err)
	require.Len(t, rep.Failures, 1)
	mu.Lock()
	defer mu.Unlock()
	during := slices.IndexFunc(seen, func(st Stats) bool { return st.Minimizing > 0 })
	require.GreaterOrEqual(t, during, 0, "no progress call saw the minimization")
	require.Equal(t, 1, seen[during].Minimizing)
	require.Positive(t, seen[during].MinimizingFor)
	last := seen[len(seen)-1]
	require.Zero(t, last.Minimizing, "the last progress call, after the minimization ended")
	require.Zero(t, last.MinimizingFor)
}

// closeErrDriver is impl/qed's in-process driver (every optional
// interface kept) named name, whose Close fails with err.
type closeErrDriver struct {
	inProcess
	name string
	err  error
}

func (d closeErrDriver) Name() string { return d.name }

func (d closeErrDriver) Close() error { return d.err }

// TestRunCloseErrors: a campaign whose driver or differential driver
// fails to close returns that error with its report; when both fail,
// the driver's (the first) is returned. The error names the driver
// that failed.
func TestRunCloseErrors(t *testing.T) {
	errMain, errDiff := errors.New("main close"), errors.New("diff close")
	for _, c := range []struct {
		name       string
		main, diff error
		want       error
		named      string
	}{
		{"diff", nil, errDiff, errDiff, "other"},
		{"driver", errMain, nil, errMain, "one"},
		{"both", errMain, errDiff, errMain, "one"},
		{"neither", nil, nil, nil, ""},
	} {
		rep, err := Run(context.Background(), Config{Driver: closeErrDriver{inProcess{qedtarget.Target{}}, "one", c.main}, TargetName: "impl/qed",
			Diff: closeErrDriver{inProcess{qedtarget.Target{}}, "other", c.diff}, Seed: 1, Iterations: 1, Gen: quickGen(), Models: quickModels[:1],
			Bound: 8, Samples: 2, Workers: 1})
		require.NotNil(t, rep, c.name)
		require.EqualValues(t, 1, rep.Workloads, "%s: %+v %v", c.name, rep.Failures, rep.SkipReasons)
		if c.want == nil {
			require.NoError(t, err, c.name)
			continue
		}
		require.ErrorIs(t, err, c.want, c.name)
		require.ErrorContains(t, err, "campaign: closing the "+c.named+" driver: ", c.name)
	}
}

// TestRateSamplerThinsAtTheLimit: the sampler thins its samples as the
// MaxRateSamples-th is taken (the first, at 0, counts), doubling its
// interval, so that a report's samples, its own counters added, are at
// most MaxRateSamples.
func TestRateSamplerThinsAtTheLimit(t *testing.T) {
	r := &rateSampler{every: time.Millisecond}
	var calls atomic.Int64
	hold, done := make(chan struct{}), make(chan struct{})
	entered := make(chan struct{})
	var ran sync.WaitGroup
	ran.Go(func() {
		r.run(done, func() Stats {
			n := calls.Add(1)
			if n == MaxRateSamples {
				// MaxRateSamples-1 samples taken after the first: the
				// sampler waits here, its last sample handled.
				close(entered)
				<-hold
			}
			return Stats{Elapsed: time.Duration(n) * time.Millisecond, States: n}
		})
	})
	<-entered
	r.mu.Lock()
	taken, every := len(r.taken), r.every
	r.mu.Unlock()
	close(done)
	close(hold)
	ran.Wait()
	require.Less(t, taken, MaxRateSamples, "samples kept once MaxRateSamples were taken")
	require.Equal(t, MaxRateSamples/2, taken, "the first and every other one")
	require.Equal(t, 2*time.Millisecond, every)
	require.LessOrEqual(t, len(r.samples(Stats{Elapsed: time.Hour})), MaxRateSamples)
}
