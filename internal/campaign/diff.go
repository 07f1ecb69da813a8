package campaign

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/qedtorture/qedtorture/crashsim"
	"github.com/qedtorture/qedtorture/props/check"
	"github.com/qedtorture/qedtorture/props/oracle"
	"github.com/qedtorture/qedtorture/props/target"
	"github.com/qedtorture/qedtorture/props/workload"
	"github.com/spf13/afero"
)

// Differential runs (Config.Diff, --diff TARGET): every workload also runs
// without crashes on the campaign's target (side "target") and on a
// second one (side "other"), each checked against the model as it runs,
// then closed cleanly; the two outcomes are compared: what the runs
// reported, the guest data read back after the close, the
// implementations' own check results and the independent checker's
// report on each closed image. A difference names the rule that decides
// it (docs/format.md) and the side that deviates from it; a difference
// the format allows (leak counts, the order of one concurrent group's
// overlapping writes) is kept in the report of the run but is not a
// failure. Any two drivers can be compared: impl/qed against QEMU, a
// broken wrapper, a black-box program.
//
// The diff runs before the crash states are judged: a target that
// deviates without any crash is the simpler finding (its crash states
// would show the same deviation again), and it costs two runs.

// StageDiff is the stage of a differential failure: the campaign's target
// and Config.Diff disagreed on a crash-free run.
const StageDiff oracle.Stage = "diff"

// An Outcome is what a crash-free run of a workload left, as a
// differential run compares it.
type Outcome struct {
	// RunErr is the run's guest-visible failure: an op error, a read that
	// disagreed with the model, a failing close or reopen (nil: none).
	RunErr error
	// Data is the guest data read back after a clean close and a
	// read-only reopen (nil when RunErr is set).
	Data []byte
	// Check is the implementation's own check of the closed image.
	Check target.CheckResult
	// After is the independent checker's report on the closed image file.
	After *check.Report
	// Model is Data judged against the model at the end (nil: it agrees).
	Model error
}

// A Runner is a Driver that runs a workload without recording it, for
// differential runs: Run runs w (already adapted) to its end, closes the
// image cleanly and returns the Outcome. Its error is for the harness, as
// Record's. A driver that is not a Runner is compared through Record: the
// files at the end of the recorded run are read back by its recoverer
// (Config.Reference when it has none).
type Runner interface {
	Run(ctx context.Context, w *workload.Workload) (*Outcome, error)
}

// RunTarget runs w on t over fs in directory dir with the one executor
// (every read and concurrent group checked against the model), closes the
// image cleanly and gathers the Outcome: the guest data after a read-only
// reopen (readAll's, when set: an implementation's own converter; else
// read through the reopened disk), t's check of it and the independent
// checker's report on the file. The error is for setups that could not
// run at all.
func RunTarget(t target.Target, fs afero.Fs, dir string, w *workload.Workload, readAll func(path string) ([]byte, error)) (*Outcome, error) {
	e, err := workload.NewExec(t, fs, dir, w)
	if err != nil {
		return nil, fmt.Errorf("campaign: diff: %s setup: %w", t.Name(), err)
	}
	out := &Outcome{RunErr: e.RunAll()}
	if e.Disk != nil {
		if err := e.Disk.Close(); err != nil && out.RunErr == nil {
			out.RunErr = fmt.Errorf("close: %w", err)
		}
	}
	if out.RunErr != nil {
		return out, nil
	}
	if err := readBack(out, t, fs, e.ImagePath(), e.Model.Size(), readAll); err != nil {
		return nil, err
	}
	if out.RunErr == nil && out.Model == nil {
		out.Model = e.Model.Verify(0, out.Data)
	}
	return out, nil
}

// readBack fills out from the closed image at p: the checker's report,
// t's check and the guest data (readAll's when set); size is the model's.
func readBack(out *Outcome, t target.Target, fs afero.Fs, p string, size int64, readAll func(string) ([]byte, error)) error {
	f, err := fs.Open(p)
	if err != nil {
		return fmt.Errorf("campaign: diff: structure check of %s: %w", p, err)
	}
	out.After, err = check.File(f)
	f.Close()
	if err != nil {
		return fmt.Errorf("campaign: diff: structure check of %s: %w", p, err)
	}
	d, err := t.Open(fs, p, target.OpenOptions{ReadOnly: true})
	if err != nil {
		out.RunErr = fmt.Errorf("reopen: %w", err)
		return nil
	}
	defer d.Close()
	if out.Check, err = d.Check(false); err != nil {
		out.RunErr = fmt.Errorf("check: %w", err)
		return nil
	}
	if readAll != nil {
		out.Data, err = readAll(p)
	} else {
		out.Data = make([]byte, d.Size())
		_, err = d.ReadAt(out.Data, 0)
	}
	if err != nil {
		out.RunErr = fmt.Errorf("read back: %w", err)
		return nil
	}
	if int64(len(out.Data)) != size {
		out.Model = fmt.Errorf("size %#x, model %#x", len(out.Data), size)
	}
	return nil
}

