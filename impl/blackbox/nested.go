package blackbox

import (
	"context"
	"fmt"

	"github.com/qedtorture/qedtorture/crashsim"
	"github.com/qedtorture/qedtorture/internal/campaign"
	"github.com/qedtorture/qedtorture/props/workload"
	"github.com/spf13/afero"
)

var _ campaign.RecoveryRecorder = (*Driver)(nil)

// RecordRecovery implements campaign.RecoveryRecorder: the program's own
// recovery of a crash state (issue 14.1), recorded with strace by the
// recorder of its workloads. The crash state's files are written into a
// scratch directory; the program is started under strace on the image
// (its writable open: whatever check or repair it does there is recorded),
// reads back the model's uncertain ranges, writes one sector at guest
// offset 0, flushes and quits (campaign.RunRecovery). strace's output
// becomes the recording's trace over the files as they were at the start
// (Snapshot), checked against the files the program left (Verify); each
// recovery step's mark is at the prompt before its command, as a guest
// op's is in a workload. The nested judge then judges that trace's crash
// states as crashes during recovery, with real directory semantics
// relaxed as for a workload (ImplicitDirSync: the recovery creates no
// file).
func (d *Driver) RecordRecovery(ctx context.Context, st *campaign.State) (*campaign.Recording, error) {
	r, remove, err := stateRun(d, st, "exec: recovery")
	if err != nil {
		return nil, err
	}
	defer remove()
	fs := afero.NewBasePathFs(afero.NewOsFs(), r.dir)
	m := st.Model.Clone()
	tgt := &execTarget{r: r, ctx: ctx}
	opErr := campaign.RunRecovery(tgt, fs, "/"+workload.ImageName, m, func(op int) {
		r.mu.Lock()
		defer r.mu.Unlock()
		n := 0
		if r.disk != nil {
			n = r.disk.commands()
		}
		r.marks = append(r.marks, pendingMark{op: op, seg: len(r.segs) - 1, commands: n, model: m.Clone()})
	})
	r.kill()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	rec := &campaign.Recording{Dir: "/", Image: "/" + workload.ImageName, Options: crashsim.Options{ImplicitDirSync: true},
		EndModel: m.Clone(), OpErr: opErr, Recovery: true,
		Recorder: "strace (the program's own recovery: writable open, one write, flush, quit)"}
	if st.Rec != nil {
		rec.W, rec.Seed = st.Rec.W, st.Rec.Seed
	}
	if r.base == nil {
		// The open failed before the program started (its files could
		// not be snapshotted): not a finding about the program.
		return nil, fmt.Errorf("exec: recovery of %s: %v", st.ID, opErr)
	}
	if err := r.finish(rec); err != nil {
		return nil, fmt.Errorf("exec: recovery of %s: %w", st.ID, err)
	}
	return rec, nil
}
