package campaign

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qedtorture/qedtorture/crashsim"
	"github.com/qedtorture/qedtorture/faultfs"
	"github.com/qedtorture/qedtorture/impl/qed/qedtarget"
	"github.com/qedtorture/qedtorture/props/oracle"
	"github.com/qedtorture/qedtorture/props/target"
	"github.com/qedtorture/qedtorture/props/workload"
	"github.com/stretchr/testify/require"
)

// TestNestedPassesOnQED: with crashes during recovery judged to depth 3,
// impl/qed passes, and the report counts the states of depth 2 and more
// apart from the depth-1 states.
func TestNestedPassesOnQED(t *testing.T) {
	seed := testSeed(t)
	base := Config{Target: qedtarget.Target{}, Seed: seed, Iterations: 3, Workers: 2, Gen: quickGen(), Models: quickModels,
		Bound: 16, Samples: 4, SampledPoints: 2}
	one, err := Run(context.Background(), base)
	require.NoError(t, err)
	cfg := base
	cfg.NestedDepth, cfg.NestedStates = 3, 2
	rep, err := Run(context.Background(), cfg)
	require.NoError(t, err)
	require.Empty(t, rep.Failures, "%+v", rep.Failures)
	require.Equal(t, 3, rep.NestedDepth)
	require.Positive(t, rep.NestedStates)
	require.Equal(t, one.CrashStates, rep.CrashStates, "depth-2 states are counted apart")
	require.LessOrEqual(t, rep.Judged[NestedJudgeName], int64(2*3), "at most NestedStates states per workload")
	t.Logf("%d depth-1 states, %d recovered and crashed, %d states of depth 2 and 3", rep.CrashStates, rep.Judged[NestedJudgeName], rep.NestedStates)
}

// TestRecordRecoveryMarks: the recorded recovery of a crash state with
// NEED_CHECK set writes (the repair's header updates), and its marks say
// what each crash is judged against: the crash's model during the open,
// the recovered model with the first write pending after it, that write
// durable after the flush.
func TestRecordRecoveryMarks(t *testing.T) {
	w, err := workload.Parse(strings.NewReader("qedtorture-workload v1\nimage cluster_size=4096 table_size=1 size=65536\nwrite 0 4096 id=1\nflush\nwrite 8192 4096 id=2\n"))
	require.NoError(t, err)
	tgt := qedtarget.Target{}
	rec, err := Record(tgt, w, 1, "")
	require.NoError(t, err)
	require.NoError(t, rec.complete())
	// The end point without a close: the second write pending, NEED_CHECK set.
	p := rec.End
	id := crashsim.StateID{K: p.K(), Model: crashsim.Model{Base: crashsim.Drop}}
	fs, err := p.FinalState(id)
	require.NoError(t, err)
	st := &State{ID: id, Point: p, FS: fs, Image: rec.Image, Model: rec.EndModel.Clone(), Rec: rec}
	r, err := RecordRecovery(tgt, st)
	require.NoError(t, err)
	require.Nil(t, r.OpErr)
	require.NotEmpty(t, r.Trace.Ops, "a recovery writes")
	// The workload's seed (the recovery's sampled crash points are drawn
	// from it and the chain), workload, directory and file-system options.
	require.Equal(t, rec.Seed, r.Seed)
	require.Equal(t, uint64(1), stateSeed(st))
	require.Same(t, rec.W, r.W)
	require.Equal(t, rec.Dir, r.Dir)
	require.Equal(t, rec.Options, r.Options)
	var ops []int
	for _, m := range r.Marks {
		ops = append(ops, m.Op)
	}
	require.Equal(t, []int{RecoveryOpen, RecoveryWrite, RecoveryFlush, RecoveryClose}, ops)
	require.NotEmpty(t, r.Marks[0].Model.Uncertain(), "during the open: the crash's model, its writes pending")
	require.Empty(t, r.Marks[1].Model.Uncertain()[1:], "after the open: recovered, only the first write pending")
	require.Empty(t, r.Marks[3].Model.Uncertain(), "after the flush: durable")
	// Every crash state of the recovery passes the oracle.
	j := &nestedJudge{t: tgt, models: quickModels, enum: crashsim.EnumOptions{Bound: 64, Samples: 8}, depth: 2, budget: 1}
	v, err := j.Judge(context.Background(), st)
	require.NoError(t, err)
	require.True(t, v.OK(), "%v", v)
	_ = oracle.Options{}
}

