package statemachine

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"path"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/qedtorture/qedtorture/crashsim"
	"github.com/qedtorture/qedtorture/faultfs"
	"github.com/qedtorture/qedtorture/model"
	"github.com/qedtorture/qedtorture/props/oracle"
	"github.com/qedtorture/qedtorture/props/target"
	"github.com/qedtorture/qedtorture/props/workload"
	"github.com/spf13/afero"
)

// A Sequence is what the state machine runs and what a failure prints: a
// workload (geometry plus ops, see props/workload) in which some ops
// carry a crash or a fault. Its text form is the workload script with one
// directive comment before each such op:
//
//	#! crash sync=S model=M choice=C
//	#! fault RULE nth=N then=close
//	#! fault RULE nth=N then=crash model=M choice=C
//
// A crash directive crashes the simulated machine (crashsim) at the S-th
// file sync the next op issues, or right after that op when S is 0 or the
// op issues fewer syncs; the crash state is the one numbered C (modulo the
// count, or a sampled state with seed C when the count is huge) under crash
// model M, and it is judged by oracle.Judge against the model. A fault
// directive reopens the image over a faultfs layer whose only rule is
// "RULE@nth=N,path=image.qed" (RULE is write:eio, write:enospc, write:short
// or sync:eio), runs the op, requires the injected error to surface, then
// either closes the image (then=close) or crashes (then=crash ...) and
// judges the result with oracle.Judge. Either way the workload goes on
// from the recovered image; if a crash lost a completed resize, the image
// is grown again to the size the workload expects.
//
// Because directives are comments, the text is also a valid workload
// script (qedtorture replay runs it without the crashes and faults), and
// ParseSequence reads it back exactly: a printed counterexample can be
// pasted into a regression test (see Replay).
type Sequence struct {
	W     *workload.Workload
	Steps []Step // Steps[i] decorates W.Ops[i]
}

// Step is one op of a Sequence and what happens around it.
type Step struct {
	Crash *CrashSpec // crash during or after the op, or nil
	Fault *FaultSpec // fault injected during the op, or nil (exclusive with Crash)
}

// CrashSpec says where a crash happens and which crash state follows.
type CrashSpec struct {
	Sync   int            // crash at the Sync-th sync of the op (1-based); 0 = after the op
	Model  crashsim.Model // crash model
	Choice uint64         // which state: ordinal mod count (or sample seed when uncountable)
	// Sampled: Choice is the seed of a sampled state (printed choice=seed:N),
	// as exploration names the states it draws when there are too many.
	Sampled bool
}

// FaultSpec is one injected I/O fault.
type FaultSpec struct {
	Rule string     // faultfs operation:fault, e.g. "write:eio", "sync:eio", "write:short"
	Nth  int        // the fault fires at the Nth matching operation on the image file during the op
	Then *CrashSpec // nil: close the image cleanly after the op; else crash (Sync is ignored)
}

// FaultRules are the faults the state machine injects.
var FaultRules = []string{"write:eio", "write:enospc", "write:short", "sync:eio"}

const directive = "#! "

func (c *CrashSpec) String() string {
	return fmt.Sprintf("crash sync=%d model=%s choice=%s", c.Sync, c.Model, c.choice())
}

func (c *CrashSpec) choice() string {
	if c.Sampled {
		return "seed:" + strconv.FormatUint(c.Choice, 10)
	}
	return strconv.FormatUint(c.Choice, 10)
}

func (f *FaultSpec) String() string {
	s := fmt.Sprintf("fault %s nth=%d", f.Rule, f.Nth)
	if f.Then == nil {
		return s + " then=close"
	}
	return s + fmt.Sprintf(" then=crash model=%s choice=%s", f.Then.Model, f.Then.choice())
}

// String returns the text form (see Sequence).
func (s *Sequence) String() string {
	var b strings.Builder
	_ = s.Format(&b)
	return b.String()
}

