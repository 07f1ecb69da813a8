package qemu

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/qedtorture/qedtorture/crashsim"
	"github.com/qedtorture/qedtorture/internal/campaign"
	"github.com/qedtorture/qedtorture/internal/qemutool"
	"github.com/qedtorture/qedtorture/internal/strace"
	"github.com/qedtorture/qedtorture/model"
	"github.com/qedtorture/qedtorture/props/oracle"
	"github.com/qedtorture/qedtorture/props/target"
	"github.com/qedtorture/qedtorture/props/workload"
	"github.com/spf13/afero"
)

// DefaultQEMUStates is the default budget of QEMU's recovery judge:
// distinct crash states per workload.
const DefaultQEMUStates = 24

// Driver is QEMU as a campaign.Driver: each workload runs through one
// qemu-io process over blklogwrites (Record), and the recording is handed
// to the engine as the snapshot taken at the first open (Base) and the
// log as a crashsim trace; the engine rebuilds every crash point from
// them. QEMU has no in-process recoverer (Recoverer is nil: the engine's
// Reference, impl/qed, recovers every distinct state); its own recovery is
// a budgeted judge (RecoveryJudge).
type Driver struct {
	Tool *qemutool.Tool
	// Ends are how runs end, chosen per workload by its seed (nil =
	// close, abort, kill), so that a minimization or a replay of a
	// workload ends it the same way.
	Ends []End
	// QEMUStates is the budget of QEMU's recovery judge: distinct states
	// per workload (<0 all, 0 none).
	QEMUStates int

	// pool holds the long-lived qemu-io processes QEMU's recovery judge
	// recovers crash states in (one per state in flight: JudgeParallel
	// per worker); Close
	// ends them.
	pool recoverPool
}

var (
	_ campaign.Driver           = (*Driver)(nil)
	_ campaign.Runner           = (*Driver)(nil)
	_ campaign.OverlappedDriver = (*Driver)(nil)
)

// WorkloadsInFlight is the workloads each campaign worker keeps in flight
// with QEMU (campaign.OverlappedDriver): a workload spends most of its
// wall time in round trips to QEMU's processes (its recording, QEMU's
// recovery judge), so one is recorded or judged by QEMU while another is
// checked in process.
const WorkloadsInFlight = 2

// InFlight implements campaign.OverlappedDriver.
func (*Driver) InFlight() int { return WorkloadsInFlight }

// Name implements campaign.Driver.
func (*Driver) Name() string { return "qemu" }

// Adapt implements campaign.Driver with Adapt.
func (*Driver) Adapt(w *workload.Workload) (*workload.Workload, []campaign.Adaptation) {
	c, ad := Adapt(w)
	var out []campaign.Adaptation
	for _, a := range ad {
		out = append(out, campaign.Adaptation{Kind: string(a.Quirk), What: a.What})
	}
	return c, out
}

// EndFor is how the run of the workload with seed ends.
func (d *Driver) EndFor(seed uint64) End {
	ends := d.Ends
	if len(ends) == 0 {
		ends = []End{EndClose, EndAbort, EndKill}
	}
	return ends[seed%uint64(len(ends))]
}

// Record implements campaign.Driver: Record in a scratch directory, the
// QEMU processes killed when ctx is cancelled.
func (d *Driver) Record(ctx context.Context, w *workload.Workload, o campaign.RecordOptions) (*campaign.Recording, error) {
	if o.Faults != "" {
		return nil, errors.New("qemu: faults are injected in process only (--fault)")
	}
	dir, remove, err := tempDir("qedtorture-qemu-w-")
	if err != nil {
		return nil, fmt.Errorf("qemu: %w", err)
	}
	defer remove()
	ro := RecordOptions{}
	if o.Create {
		st, err := strace.Path()
		if err != nil {
			// Counted and named in the report's skip reasons, not a
			// silent fall back to an unrecorded creation.
			return nil, fmt.Errorf("qemu: recording the creation: %w (%w)", err, campaign.ErrSkip)
		}
		ro = RecordOptions{Create: true, Over: o.CreateOver, Strace: st}
	}
	qr, err := RecordWith(d.Tool.WithContext(ctx), w, dir, d.EndFor(o.Seed), ro)
	if cerr := ctx.Err(); cerr != nil && err != nil {
		// QEMU's processes were killed with the context: the run's
		// failure proves nothing about QEMU.
		return nil, cerr
	}
	var re *RunError
	if err != nil && (!errors.As(err, &re) || qr == nil) {
		return nil, err
	}
	return toCampaign(qr, re, o.Seed)
}