// jitterRecovery is an in-process driver whose recoveries are recorded
// like an out-of-process driver's (a RecoveryRecorder): with jitter set,
// each re-recording issues one more operation at its end, as a program's
// I/O timing can differ from one run to the next.
type jitterRecovery struct {
	Driver
	t      target.Target
	jitter bool
}

func (d *jitterRecovery) RecordRecovery(_ context.Context, st *State) (*Recording, error) {
	rec, err := RecordRecovery(d.t, st)
	if err != nil || !d.jitter || rec.Trace == nil || len(rec.Trace.Ops) == 0 {
		return rec, err
	}
	tr := &crashsim.Trace{Ops: append([]crashsim.Op(nil), rec.Trace.Ops...)}
	extra := tr.Ops[0]
	extra.Index = int64(len(tr.Ops))
	tr.Ops = append(tr.Ops, extra)
	rec.Trace = tr
	return rec, nil
}

// TestReplayNestedPrefersStoredRecovery: replaying a crash during recovery
// re-records the recovery; when a driver's own recorder re-records a
// trace that differs from the artifact's nested/D/trace.bin, the recorded
// recovery (with meta.json's chain_marks) is judged and replay says so,
// as at the top level; without chain_marks (an older artifact) the
// re-recorded one is judged.
func TestReplayNestedPrefersStoredRecovery(t *testing.T) {
	tgt, _ := targetByName("broken:noflush")
	d := &jitterRecovery{Driver: InProcess(tgt), t: tgt}
	art := nestedArtifact(t, d)
	meta, err := ReadArtifactMeta(art)
	require.NoError(t, err)
	require.Len(t, meta.ChainMarks, len(meta.Chain), "one recovery's marks per depth")
	resolve := func(string) (Driver, error) { return d, nil }
	d.jitter = true
	res, err := Replay(art, ReplayOptions{Resolve: resolve})
	require.NoError(t, err)
	require.True(t, res.Fails(), "the recorded recovery's crash state still fails")
	require.Contains(t, strings.Join(res.Notes, "\n"), "the recorded recovery is judged")
	// Without the stored marks, the re-recorded recovery is judged.
	mb, err := os.ReadFile(filepath.Join(art, "meta.json"))
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(mb, &m))
	delete(m, "chain_marks")
	mb, err = json.Marshal(m)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(art, "meta.json"), mb, 0o644))
	res, err = Replay(art, ReplayOptions{Resolve: resolve})
	require.NoError(t, err)
	require.NotContains(t, strings.Join(res.Notes, "\n"), "the recorded recovery is judged")
	// Without jitter the re-recording equals the recorded one: no note.
	d.jitter = false
	res, err = Replay(art, ReplayOptions{Resolve: resolve})
	require.NoError(t, err)
	require.True(t, res.Fails())
	require.Empty(t, res.Notes)
}

// TestReplayNestedNeedsItsRecoverer: a crash during a target's own
// recovery (here broken:noflush's, in process) is not replayed by the
// reference when the target is not available: impl/qed's recovery of the
// same crash state is another question, and judging it would report the
// failure as passing. The replay fails with what it needs instead.
func TestReplayNestedNeedsItsRecoverer(t *testing.T) {
	tgt, _ := targetByName("broken:noflush")
	art := nestedArtifact(t, InProcess(tgt))
	meta, err := ReadArtifactMeta(art)
	require.NoError(t, err)
	require.Equal(t, "broken:noflush", meta.ChainJudge)
	require.Empty(t, meta.ChainRecorder, "recovered in process")
	unavailable := func(name string) (Driver, error) { return nil, fmt.Errorf("unknown target %q", name) }
	_, err = Replay(art, ReplayOptions{Resolve: unavailable, Reference: TargetOrDie(t, "impl/qed")})
	require.Error(t, err, "the reference must not stand in for the target's own recovery")
	require.ErrorContains(t, err, "broken:noflush")
	// With the target, it replays and still fails.
	res, err := Replay(art, ReplayOptions{Resolve: InProcessResolver(targetByName), Reference: TargetOrDie(t, "impl/qed")})
	require.NoError(t, err)
	require.True(t, res.Fails())
}