// Format writes the text form of s.
func (s *Sequence) Format(out io.Writer) error {
	script := s.W.String()
	lines := strings.SplitAfter(script, "\n")
	bw := bufio.NewWriter(out)
	op := -1
	for _, line := range lines {
		if line == "" {
			continue
		}
		top := line != "" && line[0] != ' ' && line[0] != '\t' && !strings.HasPrefix(line, "qedtorture-workload") &&
			!strings.HasPrefix(line, "image ") && !strings.HasPrefix(line, "backing ")
		if top {
			op++
			if op < len(s.Steps) {
				st := s.Steps[op]
				if st.Crash != nil {
					fmt.Fprintf(bw, "%s%s\n", directive, st.Crash)
				}
				if st.Fault != nil {
					fmt.Fprintf(bw, "%s%s\n", directive, st.Fault)
				}
			}
		}
		bw.WriteString(line)
	}
	return bw.Flush()
}

// Len is the number of ops.
func (s *Sequence) Len() int { return len(s.W.Ops) }

// Events counts the crash and fault directives.
func (s *Sequence) Events() (crashes, faults int) {
	for _, st := range s.Steps {
		if st.Crash != nil {
			crashes++
		}
		if st.Fault != nil {
			faults++
			if st.Fault.Then != nil {
				crashes++
			}
		}
	}
	return
}

// Clone returns a deep copy.
func (s *Sequence) Clone() *Sequence {
	c := &Sequence{W: s.W.Clone(), Steps: make([]Step, len(s.Steps))}
	for i, st := range s.Steps {
		if st.Crash != nil {
			cc := *st.Crash
			c.Steps[i].Crash = &cc
		}
		if st.Fault != nil {
			fc := *st.Fault
			if fc.Then != nil {
				t := *fc.Then
				fc.Then = &t
			}
			c.Steps[i].Fault = &fc
		}
	}
	return c
}

// SequenceParseError names the directive line that could not be parsed.
type SequenceParseError struct {
	Line int
	Text string
	Msg  string
}

func (e *SequenceParseError) Error() string {
	return fmt.Sprintf("statemachine: sequence line %d: %s (%q)", e.Line, e.Msg, e.Text)
}

// ErrSequence is wrapped by ParseSequence errors about directives.
var ErrSequence = errors.New("statemachine: bad sequence")

func (e *SequenceParseError) Unwrap() error { return ErrSequence }

// ParseSequence reads the text form of a Sequence.
func ParseSequence(text string) (*Sequence, error) {
	w, err := workload.Parse(strings.NewReader(text))
	if err != nil {
		return nil, err
	}
	s := &Sequence{W: w, Steps: make([]Step, len(w.Ops))}
	var pending Step
	hasPending := false
	op := -1
	for n, raw := range strings.Split(text, "\n") {
		line := strings.TrimRight(raw, "\r")
		bad := func(format string, a ...any) error {
			return &SequenceParseError{Line: n + 1, Text: raw, Msg: fmt.Sprintf(format, a...)}
		}
		if d, ok := strings.CutPrefix(line, directive); ok {
			fields := strings.Fields(d)
			if len(fields) == 0 {
				return nil, bad("empty directive")
			}
			switch fields[0] {
			case "crash":
				if pending.Crash != nil || pending.Fault != nil {
					return nil, bad("two directives for one op")
				}
				c, err := parseCrash(fields[1:], true)
				if err != nil {
					return nil, bad("%v", err)
				}
				pending.Crash = c
			case "fault":
				if pending.Crash != nil || pending.Fault != nil {
					return nil, bad("two directives for one op")
				}
				if len(fields) < 3 {
					return nil, bad("fault needs RULE nth=N then=...")
				}
				f := &FaultSpec{Rule: fields[1]}
				if _, err := faultfs.ParseRule(f.Rule); err != nil {
					return nil, bad("%v", err)
				}
				nth, ok := strings.CutPrefix(fields[2], "nth=")
				v, err := strconv.Atoi(nth)
				if !ok || err != nil || v < 1 {
					return nil, bad("want nth=N (N >= 1), got %q", fields[2])
				}
				f.Nth = v
				if len(fields) < 4 {
					return nil, bad("fault needs then=close or then=crash model=M choice=C")
				}
				switch fields[3] {
				case "then=close":
					if len(fields) != 4 {
						return nil, bad("nothing may follow then=close")
					}
				case "then=crash":
					if f.Then, err = parseCrash(fields[4:], false); err != nil {
						return nil, bad("%v", err)
					}
				default:
					return nil, bad("want then=close or then=crash, got %q", fields[3])
				}
				pending.Fault = f
			default:
				return nil, bad("unknown directive %q", fields[0])
			}
			hasPending = true
			continue
		}
		t := line
		if i := strings.IndexByte(t, '#'); i >= 0 {
			t = t[:i]
		}
		if strings.TrimSpace(t) == "" || t[0] == ' ' || t[0] == '\t' {
			continue
		}
		kw := strings.Fields(t)[0]
		if kw == "qedtorture-workload" || kw == "image" || kw == "backing" {
			continue
		}
		op++
		if hasPending {
			s.Steps[op] = pending
			pending, hasPending = Step{}, false
		}
	}
	if hasPending {
		return nil, &SequenceParseError{Line: -1, Msg: "directive after the last op"}
	}
	return s, nil
}

