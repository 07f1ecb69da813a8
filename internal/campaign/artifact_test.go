package campaign

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/qedtorture/qedtorture/crashsim"
	"github.com/qedtorture/qedtorture/impl/qed"
	"github.com/qedtorture/qedtorture/impl/qed/qedtarget"
	"github.com/qedtorture/qedtorture/model"
	"github.com/qedtorture/qedtorture/props/check"
	"github.com/qedtorture/qedtorture/props/oracle"
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
	ct := readArtifactFile(t, fr.Artifact, "crash.txt")
	require.Contains(t, ct, fmt.Sprintf("state: %s\ncrash point: k=%d (power loss just before filesystem operation %d)\nmodel: %s\nguest op in progress: %s\n",
		id, id.K, id.K, id.Model, guestOpText(a.W, a.Meta.GuestOp)))
	require.Contains(t, ct, unsyncedText("unsynced operations at the crash point", "  ", p.Unsynced()))

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
	// Reads drawn first: the crash-free run fails before any crash state.
	g := readsFirst()
	rep, err := Run(context.Background(), Config{Seed: seed, Iterations: 20, Gen: g, Models: quickModels[:2],
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
	require.Equal(t, fmt.Sprintf("stage: workload\nno crash: the failure happened in the crash-free run, at guest op %d (%s)\n", a.Meta.GuestOp, a.W.Ops[a.Meta.GuestOp]),
		readArtifactFile(t, fr.Artifact, "crash.txt"))
}

// readsFirst is quickGen drawing mostly reads: flipAllTarget's crash-free
// runs fail at their first op.
func readsFirst() workload.GenConfig {
	g := quickGen()
	g.Weights = maps.Clone(g.Weights)
	g.Weights[workload.Read] = 1000
	return g
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
		ct := readArtifactFile(t, art, "crash.txt")
		require.Contains(t, ct, fmt.Sprintf("then a crash during the recovery (depth %d): state %s of nested/%d/trace.bin, during ", i+2, n.State, i+2))
		require.Contains(t, ct, unsyncedText("  unsynced operations of the recovery at its crash point", "    ", p.Unsynced()))
	}
}

// readArtifactFile returns the text of an artifact's file.
func readArtifactFile(t *testing.T, dir, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	require.NoError(t, err)
	return string(b)
}

// unsyncedText is crash.txt's list of unsynced operations: the title
// with their count, then one a line.
func unsyncedText(title, indent string, un []crashsim.Op) string {
	s := fmt.Sprintf("%s (%d):\n", title, len(un))
	for _, o := range un {
		s += indent + o.String() + "\n"
	}
	return s
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
	require.Contains(t, readArtifactFile(t, fr.Artifact, "explain.txt"), "(re-running the workload needs "+d.Name()+"; without it the recorded crash state is judged from base/ and trace.bin).")
}

// TestRecordingDir: a recording's files are in its Dir, Dir when it names
// none (and for no recording).
func TestRecordingDir(t *testing.T) {
	require.Equal(t, Dir, (*Recording)(nil).dir())
	require.Equal(t, Dir, (&Recording{}).dir())
	require.Equal(t, "/", (&Recording{Dir: "/"}).dir())
}