// nestedArtifact runs a short campaign of broken:noflush through d with
// crashes during recovery and returns the artifact of a crash during
// recovery (the test is skipped when the seed found none).
func nestedArtifact(t *testing.T, d Driver) string {
	t.Helper()
	seed := testSeed(t)
	rep, err := Run(context.Background(), Config{Seed: seed, Iterations: 30, Gen: quickGen(), Models: quickModels[:2],
		Bound: 8, Samples: 2, Driver: d, TargetName: "broken:noflush", NestedDepth: 2, NestedStates: 1,
		MaxFailures: 4, MinimizeCandidates: -1, Out: t.TempDir()})
	require.NoError(t, err)
	for _, f := range rep.Failures {
		if strings.HasPrefix(f.Signature, "depth2/") {
			return f.Artifact
		}
	}
	t.Skipf("seed %d: no crash during recovery among %d failures", seed, len(rep.Failures))
	return ""
}

// TestNestedCrashError: a crash during recovery names each crash of its
// chain with the recovery step it interrupted, in order, then the error.
func TestNestedCrashError(t *testing.T) {
	rec := func(ks ...int64) *Recording {
		r := &Recording{}
		for op, k := range ks {
			r.Marks = append(r.Marks, Mark{Op: op, K: k})
		}
		return r
	}
	a := crashsim.StateID{K: 3, Model: crashsim.Model{Base: crashsim.Drop}}
	b := crashsim.StateID{K: 7, Model: crashsim.Model{Base: crashsim.Prefix}, Ordinal: 2}
	e := &NestedCrash{Chain: []crashsim.StateID{a, b}, Recoveries: []*Recording{rec(0, 5), rec(0, 4, 6)}, Err: errors.New("bad data")}
	require.Equal(t, "crash "+a.String()+" during the recovery (recovery: writable open (check and repair)), then "+
		b.String()+" during the recovery (recovery: flush): bad data", e.Error())
	one := &NestedCrash{Chain: []crashsim.StateID{a}, Recoveries: []*Recording{rec(0, 2)}, Err: errors.New("bad data")}
	require.Equal(t, "crash "+a.String()+" during the recovery (recovery: first write (512 bytes at guest offset 0)): bad data", one.Error())
}

// TestNestedJudgeExcusesFaultedRuns: a state of a run with injected
// faults passes the nested judge without its recovery being recorded
// (the oracle judge excuses the faults' effects against the run's
// injections); another state's recovery is recorded, once: at depth 2
// the crash states of that recovery are judged, not recovered again; to
// depth 3, one of them (the sample) is.
func TestNestedJudgeExcusesFaultedRuns(t *testing.T) {
	rec, st := endState(t, "image cluster_size=4096 table_size=1 size=65536\nwrite 0 4096 id=1\nflush\n")
	tgt := qedtarget.Target{}
	p, id := st.Point, st.ID
	rr := &countingRecovery{t: tgt}
	j := &nestedJudge{t: tgt, rr: rr, models: quickModels[:1], enum: crashsim.EnumOptions{Bound: 8, Samples: 2}, depth: 2, budget: 1}
	faulted := *rec
	faulted.Injected = []faultfs.Injection{{}}
	v, err := j.Judge(context.Background(), &State{ID: id, Point: p, Image: rec.Image, Model: rec.EndModel.Clone(), Rec: &faulted})
	require.NoError(t, err)
	require.True(t, v.OK(), "%v", v)
	require.Zero(t, rr.n, "a faulted run's state recovered")
	v, err = j.Judge(context.Background(), &State{ID: id, Point: p, Image: rec.Image, Model: rec.EndModel.Clone(), Rec: rec})
	require.NoError(t, err)
	require.True(t, v.OK(), "%v", v)
	require.Equal(t, 1, rr.n, "recoveries recorded at depth 2")
	// To depth 3: the sample of one of that recovery's crash states is
	// recovered in turn.
	rr.n, j.depth = 0, 3
	v, err = j.Judge(context.Background(), &State{ID: id, Point: p, Image: rec.Image, Model: rec.EndModel.Clone(), Rec: rec})
	require.NoError(t, err)
	require.True(t, v.OK(), "%v", v)
	require.Equal(t, 2, rr.n, "recoveries recorded to depth 3 with a sample of one")
}

