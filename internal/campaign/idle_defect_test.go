//go:build qeddefects

package campaign

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qedtorture/qedtorture/impl/qed"
	"github.com/qedtorture/qedtorture/props/oracle"
	"github.com/qedtorture/qedtorture/props/workload"
	"github.com/stretchr/testify/require"
)

// TestIdleFindsNeedCheckClearedBeforeFlush: the idle op runs impl/qed's
// idle NEED_CHECK clear at a fixed point, and its crash states are
// judged: with the clear's header written before the metadata flush
// (the seeded defect need-check-cleared-before-flush) a workload whose
// only clear is the idle's fails there (a clean-marked image over an
// entry whose cluster did not land); with a flush in its place (no clear:
// the image is never closed) the same workload passes, and so does the
// idle workload without the defect.
func TestIdleFindsNeedCheckClearedBeforeFlush(t *testing.T) {
	const script = `qedtorture-workload v1
image cluster_size=4096 table_size=1 size=262144
write 0x1000 0x3000 id=1
write 0x20000 0x200 id=2
idle
write 0x30000 0x200 id=3
idle
read 0x0 0x40000
`
	defer qed.SetDefect(qed.DefectNone)
	run := func(name, script string) *Report {
		w, err := workload.Parse(strings.NewReader(script))
		require.NoError(t, err)
		tgt, err := targetByName(name)
		require.NoError(t, err)
		rep, err := Run(context.Background(), Config{Target: tgt, TargetName: name, Seed: 1, Iterations: 1, Workload: w, Out: t.TempDir(),
			Models: oracle.DefaultModels(), Bound: DefaultBound, Samples: DefaultSamples, SampledPoints: DefaultSampledPoints})
		require.NoError(t, err)
		return rep
	}
	const defect = "defect:need-check-cleared-before-flush"
	rep := run(defect, script)
	require.Len(t, rep.Failures, 1)
	f := rep.Failures[0]
	b, err := os.ReadFile(filepath.Join(f.Artifact, "workload.txt"))
	require.NoError(t, err)
	min, err := workload.Parse(strings.NewReader(string(b)))
	require.NoError(t, err)
	require.Equal(t, workload.Idle, min.Ops[f.GuestOp].Kind, "found during the idle op: %s\n%s", f.Message, b)
	require.Empty(t, run(defect, strings.ReplaceAll(script, "idle\n", "flush\n")).Failures, "no clear, no failure")
	qed.SetDefect(qed.DefectNone) // the defect target switched it on for the process
	require.Empty(t, run("impl/qed", script).Failures)
}
