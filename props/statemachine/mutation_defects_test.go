//go:build qeddefects

package statemachine

import (
	"maps"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/qedtorture/qedtorture/crashsim"
	"github.com/qedtorture/qedtorture/impl/qed"
	"github.com/qedtorture/qedtorture/props/oracle"
)

// TestCrashSweepDefectFailuresReplay: with seeded defects whose flushes
// do sync (so that ops start with a sync: a clean flush, a concurrent
// group's first flush), every failure of a sweep replays to the same crash
// state at its last op. Before the fix, a failure at a concurrent group's
// later sync named the wrong sync (counted from the group's second mark,
// after its first flush), so its Sequence did not replay.
func TestCrashSweepDefectFailuresReplay(t *testing.T) {
	defer qed.SetDefect(qed.DefectNone)
	enum := crashsim.EnumOptions{Bound: 16, Samples: 8, Seed: 1}
	total := 0
	for _, d := range []qed.Defect{qed.DefectNeedCheckNeverSet, qed.DefectNoSyncL2BeforeL1Link, qed.DefectNeedCheckClearedBeforeFlush} {
		workloads := FaultSweepWorkloads()
		for _, name := range slices.Sorted(maps.Keys(workloads)) {
			w := workloads[name]
			qed.SetDefect(d)
			fails, states, err := CheckCrashSweep(QEDTarget{}, w, oracle.DefaultModels(), enum, oracle.Options{}, 40)
			require.NoError(t, err)
			for _, f := range fails {
				_, g := RunSequence(QEDTarget{}, f.Seq, RunOptions{})
				require.NotNil(t, g, "%s %s: failure %s does not replay:\n%s", d, name, f.ID, f.Seq)
				require.Equal(t, f.Seq.Len()-1, g.Op, "%s %s: %s: the replay failed at another op", d, name, f.ID)
				require.Equal(t, f.ID.String(), g.StateID, "%s %s: %s:\n%s", d, name, f.ID, f.Seq)
			}
			t.Logf("%s %s: %d failures in %d states, each replayed", d, name, len(fails), states)
			total += len(fails)
		}
	}
	// need-check-never-set fails the no-backing workload's concurrent
	// group at its later syncs (18 failures at this seed).
	require.NotZero(t, total, "no seeded defect failed a sweep: nothing was replayed")
}
