package campaign

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/afero"

	"github.com/qedtorture/qedtorture/crashsim"
	"github.com/qedtorture/qedtorture/impl/qed/qedtarget"
	"github.com/qedtorture/qedtorture/internal/racetest"
	"github.com/qedtorture/qedtorture/props/check"
	"github.com/qedtorture/qedtorture/props/workload"
)

// recordedRepairer is a TraceRepairer made of an in-process repair path
// (it is not an FSRepairer itself, so RepairCrashes takes the way of an
// out-of-process path, as for QEMU): RecordRepair runs the path once on
// crashsim over the files of dir and returns its trace, as QEMU's
// blklogwrites log is. how: "" as is; "drop-write" drops the recording's
// last write (a recording that does not replay to what the run left);
// "refuse-record" refuses every recording (a refusal: nothing to crash).
// With within set, a recording or repair whose context has no deadline, or
// a later one than within from now, is refused.
type recordedRepairer struct {
	r      FSRepairer
	how    string
	within time.Duration
}

func (r recordedRepairer) bounded(ctx context.Context) error {
	if r.within == 0 {
		return nil
	}
	if dl, ok := ctx.Deadline(); !ok || time.Until(dl) > r.within {
		return fmt.Errorf("deadline %v (set %v), want one within %v", dl, ok, r.within)
	}
	return nil
}

func (r recordedRepairer) Name() string    { return "recorded " + r.r.Name() }
func (r recordedRepairer) Check() bool     { return r.r.Check() }
func (r recordedRepairer) InProcess() bool { return false }
func (r recordedRepairer) Repair(ctx context.Context, p string) ([]string, error) {
	if err := r.bounded(ctx); err != nil {
		return nil, err
	}
	return nil, r.r.RepairFS(afero.NewOsFs(), p)
}
func (r recordedRepairer) Reader() GuestReader { return fsGuestReader{r.r} }

func (r recordedRepairer) RecordRepair(ctx context.Context, dir, tracePath string) (*crashsim.Trace, error) {
	if r.how == "refuse-record" {
		return nil, os.ErrInvalid
	}
	if err := r.bounded(ctx); err != nil {
		return nil, err
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	files := map[string][]byte{}
	for _, e := range ents {
		if files[e.Name()], err = os.ReadFile(filepath.Join(dir, e.Name())); err != nil {
			return nil, err
		}
	}
	start, err := plantedStart(files, files[workload.ImageName])
	if err != nil {
		return nil, err
	}
	fs := start.NewFS(crashsim.Options{})
	if err := r.r.RepairFS(fs, tracePath); err != nil {
		return nil, err
	}
	for name := range files {
		b, err := afero.ReadFile(fs, path.Join(Dir, name))
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return nil, err
		}
	}
	tr := fs.Trace()
	if r.how == "drop-write" {
		for i := len(tr.Ops) - 1; i >= 0; i-- {
			if tr.Ops[i].Kind == crashsim.OpWrite {
				tr.Ops = append(tr.Ops[:i:i], tr.Ops[i+1:]...)
				break
			}
		}
	}
	return tr, nil
}

// fsGuestReader reads the guest on the real files through an FSRepairer.
type fsGuestReader struct{ r FSRepairer }

func (g fsGuestReader) Name() string { return g.r.Name() }
func (g fsGuestReader) ReadGuest(_ context.Context, p string) ([]byte, error) {
	return g.r.ReadGuestFS(afero.NewOsFs(), p)
}

// recordedKinds: two plants impl/qed repairs, one it refuses.
var recordedKinds = []check.Corruption{check.CorruptL2PastEOF, check.CorruptL1Misaligned, check.CorruptHeaderField}

func repairCrashesRecorded(t *testing.T, timeout time.Duration, rs ...Repairer) (*RepairCrashReport, error) {
	t.Helper()
	return RepairCrashes(context.Background(), RepairConfig{
		Seed: 3, Images: 1, Reference: qedtarget.Target{}, Repairers: rs, Dir: t.TempDir(), Timeout: timeout,
		Corruptions: recordedKinds,
	}, 4, 0)
}

