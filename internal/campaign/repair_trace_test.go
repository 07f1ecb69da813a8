package campaign

import (
	"context"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/afero"

	"github.com/qedtorture/qedtorture/crashsim"
	"github.com/qedtorture/qedtorture/impl/qed/qedtarget"
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
type recordedRepairer struct {
	r   FSRepairer
	how string
}

func (r recordedRepairer) Name() string    { return "recorded " + r.r.Name() }
func (r recordedRepairer) Check() bool     { return r.r.Check() }
func (r recordedRepairer) InProcess() bool { return false }
func (r recordedRepairer) Repair(_ context.Context, p string) ([]string, error) {
	return nil, r.r.RepairFS(afero.NewOsFs(), p)
}
func (r recordedRepairer) Reader() GuestReader { return fsGuestReader{r.r} }

func (r recordedRepairer) RecordRepair(_ context.Context, dir, tracePath string) (*crashsim.Trace, error) {
	if r.how == "refuse-record" {
		return nil, os.ErrInvalid
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

func repairCrashesRecorded(t *testing.T, rs ...Repairer) (*RepairCrashReport, error) {
	t.Helper()
	return RepairCrashes(context.Background(), RepairConfig{
		Seed: 3, Images: 1, Reference: qedtarget.Target{}, Repairers: rs, Dir: t.TempDir(), Timeout: 30 * time.Second,
		Corruptions: []check.Corruption{check.CorruptL2PastEOF, check.CorruptL1Misaligned, check.CorruptHeaderField},
	}, 4, 0)
}

// TestRepairCrashesRecorded: a recorded out-of-process repair path
// (repairCrashTrace) judges what the in-process way judges for the same
// path: the same plants recorded and refused, crash states besides each
// run's end, none differing for impl/qed's repair, and the broken
// clear-first repair caught; a recording that does not replay to what the
// run left is refused, naming why; a recorder that refuses is counted.
func TestRepairCrashesRecorded(t *testing.T) {
	for _, how := range []string{"good", "clear-first"} {
		t.Run(how, func(t *testing.T) {
			in, err := repairCrashesRecorded(t, testRepairer{how})
			if err != nil {
				t.Fatal(err)
			}
			rr := recordedRepairer{r: testRepairer{how}}
			rec, err := repairCrashesRecorded(t, rr)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("in process: %d plants, %d refused, %d states, %d differ; recorded: %d plants, %d refused, %d states, %d differ",
				in.Plants, in.Refused, in.States, len(in.Failures), rec.Plants, rec.Refused, rec.States, len(rec.Failures))
			if rec.Plants == 0 || rec.Plants != in.Plants || rec.Refused != in.Refused || rec.Refused == 0 || rec.Unrecorded != 0 {
				t.Errorf("recorded: %d plants, %d refused, %d unrecorded; in process: %d plants, %d refused", rec.Plants, rec.Refused, rec.Unrecorded, in.Plants, in.Refused)
			}
			if rec.States <= int64(rec.Plants) || rec.PathStates[rr.Name()] != rec.States || len(rec.PathStates) != 1 {
				t.Errorf("%d crash states (%v) for %d plants: want states besides each run's end, all of %s", rec.States, rec.PathStates, rec.Plants, rr.Name())
			}
			if wantFail := how == "clear-first"; (len(rec.Failures) > 0) != wantFail {
				t.Errorf("%d of %d states differ, want failures %v: %v", len(rec.Failures), rec.States, wantFail, rec.Failures)
			}
			for _, f := range rec.Failures {
				if !strings.HasPrefix(f, "image 0 ") || !strings.Contains(f, rr.Name()+": crash state ") {
					t.Errorf("failure %q does not name the plant, path and state", f)
				}
			}
		})
	}
	t.Run("drop-write", func(t *testing.T) {
		_, err := repairCrashesRecorded(t, recordedRepairer{r: testRepairer{"good"}, how: "drop-write"})
		if err == nil || !strings.Contains(err.Error(), "does not give the image the repair left") {
			t.Errorf("err %v, want the recording refused", err)
		}
	})
	t.Run("refuse-record", func(t *testing.T) {
		rep, err := repairCrashesRecorded(t, recordedRepairer{r: testRepairer{"good"}, how: "refuse-record"})
		if err != nil {
			t.Fatal(err)
		}
		if rep.Plants != 0 || rep.Refused == 0 || rep.States != 0 {
			t.Errorf("every recording refused: %+v", rep)
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
