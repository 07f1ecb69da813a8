package campaign

import (
	"errors"
	"fmt"
	"slices"

	"github.com/qedtorture/qedtorture/crashsim"
	"github.com/qedtorture/qedtorture/faultfs"
	"github.com/qedtorture/qedtorture/props/target"
	"github.com/qedtorture/qedtorture/props/workload"
)

// Faults during the setup (RecordOptions.CreateFaults; the "setup" step
// of a fault sweep, faultsweep.go).
//
// The drawn faults start after the setup, so the error returns of the
// creation (impl/qed's Create, writeNewImage, syncDir, and the first
// open's) are reached by no campaign. A setup fault runs the setup
// (the backing chain, the image's creation, its first open) through a
// fault layer, recorded as a creation is (create.go: real directory
// semantics, the image's directory durable before). An injected error
// the setup surfaces ends the run there; what a failed creation may
// leave is what a crash during it may leave:
//
//   - every crash state from the start of the creation to the end of
//     the run, and the state right after the failure (the end point,
//     each of its states), is judged by the creation judge, unchanged:
//     the image absent (its name never made durable), the complete image
//     of the requested geometry passing the whole oracle (the failure
//     came after it was complete: the first open), or, over an old
//     image, the old image intact or a file without the magic; never a
//     header with the magic over anything else (an image that lies:
//     TestSetupFaultCatchesLyingCreate). A file without the magic under
//     a new name is not excused: a creation makes the name durable only
//     once the image is complete, failed or not;
//   - an error that is not the injected one (errors.Is) fails the setup:
//     a failure of stage setup, as any setup that cannot be done.
//
// When the setup survives its fault (an error it may ignore: the sync of
// a directory that cannot be opened), the run goes on, judged as any
// faulted run.

// setupFailed ends the recording of a run whose setup failed with err
// under CreateFaults: the run's crash states are all creation states
// (CreateEnd past the end point), judged against the model of the setup
// (built again without faults). An error that is not the injected one is
// returned as the setup's failure.
func setupFailed(tgt target.Target, w *workload.Workload, rec *Recording, fs *crashsim.FS, createFrom int64, err error) (*Recording, error) {
	if !slices.ContainsFunc(rec.Injected, func(in faultfs.Injection) bool { return in.Err != nil && errors.Is(err, in.Err) }) {
		return nil, fmt.Errorf("campaign: setup: %w", err)
	}
	m, merr := workload.NewExec(tgt, crashsim.New(fsOptions), Dir, w)
	if merr != nil {
		return nil, fmt.Errorf("campaign: setup: the model of the setup: %w", merr)
	}
	if m.Disk != nil {
		m.Disk.Close()
	}
	rec.OpErr = &workload.OpError{Index: -1, Err: fmt.Errorf("creation (setup): %w", err)}
	rec.Trace = fs.Trace()
	if rec.End, err = fs.Point(); err != nil {
		return nil, fmt.Errorf("campaign: end point: %w", err)
	}
	rec.SetupEnd, rec.CreateEnd = createFrom, rec.End.K()+1
	rec.Marks = []Mark{{Op: -1, K: createFrom, Model: m.Model.Clone()}}
	rec.EndModel = m.Model.Clone()
	return rec, nil
}
