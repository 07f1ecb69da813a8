package campaign

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/qedtorture/qedtorture/impl/qed/qedtarget"
	"github.com/qedtorture/qedtorture/props/check"
	"github.com/qedtorture/qedtorture/props/workload"
)

// RepairCrashes' own accounts and defaults (repair_crash.go), held to
// what the plants of its images give: the tests the mutation run of
// docs/mutation.md found missing.

// plainRepairer hides every method of a Repairer but the Repairer's: a
// path RepairCrashes cannot record (a black-box program's open).
type plainRepairer struct{ Repairer }

// applicablePlants counts the plants of seed 3's first images under the
// default generation, each kind with NEED_CHECK set and clear.
func applicablePlants(t *testing.T, images int, kinds []check.Corruption) int {
	t.Helper()
	n := 0
	for w := range images {
		wl, ws := GenerateWorkload(3, w, repairGen())
		files, err := consistentImage(qedtarget.Target{}, wl)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range kinds {
			for _, nc := range []bool{true, false} {
				_, _, err := check.Plant(files[workload.ImageName], c, nc, WorkloadSeed(ws, int(c)*2+boolInt(nc)))
				switch {
				case err == nil:
					n++
				case !errors.Is(err, check.ErrNotApplicable):
					t.Fatal(err)
				}
			}
		}
	}
	return n
}

// TestRepairCrashesDefaults: with no image count (one image), no
// corruption kinds (every kind) and no generation (the repair mode's),
// and with two images, every applicable plant of every path that cannot
// be recorded is counted as unrecorded, once, and nothing is judged.
func TestRepairCrashesDefaults(t *testing.T) {
	rs := []Repairer{plainRepairer{testRepairer{"good"}}, plainRepairer{testRepairer{"noop"}}}
	for _, images := range []int{0, 2} {
		rep, err := RepairCrashes(context.Background(), RepairConfig{Seed: 3, Images: images, Reference: qedtarget.Target{}, Repairers: rs}, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		want := len(rs) * applicablePlants(t, max(images, 1), check.Corruptions())
		if want == 0 || rep.Unrecorded != want || rep.Plants != 0 || rep.Refused != 0 || rep.States != 0 || len(rep.Failures) != 0 {
			t.Errorf("images %d: %d unrecorded, want %d; %+v", images, rep.Unrecorded, want, rep)
		}
	}
}

// TestRepairCrashesNamePlants: a failing crash state of the crash mode
// names its plant by the seed the repair mode reports for the same plant
// (check.Plant replays it), and every failing state of an in-process path
// is named, not a plant's first alone.
func TestRepairCrashesNamePlants(t *testing.T) {
	kinds := []check.Corruption{check.CorruptL2PastEOF, check.CorruptL1Misaligned}
	seeds := map[string]uint64{}
	for _, f := range runRepairTest(t, testRepairer{"noop"}, timeoutFor("noop"), 1, kinds...).Failures {
		seeds[fmt.Sprintf("%s %v", f.Corruption, f.NeedCheck)] = f.Seed
	}
	rep, err := RepairCrashes(context.Background(), RepairConfig{
		Seed: 3, Images: 1, Reference: qedtarget.Target{}, Repairers: []Repairer{testRepairer{"clear-first"}}, Corruptions: kinds,
	}, 4, 0)
	if err != nil {
		t.Fatal(err)
	}
	perPlant := map[string]int{}
	for _, f := range rep.Failures {
		var kind string
		var nc bool
		var seed uint64
		if _, err := fmt.Sscanf(f, "image 0 %s need-check=%t seed %d:", &kind, &nc, &seed); err != nil {
			t.Fatalf("failure %q: %v", f, err)
		}
		key := fmt.Sprintf("%s %v", kind, nc)
		if want, ok := seeds[key]; !ok || seed != want {
			t.Errorf("failure %q: seed %d, the repair mode's for %s: %d", f, seed, key, want)
		}
		perPlant[key]++
	}
	t.Logf("%d plants, %d states, %d failing over %d plants", rep.Plants, rep.States, len(rep.Failures), len(perPlant))
	if len(perPlant) == 0 || len(perPlant) >= len(rep.Failures) {
		t.Errorf("%d failures over %d plants: want several states of a plant named", len(rep.Failures), len(perPlant))
	}
}
