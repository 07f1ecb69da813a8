package campaign

import (
	"context"
	"errors"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/qedtorture/qedtorture/crashsim"
	"github.com/qedtorture/qedtorture/impl/qed/qedtarget"
	"github.com/qedtorture/qedtorture/props/workload"
	"github.com/spf13/afero"
	"github.com/stretchr/testify/require"
)

// requireSameFiles asserts that directory local holds exactly the regular
// files of directory dir of fs, byte for byte.
func requireSameFiles(t *testing.T, fs afero.Fs, dir, local string) {
	t.Helper()
	infos, err := afero.ReadDir(fs, dir)
	require.NoError(t, err)
	want := map[string][]byte{}
	for _, fi := range infos {
		if fi.IsDir() {
			continue
		}
		b, err := afero.ReadFile(fs, path.Join(dir, fi.Name()))
		require.NoError(t, err)
		want[fi.Name()] = b
	}
	require.NotEmpty(t, want, "%s holds no file", dir)
	ents, err := os.ReadDir(local)
	require.NoError(t, err)
	got := map[string][]byte{}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(local, e.Name()))
		require.NoError(t, err)
		got[e.Name()] = b
	}
	require.Equal(t, want, got, "%s against %s", local, dir)
}

// TestArtifactFiles: a crash state's artifact holds, in image/, the files
// of the crash state its trace rebuilds; an in-process recording at the
// default place leaves meta.json's dir and image empty; repro.sh alone is
// executable; artifacts of the same name are numbered -2, -3, ...
func TestArtifactFiles(t *testing.T) {
	seed := testSeed(t)
	tgt := TargetOrDie(t, "broken:noflush")
	rep, err := Run(context.Background(), Config{Seed: seed, Iterations: 30, Gen: quickGen(), Models: quickModels[:2],
		Bound: 8, Samples: 2, Target: tgt, Out: t.TempDir(), MinimizeCandidates: 20})
	require.NoError(t, err)
	require.NotEmpty(t, rep.Failures)
	fr := rep.Failures[0]
	require.NotEmpty(t, fr.State)
	a, err := LoadArtifact(fr.Artifact)
	require.NoError(t, err)
	require.Empty(t, a.Meta.Dir)
	require.Empty(t, a.Meta.Image)
	require.False(t, a.Meta.StrictDirSync, "an in-process recording replays with implicit directory syncs")
	require.Equal(t, ImagePath, a.Image)
	require.Equal(t, fr.CrashPoint, a.Meta.CrashPoint)
	id, err := crashsim.ParseStateID(fr.State)
	require.NoError(t, err)
	p, err := a.Run.Point(id.K)
	require.NoError(t, err)
	st, err := p.State(id)
	require.NoError(t, err)
	requireSameFiles(t, st, Dir, filepath.Join(fr.Artifact, imageDir))

	ents, err := os.ReadDir(fr.Artifact)
	require.NoError(t, err)
	for _, e := range ents {
		if e.IsDir() {
			continue
		}
		fi, err := e.Info()
		require.NoError(t, err)
		exec := fi.Mode().Perm()&0o111 != 0
		require.Equal(t, e.Name() == reproFile, exec, "%s: mode %v", e.Name(), fi.Mode())
	}

	res, err := Replay(fr.Artifact, ReplayOptions{Resolve: InProcessResolver(targetByName)})
	require.NoError(t, err)
	require.True(t, res.Fails())
	res.Failure.Index = fr.Workload
	out := filepath.Dir(fr.Artifact)
	for _, suffix := range []string{"-2", "-3"} {
		again, err := WriteArtifact(out, res.Failure, ArtifactMeta{CampaignSeed: rep.Seed, Target: tgt.Name()})
		require.NoError(t, err)
		require.Equal(t, fr.Artifact+suffix, again)
	}
}

// TestCrashFreeArtifactFiles: the artifact of a failure without a crash
// holds, in image/, the files at the end of its run.
func TestCrashFreeArtifactFiles(t *testing.T) {
	seed := testSeed(t)
	rep, err := Run(context.Background(), Config{Seed: seed, Iterations: 20, Gen: quickGen(), Models: quickModels[:2],
		Bound: 8, Samples: 2, Target: flipAllTarget{}, Out: t.TempDir(), MinimizeCandidates: 20})
	require.NoError(t, err)
	require.NotEmpty(t, rep.Failures)
	fr := rep.Failures[0]
	require.Equal(t, string(StageWorkload), fr.Stage, "every read of the target is wrong")
	a, err := LoadArtifact(fr.Artifact)
	require.NoError(t, err)
	end, err := a.Run.Start.Replay(a.Run.Trace, int64(len(a.Run.Trace.Ops)), a.Run.Options)
	require.NoError(t, err)
	requireSameFiles(t, end, Dir, filepath.Join(fr.Artifact, imageDir))
}