func parseCrash(fields []string, withSync bool) (*CrashSpec, error) {
	c := &CrashSpec{}
	seen := map[string]bool{}
	for _, f := range fields {
		k, v, ok := strings.Cut(f, "=")
		if !ok || seen[k] {
			return nil, fmt.Errorf("bad or repeated key=value %q", f)
		}
		seen[k] = true
		var err error
		switch k {
		case "sync":
			if !withSync {
				return nil, fmt.Errorf("sync= is not allowed here")
			}
			c.Sync, err = strconv.Atoi(v)
			if err == nil && c.Sync < 0 {
				err = errors.New("negative")
			}
		case "model":
			c.Model, err = crashsim.ParseModel(v)
		case "choice":
			num, sampled := strings.CutPrefix(v, "seed:")
			c.Sampled = sampled
			c.Choice, err = strconv.ParseUint(num, 10, 64)
		default:
			return nil, fmt.Errorf("unknown key %q", k)
		}
		if err != nil {
			return nil, fmt.Errorf("%s=%q: %w", k, v, err)
		}
	}
	if !seen["model"] || !seen["choice"] || (withSync && !seen["sync"]) {
		return nil, errors.New("crash needs sync=, model= and choice=")
	}
	return c, nil
}

// RunOptions tune how a Sequence is run.
type RunOptions struct {
	// Explore: besides the chosen crash state, judge up to this many
	// other states of the same crash point and model (all of them when
	// there are at most Explore). 0 = none.
	Explore int
	// Oracle options passed to oracle.Judge.
	Oracle oracle.Options
}

// Failure is a failed run: where, what, and the sequence up to and
// including the failing op (with the failing crash state as its choice).
type Failure struct {
	Op      int             // index of the failing op
	Seq     *Sequence       // the ops run, the failing one last
	Err     error           // what went wrong
	StateID string          // the crash state that failed, if a crash did
	Verdict *oracle.Verdict // the oracle's verdict, if a crash state failed
	Stage   oracle.Stage    // the oracle stage, if any
	Kind    string          // "op", "crash", "fault", "panic", "setup"
	Panic   string          // stack of a panic
}

func (f *Failure) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s failure at op %d: %v", f.Kind, f.Op, f.Err) // a panic's Err carries its stack
	return b.String()
}

// Runner executes a Sequence op by op on a target.Target over a crash-simulating
// filesystem. It is the system under test of the state machine.
type Runner struct {
	Target target.Target
	Opts   RunOptions
	Dir    string

	fs     *crashsim.FS
	e      *workload.Exec
	seq    *Sequence // ops run so far
	snap   *model.Disk
	failed *Failure
	// rejected: the state machine's Accept hook disowned the failure.
	rejected bool
	// CrashStates counts crash states judged; Faults counts faults that fired.
	CrashStates, Faults int
	// StatesByModel counts the crash states judged under each crash model
	// (by its name); the counts add up to CrashStates.
	StatesByModel map[string]int
}

