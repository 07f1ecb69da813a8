package campaign

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"time"

	"github.com/spf13/afero"

	"github.com/qedtorture/qedtorture/crashsim"
	"github.com/qedtorture/qedtorture/props/check"
)

// A crash during an out-of-process repair (issue 15): QEMU's repair paths
// are recorded as QEMU's workloads are, through its blklogwrites driver,
// whose log of every write and flush QEMU issued to the image becomes a
// crashsim trace on the planted image. The crash states of that trace
// (its syncs, the sampled points and the end, under the default explore
// models, with a small per-point bound: each state costs two processes)
// are written to real files and repaired again by the same path, unrecorded;
// the result must be what the recorded, uninterrupted repair left (the
// same comparison as for an in-process repair: repairOutcome.same, the
// guest read through the path's own reader).

// A TraceRepairer is a Repairer run out of process whose runs can be
// recorded (QEMU, through blklogwrites).
type TraceRepairer interface {
	Repairer
	// RecordRepair runs the path once on the image at dir/image.qed (its
	// backing chain beside it), leaving the files as the run left them,
	// and returns the trace of the file operations the path issued on the
	// image, on the path tracePath. err is a refusal or a harness failure;
	// the engine checks that the trace replayed on the files as they were
	// gives the image the run left, and refuses the recording otherwise.
	RecordRepair(ctx context.Context, dir, tracePath string) (*crashsim.Trace, error)
	// Reader reads the guest through the same implementation, without
	// changing the file.
	Reader() GuestReader
}

// Bounds of the crash states of a recorded out-of-process repair, per
// crash point and model (crashsim's Bound and Samples).
const (
	traceRepairBound   = 16
	traceRepairSamples = 4
)

// repairCrashTrace judges the crashes of one recorded out-of-process
// repair of img (files its chain), in scratch directories under dir.
func repairCrashTrace(ctx context.Context, cfg RepairConfig, r TraceRepairer, files map[string][]byte, img []byte, seed uint64, sampledPoints int, what string, rep *RepairCrashReport) error {
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = 60 * time.Second
	}
	start, err := plantedStart(files, img)
	if err != nil {
		return err
	}
	recDir := filepath.Join(cfg.Dir, "record")
	p, err := writeFiles(recDir, files, img)
	if err != nil {
		return err
	}
	rctx, cancel := context.WithTimeout(ctx, timeout)
	trace, err := r.RecordRepair(rctx, recDir, ImagePath)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		rep.Refused++
		return nil
	}
	after, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	end, err := start.Replay(trace, int64(len(trace.Ops)), crashsim.Options{})
	if err != nil {
		return fmt.Errorf("campaign: repair crashes: %s: replaying the recording: %w", what, err)
	}
	if got, err := afero.ReadFile(end, ImagePath); err != nil || !bytes.Equal(got, after) {
		return fmt.Errorf("campaign: repair crashes: %s: the recorded trace replayed does not give the image the repair left (%v)", what, err)
	}
	want, err := outcomeOn(ctx, r.Reader(), p, after)
	if err != nil {
		return err
	}
	rep.Plants++
	run := &crashsim.Run{Start: start, Trace: trace, Syncs: map[int64]*crashsim.Point{}}
	for k, op := range trace.Ops {
		if op.Kind != crashsim.OpSync {
			continue
		}
		fs, err := start.Replay(trace, int64(k), crashsim.Options{})
		if err != nil {
			return err
		}
		if run.Syncs[int64(k)], err = fs.Point(); err != nil {
			return err
		}
	}
	if run.End, err = end.Point(); err != nil {
		return err
	}
	o := crashsim.ExploreOptions{Seed: seed, SampledPoints: sampledPoints, Bound: traceRepairBound, Samples: traceRepairSamples, MaxFailures: -1}
	stDir := filepath.Join(cfg.Dir, "crash")
	er, err := run.Explore(o, func(st crashsim.State) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		sf := map[string][]byte{}
		ents, err := afero.ReadDir(st.FS, Dir)
		if err != nil {
			return err
		}
		for _, e := range ents {
			if sf[e.Name()], err = afero.ReadFile(st.FS, path.Join(Dir, e.Name())); err != nil {
				return err
			}
		}
		sp, err := writeFiles(stDir, sf, nil)
		if err != nil {
			return err
		}
		rctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		if _, err := r.Repair(rctx, sp); err != nil {
			return fmt.Errorf("second repair: %w", err)
		}
		b, err := os.ReadFile(sp)
		if err != nil {
			return err
		}
		got, err := outcomeOn(rctx, r.Reader(), sp, b)
		if err != nil {
			return err
		}
		if d := want.same(got); d != "" {
			return errors.New(d)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("campaign: repair crashes: %s: %w", what, err)
	}
	if cerr := ctx.Err(); cerr != nil {
		return cerr
	}
	rep.States += er.States
	rep.PathStates[r.Name()] += er.States
	for _, f := range er.Failures {
		rep.Failures = append(rep.Failures, fmt.Sprintf("%s: %v", what, f))
	}
	return nil
}

// outcomeOn is what a repair left in the image at p (contents b), the
// guest read through rd (nil when it cannot read it).
func outcomeOn(ctx context.Context, rd GuestReader, p string, b []byte) (repairOutcome, error) {
	cr := check.Structure(b)
	o := repairOutcome{consistent: cr.IsConsistent(), needCheck: cr.NeedCheck()}
	g, err := rd.ReadGuest(ctx, p)
	if ctx.Err() != nil {
		return o, ctx.Err()
	}
	if err == nil {
		o.guest = g
	}
	return o, nil
}
