package campaign

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/qedtorture/qedtorture/crashsim"
	"github.com/qedtorture/qedtorture/impl/qed/qedtarget"
	"github.com/qedtorture/qedtorture/props/target"
	"github.com/qedtorture/qedtorture/props/workload"
	"github.com/spf13/afero"
	"github.com/stretchr/testify/require"
)

// outOfProcess hands over an in-process recording the way a driver
// recording out of process does (QEMU): the files after the setup as
// Base, the trace from there with paths to resolve (File 0), no live
// points, no recoverer of its own (the reference recovers).
type outOfProcess struct{ t target.Target }

func (d outOfProcess) Name() string { return "oop:" + d.t.Name() }
func (outOfProcess) Adapt(w *workload.Workload) (*workload.Workload, []Adaptation) {
	return w, []Adaptation{{Kind: "nothing", What: "counted once per workload"}}
}
func (outOfProcess) Recoverer() target.Target { return nil }
func (outOfProcess) Judges() []Judge          { return nil }
func (outOfProcess) Close() error             { return nil }

func (d outOfProcess) Record(ctx context.Context, w *workload.Workload, o RecordOptions) (*Recording, error) {
	rec, err := Record(d.t, w, o.Seed, o.Faults)
	if err != nil {
		return nil, err
	}
	fs, err := crashsim.EmptyImage().Replay(rec.Trace, rec.SetupEnd, rec.Options)
	if err != nil {
		return nil, err
	}
	files := map[string][]byte{}
	infos, err := afero.ReadDir(fs, rec.Dir)
	if err != nil {
		return nil, err
	}
	for _, fi := range infos {
		b, err := afero.ReadFile(fs, filepath.Join(rec.Dir, fi.Name()))
		if err != nil {
			return nil, err
		}
		files[filepath.Join(rec.Dir, fi.Name())] = b
	}
	if rec.Base, err = crashsim.NewImage(files); err != nil {
		return nil, err
	}
	tr := &crashsim.Trace{}
	for _, op := range rec.Trace.Ops[rec.SetupEnd:] {
		op.Index -= rec.SetupEnd
		op.File = 0
		tr.Ops = append(tr.Ops, op)
	}
	for i := range rec.Marks {
		rec.Marks[i].K -= rec.SetupEnd
	}
	rec.Trace, rec.SetupEnd, rec.Syncs, rec.End = tr, 0, nil, nil
	rec.Evidence = map[string][]byte{"note.txt": []byte("evidence\n")}
	return rec, nil
}

// TestOutOfProcessArtifact: a driver recording out of process gets the
// one layout (base/, target/, trace.txt), reports count its adaptations
// and the reference's judging, and its artifact replays from base/ and
// trace.bin both with the driver and without it (the reference judged
// it), failing the same way.
func TestOutOfProcessArtifact(t *testing.T) {
	seed := testSeed(t)
	tgt, _ := targetByName("broken:noflush")
	d := outOfProcess{tgt}
	rep, err := Run(context.Background(), Config{Seed: seed, Iterations: 30, Gen: quickGen(), Models: quickModels[:2], Bound: 8, Samples: 2,
		Driver: d, Reference: qedtarget.Target{}, Out: t.TempDir(), MinimizeCandidates: 20})
	require.NoError(t, err)
	require.NotEmpty(t, rep.Failures)
	require.Equal(t, rep.Workloads+rep.FailedWorkloads, rep.Adaptations["nothing"])
	require.Positive(t, rep.Judged["impl/qed"])
	fr := rep.Failures[0]
	require.Equal(t, "impl/qed", fr.Judge)
	for _, f := range []string{"base/image.qed", "target/note.txt", "trace.txt", "trace.bin", "repro.sh"} {
		require.FileExists(t, filepath.Join(fr.Artifact, f))
	}
	resolve := func(name string) (Driver, error) {
		if name == d.Name() {
			return d, nil
		}
		return nil, errors.New("unknown")
	}
	res, err := Replay(fr.Artifact, ReplayOptions{Resolve: resolve, Reference: qedtarget.Target{}})
	require.NoError(t, err)
	require.True(t, res.Fails(), "%v", res.Notes)
	require.Equal(t, fr.Stage, string(res.Failure.Stage))

	// Without the driver: the recorded state, judged by the reference.
	none := func(string) (Driver, error) { return nil, errors.New("not installed") }
	res, err = Replay(fr.Artifact, ReplayOptions{Resolve: none, Reference: qedtarget.Target{}})
	require.NoError(t, err)
	require.True(t, res.Fails(), "%v", res.Notes)
	require.Equal(t, fr.Stage, string(res.Failure.Stage))
	require.Contains(t, res.Notes[0], "not available")

	// A damaged base/ is noticed, not judged silently as something else.
	require.NoError(t, os.Remove(filepath.Join(fr.Artifact, "base", "image.qed")))
	_, err = Replay(fr.Artifact, ReplayOptions{Resolve: none, Reference: qedtarget.Target{}})
	require.Error(t, err)
}
