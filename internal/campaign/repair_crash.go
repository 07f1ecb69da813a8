package campaign

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path"

	"github.com/spf13/afero"

	"github.com/qedtorture/qedtorture/crashsim"
	"github.com/qedtorture/qedtorture/props/check"
	"github.com/qedtorture/qedtorture/props/workload"
)

// A crash during a repair (issue 15): RepairCrashes records an in-process
// repair path on crashsim (crashsim.Record), or an out-of-process one
// through its own recorder (a TraceRepairer: QEMU through blklogwrites,
// repair_trace.go), enumerates the crash states of the recording
// (crashsim.Run.Explore: the syncs, sampled points and the end, under the
// default crash models) and repairs each state again.
// Guarantee judged: the second repair brings every crash state to the same
// result as one uninterrupted repair of the planted image: the same guest
// contents (read through the path's own implementation), the same
// consistency by the independent checker and, when consistent, the same
// NEED_CHECK state. Leaks may differ (a crash may leave more of them).

// An FSRepairer is a Repairer that can also run, and read the guest, on any
// afero.Fs: an in-process implementation (impl/qed).
type FSRepairer interface {
	Repairer
	RepairFS(fs afero.Fs, path string) error
	ReadGuestFS(fs afero.Fs, path string) ([]byte, error)
}

// RepairCrashReport counts what RepairCrashes judged.
type RepairCrashReport struct {
	Plants  int // plants whose repair was recorded (refused ones are not)
	Refused int // plants the repair refused (nothing to crash)
	// Unrecorded counts plant runs of repair paths that cannot be
	// recorded (neither an FSRepairer nor a TraceRepairer: a black-box
	// program's open).
	Unrecorded int
	States     int64 // crash states repaired again and compared
	// PathStates counts the crash states repaired again per repair path
	// (its Name).
	PathStates map[string]int64
	// Failures name each state whose second repair differs.
	Failures []string
}

// RepairCrashes runs the crash-during-repair judgment for each FSRepairer
// in cfg.Repairers over cfg's images and plants; samples bounds the crash
// states per point and model (crashsim's Samples; 0: its default).
func RepairCrashes(ctx context.Context, cfg RepairConfig, sampledPoints, samples int) (*RepairCrashReport, error) {
	if cfg.Reference == nil {
		return nil, errors.New("campaign: repair crashes: Reference is required")
	}
	if cfg.Images <= 0 {
		cfg.Images = 1
	}
	if cfg.Gen.Ops == 0 {
		cfg.Gen = workload.DefaultGenConfig()
		cfg.Gen.NoExtras()        // planted corruption on the images create writes
		cfg.Gen.NoImageCommands() // the images of plain guest I/O, as before the image commands were drawn
		cfg.Gen.MaxClusters = min(cfg.Gen.MaxClusters, 64)
	}
	if cfg.Corruptions == nil {
		cfg.Corruptions = check.Corruptions()
	}
	rep := &RepairCrashReport{PathStates: map[string]int64{}}
	for w := 0; w < cfg.Images; w++ {
		wl, ws := GenerateWorkload(cfg.Seed, w, cfg.Gen)
		files, err := consistentImage(cfg.Reference, wl)
		if err != nil {
			return rep, fmt.Errorf("campaign: repair crashes: workload %d: %w", w, err)
		}
		for _, c := range cfg.Corruptions {
			for _, nc := range []bool{true, false} {
				if err := ctx.Err(); err != nil {
					return rep, err
				}
				ps := WorkloadSeed(ws, int(c)*2+boolInt(nc))
				img, _, err := check.Plant(files[workload.ImageName], c, nc, ps)
				if errors.Is(err, check.ErrNotApplicable) {
					continue
				}
				if err != nil {
					return rep, err
				}
				for _, r := range cfg.Repairers {
					what := fmt.Sprintf("image %d %v need-check=%v seed %d: %s", w, c, nc, ps, r.Name())
					var err error
					switch r := r.(type) {
					case FSRepairer:
						err = repairCrashOne(r, files, img, ws, sampledPoints, samples, what, rep)
					case TraceRepairer:
						if cfg.Dir == "" {
							return rep, errors.New("campaign: repair crashes: Dir is required to record " + r.Name())
						}
						err = repairCrashTrace(ctx, cfg, r, files, img, ws, sampledPoints, what, rep)
					default:
						rep.Unrecorded++
					}
					if err != nil {
						return rep, err
					}
				}
			}
		}
	}
	return rep, nil
}

