package campaign

import (
	"context"
	"fmt"
	"path"
	"strings"
	"testing"

	"github.com/qedtorture/qedtorture/internal/racetest"
	"github.com/qedtorture/qedtorture/props/check"
	"github.com/qedtorture/qedtorture/props/oracle"
	"github.com/qedtorture/qedtorture/props/workload"
	"github.com/stretchr/testify/require"
)

// TestHostileOpFaulted: counted rules (nth=, after=: the drawn faults,
// the sweeps and their dry runs) number and fail the hostile op's
// operations in its private filesystem with the workload's own, so a
// sweep of the op reaches the repair of a planted image through the
// fault layer (its writes fail in turn); random rules (p=) do not reach
// them; a sweep of the op fails each of its writes, syncs and truncates
// in turn. Every such run passes: the injected error ends it at the hostile
// op, which no judge holds against the image.
func TestHostileOpFaulted(t *testing.T) {
	racetest.Heavy(t)
	tgt := TargetOrDie(t, "impl/qed")
	// l2-invalid planted with an odd seed: NEED_CHECK set, so the
	// writable open repairs, and so does the repairing check.
	script := fmt.Sprintf("qedtorture-workload v1\nimage cluster_size=4096 table_size=1 size=65536\nwrite 0 4096 id=1\nhostile %d 7\nwrite 4096 4096 id=2\nread 0 8192\n",
		check.CorruptL2Invalid)
	w, err := workload.Parse(strings.NewReader(script))
	require.NoError(t, err)
	const seed = 5
	never := SweepFault + "@after=" + neverFires + "; " + SweepWriteFault + "@after=" + neverFires
	rec, err := Record(tgt, w, seed, never)
	require.NoError(t, err)
	require.Nil(t, rec.OpErr)
	var at, next Mark
	for i, m := range rec.Marks {
		if m.Op == 1 {
			at, next = m, rec.Marks[i+1]
		}
	}
	ops, writes := next.Matched-at.Matched, next.Matched2-at.Matched2
	require.Greater(t, ops, uint64(40), "the hostile op's operations are counted")
	require.Greater(t, writes, uint64(10))
	// Random rules leave them alone: the workload's own operations only.
	rnd, err := Record(tgt, w, seed, "*:eio@p=0.000001")
	require.NoError(t, err)
	require.Less(t, rnd.FaultMatches[0], rec.FaultMatches[0]-ops+1)

	// Each write of the hostile op failed in turn: every run ends there
	// with an injected error in the private image and passes the judges.
	ck := inProcessChecker(tgt, oracle.Options{}, quickModels)
	private := 0
	for n := uint64(1); n <= writes; n++ {
		rule := fmt.Sprintf("%s@nth=%d", SweepWriteFault, at.Matched2+n)
		r, err := Record(tgt, w, seed, rule)
		require.NoError(t, err, rule)
		require.Len(t, r.Injected, 1, rule)
		require.NotNil(t, r.OpErr, rule)
		require.Equal(t, 1, r.OpErr.Index, "%s: the run ends at the hostile op", rule)
		if p := path.Clean(r.Injected[0].Path); p == "/hostile" || strings.HasPrefix(p, "/hostile/") {
			private++
		}
		fails, _ := r.workloadFails()
		require.False(t, fails, "%s: an injected error explains the hostile op's", rule)
		ck.faults = rule
		f, _, err := ck.runWorkload(w, seed, "")
		require.NoError(t, err, rule)
		require.Nil(t, f, "%s: judged as a faulted run, it passes", rule)
	}
	require.Equal(t, int(writes), private, "every write, sync and truncate of the step is the private files'")

	// A sweep of the hostile op fails each of them in turn, and nothing
	// else of the step.
	swept := 0
	for s := uint64(1); s < 40; s++ {
		sws, err := drawSweep(context.Background(), InProcess(tgt), w, s, 1, 0, 1, nil)
		require.NoError(t, err)
		for _, sw := range sws {
			if sw.op != 1 {
				continue
			}
			swept++
			var want []string
			for n := uint64(1); n <= writes; n++ {
				want = append(want, fmt.Sprintf("%s@nth=%d", SweepWriteFault, at.Matched2+n))
			}
			require.Equal(t, want, sw.rules, "seed %d", s)
		}
	}
	require.Positive(t, swept, "a hostile op (weight %d) among the steps swept", sweepKindWeight("hostile"))
}
