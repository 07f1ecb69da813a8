package campaign

import (
	"context"
	"encoding/binary"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/spf13/afero"

	"github.com/qedtorture/qedtorture/impl/qed"
	"github.com/qedtorture/qedtorture/impl/qed/qedtarget"
	"github.com/qedtorture/qedtorture/internal/racetest"
	"github.com/qedtorture/qedtorture/props/check"
)

// testRepairer is impl/qed's check -r all, or a deliberately broken repair
// path (how): "noop" changes nothing and reports nothing, "panic" aborts,
// "hang" never returns before its deadline, "clear-flag" clears NEED_CHECK
// without repairing, "zero-data" repairs, then overwrites guest cluster 0;
// or a path the judge must accept: "refuse" refuses every image without
// touching it, "alloc" allocates 512 MiB (in 1 MiB pieces, garbage at
// once) before repairing. "report-clear" clears NEED_CHECK without
// repairing but reports the damage left.
type testRepairer struct{ how string }

func (r testRepairer) Name() string    { return "test:" + r.how }
func (r testRepairer) Check() bool     { return true }
func (r testRepairer) InProcess() bool { return true }
func (r testRepairer) Repair(ctx context.Context, path string) ([]string, error) {
	switch r.how {
	case "noop":
		return nil, nil
	case "refuse":
		return nil, errors.New("deliberately refused")
	case "alloc":
		for range 512 {
			allocSink = make([]byte, 1<<20)
		}
		allocSink = nil
	case "report-clear":
		if _, err := (testRepairer{"clear-flag"}).Repair(ctx, path); err != nil {
			return nil, err
		}
		return []string{"deliberately left"}, nil
	case "panic":
		panic("deliberate")
	case "hang":
		<-ctx.Done()
		return nil, ctx.Err()
	case "clear-flag":
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		var b [8]byte
		if _, err := f.ReadAt(b[:], 16); err != nil {
			return nil, err
		}
		binary.LittleEndian.PutUint64(b[:], binary.LittleEndian.Uint64(b[:])&^qed.FeatureNeedCheck)
		_, err = f.WriteAt(b[:], 16)
		return nil, err
	}
	im, err := qed.Open(afero.NewOsFs(), path, qed.OpenOptions{IdleClearDelay: -1})
	if err != nil {
		return nil, err
	}
	rep, err := im.Check(true)
	if err != nil {
		im.Close()
		return nil, err
	}
	var unrep []string
	if rep.Corruptions > 0 {
		unrep = rep.Problems
	}
	if r.how == "zero-data" && im.Header().Features&qed.FeatureBackingFile == 0 {
		if _, err := im.WriteAt(make([]byte, 4096), 0); err != nil {
			im.Close()
			return nil, err
		}
	}
	return unrep, im.Close()
}

// allocSink keeps the "alloc" repair's allocations from being optimised away.
var allocSink []byte

type testReader struct{}

func (testReader) Name() string { return "impl/qed" }
func (testReader) ReadGuest(_ context.Context, path string) ([]byte, error) {
	im, err := qed.Open(afero.NewOsFs(), path, qed.OpenOptions{ReadOnly: true})
	if err != nil {
		return nil, err
	}
	defer im.Close()
	b := make([]byte, im.Size())
	_, err = im.ReadAt(b, 0)
	return b, err
}