// recordedStates counts the crash states crashsim's own recording of r's
// repairs of repairCrashesRecorded's plants gives under the bounds of a
// recorded out-of-process path: the states repairCrashTrace must explore
// from the trace alone.
func recordedStates(t *testing.T, r FSRepairer) int64 {
	t.Helper()
	wl, ws := GenerateWorkload(3, 0, repairGen())
	files, err := consistentImage(qedtarget.Target{}, wl)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, c := range recordedKinds {
		for _, nc := range []bool{true, false} {
			img, _, err := check.Plant(files[workload.ImageName], c, nc, WorkloadSeed(ws, int(c)*2+boolInt(nc)))
			if err != nil {
				t.Fatal(err)
			}
			start, err := plantedStart(files, img)
			if err != nil {
				t.Fatal(err)
			}
			o := crashsim.ExploreOptions{Start: start, Seed: ws, SampledPoints: 4, Bound: traceRepairBound, Samples: traceRepairSamples, MaxFailures: -1}
			run, err := crashsim.Record(func(fs *crashsim.FS) error { return r.RepairFS(fs, ImagePath) }, o)
			if err != nil {
				t.Fatal(err)
			}
			if run.Err != nil {
				continue // refused
			}
			er, err := run.Explore(o, func(crashsim.State) error { return nil })
			if err != nil {
				t.Fatal(err)
			}
			n += er.States
		}
	}
	return n
}

