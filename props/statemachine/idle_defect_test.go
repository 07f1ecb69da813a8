//go:build qeddefects

package statemachine

import (
	"testing"
	"time"

	"github.com/spf13/afero"

	"github.com/qedtorture/qedtorture/crashsim"
	"github.com/qedtorture/qedtorture/impl/qed"
	"github.com/qedtorture/qedtorture/props/oracle"
	"github.com/qedtorture/qedtorture/props/workload"
)

// TestIdleClearSweepCatchesDefect: with NEED_CHECK cleared before the
// metadata writeback is durable (the seeded defect), the idle-clear sweep
// fails, and at least one failing state comes from an idle clear (a crash
// before the final close), not only from Close's own clear.
func TestIdleClearSweepCatchesDefect(t *testing.T) {
	qed.SetDefect(qed.DefectNeedCheckClearedBeforeFlush)
	defer qed.SetDefect(qed.DefectNone)
	clk := &manualClock{now: time.Unix(0, 0)}
	fails, _, err := CheckCrashSweep(idleTarget{clk, new(afero.Fs)}, idleWorkload(), oracle.DefaultModels(), crashsim.EnumOptions{Bound: 64, Samples: 16, Seed: 1}, oracle.Options{}, 100)
	if err != nil {
		t.Fatalf("the workload failed: %v", err)
	}
	idle := 0
	for _, f := range fails {
		ops := f.Seq.W.Ops
		if len(ops) > 0 && ops[len(ops)-1].Kind != workload.Reopen {
			idle++
		}
	}
	if idle == 0 {
		t.Fatalf("no failure during an idle clear (%d failures in all)", len(fails))
	}
	t.Logf("%d failing states, %d of them before the final close (in the idle clears); first: %v", len(fails), idle, fails[0])
}