// The sides a Difference names as deviating from the rule.
const (
	SideTarget = "target"  // the campaign's target
	SideOther  = "other"   // Config.Diff
	SideBoth   = "both"    // both deviate
	SideUnsure = "unknown" // no rule decides which
)

// A Difference is one way the two sides of a differential run disagreed.
type Difference struct {
	// Key is a stable keyword for signatures: run, size, data, model,
	// check, leaks, structure.
	Key  string
	What string // what differs, for a human
	// Target and Other are each side's value.
	Target, Other string
	// Rule is the rule that decides it (docs/format.md).
	Rule string
	// Deviates is the side that breaks the rule (SideTarget, SideOther,
	// SideBoth, SideUnsure); "" for a difference the format allows.
	Deviates string
}

// Allowed reports whether the format allows the difference.
func (d Difference) Allowed() bool { return d.Deviates == "" }

// Text is the difference for a human, the sides named.
func (d Difference) Text(target, other string) string {
	dev := d.Deviates
	switch dev {
	case "":
		dev = "none (allowed)"
	case SideTarget:
		dev = target
	case SideOther:
		dev = other
	}
	return fmt.Sprintf("%s: %s=%s %s=%s (rule: %s; deviates: %s)", d.What, target, d.Target, other, d.Other, d.Rule, dev)
}

// Compare returns the differences between the outcomes of w (as both
// sides ran it) on the target (a) and on the other side (b).
func Compare(w *workload.Workload, a, b *Outcome) []Difference {
	var out []Difference
	add := func(key, what, as, bs, rule, deviates string) {
		out = append(out, Difference{Key: key, What: what, Target: as, Other: bs, Rule: rule, Deviates: deviates})
	}
	if a.RunErr != nil || b.RunErr != nil {
		dev := SideBoth
		switch {
		case b.RunErr == nil:
			dev = SideTarget
		case a.RunErr == nil:
			dev = SideOther
		}
		add("run", "run (reads checked against the model)", errText(a.RunErr), errText(b.RunErr),
			"every read returns the last value written (docs/format.md: Tables, Backing files, Write-zeroes and resize)", dev)
		return out
	}
	switch {
	case len(a.Data) != len(b.Data):
		add("size", "guest size", fmt.Sprint(len(a.Data)), fmt.Sprint(len(b.Data)), "image_size is the guest-visible size", byModel(a.Model, b.Model))
	case !bytes.Equal(a.Data, b.Data):
		i := firstDiff(a.Data, b.Data)
		dev := byModel(a.Model, b.Model)
		if dev == SideUnsure && hasConcurrent(w) {
			// Each side's model adopted what its concurrent groups
			// left (their order, or a pattern-only writer's bytes).
			dev = ""
		}
		add("data", "guest data", fmt.Sprintf("%x at %#x (model: %v)", a.Data[i:min(i+16, len(a.Data))], i, errText(a.Model)),
			fmt.Sprintf("%x (model: %v)", b.Data[i:min(i+16, len(b.Data))], errText(b.Model)),
			"every byte reads the last value written (model)", dev)
	case a.Model != nil:
		add("model", "guest data against the model", a.Model.Error(), b.Model.Error(), "every byte reads the last value written (model)", SideBoth)
	}
	ac, bc := a.Check.Corruptions+a.Check.CheckErrors, b.Check.Corruptions+b.Check.CheckErrors
	if ac != 0 || bc != 0 {
		dev := SideBoth
		switch {
		case ac == 0:
			dev = SideOther
		case bc == 0:
			dev = SideTarget
		}
		add("check", "check corruptions/check-errors after a clean close",
			fmt.Sprintf("%d/%d", a.Check.Corruptions, a.Check.CheckErrors), fmt.Sprintf("%d/%d", b.Check.Corruptions, b.Check.CheckErrors),
			"a cleanly closed image is consistent", dev)
	}
	if a.Check.Leaks != b.Check.Leaks {
		add("leaks", "leaked clusters after a clean close", fmt.Sprint(a.Check.Leaks), fmt.Sprint(b.Check.Leaks),
			"leaks are allowed (allocation is append-only; layouts may differ)", "")
	}
	bad := func(r *check.Report) bool { return r != nil && (!r.IsConsistent() || r.NeedCheck()) }
	if bad(a.After) || bad(b.After) {
		dev := SideBoth
		switch {
		case !bad(a.After):
			dev = SideOther
		case !bad(b.After):
			dev = SideTarget
		}
		add("structure", "structure after a clean close", reportText(a.After), reportText(b.After),
			"after a clean close the image is consistent with NEED_CHECK clear", dev)
	}
	return out
}