// repairOutcome is what a repair left, as compared after a crash.
type repairOutcome struct {
	guest      []byte
	consistent bool
	needCheck  bool
}

func outcome(r FSRepairer, fs afero.Fs, p string) (repairOutcome, error) {
	b, err := afero.ReadFile(fs, p)
	if err != nil {
		return repairOutcome{}, err
	}
	cr := check.Structure(b)
	o := repairOutcome{consistent: cr.IsConsistent(), needCheck: cr.NeedCheck()}
	// An image the implementation cannot read (left corrupt by an open
	// that trusted NEED_CHECK clear) has no guest contents: nil.
	o.guest, _ = r.ReadGuestFS(fs, p)
	return o, nil
}

func (o repairOutcome) same(p repairOutcome) string {
	switch {
	case o.consistent != p.consistent:
		return fmt.Sprintf("consistent %v, one repair %v", p.consistent, o.consistent)
	case o.consistent && o.needCheck != p.needCheck:
		return fmt.Sprintf("NEED_CHECK %v, one repair %v", p.needCheck, o.needCheck)
	case (o.guest == nil) != (p.guest == nil):
		return fmt.Sprintf("readable %v, one repair %v", p.guest != nil, o.guest != nil)
	case !bytes.Equal(o.guest, p.guest):
		return "guest contents differ from one repair's"
	}
	return ""
}

// plantedStart is the crashsim image a repair crashes from: files (the
// image's chain, by name under Dir) with img in place of the image.
func plantedStart(files map[string][]byte, img []byte) (*crashsim.Image, error) {
	named := map[string][]byte{}
	for n, b := range files {
		if n == workload.ImageName {
			b = img
		}
		named[path.Join(Dir, n)] = b
	}
	return crashsim.NewImage(named)
}

func repairCrashOne(r FSRepairer, files map[string][]byte, img []byte, seed uint64, sampledPoints, samples int, what string, rep *RepairCrashReport) error {
	start, err := plantedStart(files, img)
	if err != nil {
		return err
	}
	// One uninterrupted repair: the result every crash state must reach.
	ref := start.NewFS(crashsim.Options{ImplicitDirSync: true, Final: true})
	if err := r.RepairFS(ref, ImagePath); err != nil {
		rep.Refused++
		return nil
	}
	want, err := outcome(r, ref, ImagePath)
	if err != nil {
		rep.Failures = append(rep.Failures, fmt.Sprintf("%s: reading the repaired image: %v", what, err))
		return nil
	}
	rep.Plants++
	o := crashsim.ExploreOptions{Start: start, Seed: seed, SampledPoints: sampledPoints, Samples: samples,
		MaxFailures: -1, FS: crashsim.Options{ImplicitDirSync: true}}
	run, err := crashsim.Record(func(fs *crashsim.FS) error { return r.RepairFS(fs, ImagePath) }, o)
	if err != nil {
		return fmt.Errorf("campaign: repair crashes: %s: recording: %w", what, err)
	}
	er, err := run.Explore(o, func(st crashsim.State) error {
		if err := r.RepairFS(st.FS, ImagePath); err != nil {
			return fmt.Errorf("second repair: %w", err)
		}
		got, err := outcome(r, st.FS, ImagePath)
		if err != nil {
			return fmt.Errorf("reading after the second repair: %w", err)
		}
		if d := want.same(got); d != "" {
			return errors.New(d)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("campaign: repair crashes: %s: %w", what, err)
	}
	rep.States += er.States
	rep.PathStates[r.Name()] += er.States
	for _, f := range er.Failures {
		rep.Failures = append(rep.Failures, fmt.Sprintf("%s: %v", what, f))
	}
	return nil
}