// judged counts one crash state judged under model m.
func (r *Runner) judged(m crashsim.Model) {
	r.CrashStates++
	if r.StatesByModel == nil {
		r.StatesByModel = map[string]int{}
	}
	r.StatesByModel[m.String()]++
}

// NewRunner creates the geometry of w (backing chain and image) on a fresh
// crashsim filesystem and opens the image. w's ops are ignored.
func NewRunner(t target.Target, g workload.Geometry, o RunOptions) (*Runner, error) {
	r := &Runner{Target: t, Opts: o, Dir: "/w"}
	r.fs = crashsim.New(crashsim.Options{ImplicitDirSync: true, DiscardTrace: true})
	w := &workload.Workload{Geometry: g}
	w.Geometry.Backing = append([]workload.Backing(nil), g.Backing...)
	var err error
	if err = protect(func() error {
		r.e, err = workload.NewExec(t, r.fs, r.Dir, w)
		return err
	}); err != nil {
		return nil, err
	}
	r.seq = &Sequence{W: r.e.W}
	return r, nil
}

// Close releases the open image, if any.
func (r *Runner) Close() {
	if r == nil {
		return
	}
	if r.e != nil && r.e.Disk != nil {
		_ = protect(r.e.Disk.Close)
		r.e.Disk = nil
	}
}

// Failed returns the failure, if a step failed.
func (r *Runner) Failed() *Failure { return r.failed }

// Sequence returns the ops run so far.
func (r *Runner) Sequence() *Sequence { return r.seq }

// Model returns the reference model of the image.
func (r *Runner) Model() *model.Disk { return r.e.Model }

// protect runs fn, turning a panic into an error with its stack.
func protect(fn func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = &panicError{val: p, stack: string(debug.Stack())}
		}
	}()
	return fn()
}

type panicError struct {
	val   any
	stack string
}

func (p *panicError) Error() string { return fmt.Sprintf("panic: %v\n%s", p.val, p.stack) }

// Run runs one op with its step. After a failure it does nothing and
// returns the same failure.
func (r *Runner) Run(op workload.Op, st Step) *Failure {
	if r.failed != nil {
		return r.failed
	}
	i := len(r.seq.W.Ops)
	r.seq.W.Ops = append(r.seq.W.Ops, op)
	r.seq.Steps = append(r.seq.Steps, st)
	var err error
	switch {
	case st.Fault != nil:
		err = r.runFault(i, op, st.Fault)
	default:
		err = r.runOp(i, st.Crash)
	}
	if err != nil {
		f := &Failure{Op: i, Seq: r.seq.Clone(), Err: err, Kind: "op"}
		var ce *crashError
		if errors.As(err, &ce) {
			f.Kind, f.StateID, f.Verdict, f.Stage = ce.kind, ce.id.String(), ce.v, ce.v.Stage
			// Print the failing state as the choice, so the text replays it.
			c := f.Seq.Steps[i].Crash
			if ft := f.Seq.Steps[i].Fault; ft != nil && ft.Then != nil {
				c = ft.Then
			}
			if c != nil {
				if ce.sync > 0 {
					c.Sync = ce.sync
				}
				c.Sampled = ce.id.Sampled
				c.Choice = ce.id.Ordinal
				if ce.id.Sampled {
					c.Choice = ce.id.Seed
				}
			}
		}
		var fe *faultError
		if errors.As(err, &fe) {
			f.Kind = "fault"
		}
		var pe *panicError
		if errors.As(err, &pe) {
			f.Kind, f.Panic = "panic", pe.stack
		}
		r.failed = f
		return f
	}
	return nil
}

// RunSequence runs every op of s on a fresh Runner and returns the first
// failure (nil if none) and the runner (closed).
func RunSequence(t target.Target, s *Sequence, o RunOptions) (*Runner, *Failure) {
	r, err := NewRunner(t, s.W.Geometry, o)
	if err != nil {
		return nil, &Failure{Op: -1, Seq: &Sequence{W: &workload.Workload{Geometry: s.W.Geometry}}, Err: err, Kind: "setup"}
	}
	defer r.Close()
	for i, op := range s.W.Ops {
		if f := r.Run(op, s.Steps[i]); f != nil {
			return r, f
		}
	}
	return r, nil
}

