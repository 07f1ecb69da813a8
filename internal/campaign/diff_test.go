package campaign

import (
	"context"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qedtorture/qedtorture/impl/qed/qedtarget"
	"github.com/qedtorture/qedtorture/props/target"
	"github.com/qedtorture/qedtorture/props/workload"
	"github.com/spf13/afero"
	"github.com/stretchr/testify/require"
)

// staleReadTarget is impl/qed with a seeded crash-free difference: a
// read-only open returns the first byte of every read flipped (the runs'
// own reads, on writable opens, are right).
type staleReadTarget struct{ qedtarget.Target }

func (staleReadTarget) Name() string { return "test:stale-read" }

func (t staleReadTarget) Open(fs afero.Fs, p string, o target.OpenOptions) (target.Disk, error) {
	d, err := t.Target.Open(fs, p, o)
	if err != nil || !o.ReadOnly {
		return d, err
	}
	return staleDisk{d}, nil
}

type staleDisk struct{ target.Disk }

func (d staleDisk) ReadAt(p []byte, off int64) (int, error) {
	n, err := d.Disk.ReadAt(p, off)
	if n > 0 {
		p[0] ^= 0xff
	}
	return n, err
}

// diffResolver resolves the tests' targets and the stale-read one.
func diffResolver(name string) (Driver, error) {
	if name == (staleReadTarget{}).Name() {
		return InProcess(staleReadTarget{}), nil
	}
	t, err := targetByName(name)
	if err != nil {
		return nil, err
	}
	return InProcess(t), nil
}

// TestDiffFindsSeededDifference: impl/qed against a target with a seeded
// crash-free difference: the differential run catches it (stage diff,
// the other side deviating on the guest data), minimizes it, writes the
// one artifact layout (meta.json naming the other side, repro.sh), and
// replay reproduces it; the report counts the diff runs. Without
// reopen-ro ops: their read-only reads would catch the stale reads during
// the run already (diff/run/other), before the read-back this test is
// about.
func TestDiffFindsSeededDifference(t *testing.T) {
	seed := testSeed(t)
	out := t.TempDir()
	g := quickGen()
	g.Weights = maps.Clone(g.Weights)
	g.Weights[workload.ReopenRO] = 0
	rep, err := Run(context.Background(), Config{Target: qedtarget.Target{}, Diff: InProcess(staleReadTarget{}), Seed: seed,
		Iterations: 4, Workers: 2, Gen: g, Models: quickModels, Bound: 16, Samples: 4, Out: out})
	require.NoError(t, err)
	require.Len(t, rep.Failures, 1, "%+v", rep.Failures)
	fr := rep.Failures[0]
	require.Equal(t, "diff/data/other", fr.Signature)
	require.Equal(t, string(StageDiff), fr.Stage)
	require.Equal(t, "test:stale-read", rep.Diff)
	require.Positive(t, rep.DiffRuns)
	require.LessOrEqual(t, fr.Ops, fr.OriginalOps)
	require.Contains(t, fr.Message, "deviates: test:stale-read")

	meta, err := ReadArtifactMeta(fr.Artifact)
	require.NoError(t, err)
	require.Equal(t, "test:stale-read", meta.Diff)
	require.Equal(t, "diff/data/other", meta.Signature)
	for _, n := range []string{"workload.txt", "verdict.txt", "explain.txt", "repro.sh", "crash.txt"} {
		require.FileExists(t, filepath.Join(fr.Artifact, n))
	}
	verdict, err := os.ReadFile(filepath.Join(fr.Artifact, "verdict.txt"))
	require.NoError(t, err)
	require.Contains(t, string(verdict), "guest data")

	res, err := Replay(fr.Artifact, ReplayOptions{Resolve: diffResolver, Reference: qedtarget.Target{}})
	require.NoError(t, err)
	require.True(t, res.Fails(), "replay reproduces the difference")
	require.Equal(t, "diff/data/other", res.Failure.Signature(meta.Target))
}

// TestDiffCleanPairs: impl/qed against itself and against broken:nosync
// (which differs only across crashes) shows no difference, and every
// workload gets its diff run.
func TestDiffCleanPairs(t *testing.T) {
	seed := testSeed(t)
	for _, other := range []string{"impl/qed", "broken:nosync"} {
		d, err := diffResolver(other)
		require.NoError(t, err)
		g := quickGen()
		g.BackingChance = 0.5
		rep, err := Run(context.Background(), Config{Target: qedtarget.Target{}, Diff: d, Seed: seed,
			Iterations: 6, Workers: 2, Gen: g, Models: quickModels, Bound: 8, Samples: 2})
		require.NoError(t, err)
		require.Empty(t, rep.Failures, "against %s", other)
		require.EqualValues(t, 6, rep.DiffRuns, "against %s", other)
		require.EqualValues(t, 6, rep.Workloads)
	}
}

// TestCompareRules: which side each kind of difference blames, and which
// differences the format allows.
func TestCompareRules(t *testing.T) {
	w := generate(1, quickGen())
	ok := func() *Outcome { return &Outcome{Data: []byte{1, 2, 3}} }
	require.Empty(t, Compare(w, ok(), ok()))

	b := ok()
	b.Check.Leaks = 2
	ds := Compare(w, ok(), b)
	require.Len(t, ds, 1)
	require.True(t, ds[0].Allowed(), "leaks may differ")

	b = ok()
	b.RunErr = os.ErrInvalid
	ds = Compare(w, ok(), b)
	require.Equal(t, "run", ds[0].Key)
	require.Equal(t, SideOther, ds[0].Deviates)

	a := ok()
	a.Data[1] = 9
	a.Model = os.ErrInvalid
	ds = Compare(w, a, ok())
	require.Equal(t, "data", ds[0].Key)
	require.Equal(t, SideTarget, ds[0].Deviates)
	require.True(t, strings.Contains(ds[0].Text("impl/qed", "qemu"), "deviates: impl/qed"))

	a = ok()
	a.Check.Corruptions = 1
	ds = Compare(w, a, ok())
	require.Equal(t, "check", ds[0].Key)
	require.Equal(t, SideTarget, ds[0].Deviates)
}