func runRepairTest(t *testing.T, r Repairer, timeout time.Duration, images int, kinds ...check.Corruption) *RepairReport {
	t.Helper()
	rep, err := RunRepair(context.Background(), RepairConfig{
		Seed: 3, Images: images, Reference: qedtarget.Target{}, Corruptions: kinds,
		Repairers: []Repairer{r}, Readers: []GuestReader{testReader{}},
		Dir: t.TempDir(), Timeout: timeout,
	})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// TestRepairJudgesImplQED: impl/qed's check -r all breaks no rule on any
// plant of the seed's images, and every corruption kind was planted.
func TestRepairJudgesImplQED(t *testing.T) {
	rep := runRepairTest(t, testRepairer{"good"}, 30*time.Second, 3)
	for _, f := range rep.Failures {
		t.Errorf("%s", f)
	}
	if rep.Plants == 0 || rep.Runs != rep.Plants {
		t.Fatalf("plants %d, runs %d", rep.Plants, rep.Runs)
	}
}

// TestRepairCatchesBrokenRepairs: each broken repair path is caught by the
// rule it breaks.
func TestRepairCatchesBrokenRepairs(t *testing.T) {
	for how, rule := range map[string]string{
		"noop":       "unrepaired-unreported",
		"panic":      "abort",
		"hang":       "hang",
		"clear-flag": "unrepaired-unreported",
		"zero-data":  "untouched-changed",
	} {
		t.Run(how, func(t *testing.T) {
			rep := runRepairTest(t, testRepairer{how}, timeoutFor(how), 2, check.CorruptL2PastEOF, check.CorruptL1Misaligned, check.CorruptLeak)
			var rules []string
			for _, f := range rep.Failures {
				rules = append(rules, f.Rule)
			}
			if !strings.Contains(strings.Join(rules, " "), rule) {
				t.Errorf("rules broken %v, want %s among them", rules, rule)
			}
		})
	}
}

// timeoutFor gives the hanging repair a short deadline and the others a
// generous one (a loaded machine, -race).
func timeoutFor(how string) time.Duration {
	if how == "hang" {
		return 200 * time.Millisecond
	}
	return 30 * time.Second
}

// RepairFS is the path on any filesystem; "clear-first" is a broken repair
// that trusts a clear NEED_CHECK and, when it is set, clears it (synced)
// before repairing: a crash in between leaves a corrupt image the next
// repair trusts.
func (r testRepairer) RepairFS(fs afero.Fs, path string) error {
	if r.how == "clear-first" {
		f, err := fs.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			return err
		}
		var b [8]byte
		if _, err := f.ReadAt(b[:], 16); err != nil {
			f.Close()
			return err
		}
		feat := binary.LittleEndian.Uint64(b[:])
		if feat&qed.FeatureNeedCheck == 0 {
			return f.Close()
		}
		binary.LittleEndian.PutUint64(b[:], feat&^qed.FeatureNeedCheck)
		if _, err := f.WriteAt(b[:], 16); err != nil {
			f.Close()
			return err
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
	}
	im, err := qed.Open(fs, path, qed.OpenOptions{IdleClearDelay: -1})
	if err != nil {
		return err
	}
	if _, err := im.Check(true); err != nil {
		im.Close()
		return err
	}
	return im.Close()
}

func (testRepairer) ReadGuestFS(fs afero.Fs, path string) ([]byte, error) {
	im, err := qed.Open(fs, path, qed.OpenOptions{ReadOnly: true})
	if err != nil {
		return nil, err
	}
	defer im.Close()
	b := make([]byte, im.Size())
	_, err = im.ReadAt(b, 0)
	return b, err
}

// TestRepairCrashes: every crash state of impl/qed's repair, repaired
// again, reaches what one repair reaches; the broken clear-first repair is
// caught on the states between its flag clear and its fixes.
func TestRepairCrashes(t *testing.T) {
	racetest.Heavy(t)
	for how, wantFail := range map[string]bool{"good": false, "clear-first": true} {
		t.Run(how, func(t *testing.T) {
			rep, err := RepairCrashes(context.Background(), RepairConfig{
				Seed: 3, Images: 1, Reference: qedtarget.Target{}, Repairers: []Repairer{testRepairer{how}},
				Corruptions: []check.Corruption{check.CorruptL2PastEOF, check.CorruptL1Misaligned, check.CorruptDoubleRef},
			}, 4, 0)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Plants == 0 || rep.States == 0 {
				t.Fatalf("nothing judged: %+v", rep)
			}
			if (len(rep.Failures) > 0) != wantFail {
				t.Errorf("%d of %d states differ, want failures %v: %v", len(rep.Failures), rep.States, wantFail, rep.Failures)
			}
			t.Logf("%s: %d plants, %d crash states, %d differ", how, rep.Plants, rep.States, len(rep.Failures))
		})
	}
}

// testClearingOpen is a broken writable open: it clears NEED_CHECK and
// repairs nothing.
type testClearingOpen struct{ testRepairer }

func (testClearingOpen) Name() string { return "test:clearing-open" }
func (testClearingOpen) Check() bool  { return false }

// TestRepairReopenRule: NEED_CHECK clear implies consistent after every
// implementation's open and close: a writable open that clears the flag
// over the double reference a correct check left (with NEED_CHECK set) is
// caught on the reopen, and named as the path that broke the rule.
func TestRepairReopenRule(t *testing.T) {
	rep, err := RunRepair(context.Background(), RepairConfig{
		Seed: 3, Images: 2, Reference: qedtarget.Target{}, Corruptions: []check.Corruption{check.CorruptDoubleRef},
		Repairers: []Repairer{testRepairer{"good"}, testClearingOpen{testRepairer{"clear-flag"}}},
		Readers:   []GuestReader{testReader{}}, Dir: t.TempDir(), Timeout: 30 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, f := range rep.Failures {
		found = found || (f.Rule == "reopen-claims-clean" && f.Repairer == "test:clearing-open (after test:good)")
	}
	if !found {
		t.Errorf("reopen rule not caught: %v", rep.Failures)
	}
}

// TestInProcessRepairDriver: the in-process driver is a RepairDriver whose
// two paths (check -r all and the writable open, both FSRepairers) and
// reader break no rule on impl/qed, and a crash during either repair,
// repaired again, reaches what one repair reaches.
func TestInProcessRepairDriver(t *testing.T) {
	rd, ok := InProcess(qedtarget.Target{}).(RepairDriver)
	if !ok {
		t.Fatal("InProcess is not a RepairDriver")
	}
	rs := rd.Repairers()
	var names []string
	for _, r := range rs {
		names = append(names, r.Name())
		if _, ok := r.(FSRepairer); !ok {
			t.Errorf("%s is not an FSRepairer", r.Name())
		}
	}
	if got := strings.Join(names, ", "); got != "impl/qed check -r all, impl/qed open" {
		t.Errorf("repair paths %q", got)
	}
	kinds := []check.Corruption{check.CorruptL2PastEOF, check.CorruptL1Misaligned, check.CorruptDoubleRef, check.CorruptTruncate}
	rep, err := RunRepair(context.Background(), RepairConfig{
		Seed: 3, Images: 2, Reference: qedtarget.Target{}, Corruptions: kinds,
		Repairers: rs, Readers: []GuestReader{rd.GuestReader()}, Dir: t.TempDir(), Timeout: 30 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range rep.Failures {
		t.Errorf("%s", f)
	}
	if rep.Plants == 0 || rep.Runs != 2*rep.Plants || rep.Consistent["impl/qed check -r all"] == 0 {
		t.Errorf("plants %d, runs %d, consistent %v", rep.Plants, rep.Runs, rep.Consistent)
	}
	cr, err := RepairCrashes(context.Background(), RepairConfig{Seed: 3, Images: 1, Reference: qedtarget.Target{}, Corruptions: kinds, Repairers: rs}, 2, 4)
	if err != nil {
		t.Fatal(err)
	}
	if cr.States == 0 || len(cr.Failures) > 0 {
		t.Errorf("%d crash states, failures %v", cr.States, cr.Failures)
	}
}

// TestRepairDifferAcrossKinds: a check and a writable open are compared
// when the plant set NEED_CHECK (the open must then repair as a check
// does), not when it is clear (the open may trust the flag).
func TestRepairDifferAcrossKinds(t *testing.T) {
	c := repairOut{name: "c", check: true, consistent: true, guest: []byte{1}}
	o := repairOut{name: "o", consistent: true, needCheck: true, guest: []byte{1}}
	if d := c.differ(o, true); strings.Join(d, ",") != "need-check" {
		t.Errorf("NEED_CHECK set: differ %v, want [need-check]", d)
	}
	if d := c.differ(o, false); d != nil {
		t.Errorf("NEED_CHECK clear: differ %v, want none", d)
	}
}