// TestReplayNestedDepth3: replay follows a chain of two crashes during
// recovery (depth 3) to its end: the replayed failure has the artifact's
// chain, not its first crash judged at depth 2.
func TestReplayNestedDepth3(t *testing.T) {
	g := quickGen()
	g.Weights = maps.Clone(g.Weights)
	g.Weights[workload.Reopen] = 0 // the workload's own flushes work
	d := InProcess(bigNoFlushTarget{})
	rep, err := Run(context.Background(), Config{Seed: 1, Iterations: 10, Gen: g, Models: quickModels[:2], Bound: 8, Samples: 2,
		Driver: d, TargetName: "test:big-noflush", NestedDepth: 3, NestedStates: 2, MaxFailures: 4, MinimizeCandidates: -1, Out: t.TempDir()})
	require.NoError(t, err)
	for _, f := range rep.Failures {
		if !strings.HasPrefix(f.Signature, "depth3/") {
			continue
		}
		meta, err := ReadArtifactMeta(f.Artifact)
		require.NoError(t, err)
		require.Len(t, meta.Chain, 2)
		res, err := Replay(f.Artifact, ReplayOptions{Resolve: func(string) (Driver, error) { return d, nil }})
		require.NoError(t, err)
		require.True(t, res.Fails(), "the chain's last crash state fails again")
		var chain []string
		for _, id := range res.Failure.Nested().Chain {
			chain = append(chain, id.String())
		}
		require.Equal(t, meta.Chain, chain, "the replayed chain")
		return
	}
	t.Fatalf("seed 1: no crash during the recovery of a recovery among %d failures", len(rep.Failures))
}

// TestRecordRecoveryEmptyImage: the recovery of an image of size 0 opens
// and closes it: no write, no flush (there is no sector to write).
func TestRecordRecoveryEmptyImage(t *testing.T) {
	_, st := endState(t, "image cluster_size=4096 table_size=1 size=0\nflush\n")
	r, err := RecordRecovery(qedtarget.Target{}, st)
	require.NoError(t, err)
	require.Nil(t, r.OpErr)
	var ops []int
	for _, m := range r.Marks {
		ops = append(ops, m.Op)
	}
	require.Equal(t, []int{RecoveryOpen, RecoveryClose}, ops)
}

// TestPreferStoredMarkAtTheEnd: in replay, a re-recorded recovery whose
// trace differs from the artifact's is replaced by the recorded one when
// their steps match, a recorded mark at the very end of the recorded
// trace included (a step that issued no I/O); a mark past it is refused.
func TestPreferStoredMarkAtTheEnd(t *testing.T) {
	_, st := endState(t, "image cluster_size=4096 table_size=1 size=65536\nwrite 0 4096 id=1\n")
	tgt := qedtarget.Target{}
	r, err := RecordRecovery(tgt, st)
	require.NoError(t, err)
	stored := &crashsim.Trace{Ops: r.Trace.Ops[:len(r.Trace.Ops)-1]} // another trace: its last op not issued
	b, err := stored.MarshalBinary()
	require.NoError(t, err)
	for _, c := range []struct {
		lastK int64
		used  bool
	}{{int64(len(stored.Ops)), true}, {int64(len(stored.Ops)) + 1, false}} {
		var marks [][2]int64
		for _, m := range r.Marks {
			marks = append(marks, [2]int64{int64(m.Op), min(m.K, int64(len(stored.Ops)))})
		}
		marks[len(marks)-1][1] = c.lastK
		j := &nestedJudge{t: tgt, rr: &countingRecovery{t: tgt}, stored: []storedRecovery{{trace: b, marks: marks}}}
		got, err := j.preferStored(r, 2)
		require.NoError(t, err)
		if !c.used {
			require.Same(t, r, got, "a recorded mark past the trace's end")
			continue
		}
		require.NotSame(t, r, got, "the recorded recovery, its last mark at the trace's end")
		require.Len(t, got.Trace.Ops, len(stored.Ops))
		require.Equal(t, c.lastK, got.Marks[len(got.Marks)-1].K)
	}
}