// byModel is the deviating side of a data difference: the side whose
// data disagrees with its model.
func byModel(a, b error) string {
	switch {
	case a == nil && b != nil:
		return SideOther
	case b == nil && a != nil:
		return SideTarget
	case a != nil && b != nil:
		return SideBoth
	}
	return SideUnsure
}

func reportText(r *check.Report) string {
	if r == nil || (r.IsConsistent() && !r.NeedCheck()) {
		return "ok"
	}
	return strings.ReplaceAll(r.String(), "\n", "; ")
}

func errText(e error) string {
	if e == nil {
		return "ok"
	}
	return e.Error()
}

func firstDiff(a, b []byte) int {
	n := min(len(a), len(b))
	for i := range n {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}

// DiffResult is one differential run.
type DiffResult struct {
	Other       string             // the other side's name
	W           *workload.Workload // as both sides ran it (adapted by both)
	Differences []Difference       // allowed ones included
}

// Failing returns the differences that are failures (not allowed).
func (r *DiffResult) Failing() []Difference {
	var out []Difference
	for _, d := range r.Differences {
		if !d.Allowed() {
			out = append(out, d)
		}
	}
	return out
}

// diffSignature is the signature of a differential failure: diff/KEY/SIDE
// of its first failing difference (SIDE: which side deviates).
func diffSignature(r *DiffResult) string {
	f := r.Failing()
	if len(f) == 0 {
		return "diff"
	}
	return "diff/" + f[0].Key + "/" + f[0].Deviates
}

// RunDiff runs w on a and b without crashes and compares the outcomes.
// w is adapted by a, then by b, so that both run the same workload. A
// driver that is not a Runner runs through Record, its files at the end
// read back by readA (readB): its recoverer or the reference.
func RunDiff(ctx context.Context, a, b Driver, readA, readB target.Target, w *workload.Workload, seed uint64) (*DiffResult, error) {
	w, _ = a.Adapt(w)
	w, _ = b.Adapt(w)
	oa, err := diffOutcome(ctx, a, readA, w, seed)
	if err != nil {
		return nil, err
	}
	ob, err := diffOutcome(ctx, b, readB, w, seed)
	if err != nil {
		return nil, err
	}
	return &DiffResult{Other: b.Name(), W: w, Differences: Compare(w, oa, ob)}, nil
}

// diffOutcome runs w on d: Run for a Runner, else Record and the files at the
// end of the recorded run read back by reader.
func diffOutcome(ctx context.Context, d Driver, reader target.Target, w *workload.Workload, seed uint64) (*Outcome, error) {
	if r, ok := d.(Runner); ok {
		return r.Run(ctx, w)
	}
	if reader == nil {
		return nil, fmt.Errorf("campaign: diff: %s is not a Runner and nothing reads its files back", d.Name())
	}
	rec, err := d.Record(ctx, w, RecordOptions{Seed: seed})
	if err != nil {
		return nil, err
	}
	out := &Outcome{}
	if rec.OpErr != nil {
		out.RunErr = rec.OpErr
		return out, nil
	}
	if err := rec.complete(); err != nil {
		return nil, err
	}
	p := rec.End
	fs, err := p.State(crashsim.StateID{K: p.K(), Model: crashsim.Model{Base: crashsim.Prefix}, Ordinal: uint64(len(p.Unsynced()))})
	if err != nil {
		return nil, fmt.Errorf("campaign: diff: the files at the end of %s's run: %w", d.Name(), err)
	}
	defer fs.Release()
	if err := readBack(out, reader, fs, rec.Image, rec.EndModel.Size(), nil); err != nil {
		return nil, err
	}
	if out.RunErr == nil && out.Model == nil {
		out.Model = rec.EndModel.Verify(0, out.Data)
	}
	return out, nil
}

// Run implements Runner: w on the target over an in-memory filesystem.
func (d inProcess) Run(_ context.Context, w *workload.Workload) (*Outcome, error) {
	return RunTarget(d.t, afero.NewMemMapFs(), Dir, w, nil)
}

// diffFailure is the failure of a differential run with failing
// differences (nil when there are none).
func diffFailure(r *DiffResult, seed uint64) *Failure {
	if len(r.Failing()) == 0 {
		return nil
	}
	return &Failure{Index: -1, WorkloadSeed: seed, W: r.W, Stage: StageDiff, GuestOp: -1, Diff: r}
}

// diffText is a differential failure's differences, one a line.
func diffText(f *Failure, target string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "FAIL at %s: %s and %s disagree without a crash", f.Stage, target, f.Diff.Other)
	for _, d := range f.Diff.Differences {
		fmt.Fprintf(&b, "\n  %s", d.Text(target, f.Diff.Other))
	}
	return b.String()
}

// errNoDiffDriver is returned by Replay for a differential artifact when
// the other side cannot be resolved.
var errNoDiffDriver = errors.New("campaign: replay: the artifact's other side (meta.json \"diff\") cannot be run")
