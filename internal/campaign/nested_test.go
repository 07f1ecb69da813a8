package campaign

import (
	"context"
	"strings"
	"testing"

	"github.com/qedtorture/qedtorture/crashsim"
	"github.com/qedtorture/qedtorture/impl/qed/qedtarget"
	"github.com/qedtorture/qedtorture/props/oracle"
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