// crashError is a crash state the oracle rejected.
type crashError struct {
	kind string
	id   crashsim.StateID
	v    *oracle.Verdict
	sync int // >0: the state is at this sync of the op, not where the spec crashed
}

func (e *crashError) Error() string {
	return fmt.Sprintf("crash state %s: %v", e.id, e.v)
}

// faultError is an injected fault handled wrongly.
type faultError struct{ msg string }

func (e *faultError) Error() string { return e.msg }

// runOp runs op i, crashing as c says.
func (r *Runner) runOp(i int, c *CrashSpec) error {
	e := r.e
	r.snap = nil
	if err := protect(func() error { return e.Prepare(i) }); err != nil { // an image command's file, before the op's syncs count
		return err
	}
	var early error // a failing state at an earlier sync of the op
	if c != nil {
		// Every sync of the op before the crash is a crash point too:
		// with exploration on, judge a few of its states (under the same
		// model) without crashing there.
		n := 0
		e.Snapshot = func(_ int, m *model.Disk) { r.snap = m }
		r.fs.OnSync(func(p *crashsim.Point) bool {
			n++
			if c.Sync > 0 && n == c.Sync {
				return true
			}
			if early == nil && r.Opts.Explore > 0 && r.snap != nil {
				early = r.explorePoint(p, r.snap, c, n)
			}
			return false
		})
	}
	err := protect(e.Step)
	r.fs.OnSync(nil)
	e.Snapshot = nil
	var pe *panicError
	if errors.As(err, &pe) {
		return err
	}
	if early != nil {
		return early
	}
	if c == nil {
		return err
	}
	p := r.fs.Crashed()
	m := e.Model
	if p != nil {
		if r.snap != nil {
			m = r.snap
		}
	} else {
		if err != nil {
			return err
		}
		p = r.fs.Crash()
	}
	return r.recover(p, m, c, "crash", true)
}

// explorePoint judges up to Explore states of p under c's model against
// model m (cloned per state), the crash point being the n-th sync of the op.
func (r *Runner) explorePoint(p *crashsim.Point, m *model.Disk, c *CrashSpec, n int) error {
	for id, fs := range p.States(c.Model, crashsim.EnumOptions{Bound: uint64(r.Opts.Explore), Samples: r.Opts.Explore, Seed: c.Choice}) {
		var v *oracle.Verdict
		if err := protect(func() error {
			v = r.judge(fs, m.Clone())
			return nil
		}); err != nil {
			return err
		}
		r.judged(c.Model)
		if !v.OK() {
			return &crashError{kind: "crash", id: id, v: v, sync: n}
		}
	}
	return nil
}

