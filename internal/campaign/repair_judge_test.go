package campaign

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/afero"

	"github.com/qedtorture/qedtorture/impl/qed/qedtarget"
	"github.com/qedtorture/qedtorture/props/check"
	"github.com/qedtorture/qedtorture/props/target"
	"github.com/qedtorture/qedtorture/props/workload"
)

// The repair judge's own rules and accounts (repair.go, repair_target.go,
// repair_crash.go), each held to what a known repair path must give: the
// tests the mutation run of docs/mutation.md found missing.

// pathReader reads the guest as testReader does, but fails (how "fail")
// or returns the guest one byte short ("short") or with its first byte
// flipped ("flip") on the images under a directory named in, every image
// when in is "".
type pathReader struct{ how, in string }

func (r pathReader) Name() string { return "test:" + r.how + "-reader" }
func (r pathReader) ReadGuest(ctx context.Context, p string) ([]byte, error) {
	b, err := testReader{}.ReadGuest(ctx, p)
	if err != nil || (r.in != "" && filepath.Base(filepath.Dir(p)) != r.in) {
		return b, err
	}
	switch r.how {
	case "fail":
		return nil, os.ErrPermission
	case "short":
		return b[:len(b)-1], nil
	case "flip":
		b[0] ^= 0xff
	}
	return b, nil
}

func runRepairWith(t *testing.T, images int, rs []Repairer, rds []GuestReader, kinds ...check.Corruption) (*RepairReport, error) {
	t.Helper()
	return RunRepair(context.Background(), RepairConfig{
		Seed: 3, Images: images, Reference: qedtarget.Target{}, Corruptions: kinds,
		Repairers: rs, Readers: rds, Dir: t.TempDir(), Timeout: 30 * time.Second,
	})
}

func failureRules(rep *RepairReport) map[string]int {
	rules := map[string]int{}
	for _, f := range rep.Failures {
		rules[f.Repairer+" "+f.Rule]++
	}
	return rules
}

// TestRepairReaders: a reader that cannot read the consistent image is
// skipped on that image (counted, and never judged after); one that reads
// it differently from Readers[0] stops the run; a reader that cannot read
// a consistent repaired image, or reads it short, breaks a rule.
func TestRepairReaders(t *testing.T) {
	good := []Repairer{testRepairer{"good"}}
	kinds := []check.Corruption{check.CorruptL2PastEOF, check.CorruptL1Misaligned}
	rep, err := runRepairWith(t, 2, good, []GuestReader{testReader{}, pathReader{"fail", ""}, pathReader{"none", ""}}, kinds...)
	if err != nil {
		t.Fatal(err)
	}
	if rep.ReaderSkips != 2 || len(rep.Failures) != 0 || rep.Plants == 0 {
		t.Errorf("a reader failing on every image: %d skips over 2 images, %d plants, failures %v", rep.ReaderSkips, rep.Plants, rep.Failures)
	}
	_, err = runRepairWith(t, 1, good, []GuestReader{testReader{}, pathReader{"flip", "orig"}}, kinds...)
	if err == nil || !strings.Contains(err.Error(), "test:flip-reader and impl/qed read the consistent image differently") {
		t.Errorf("a reader disagreeing on the consistent image: err %v", err)
	}
	for how, rule := range map[string]string{"fail": "unreadable", "short": "untouched-changed"} {
		rep, err := runRepairWith(t, 1, good, []GuestReader{testReader{}, pathReader{how, "repair"}}, kinds...)
		if err != nil {
			t.Fatal(err)
		}
		got := failureRules(rep)
		if want := map[string]int{"test:good " + rule: rep.Plants}; rep.Plants == 0 || !mapsEqual(got, want) {
			t.Errorf("a reader %s on the repaired images: failures %v, want %v", how, got, want)
		}
	}
}