// TestSideBySide: expected-vs-read.txt's hexdump: the first differing
// offset with its sector, each candidate 16 bytes a row beside the bytes
// read (as far as both go: 16 bytes are one row), the differing bytes marked, the allowed bytes
// read before the first bad one counted; "current" for a crash-free read.
func TestSideBySide(t *testing.T) {
	got, want := make([]byte, 18), make([]byte, 18)
	for i := range got {
		got[i], want[i] = byte(i), byte(i)
	}
	want[0], want[1], want[17] = 0xaa, 0xbb, 0xcc
	mm := &model.Mismatch{Crash: true, ReadOff: 0x1200, ReadLen: 0x400, Off: 0x1210, Len: 0x12, Bad: 3, Got: got,
		Candidates: []model.Candidate{{Source: model.Source{Kind: model.KindPattern, ID: 7, Op: 2, Off: 0x1000, Len: 0x1000}, Durable: true, Want: want},
			{Source: model.Source{Kind: model.KindNone}, Want: got[:16]}}}
	require.Equal(t, `first differing guest offset: 0x1210 (sector 9, byte 16 in it); bad run 0x12 bytes from there; 0x3 bad bytes in the read [0x1200,+0x400)
(the 0x10 bytes read before it, from 0x1200, were allowed)

expected: durable write id 7 (op 2) [0x1000,+0x1000)   |   read   (^^ differs)
  00001210  aa bb 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f | 00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f
                                                            | ^^ ^^
  00001220  10 cc                                           | 10 11
                                                            |    ^^

expected: pending unwritten (zeros)   |   read   (^^ differs)
  00001210  00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f | 00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f`, trimLines(sideBySide(mm)))
	mm.Crash, mm.Off = false, mm.ReadOff
	mm.Candidates = mm.Candidates[1:]
	require.Equal(t, `first differing guest offset: 0x1200 (sector 9, byte 0 in it); bad run 0x12 bytes from there; 0x3 bad bytes in the read [0x1200,+0x400)

expected: current unwritten (zeros)   |   read   (^^ differs)
  00001200  00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f | 00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f`, trimLines(sideBySide(mm)))
}

// trimLines drops the spaces that end s's lines (the hexdump's padding).
func trimLines(s string) string {
	ls := strings.Split(s, "\n")
	for i, l := range ls {
		ls[i] = strings.TrimRight(l, " ")
	}
	return strings.Join(ls, "\n")
}

// TestGuestOpText: the guest op in progress at a crash, in crash.txt and
// explain.txt.
func TestGuestOpText(t *testing.T) {
	w := generate(1, quickGen())
	require.Equal(t, "none (right after the setup)", guestOpText(w, -1))
	require.Equal(t, fmt.Sprintf("0 (%s)", w.Ops[0]), guestOpText(w, 0))
	n := len(w.Ops)
	require.Equal(t, fmt.Sprintf("%d (%s)", n-1, w.Ops[n-1]), guestOpText(w, n-1))
	require.Equal(t, fmt.Sprintf("none (the crash follows the last op, %d: %s)", n-1, w.Ops[n-1]), guestOpText(w, n))
	require.Equal(t, "none (the workload has no ops)", guestOpText(&workload.Workload{Geometry: w.Geometry}, 0))
}

// TestRenumber: the model's operation numbers in a verdict become the
// workload line whose mark's model first counts that many operations (the
// setup's below op 0, a backing layer's always the setup's), the last
// line past the marks, the model's number without a model at the end.
func TestRenumber(t *testing.T) {
	d, err := model.New(1<<20, nil)
	require.NoError(t, err)
	var ms []*model.Disk
	for _, n := range []int{1, 1, 2} {
		for range n {
			_, err := d.Write(0, 512)
			require.NoError(t, err)
		}
		ms = append(ms, d.Clone())
	}
	require.Equal(t, []int{1, 2, 4}, []int{ms[0].Ops(), ms[1].Ops(), ms[2].Ops()})
	w := generate(1, quickGen())
	rec := &Recording{W: w, Marks: []Mark{{Op: -1}, {Op: -1, Model: ms[0]}, {Op: 0, Model: ms[1]}, {Op: 1, Model: ms[2]}}, EndModel: d}
	text := "a (op 1) b (op 2) c (op 3) d (op 4) e (op 9) f (op 3 in backing layer 1) g (op x)"
	last := fmt.Sprintf("workload line %d", len(w.Ops)-1)
	require.Equal(t, "a (written by the setup) b (workload line 0) c (workload line 1) d (workload line 1) e ("+last+
		") f (written by the setup in backing layer 1) g (op x)", renumber(text, rec))
	rec.EndModel = nil
	require.Equal(t, "model op 9", lineOfModelOp(rec, 9))
	rec.EndModel, rec.W = d, &workload.Workload{}
	require.Equal(t, "model op 9", lineOfModelOp(rec, 9), "no workload line")
	require.Equal(t, text, renumber(text, nil))
	require.Equal(t, text, renumber(text, &Recording{W: w}))
}