// recover judges the crash state c picks at p (and explored ones), then
// continues the workload on it.
func (r *Runner) recover(p *crashsim.Point, m *model.Disk, c *CrashSpec, kind string, explore bool) error {
	e := r.e
	if e.Disk != nil {
		_ = protect(e.Disk.Close) // on a dead filesystem: must fail, not panic
		e.Disk = nil
	}
	id := pickState(p, c)
	fs, err := p.State(id)
	if err != nil {
		return fmt.Errorf("building crash state %s: %w", id, err)
	}
	m0 := m.Clone()
	var v *oracle.Verdict
	if err := protect(func() error { v = r.judge(fs, m); return nil }); err != nil {
		return err
	}
	r.judged(c.Model)
	if !v.OK() {
		return &crashError{kind: kind, id: id, v: v}
	}
	if explore && r.Opts.Explore > 0 {
		for xid, xfs := range p.States(c.Model, crashsim.EnumOptions{Bound: uint64(r.Opts.Explore), Samples: r.Opts.Explore, Seed: c.Choice}) {
			if xid == id {
				continue
			}
			var xv *oracle.Verdict
			if err := protect(func() error {
				xv = r.judge(xfs, m0.Clone())
				return nil
			}); err != nil {
				return err
			}
			r.judged(c.Model)
			if !xv.OK() {
				return &crashError{kind: kind, id: xid, v: xv}
			}
		}
	}
	// Continue on the recovered state.
	r.fs = fs
	e.FS = fs
	e.Model = m
	if i := len(e.W.Ops) - 1; i >= 0 && workload.IsImageCommand(e.W.Ops[i]) {
		// The crash (or the fault) interrupted an image command: run it
		// again, as a user would, so that the ops after it find the
		// backing file the workload says is in force.
		if err := protect(func() error { return e.RerunImageCommand(i) }); err != nil {
			return fmt.Errorf("op %d (%s) run again after recovery from %s: %w", i, e.W.Ops[i], id, err)
		}
	}
	if err := protect(func() error {
		e.Disk, err = r.Target.Open(fs, e.ImagePath(), target.OpenOptions{})
		return err
	}); err != nil {
		return fmt.Errorf("reopen after recovery from %s: %w", id, err)
	}
	if want := e.W.SizeAt(len(e.W.Ops)); e.Model.Size() < want {
		// A crash lost a resize the workload relies on: grow again.
		if err := e.Model.Grow(want); err != nil {
			return fmt.Errorf("model: %w", err)
		}
		if err := protect(func() error { return e.Disk.Resize(want) }); err != nil {
			return fmt.Errorf("growing back to %#x after recovery from %s: %w", want, id, err)
		}
	}
	return nil
}

// judge judges the crash state fs of the op in progress (the last one of
// the sequence) against m with oracle.Judge and the image commands'
// rules, as the campaign's oracle judge does: the header's backing name
// is one the op allows (oracle.Options.BackingNames), and a crash during
// a commit has the base file recovered first (oracle.RecoverCommitBase)
// and, when the workload fixes its old contents, judged sector by sector
// once the image passed (oracle.JudgeCommitBase, stage commit-base).
func (r *Runner) judge(fs afero.Fs, m *model.Disk) *oracle.Verdict {
	w, o := r.e.W, r.Opts.Oracle
	i := len(w.Ops) - 1
	o.BackingNames = w.BackingNames(i)
	name, format, old, ok, fixed, err := w.CommitBase(i)
	if err != nil {
		return &oracle.Verdict{Stage: oracle.StageCommitBase, Err: fmt.Errorf("the commit base's old contents: %w", err)}
	}
	if !ok {
		return oracle.Judge(r.Target, fs, r.e.ImagePath(), m, o)
	}
	base := path.Join(r.Dir, name)
	var bm *model.Disk
	if fixed { // the image's view as of the crash, before the oracle recovers m in place
		if bm, err = oracle.CommitBaseModel(old, m); err != nil {
			return &oracle.Verdict{Stage: oracle.StageCommitBase, Err: err}
		}
	}
	if err := oracle.RecoverCommitBase(r.Target, fs, base, format); err != nil {
		return &oracle.Verdict{Stage: oracle.StageCommitBase, Err: err}
	}
	v := oracle.Judge(r.Target, fs, r.e.ImagePath(), m, o)
	if v.OK() && bm != nil {
		if err := oracle.JudgeCommitBase(r.Target, fs, base, format, bm); err != nil {
			v = &oracle.Verdict{Stage: oracle.StageCommitBase, Err: err, Before: v.Before, After: v.After}
			errors.As(err, &v.Mismatch)
		}
	}
	return v
}

// pickState maps a choice to a state of p under m: ordinal choice mod the
// count when the states can be counted, else the sampled state of seed choice.
func pickState(p *crashsim.Point, c *CrashSpec) crashsim.StateID {
	if n, exact := p.Count(c.Model); !c.Sampled && exact && n > 0 && n < math.MaxUint64 {
		return crashsim.StateID{K: p.K(), Model: c.Model, Ordinal: c.Choice % n}
	}
	return crashsim.StateID{K: p.K(), Model: c.Model, Sampled: true, Seed: c.Choice}
}