// TestRepairCrashesRecorded: a recorded out-of-process repair path
// (repairCrashTrace) judges what the in-process way judges for the same
// path: the same plants recorded and refused, crash states besides each
// run's end, none differing for impl/qed's repair, and the broken
// clear-first repair caught; a recording that does not replay to what the
// run left is refused, naming why; a recorder that refuses is counted.
func TestRepairCrashesRecorded(t *testing.T) {
	racetest.Heavy(t)
	for _, how := range []string{"good", "clear-first"} {
		t.Run(how, func(t *testing.T) {
			in, err := repairCrashesRecorded(t, 30*time.Second, testRepairer{how})
			if err != nil {
				t.Fatal(err)
			}
			rr := recordedRepairer{r: testRepairer{how}}
			rec, err := repairCrashesRecorded(t, 30*time.Second, rr)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("in process: %d plants, %d refused, %d states, %d differ; recorded: %d plants, %d refused, %d states, %d differ",
				in.Plants, in.Refused, in.States, len(in.Failures), rec.Plants, rec.Refused, rec.States, len(rec.Failures))
			if rec.Plants == 0 || rec.Plants != in.Plants || rec.Refused != in.Refused || rec.Refused == 0 || rec.Unrecorded != 0 {
				t.Errorf("recorded: %d plants, %d refused, %d unrecorded; in process: %d plants, %d refused", rec.Plants, rec.Refused, rec.Unrecorded, in.Plants, in.Refused)
			}
			if want := recordedStates(t, testRepairer{how}); rec.States != want || rec.PathStates[rr.Name()] != rec.States || len(rec.PathStates) != 1 {
				t.Errorf("%d crash states (%v) for %d plants: want %d (crashsim's own recording's), all of %s", rec.States, rec.PathStates, rec.Plants, want, rr.Name())
			}
			if rec.States <= int64(rec.Plants) {
				t.Errorf("%d crash states for %d plants: want states besides each run's end", rec.States, rec.Plants)
			}
			if wantFail := how == "clear-first"; (len(rec.Failures) > 0) != wantFail {
				t.Errorf("%d of %d states differ, want failures %v: %v", len(rec.Failures), rec.States, wantFail, rec.Failures)
			}
			perPlant := map[string]int{}
			for _, f := range rec.Failures {
				if !strings.HasPrefix(f, "image 0 ") || !strings.Contains(f, rr.Name()+": crash state ") {
					t.Errorf("failure %q does not name the plant, path and state", f)
				}
				perPlant[f[:strings.Index(f, ": crash state ")]]++
			}
			// Every failing state is named, not a plant's first alone.
			if how == "clear-first" && len(perPlant) >= len(rec.Failures) {
				t.Errorf("%d failures over %d plants: every plant's exploration stopped at its first", len(rec.Failures), len(perPlant))
			}
		})
	}
	t.Run("drop-write", func(t *testing.T) {
		_, err := repairCrashesRecorded(t, 30*time.Second, recordedRepairer{r: testRepairer{"good"}, how: "drop-write"})
		if err == nil || !strings.Contains(err.Error(), "does not give the image the repair left") {
			t.Errorf("err %v, want the recording refused", err)
		}
	})
	t.Run("refuse-record", func(t *testing.T) {
		rep, err := repairCrashesRecorded(t, 30*time.Second, recordedRepairer{r: testRepairer{"good"}, how: "refuse-record"})
		if err != nil {
			t.Fatal(err)
		}
		if rep.Plants != 0 || rep.Refused == 0 || rep.States != 0 {
			t.Errorf("every recording refused: %+v", rep)
		}
	})
	// Each recording and second repair runs under cfg.Timeout; none
	// given: 60 s.
	t.Run("timeout", func(t *testing.T) {
		for _, c := range []struct{ timeout, within time.Duration }{{10 * time.Second, 10 * time.Second}, {0, 60 * time.Second}} {
			rr := recordedRepairer{r: testRepairer{"good"}, within: c.within}
			rep, err := repairCrashesRecorded(t, c.timeout, rr)
			if err != nil {
				t.Fatalf("timeout %v: %v", c.timeout, err)
			}
			if rep.Plants != 4 || rep.Refused != 2 || len(rep.Failures) != 0 {
				t.Errorf("timeout %v: %d plants, %d refused, failures %v", c.timeout, rep.Plants, rep.Refused, rep.Failures)
			}
		}
	})
	t.Run("no-dir", func(t *testing.T) {
		_, err := RepairCrashes(context.Background(), RepairConfig{
			Seed: 3, Images: 1, Reference: qedtarget.Target{}, Repairers: []Repairer{recordedRepairer{r: testRepairer{"good"}}},
			Corruptions: []check.Corruption{check.CorruptL2PastEOF},
		}, 0, 0)
		if err == nil || !strings.Contains(err.Error(), "Dir is required to record recorded test:good") {
			t.Errorf("err %v, want Dir required", err)
		}
	})
}

// TestOutcomeOn: the outcome of an out-of-process repair reads the guest
// through the path's reader (none when it cannot read), and a context
// that ended while reading is an error, not an unreadable image.
func TestOutcomeOn(t *testing.T) {
	wl, _ := GenerateWorkload(3, 0, repairGen())
	files, err := consistentImage(qedtarget.Target{}, wl)
	if err != nil {
		t.Fatal(err)
	}
	p, err := writeFiles(filepath.Join(t.TempDir(), "o"), files, nil)
	if err != nil {
		t.Fatal(err)
	}
	b := files[workload.ImageName]
	guest, err := testReader{}.ReadGuest(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	o, err := outcomeOn(context.Background(), testReader{}, p, b)
	if err != nil || !o.consistent || o.needCheck || !bytes.Equal(o.guest, guest) {
		t.Errorf("readable: %+v (guest equal %v), %v", o, bytes.Equal(o.guest, guest), err)
	}
	o, err = outcomeOn(context.Background(), pathReader{"fail", ""}, p, b)
	if err != nil || !o.consistent || o.guest != nil {
		t.Errorf("unreadable: guest %d bytes, consistent %v, %v", len(o.guest), o.consistent, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := outcomeOn(ctx, testReader{}, p, b); !errors.Is(err, context.Canceled) {
		t.Errorf("a context ended: %v", err)
	}
}