// TestExplain: explain.txt's paragraph: the workload (minimized or not),
// where it ran (crashsim's filesystem, a recorder, two sides of a
// differential run), what happened (a crash state, a crash-free failure,
// a difference), then the hint for the stage, read from the evidence
// where it says more than the stage.
func TestExplain(t *testing.T) {
	w := generate(1, quickGen())
	g := w.Geometry
	shape := fmt.Sprintf("%d-byte clusters, %d-cluster tables, %d-byte image, 0 backing file(s))", g.ClusterSize, g.TableSize, g.Size)
	orig := &workload.Workload{Geometry: g, Ops: append(slices.Clone(w.Ops), w.Ops[0])}
	id := crashsim.StateID{K: 12, Model: crashsim.Model{Base: crashsim.Subset}, Ordinal: 2}
	crash := &Failure{Index: 3, WorkloadSeed: 9, W: w, Original: orig, Stage: oracle.StageData, State: id, GuestOp: 1,
		Verdict: &oracle.Verdict{Stage: oracle.StageData, Err: errors.New("bad data\nsecond line")}, Rec: &Recording{Recorder: "strace"}}
	require.Equal(t, fmt.Sprintf("Workload 3 (seed 9; minimized from %d to %d ops, %s ran on t, recorded by strace."+
		" A power loss just before filesystem operation 12, while guest op %s was in progress, left the files in image/ under the subset crash model (state %s)."+
		" The oracle then failed at stage data: bad data. %s", len(orig.Ops), len(w.Ops), shape, guestOpText(w, 1), id, stageHints[oracle.StageData]), Explain(crash, "t"))

	// Not minimized (the original as long), in process.
	crash.Original, crash.Rec = w, &Recording{}
	require.Contains(t, Explain(crash, "t"), fmt.Sprintf("(seed 9; %d ops, %s ran on t, over crashsim's recording filesystem.", len(w.Ops), shape))
	crash.Original, crash.Rec = nil, nil
	require.Contains(t, Explain(crash, "t"), fmt.Sprintf("(seed 9; %d ops, %s ran on t, over crashsim's recording filesystem.", len(w.Ops), shape))

	free := &Failure{Index: 1, WorkloadSeed: 2, W: w, Stage: StageSetup, GuestOp: -1, Err: errors.New("no room\nat all")}
	require.Equal(t, fmt.Sprintf("Workload 1 (seed 2; %d ops, %s ran on t, over crashsim's recording filesystem. It failed at stage setup: no room. %s",
		len(w.Ops), shape, stageHints[StageSetup]), Explain(free, "t"))

	opErr := &workload.OpError{Index: 0, Op: w.Ops[0], Err: errors.New("read wrong\nmore")}
	run := &Failure{Index: 1, WorkloadSeed: 2, W: w, Stage: StageWorkload, GuestOp: 0, OpErr: opErr}
	require.Contains(t, Explain(run, "t"), " It failed at stage workload: "+firstLine(opErr)+". "+stageHints[StageWorkload])

	diff := &Failure{Index: 0, WorkloadSeed: 2, W: w, Stage: StageDiff, GuestOp: -1, Diff: &DiffResult{Other: "o",
		Differences: []Difference{{Key: "leaks", What: "leaks", Target: "1", Other: "2", Rule: "allowed"},
			{Key: "data", What: "guest data", Target: "a", Other: "b", Rule: "r", Deviates: SideOther}}}}
	require.Equal(t, fmt.Sprintf("Workload 0 (seed 2; %d ops, %s ran on t and on o without crashes. They disagree: guest data: t=a o=b (rule: r; deviates: o). %s",
		len(w.Ops), shape, stageHints[StageDiff]), Explain(diff, "t"))
}