// TestNestedArtifactFiles: a crash during recovery's artifact holds, in
// nested/D/, the recorded recovery and the crash state of depth D in it,
// as LoadArtifact rebuilds them, besides image/, the first crash state.
func TestNestedArtifactFiles(t *testing.T) {
	art := nestedArtifact(t, InProcess(TargetOrDie(t, "broken:noflush")))
	a, err := LoadArtifact(art)
	require.NoError(t, err)
	require.NotEmpty(t, a.Nested)
	require.Len(t, a.Nested, len(a.Meta.Chain))
	id, err := crashsim.ParseStateID(a.Meta.State)
	require.NoError(t, err)
	p, err := a.Run.Point(id.K)
	require.NoError(t, err)
	st, err := p.State(id)
	require.NoError(t, err)
	requireSameFiles(t, st, Dir, filepath.Join(art, imageDir))
	for i, n := range a.Nested {
		d := filepath.Join(art, "nested", strconv.Itoa(i+2))
		require.Equal(t, a.Meta.Chain[i], n.State.String())
		require.FileExists(t, filepath.Join(d, traceTextFile))
		p, err := n.Run.Point(n.State.K)
		require.NoError(t, err)
		st, err := p.State(n.State)
		require.NoError(t, err)
		requireSameFiles(t, st, Dir, filepath.Join(d, imageDir))
	}
}

// atRoot is outOfProcess with the files in / instead of Dir (QEMU's
// recordings: their trace's paths are the scratch tree's).
type atRoot struct{ outOfProcess }

func (d atRoot) Name() string { return "root:" + d.t.Name() }

func (d atRoot) Record(ctx context.Context, w *workload.Workload, o RecordOptions) (*Recording, error) {
	rec, err := d.outOfProcess.Record(ctx, w, o)
	if err != nil {
		return nil, err
	}
	files := map[string][]byte{}
	fs, err := rec.Base.Replay(&crashsim.Trace{}, 0, rec.Options)
	if err != nil {
		return nil, err
	}
	infos, err := afero.ReadDir(fs, rec.Dir)
	if err != nil {
		return nil, err
	}
	for _, fi := range infos {
		b, err := afero.ReadFile(fs, path.Join(rec.Dir, fi.Name()))
		if err != nil {
			return nil, err
		}
		files["/"+fi.Name()] = b
	}
	if rec.Base, err = crashsim.NewImage(files); err != nil {
		return nil, err
	}
	for i := range rec.Trace.Ops {
		if p := rec.Trace.Ops[i].Path; p != "" {
			rec.Trace.Ops[i].Path = "/" + path.Base(p)
		}
	}
	rec.Dir, rec.Image = "/", "/"+path.Base(rec.Image)
	return rec, nil
}

// TestOutOfProcessArtifactElsewhere: a driver whose files are not in Dir
// (QEMU's, in /) gets an artifact that says where they are (meta.json's
// dir and image), image/ and base/ from there, and replays from base/
// and trace.bin without the driver (the reference judging), failing the
// same way.
func TestOutOfProcessArtifactElsewhere(t *testing.T) {
	seed := testSeed(t)
	d := atRoot{outOfProcess{TargetOrDie(t, "broken:noflush")}}
	rep, err := Run(context.Background(), Config{Seed: seed, Iterations: 30, Gen: quickGen(), Models: quickModels[:2], Bound: 8, Samples: 2,
		Driver: d, Reference: qedtarget.Target{}, Out: t.TempDir(), MinimizeCandidates: 20})
	require.NoError(t, err)
	require.NotEmpty(t, rep.Failures)
	fr := rep.Failures[0]
	require.NotEmpty(t, fr.State)
	a, err := LoadArtifact(fr.Artifact)
	require.NoError(t, err)
	require.Equal(t, "/", a.Meta.Dir)
	require.Equal(t, "/image.qed", a.Meta.Image)
	require.Equal(t, "/image.qed", a.Image)
	require.FileExists(t, filepath.Join(fr.Artifact, baseDir, "image.qed"))
	id, err := crashsim.ParseStateID(fr.State)
	require.NoError(t, err)
	p, err := a.Run.Point(id.K)
	require.NoError(t, err)
	st, err := p.State(id)
	require.NoError(t, err)
	requireSameFiles(t, st, "/", filepath.Join(fr.Artifact, imageDir))

	none := func(string) (Driver, error) { return nil, errors.New("not installed") }
	res, err := Replay(fr.Artifact, ReplayOptions{Resolve: none, Reference: qedtarget.Target{}})
	require.NoError(t, err)
	require.True(t, res.Fails(), "%v", res.Notes)
	require.Equal(t, fr.Stage, string(res.Failure.Stage))
	require.Equal(t, "/image.qed", res.Failure.Rec.Image)
}

// TestRecordingDir: a recording's files are in its Dir, Dir when it names
// none (and for no recording).
func TestRecordingDir(t *testing.T) {
	require.Equal(t, Dir, (*Recording)(nil).dir())
	require.Equal(t, Dir, (&Recording{}).dir())
	require.Equal(t, "/", (&Recording{Dir: "/"}).dir())
}
