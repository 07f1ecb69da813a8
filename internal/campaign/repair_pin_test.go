package campaign

import (
	"fmt"
	"strings"
	"testing"

	"github.com/qedtorture/qedtorture/props/check"
)

// TestRepairPlantsPinned: the plants of a repair run are pinned to the
// campaign seed. A failure names its plant's seed (RepairFailure.Seed:
// check.Plant(image, kind, need-check, seed) replays it); a change of how
// the plant seeds derive from the workload's would silently make every
// reported seed name another plant. The noop path breaks a rule on every
// plant, so every plant's seed is reported.
func TestRepairPlantsPinned(t *testing.T) {
	rep := runRepairTest(t, testRepairer{"noop"}, timeoutFor("noop"), 1, check.CorruptL2PastEOF, check.CorruptL1Misaligned)
	var got []string
	for _, f := range rep.Failures {
		got = append(got, fmt.Sprintf("%s/%v/%d", f.Corruption, f.NeedCheck, f.Seed))
	}
	want := "l2-past-eof/true/1358638087670864314 l2-past-eof/false/15349045230151136539 " +
		"l1-misaligned/true/13268782925234008271 l1-misaligned/false/13921432576363492924"
	if g := strings.Join(got, " "); g != want {
		t.Errorf("plants %s, want %s", g, want)
	}
}