// runFault runs op i with the fault f injected (see Sequence).
func (r *Runner) runFault(i int, op workload.Op, f *FaultSpec) error {
	e := r.e
	if err := protect(func() error { return e.Prepare(i) }); err != nil { // an image command's file, outside the fault layer
		return err
	}
	// Reopen over the fault layer so that the rule counts from here.
	if err := protect(e.Disk.Close); err != nil {
		e.Disk = nil
		return fmt.Errorf("close before injecting a fault: %w", err)
	}
	e.Model.Flush()
	rule := fmt.Sprintf("%s@nth=%d,path=%s", f.Rule, f.Nth, workload.ImageName)
	ffs, err := faultfs.NewFromString(r.fs, int64(f.Nth), rule)
	if err != nil {
		return fmt.Errorf("fault rule %q: %w", rule, err)
	}
	e.FS = ffs
	if err := protect(func() error {
		e.Disk, err = r.Target.Open(ffs, e.ImagePath(), target.OpenOptions{})
		return err
	}); err != nil {
		e.Disk = nil
		return fmt.Errorf("open over the fault layer: %w", err)
	}
	err = protect(e.Step) // a Reopen op reopens over the fault layer too
	var pe *panicError
	if errors.As(err, &pe) {
		return err
	}
	log := ffs.Log()
	if len(log) > 0 {
		r.Faults++
		inj := log[0]
		if err == nil {
			return &faultError{msg: fmt.Sprintf("injected %s (%s at %s off=%d len=%d) did not surface: the op succeeded", inj.Fault, inj.Op, inj.Path, inj.Off, inj.Len)}
		}
		if !errors.Is(err, inj.Err) {
			return &faultError{msg: fmt.Sprintf("injected %s surfaced as a different error: %v (want one wrapping %v)", inj.Fault, err, inj.Err)}
		}
	} else if err != nil {
		return err // no fault fired: the op must have worked
	}
	// The model recorded the op before its I/O and records a flush only
	// after it succeeded, so its pending ops are exactly what the fault
	// may have lost or half-written.
	m := e.Model
	ffs.Arm(false)
	if f.Then == nil {
		// Close cleanly (the fault was one-shot) and judge the live image.
		if e.Disk != nil {
			if cerr := protect(e.Disk.Close); cerr != nil {
				var pe *panicError
				if errors.As(cerr, &pe) {
					return cerr
				}
			}
			e.Disk = nil
		}
		p, perr := r.fs.Point()
		if perr != nil {
			return perr
		}
		// "Everything survives" is the state of the live files: judge it
		// as a crash state with every unsynced op kept (subset, all kept
		// is its last ordinal; prefix of all is simplest).
		pm := crashsim.Model{Base: crashsim.Prefix}
		n, _ := p.Count(pm)
		e.FS = r.fs
		return r.recover(p, m, &CrashSpec{Model: pm, Choice: n - 1}, "fault", false)
	}
	e.FS = r.fs
	return r.recover(r.fs.Crash(), m, f.Then, "fault", true)
}

// CatchingModels reruns a failing sequence with every crash (and every
// fault followed by a crash) switched to each of models in turn, judging
// up to explore states per crash, and returns the models under which it
// still fails. A sequence without crashes fails or passes the same under
// every model; then it returns nil and noCrash is true.
func CatchingModels(t target.Target, s *Sequence, models []crashsim.Model, explore int) (caught []crashsim.Model, noCrash bool) {
	if c, _ := s.Events(); c == 0 {
		return nil, true
	}
	for _, m := range models {
		v := s.Clone()
		for i := range v.Steps {
			if c := v.Steps[i].Crash; c != nil {
				c.Model = m
			}
			if f := v.Steps[i].Fault; f != nil && f.Then != nil {
				f.Then.Model = m
			}
		}
		if _, f := RunSequence(t, v, RunOptions{Explore: explore}); f != nil {
			caught = append(caught, m)
		}
	}
	return caught, false
}