// toCampaign hands a QEMU recording over to the engine (with its
// creation prepended when it was recorded: create.go).
func toCampaign(qr *Recording, re *RunError, seed uint64) (*campaign.Recording, error) {
	base, err := qr.Base()
	if err != nil {
		return nil, err
	}
	rec := &campaign.Recording{W: qr.W, Seed: seed, Dir: "/", Image: imageInTree, Base: base,
		Options: crashsim.Options{}, Trace: qr.Trace, EndModel: qr.EndModel,
		Recorder: "QEMU's blklogwrites driver (the writes and flushes of QEMU's block layer)",
		Marks:    []campaign.Mark{{Op: -1, K: 0, Model: qr.Setup}}}
	for _, a := range qr.Adaptations {
		rec.Adaptations = append(rec.Adaptations, campaign.Adaptation{Kind: string(a.Quirk), What: a.What})
	}
	for _, ph := range qr.Phases {
		rec.Marks = append(rec.Marks, campaign.Mark{Op: ph.Op, K: ph.Start, Model: ph.Model})
	}
	if re != nil {
		oe := &workload.OpError{Index: re.Op, Err: re.Err}
		if re.Op >= 0 && re.Op < len(qr.W.Ops) {
			oe.Op = qr.W.Ops[re.Op]
		}
		errors.As(re.Err, &oe.Mismatch)
		rec.OpErr = oe
	}
	rec.Evidence = map[string][]byte{LogName: qr.Log, "repro.sh": []byte(qr.ScriptFrom("../base"))}
	if qr.Create != nil {
		if err := createPrefix(rec, qr.Create); err != nil {
			return nil, err
		}
		for name, b := range qr.Files {
			rec.Evidence["created"+name] = b
		}
		rec.Evidence["repro.sh"] = []byte(strings.Replace(qr.ScriptFrom("created"), "set -e\n", creationScript(qr.Create)+"set -e\n", 1))
	}
	for _, op := range qr.W.Ops {
		if op.Kind == workload.Write {
			buf := make([]byte, op.Len)
			model.Fill(buf, uint64(op.ID), op.Off)
			rec.Evidence[patternName(buf)] = buf
		}
	}
	return rec, nil
}

// Run implements campaign.Runner for differential runs (--diff): w runs
// through Target (one qemu-io process per open, no blklogwrites) on
// files in a scratch directory, and the guest data is read back after
// the clean close with qemu-img convert, QEMU's own reader.
func (d *Driver) Run(ctx context.Context, w *workload.Workload) (*campaign.Outcome, error) {
	dir, remove, err := tempDir("qedtorture-qemu-diff-")
	if err != nil {
		return nil, fmt.Errorf("qemu: %w", err)
	}
	defer remove()
	tool := d.Tool.WithContext(ctx)
	return campaign.RunTarget(Target{Tool: tool}, afero.NewOsFs(), dir, w, func(p string) ([]byte, error) {
		out := filepath.Join(dir, "final.raw")
		defer os.Remove(out)
		if _, err := tool.Img("convert", "-f", "qed", "-O", "raw", p, out); err != nil {
			return nil, err
		}
		return os.ReadFile(out)
	})
}

// Recoverer implements campaign.Driver: none in process (the engine's
// Reference recovers QEMU's crash states).
func (*Driver) Recoverer() target.Target { return nil }

// Judges implements campaign.Driver: QEMU's own recovery, on a budget.
func (d *Driver) Judges() []campaign.Judge {
	if d.QEMUStates == 0 {
		return nil
	}
	return []campaign.Judge{&RecoveryJudge{Tool: d.Tool, States: d.QEMUStates, Parallel: JudgeParallel, pool: &d.pool}}
}

// Close implements campaign.Driver: it ends the recovery judge's qemu-io
// processes (every other one ends with its workload).
func (d *Driver) Close() error { return d.pool.close() }

// RecoveryJudge is QEMU's recovery as a campaign.Judge, on a budget of
// States distinct states per workload. The Driver's judge recovers each
// state in a long-lived qemu-io process of its pool (recoverer.recover:
// opens and closes in one process), JudgeParallel states of a workload at
// once (a campaign.PreparedJudge: each in a process of its own, the
// verdicts taken in order); a RecoveryJudge made without a pool runs
// JudgeRecovery (four QEMU processes per state), one state at a time.
type RecoveryJudge struct {
	Tool   *qemutool.Tool
	States int
	// Parallel is the states of one workload judged at once (<= 1: one).
	Parallel int
	pool     *recoverPool
}

var _ campaign.PreparedJudge = (*RecoveryJudge)(nil)

// JudgeParallel is the states of one workload the Driver's recovery judge
// recovers at once. A state's recovery is about a dozen qemu-io commands,
// each a round trip between two processes that spend most of it waiting
// to be scheduled; two states in flight overlap those waits.
const JudgeParallel = 2

// Name implements campaign.Judge: the side "qemu".
func (*RecoveryJudge) Name() string { return "qemu" }

// Budget implements campaign.Judge.
func (j *RecoveryJudge) Budget() int { return j.States }

// Concurrency implements campaign.PreparedJudge.
func (j *RecoveryJudge) Concurrency() int {
	if j.pool == nil {
		return 1
	}
	return max(1, j.Parallel)
}

// Judge implements campaign.Judge.
func (j *RecoveryJudge) Judge(ctx context.Context, st *campaign.State) (*oracle.Verdict, error) {
	if j.pool == nil {
		return JudgeRecovery(j.Tool.WithContext(ctx), st.FS, path.Dir(st.Image), st.Image, st.Model)
	}
	run, err := j.Prepare(ctx, st)
	if err != nil {
		return nil, err
	}
	return run()
}

// Prepare implements campaign.PreparedJudge: the state's files are read
// now; the recovery runs in a recoverer of the pool.
func (j *RecoveryJudge) Prepare(ctx context.Context, st *campaign.State) (func() (*oracle.Verdict, error), error) {
	if j.pool == nil {
		v, err := j.Judge(ctx, st)
		return func() (*oracle.Verdict, error) { return v, err }, nil
	}
	files, err := stateFiles(st.FS, path.Dir(st.Image), st.Image)
	if err != nil {
		return nil, err
	}
	m := st.Model
	return func() (*oracle.Verdict, error) {
		r, err := j.pool.get(ctx, j.Tool)
		if err != nil {
			return nil, err
		}
		stage, msg, err := r.recover(files, m)
		if err != nil {
			r.close()
			return nil, err
		}
		j.pool.put(r)
		return verdict(stage, msg), nil
	}, nil
}