// TestNestedCommitBaseRecoveredFirst: a crash during a commit into a QED
// base that had linked an L2 entry before the cluster's data and grow
// landed (the base's NEED_CHECK set: legal). The depth-1 judge recovers
// the base before the image; the recovery recorded for crashes of depth 2
// must too, and the depth-2 judge with it, or the image's read-only open
// of the base reads through the dangling entry: this workload of seed 4
// (index 7, a default campaign's draw minimized) failed at depth 2 with
// "L2[3] ... not a valid data cluster offset" before.
func TestNestedCommitBaseRecoveredFirst(t *testing.T) {
	w, err := workload.Parse(strings.NewReader(`qedtorture-workload v1
image cluster_size=16384 table_size=16 size=524288
backing qed size=258560 cluster_size=65536 table_size=4 fill=1
write 0x304fa 0x492a id=2
commit
`))
	require.NoError(t, err)
	rep, err := Run(context.Background(), Config{Target: TargetOrDie(t, "impl/qed"), TargetName: "impl/qed", Seed: 4, Shard: Shard{Index: 7, Count: 8}, Iterations: 8,
		Workload: w, NestedDepth: DefaultNestedDepth, NestedStates: DefaultNestedStates, Bound: DefaultBound, Samples: DefaultSamples, SampledPoints: DefaultSampledPoints})
	require.NoError(t, err)
	require.Empty(t, rep.Failures, "%+v", rep.Failures)
	require.Positive(t, rep.NestedStates)

	// The recorded recovery of a state crashed during the commit starts
	// with the base's own recovery (its writable open and close).
	rec, err := RecordWith(qedtarget.Target{}, w, RecordOptions{Seed: 4})
	require.NoError(t, err)
	var during *State
	for k := range rec.Trace.Ops {
		if rec.GuestOpAt(int64(k)) == 1 && rec.Trace.Ops[k].Kind == crashsim.OpSync {
			p, err := rec.Point(int64(k))
			require.NoError(t, err)
			id := crashsim.StateID{K: int64(k), Model: crashsim.Model{Base: crashsim.Prefix}}
			during = &State{ID: id, Point: p, Image: rec.Image, Model: rec.ModelAt(int64(k)).Clone(), GuestOp: 1, Rec: rec}
			break
		}
	}
	require.NotNil(t, during, "a sync during the commit")
	r, err := RecordRecovery(qedtarget.Target{}, during)
	require.NoError(t, err)
	require.Nil(t, r.OpErr)
	first := -1
	for i, o := range r.Trace.Ops {
		if strings.HasSuffix(o.Path, ".qed") && !strings.HasSuffix(o.Path, workload.ImageName) {
			first = i
			break
		}
	}
	require.GreaterOrEqual(t, first, 0, "the base is touched by the recovery:\n%v", r.Trace.Ops)
	require.Equal(t, RecoveryOpen, r.MarkAt(int64(first)).Op)
	require.Equal(t, RecoveryOpen, r.Marks[0].Op)
	require.NotEqual(t, RecoveryOpen, r.Marks[1].Op, "one open mark")
}

// endState records script (a workload's lines after its header) on
// impl/qed and returns the recording and its drop state at the end point
// (no close: NEED_CHECK set), the state a recovery test starts from.
func endState(t *testing.T, script string) (*Recording, *State) {
	t.Helper()
	w, err := workload.Parse(strings.NewReader("qedtorture-workload v1\n" + script))
	require.NoError(t, err)
	rec, err := Record(qedtarget.Target{}, w, 1, "")
	require.NoError(t, err)
	p := rec.End
	id := crashsim.StateID{K: p.K(), Model: crashsim.Model{Base: crashsim.Drop}}
	return rec, &State{ID: id, Point: p, Image: rec.Image, Model: rec.EndModel.Clone(), Rec: rec}
}