func mapsEqual(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestRepairAccounts: a refusal breaks no rule and counts as reported
// damage; a repair that reports damage but clears NEED_CHECK over it claims
// the image clean; the report's per-path counts (the plants not
// applicable too) and the differences between two checks (every plant,
// "refused") add up, sorted.
func TestRepairAccounts(t *testing.T) {
	// The seed's images have a single L2 table: no overlap to plant.
	kinds := []check.Corruption{check.CorruptL2PastEOF, check.CorruptLeak, check.CorruptL2Overlap, check.CorruptL1Misaligned}
	rs := []Repairer{testRepairer{"good"}, testRepairer{"refuse"}, testRepairer{"report-clear"}}
	rep, err := runRepairWith(t, 2, rs, []GuestReader{testReader{}}, kinds...)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d plants, %d runs, consistent %v, unrepaired %v, failures %v", rep.Plants, rep.Runs, rep.Consistent, rep.Unrepaired, failureRules(rep))
	if rep.Images != 2 || rep.Runs != 3*rep.Plants || rep.NotApplicable != 4 || rep.Plants != 2*2*(len(kinds)-1) {
		t.Fatalf("%d images, %d plants, %d not applicable, %d runs", rep.Images, rep.Plants, rep.NotApplicable, rep.Runs)
	}
	// Leaks leave a consistent image: 2 images x NEED_CHECK set and clear.
	leaks := 4
	if rep.Consistent["test:good"] != rep.Plants || rep.Unrepaired["test:good"] != 0 {
		t.Errorf("good: %d consistent, %d unrepaired of %d", rep.Consistent["test:good"], rep.Unrepaired["test:good"], rep.Plants)
	}
	if rep.Consistent["test:refuse"] != leaks || rep.Unrepaired["test:refuse"] != rep.Plants-leaks {
		t.Errorf("refuse: %d consistent, %d unrepaired of %d", rep.Consistent["test:refuse"], rep.Unrepaired["test:refuse"], rep.Plants)
	}
	// report-clear leaves NEED_CHECK clear over what it leaves on every
	// plant but the leaks: it did not refuse the image, so its report does
	// not excuse the flag (refuse leaves the same images, unwritten, and
	// breaks no rule).
	if got, want := failureRules(rep), map[string]int{"test:report-clear claims-clean": rep.Plants - leaks}; !mapsEqual(got, want) {
		t.Errorf("failures %v, want %v", got, want)
	}
	refused := 0
	for i, d := range rep.Differences {
		if i > 0 {
			a := rep.Differences[i-1]
			if ka, kb := fmt.Sprint(a.Corruption, " ", a.NeedCheck), fmt.Sprint(d.Corruption, " ", d.NeedCheck); ka > kb {
				t.Errorf("differences not sorted: %+v before %+v", a, d)
			}
		}
		if d.A == "test:good" && d.B == "test:refuse" {
			if d.What != "refused" || d.Count != 2 {
				t.Errorf("good and refuse: %+v, want refused on both images", d)
			}
			refused += d.Count
		}
	}
	if refused != rep.Plants {
		t.Errorf("good and refuse differ (refused) on %d plants of %d: %+v", refused, rep.Plants, rep.Differences)
	}
}

// TestRepairBounds: the defaults (one image at least, a 60 s timeout) and
// the allocation bound of an in-process repair, given and by default
// (256 MiB and 16 times the file).
func TestRepairBounds(t *testing.T) {
	cfg := RepairConfig{Seed: 3, Reference: qedtarget.Target{}, Corruptions: []check.Corruption{check.CorruptL2PastEOF},
		Repairers: []Repairer{testRepairer{"good"}}, Readers: []GuestReader{testReader{}}, Dir: t.TempDir()}
	rep, err := RunRepair(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Images != 1 || rep.Plants != 2 || len(rep.Failures) != 0 {
		t.Errorf("defaults: %d images, %d plants, failures %v", rep.Images, rep.Plants, rep.Failures)
	}
	cfg.MemoryBound = 1
	rep, err = RunRepair(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got := failureRules(rep); !mapsEqual(got, map[string]int{"test:good memory": 2}) {
		t.Errorf("a 1-byte bound: failures %v", got)
	}
	cfg.MemoryBound = 0
	cfg.Repairers = []Repairer{testRepairer{"alloc"}}
	rep, err = RunRepair(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got := failureRules(rep); !mapsEqual(got, map[string]int{"test:alloc memory": 2}) {
		t.Errorf("512 MiB allocated under the default bound: failures %v", got)
	}
	cfg.MemoryBound = 1 << 30
	rep, err = RunRepair(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Failures) != 0 {
		t.Errorf("512 MiB allocated under a 1 GiB bound: failures %v", rep.Failures)
	}
}

// TestRepairFailureString: a failure names its plant, path and rule.
func TestRepairFailureString(t *testing.T) {
	f := RepairFailure{Image: 2, Corruption: "leak", NeedCheck: true, Seed: 7, Repairer: "r", Rule: "hang", What: "still running"}
	if got, want := f.String(), "image 2 leak need-check=true seed 7: r: hang: still running"; got != want {
		t.Errorf("%q, want %q", got, want)
	}
}

// TestTargetRepairerReports: an in-process target's check reports nothing
// left on a plant it repairs, and its open repairs an image whose
// NEED_CHECK is set; the image is consistent afterwards.
func TestTargetRepairerReports(t *testing.T) {
	wl, _ := GenerateWorkload(3, 0, repairGen())
	files, err := consistentImage(qedtarget.Target{}, wl)
	if err != nil {
		t.Fatal(err)
	}
	for _, open := range []bool{false, true} {
		img, _, err := check.Plant(files[workload.ImageName], check.CorruptL2PastEOF, true, 1)
		if err != nil {
			t.Fatal(err)
		}
		p, err := writeFiles(filepath.Join(t.TempDir(), "t"), files, img)
		if err != nil {
			t.Fatal(err)
		}
		r := TargetRepairer{T: qedtarget.Target{}, Open: open}
		unrep, err := r.Repair(context.Background(), p)
		if err != nil || unrep != nil {
			t.Errorf("%s: unrepaired %q, err %v", r.Name(), unrep, err)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if cr := check.Structure(b); !cr.IsConsistent() || cr.NeedCheck() {
			t.Errorf("%s left %v, NEED_CHECK %v", r.Name(), cr.Kinds(), cr.NeedCheck())
		}
	}
}

// repairGen is RunRepair's default generation.
func repairGen() workload.GenConfig {
	g := workload.DefaultGenConfig()
	g.NoExtras()
	g.NoImageCommands()
	g.MaxClusters = min(g.MaxClusters, 64)
	return g
}

// TestRepairOutcomeSame: a crash state's second repair must reach what one
// repair reached: consistency, NEED_CHECK when consistent, readability and
// the guest contents.
func TestRepairOutcomeSame(t *testing.T) {
	want := repairOutcome{guest: []byte{1, 2}, consistent: true}
	for _, c := range []struct {
		got  repairOutcome
		diff string
	}{
		{repairOutcome{guest: []byte{1, 2}, consistent: true}, ""},
		{repairOutcome{guest: []byte{1, 2}, consistent: false}, "consistent false, one repair true"},
		{repairOutcome{guest: []byte{1, 2}, consistent: true, needCheck: true}, "NEED_CHECK true, one repair false"},
		{repairOutcome{consistent: true}, "readable false, one repair true"},
		{repairOutcome{guest: []byte{1, 3}, consistent: true}, "guest contents differ from one repair's"},
	} {
		if got := want.same(c.got); got != c.diff {
			t.Errorf("%+v: %q, want %q", c.got, got, c.diff)
		}
	}
	// NEED_CHECK is compared only when consistent (an inconsistent image
	// may carry it either way).
	a, b := repairOutcome{guest: []byte{1}}, repairOutcome{guest: []byte{1}, needCheck: true}
	if got := a.same(b); got != "" {
		t.Errorf("inconsistent both, NEED_CHECK differing: %q", got)
	}
}

// closeCounting counts the disks its target opened and those closed.
type closeCounting struct {
	target.Target
	opened, closed *int
}

type countedDisk struct {
	target.Disk
	closed *int
}

func (d countedDisk) Close() error { *d.closed++; return d.Disk.Close() }

func (t closeCounting) Open(fs afero.Fs, p string, o target.OpenOptions) (target.Disk, error) {
	d, err := t.Target.Open(fs, p, o)
	if err != nil {
		return nil, err
	}
	*t.opened++
	return countedDisk{d, t.closed}, nil
}

// TestConsistentImageCloses: the consistent image a repair run corrupts is
// the one its workload left closed (a target may hold writes until then).
func TestConsistentImageCloses(t *testing.T) {
	var opened, closed int
	wl, _ := GenerateWorkload(3, 0, repairGen())
	if _, err := consistentImage(closeCounting{qedtarget.Target{}, &opened, &closed}, wl); err != nil {
		t.Fatal(err)
	}
	if opened == 0 || closed != opened {
		t.Errorf("%d disks opened, %d closed", opened, closed)
	}
}

// TestFirstUntouchedDiff: the first differing byte outside the touched
// clusters, whatever lies after it; a difference inside them, or in a
// short last cluster, is found or excused as its cluster is.
func TestFirstUntouchedDiff(t *testing.T) {
	const cs = 4
	p := &check.Planted{Touched: []check.Range{{Off: 12, Len: 4}}}
	a := make([]byte, 18) // clusters 0-3 and a short cluster 4
	for _, c := range []struct {
		diffs []int
		want  int64 // -1: none
	}{
		{nil, -1},
		{[]int{13}, -1},         // touched cluster 3 alone
		{[]int{6, 13}, 6},       // untouched cluster 1, touched 3 after it
		{[]int{13, 17}, 17},     // the short last cluster
		{[]int{5, 7, 13}, 5},    // the first byte of several
		{[]int{0, 13, 17}, 0},   // at 0
		{[]int{12, 15, 16}, 16}, // past the touched range
	} {
		b := bytes.Clone(a)
		for _, d := range c.diffs {
			b[d] = 1
		}
		off, ok := firstUntouchedDiff(p, a, b, cs)
		if c.want < 0 && ok || c.want >= 0 && (!ok || off != c.want) {
			t.Errorf("differences at %v: %d, %v; want %d", c.diffs, off, ok, c.want)
		}
	}
}

// TestRepairGuestDifference: two checks that both repair but leave
// different guest data differ on "guest-data" alone, as read by the
// first reader.
func TestRepairGuestDifference(t *testing.T) {
	rep, err := runRepairWith(t, 2, []Repairer{testRepairer{"good"}, testRepairer{"zero-data"}},
		[]GuestReader{testReader{}}, check.CorruptL2PastEOF, check.CorruptL1Misaligned, check.CorruptLeak)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, d := range rep.Differences {
		if d.A != "test:good" || d.B != "test:zero-data" || d.What != "guest-data" {
			t.Errorf("difference %+v", d)
		}
		n += d.Count
	}
	if n == 0 {
		t.Errorf("no guest-data difference over %d plants: %+v", rep.Plants, rep.Differences)
	}
	t.Logf("%d plants, %d differ", rep.Plants, n)
}

// allocRepairer is an in-process path that allocates n bytes (in 1 MiB
// pieces, garbage at once) and repairs nothing.
type allocRepairer struct{ n int }

func (allocRepairer) Name() string    { return "test:alloc-n" }
func (allocRepairer) Check() bool     { return true }
func (allocRepairer) InProcess() bool { return true }
func (r allocRepairer) Repair(context.Context, string) ([]string, error) {
	for range r.n >> 20 {
		allocSink = make([]byte, 1<<20)
	}
	allocSink = nil
	return nil, nil
}

// TestRepairDefaultMemoryBound: with no bound given, an in-process repair
// of a file of size bytes may allocate 256 MiB plus 16 times size: of an
// 8 MiB file, 320 MiB passes and 400 MiB is a failure.
func TestRepairDefaultMemoryBound(t *testing.T) {
	cfg := RepairConfig{Timeout: 30 * time.Second}
	for _, c := range []struct {
		alloc int
		fails bool
	}{{320 << 20, false}, {400 << 20, true}} {
		var rules []string
		unrep, err, ok := runRepair(context.Background(), cfg, allocRepairer{c.alloc}, "unused", 8<<20, func(rule, format string, args ...any) {
			rules = append(rules, rule+": "+fmt.Sprintf(format, args...))
		})
		if !ok || err != nil || unrep != nil || (len(rules) > 0) != c.fails {
			t.Errorf("%d MiB allocated: ok %v, err %v, unrepaired %v, failures %v; want a failure %v", c.alloc>>20, ok, err, unrep, rules, c.fails)
		}
	}
}

// TestTargetReader: an in-process target's reader reads the guest as
// impl/qed does, and fails on a path that is no image.
func TestTargetReader(t *testing.T) {
	wl, _ := GenerateWorkload(3, 0, repairGen())
	files, err := consistentImage(qedtarget.Target{}, wl)
	if err != nil {
		t.Fatal(err)
	}
	p, err := writeFiles(filepath.Join(t.TempDir(), "r"), files, nil)
	if err != nil {
		t.Fatal(err)
	}
	want, err := testReader{}.ReadGuest(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	r := TargetReader{qedtarget.Target{}}
	if got, err := r.ReadGuest(context.Background(), p); err != nil || !bytes.Equal(got, want) || len(want) == 0 {
		t.Errorf("%s read %d bytes (equal %v), %v; impl/qed %d", r.Name(), len(got), bytes.Equal(got, want), err, len(want))
	}
	if got, err := r.ReadGuest(context.Background(), p+".missing"); err == nil {
		t.Errorf("a missing image read: %d bytes", len(got))
	}
}

// deadlineRepairer returns its own deadline's error (a tool's timeout of
// its own) at once, long before the judge's.
type deadlineRepairer struct{}

func (deadlineRepairer) Name() string    { return "test:own-deadline" }
func (deadlineRepairer) Check() bool     { return true }
func (deadlineRepairer) InProcess() bool { return true }
func (deadlineRepairer) Repair(context.Context, string) ([]string, error) {
	return nil, fmt.Errorf("a tool's own timeout: %w", context.DeadlineExceeded)
}

// TestRepairOwnDeadlineRefuses: a repair returning a deadline error of its
// own while the judge's timeout has not passed refused the image; it did
// not hang.
func TestRepairOwnDeadlineRefuses(t *testing.T) {
	var fails []string
	unrep, err, ok := runRepair(context.Background(), RepairConfig{Timeout: time.Minute}, deadlineRepairer{}, "unused", 0,
		func(rule, format string, args ...any) { fails = append(fails, rule+": "+fmt.Sprintf(format, args...)) })
	if !ok || err == nil || unrep != nil || len(fails) != 0 {
		t.Errorf("ok %v, err %v, unrepaired %v, failures %v; want the error returned, no failure", ok, err, unrep, fails)
	}
}