// TestHint: the hint of a raw crashed image that fails its structure
// check says what the checker found: no image at all, no QED header, an
// invalid header, or the kinds of damage it lists; else the stage's.
func TestHint(t *testing.T) {
	mem := afero.NewMemMapFs()
	require.NoError(t, qed.Create(mem, "/i.qed", qed.CreateOptions{Size: 1 << 20}))
	q, err := qed.Open(mem, "/i.qed", qed.OpenOptions{})
	require.NoError(t, err)
	_, err = q.WriteAt(make([]byte, 512), 0)
	require.NoError(t, err)
	require.NoError(t, q.Close())
	img, err := afero.ReadFile(mem, "/i.qed")
	require.NoError(t, err)
	bad, _, err := check.Plant(img, check.CorruptL1Invalid, false, 1)
	require.NoError(t, err)
	badCluster := slices.Clone(img)
	badCluster[4] = 3 // cluster_size 0x1003
	before := func(b []byte) *Failure {
		return &Failure{Stage: oracle.StageStructureBefore, Verdict: &oracle.Verdict{Stage: oracle.StageStructureBefore, Before: check.Structure(b), Err: errors.New("x")}}
	}
	structure := stageHints[oracle.StageStructureBefore]
	for _, c := range []struct {
		name string
		f    *Failure
		want string
	}{
		{"image lost", &Failure{Stage: oracle.StageStructureBefore, Verdict: &oracle.Verdict{Err: fmt.Errorf("open: %w", fs.ErrNotExist)}}, "The crash lost the image itself"},
		{"lost, other stage", &Failure{Stage: oracle.StageRecovery, Verdict: &oracle.Verdict{Err: fs.ErrNotExist}}, stageHints[oracle.StageRecovery]},
		{"another error", &Failure{Stage: oracle.StageStructureBefore, Verdict: &oracle.Verdict{Err: errors.New("x")}}, structure},
		{"short", before(img[:10]), "The raw crashed image is not a QED image at all (short-file)"},
		{"no magic", before(make([]byte, 4096)), "The raw crashed image is not a QED image at all (bad-magic)"},
		{"bad header", before(badCluster), "The raw crashed image's header is invalid (bad-cluster-size)"},
		{"damage", before(bad), structure + " The checker found: " + kindsText(check.Structure(bad)) + " (verdict.txt lists each)."},
		{"clean", before(img), structure},
		{"other stage", &Failure{Stage: oracle.StageData, Verdict: &oracle.Verdict{Before: check.Structure(img[:10])}}, stageHints[oracle.StageData]},
		{"no verdict", &Failure{Stage: StageWorkload}, stageHints[StageWorkload]},
	} {
		require.True(t, strings.HasPrefix(hint(c.f), c.want), "%s: %s", c.name, hint(c.f))
	}
	require.NotEmpty(t, kindsText(check.Structure(bad)))
}

// TestReproScriptHeader: repro.sh names the failure it reproduces, and
// "none (no crash)" for a failure without a crash state.
func TestReproScriptHeader(t *testing.T) {
	m := ArtifactMeta{Signature: "sig/x", Target: "t", CampaignSeed: 1, Workload: 2}
	require.Contains(t, reproScript(m), "# Reproduces this failure: sig/x\n# (target t, campaign seed 1, workload 2, state none (no crash)).\n")
	m.State = "k=5/prefix/0"
	require.Contains(t, reproScript(m), "# (target t, campaign seed 1, workload 2, state k=5/prefix/0).\n")
}

// TestCreationNote: a crash state before the recorded creation's end
// gets the creation judge's rule (over an existing image or not); any
// other, or an artifact without a recorded creation, none.
func TestCreationNote(t *testing.T) {
	m := &ArtifactMeta{Create: true, CreateEnd: 10}
	require.Empty(t, m.CreationNote(10))
	require.Empty(t, m.CreationNote(11))
	n := m.CreationNote(9)
	require.True(t, strings.HasPrefix(n, "a crash during the creation of the image and its backing chain (trace operations before 10, real directory semantics): the creation judge wants the image absent"), n)
	m.CreateOver = true
	require.Contains(t, m.CreationNote(0), "(trace operations before 10, real directory semantics), over an existing image: ")
	require.Empty(t, (&ArtifactMeta{CreateEnd: 10}).CreationNote(0))
}
