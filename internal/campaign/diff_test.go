package campaign

import (
	"context"
	"errors"
	"fmt"
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

	// Replayed against the other side fixed (impl/qed under the recorded
	// name), the difference is gone; each side's files are read back by its
	// own driver's recoverer, never by the reference (here one that opens
	// nothing), which only serves drivers without one.
	fixed := func(name string) (Driver, error) { return InProcess(qedtarget.Target{}), nil }
	res, err = Replay(fr.Artifact, ReplayOptions{Resolve: fixed, Reference: refusingTarget{}})
	require.NoError(t, err)
	require.False(t, res.Fails(), "a fixed other side still differs: %v", res.Failure)

	// An other side that records but does not run in process (as QEMU) and
	// has no recoverer of its own: the reference reads its files back.
	oop := func(name string) (Driver, error) {
		if name == meta.Diff {
			return outOfProcess{qedtarget.Target{}}, nil
		}
		return InProcess(qedtarget.Target{}), nil
	}
	res, err = Replay(fr.Artifact, ReplayOptions{Resolve: oop, Reference: qedtarget.Target{}})
	require.NoError(t, err)
	require.False(t, res.Fails(), "impl/qed recorded out of process differs from itself: %v", res.Failure)
}

// refusingTarget opens no image.
type refusingTarget struct{ qedtarget.Target }

func (refusingTarget) Name() string { return "test:refusing" }

func (refusingTarget) Open(afero.Fs, string, target.OpenOptions) (target.Disk, error) {
	return nil, errors.New("test:refusing opens nothing")
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

// badCloseTarget is impl/qed whose writable disks report an error when
// closed (after closing).
type badCloseTarget struct{ qedtarget.Target }

func (t badCloseTarget) Open(fs afero.Fs, p string, o target.OpenOptions) (target.Disk, error) {
	d, err := t.Target.Open(fs, p, o)
	if err != nil || o.ReadOnly {
		return d, err
	}
	return badCloseDisk{d}, nil
}

type badCloseDisk struct{ target.Disk }

func (d badCloseDisk) Close() error {
	if err := d.Disk.Close(); err != nil {
		return err
	}
	return os.ErrInvalid
}

// TestRunTargetCloseError: a differential run's failing clean close is
// the run's error (when nothing failed before it).
func TestRunTargetCloseError(t *testing.T) {
	w, err := workload.Parse(strings.NewReader("qedtorture-workload v1\nimage cluster_size=4096 table_size=16 size=8192\nwrite 0x200 0x400 id=1\nread 0 0x2000\n"))
	require.NoError(t, err)
	out, err := RunTarget(badCloseTarget{}, afero.NewMemMapFs(), Dir, w, nil)
	require.NoError(t, err)
	require.ErrorIs(t, out.RunErr, os.ErrInvalid)
	require.EqualError(t, out.RunErr, "close: invalid argument")
	require.Nil(t, out.Data, "nothing read back after a failed close")
	out, err = RunTarget(qedtarget.Target{}, afero.NewMemMapFs(), Dir, w, nil)
	require.NoError(t, err)
	require.NoError(t, out.RunErr)
	require.NoError(t, out.Model)
	require.NotEmpty(t, out.Data)
}

// TestCompareConcurrentData: guest data that differs while both sides'
// data agree with their own models is allowed only when the workload has
// concurrent groups (each model adopted what its groups left); a side
// whose data disagrees with its model deviates either way.
func TestCompareConcurrentData(t *testing.T) {
	seq, err := workload.Parse(strings.NewReader("qedtorture-workload v1\nimage cluster_size=4096 table_size=16 size=8192\nwrite 0 0x200 id=1\n"))
	require.NoError(t, err)
	cg := quickGen()
	cg.Weights = maps.Clone(cg.Weights)
	cg.Weights[workload.Concurrent] = 1000
	conc := generate(1, cg)
	for s := uint64(2); !hasConcurrent(conc) && s < 100; s++ {
		conc = generate(s, cg)
	}
	require.True(t, hasConcurrent(conc))
	a, b := &Outcome{Data: []byte{1, 2}}, &Outcome{Data: []byte{1, 3}}
	require.Equal(t, SideUnsure, Compare(seq, a, b)[0].Deviates)
	require.Equal(t, "02 at 0x1 (model: ok)", Compare(seq, a, b)[0].Target, "from the first differing byte")
	require.Equal(t, "03 (model: ok)", Compare(seq, a, b)[0].Other)
	require.True(t, Compare(conc, a, b)[0].Allowed())
	a.Model = os.ErrInvalid
	require.Equal(t, SideTarget, Compare(conc, a, b)[0].Deviates)
	require.Equal(t, SideTarget, Compare(seq, a, b)[0].Deviates)
}

// TestCompareCheckCounts: corruptions and check errors both count as a
// cleanly closed image that is not consistent, on either side.
func TestCompareCheckCounts(t *testing.T) {
	w := generate(1, quickGen())
	for _, c := range []target.CheckResult{{Corruptions: 1, CheckErrors: 1}, {CheckErrors: 1}, {Corruptions: 2}} {
		a, b := &Outcome{Data: []byte{1}, Check: c}, &Outcome{Data: []byte{1}}
		ds := Compare(w, a, b)
		require.Len(t, ds, 1, "%+v", c)
		require.Equal(t, "check", ds[0].Key)
		require.Equal(t, SideTarget, ds[0].Deviates)
		require.Equal(t, fmt.Sprintf("%d/%d", c.Corruptions, c.CheckErrors), ds[0].Target)
		ds = Compare(w, b, a)
		require.Len(t, ds, 1, "%+v", c)
		require.Equal(t, SideOther, ds[0].Deviates)
		require.Equal(t, "0/0", ds[0].Target)
	}
}

// TestDiffFailure: a differential run with a failing difference is a
// failure of stage diff, of no known workload index (its caller numbers
// it) and no guest op; one with only allowed differences is none.
func TestDiffFailure(t *testing.T) {
	w := generate(1, quickGen())
	r := &DiffResult{Other: "o", W: w, Differences: []Difference{{Key: "leaks"}}}
	require.Nil(t, diffFailure(r, 5))
	r.Differences = append(r.Differences, Difference{Key: "data", Deviates: SideOther})
	f := diffFailure(r, 5)
	require.Equal(t, &Failure{Index: -1, WorkloadSeed: 5, W: w, Stage: StageDiff, GuestOp: -1, Diff: r}, f)
	require.Equal(t, "diff/data/other", diffSignature(r))
}
