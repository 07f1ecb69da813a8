package qemu

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/qedtorture/qedtorture/crashsim"
	"github.com/qedtorture/qedtorture/internal/campaign"
	"github.com/qedtorture/qedtorture/internal/qemutool"
	"github.com/qedtorture/qedtorture/model"
	"github.com/qedtorture/qedtorture/props/target"
	"github.com/qedtorture/qedtorture/props/workload"
	"github.com/spf13/afero"
)

// End is how a recorded run ends.
type End string

// The ways a run ends.
const (
	EndClose End = "close" // `close`: QEMU flushes and clears NEED_CHECK
	EndAbort End = "abort" // qemu-io `abort`: SIGABRT, nothing flushed
	EndKill  End = "kill"  // SIGKILL, with the last concurrent group's aio writes possibly in flight
)

// ParseEnd reads an End name.
func ParseEnd(s string) (End, error) {
	switch e := End(s); e {
	case EndClose, EndAbort, EndKill:
		return e, nil
	}
	return "", fmt.Errorf("qemu: unknown end %q (want close, abort or kill)", s)
}

// File names inside a recording's directory.
const (
	LogName     = "image.log" // the blklogwrites log
	PatternDir  = "pat"       // pattern files for write -s, by write id
	imageInTree = "/" + workload.ImageName
)

// Phase is a stretch of the trace during which one model is the oracle:
// a crash at trace index k is judged with the last phase whose Start <= k.
type Phase struct {
	Op    int    // workload op index (len(Ops) for the end of the run)
	What  string // the op, or "close"/"abort"/"kill"
	Start int64  // trace index at which the op's first command was sent
	// Model has the op recorded as pending (a snapshot taken before its
	// I/O); judging a crash needs a Clone.
	Model   *model.Disk
	entries uint64 // log entries committed when the phase began
	segs    int    // image commands recorded by their system calls before it (traced.go)
}

// Recording is a workload run through QEMU with its I/O logged: the
// hand-over from the recorder to the crash checks (see the package doc).
type Recording struct {
	W           *workload.Workload // the workload as run (after Adapt)
	Adaptations []Adaptation
	End         End
	Dir         string            // directory of the run (image, backing files, log, patterns)
	Files       map[string][]byte // snapshot before the open: "/image.qed" and the backing files
	Final       []byte            // the image file as the run left it
	Trace       *crashsim.Trace   // the log, on "/image.qed"
	Phases      []Phase
	Script      []string // every qemu-io command sent, in order
	Log         []byte   // the blklogwrites log as QEMU left it
	// InFlight: the run ended (abort or kill) with a concurrent group's
	// writes possibly in flight, so the log may lag the file.
	InFlight   bool
	LogEntries uint64
	// Setup is the model right after the setup (before the first op),
	// EndModel the model as the run ended (after a clean close: every
	// write durable).
	Setup, EndModel *model.Disk
	// Create is the recorded creation (RecordOptions.Create; nil: the
	// creation is not recorded, Files is the trace's base).
	Create *Creation
}

// RecordOptions say what a recording records besides the workload.
type RecordOptions struct {
	// Create records the creation of the image and its backing chain
	// (create.go) with strace (Strace: its path), over an existing image
	// when Over is set (campaign.OverImageFor the workload's geometry).
	Create, Over bool
	Strace       string
	// Scratch holds strace's outputs (outside dir; "" = a temporary
	// directory of the recording's).
	Scratch string
}

// Base returns the crashsim image the trace replays on.
func (r *Recording) Base() (*crashsim.Image, error) { return crashsim.NewImage(r.Files) }

// PhaseAt returns the phase a crash at trace index k belongs to.
func (r *Recording) PhaseAt(k int64) *Phase {
	ph := &r.Phases[0]
	for i := range r.Phases {
		if r.Phases[i].Start <= k {
			ph = &r.Phases[i]
		}
	}
	return ph
}

// RunError is a guest-visible failure during the recorded run itself
// (a read that disagreed with the model, a failed command, an
// inconsistent live image at a check op).
type RunError struct {
	Op  int
	Cmd string
	Err error
}

func (e *RunError) Error() string { return fmt.Sprintf("op %d (%s): %v", e.Op, e.Cmd, e.Err) }
func (e *RunError) Unwrap() error { return e.Err }

// Record runs w (adapted with Adapt) through one qemu-io process on a
// QED image over blklogwrites in dir (which must be empty or absent) and
// returns the recording. The ops run through workload.Exec, the one executor,
// over a Target in recording mode (see Recorder); a run ending with abort
// or kill whose last op is a concurrent group issues that group itself and
// dies with it in flight. A *RunError reports a failure QEMU showed during
// the run; the recording is returned with it when it is usable.
func Record(tool *qemutool.Tool, w *workload.Workload, dir string, end End) (*Recording, error) {
	return RecordWith(tool, w, dir, end, RecordOptions{})
}

// RecordWith is Record with options: with o.Create, the creation of the
// image and its backing chain is recorded too (create.go).
func RecordWith(tool *qemutool.Tool, w *workload.Workload, dir string, end End, o RecordOptions) (*Recording, error) {
	w, ad := Adapt(w)
	if err := w.Validate(); err != nil {
		return nil, err
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(dir, PatternDir), 0o755); err != nil {
		return nil, fmt.Errorf("qemu: %w", err)
	}
	r := NewRecorder(filepath.Join(dir, workload.ImageName))
	defer r.Kill() // whatever failed, no qemu-io outlives the recording
	rec := &Recording{W: w, Adaptations: ad, End: end, Dir: dir}
	var cr *creating
	var over *campaign.OverImage
	if o.Create {
		if o.Over {
			ov := campaign.OverImageFor(w.Geometry)
			if err := ov.Make(Target{Tool: tool}, afero.NewOsFs(), filepath.Join(dir, workload.ImageName)); err != nil {
				return nil, fmt.Errorf("qemu: %w", err)
			}
			over = &ov
		}
		scratch := o.Scratch
		if scratch == "" {
			s, remove, err := tempDir("qedtorture-qemu-strace-")
			if err != nil {
				return nil, fmt.Errorf("qemu: %w", err)
			}
			defer remove()
			scratch = s
		}
		var err error
		if cr, err = newCreating(tool, o.Strace, dir, scratch); err != nil {
			return nil, err
		}
	}
	e, err := workload.NewExec(Target{Tool: tool, Rec: r, cr: cr}, afero.NewOsFs(), dir, w)
	if err != nil {
		return nil, err
	}
	if cr != nil {
		if rec.Create, err = cr.finish(r.Files()); err != nil {
			return nil, err
		}
		rec.Create.Over = over
	}
	rec.Setup = e.Model.Clone()
	ops := w.Ops
	e.Snapshot = func(i int, m *model.Disk) {
		what := ops[i].String()
		if n := len(rec.Phases); n > 0 && rec.Phases[n-1].Op == i && ops[i].Kind == workload.Concurrent {
			rec.Phases[n-1].What = what + " (flush before)"
		}
		r.phase(rec, i, what, m)
	}
	last := len(ops)
	if end != EndClose && last > 0 && ops[last-1].Kind == workload.Concurrent {
		last-- // run as the in-flight group of the abrupt end
	}
	var runErr error
	for e.Next < last {
		if err := e.Step(); err != nil {
			runErr = runError(err)
			break
		}
	}
	if runErr == nil && r.err == nil {
		runErr = r.end(rec, e, last)
	}
	if r.err != nil {
		return nil, r.err
	}
	rec.Script = r.proc.Log()
	if runErr != nil {
		r.Kill()
		if !errors.As(runErr, new(*RunError)) {
			return nil, runErr
		}
	}
	rec.EndModel = e.Model.Clone()
	if err := r.finish(rec, e.Model); err != nil {
		return nil, err
	}
	if runErr == nil && end != EndKill && !rec.InFlight {
		// Every write completed: the log replayed on the snapshot must give
		// the file QEMU left, or the crash states would be fiction.
		if err := rec.verifyReplay(); err != nil {
			return nil, err
		}
	}
	return rec, runErr
}

// runError turns the executor's *workload.OpError into a *RunError.
func runError(err error) error {
	var oe *workload.OpError
	if errors.As(err, &oe) {
		return &RunError{Op: oe.Index, Cmd: oe.Op.String(), Err: oe.Err}
	}
	return err
}

// end ends the run as rec.End says, after the executor ran ops[:last].
func (r *Recorder) end(rec *Recording, e *workload.Exec, last int) error {
	ops := rec.W.Ops
	if e.Disk == nil {
		return &RunError{Op: last, Cmd: string(rec.End), Err: errors.New("image is not open (an earlier reopen failed)")}
	}
	m := e.Model
	switch rec.End {
	case EndClose:
		r.phase(rec, len(ops), "close", m.Clone())
		if err := e.Disk.Close(); err != nil {
			return &RunError{Op: len(ops), Cmd: "close", Err: err}
		}
		m.Flush()
		return r.proc.Quit()
	default:
		if last < len(ops) {
			// The group's writes are issued and the process dies with
			// them possibly in flight.
			op := ops[last]
			rec.InFlight = true
			m.BeginGroup() // issued at once: after a crash, in any order
			ws := make([]target.GroupWrite, len(op.Group))
			for j, sub := range op.Group {
				var err error
				if sub.Kind == workload.Write {
					ws[j] = target.GroupWrite{Off: sub.Off, Len: sub.Len, Data: bytes.Repeat([]byte{target.GroupPattern(sub.ID)}, int(sub.Len))}
					err = m.WriteBytes(sub.Off, ws[j].Data)
				} else {
					ws[j] = target.GroupWrite{Off: sub.Off, Len: sub.Len, Zero: true}
					err = m.WriteZeroes(sub.Off, sub.Len)
				}
				if err != nil {
					return err
				}
			}
			m.EndGroup()
			r.phase(rec, last, op.String()+" (in flight at "+string(rec.End)+")", m.Clone())
			if err := r.issueGroup(ws); err != nil {
				return &RunError{Op: last, Cmd: op.String(), Err: err}
			}
		} else {
			r.phase(rec, len(ops), string(rec.End), m.Clone())
		}
		if rec.End == EndAbort {
			return r.proc.Abort()
		}
		return r.proc.Kill()
	}
}

// phase starts a phase: the model m (the op pending) judges crashes from
// the log's current entry count on.
func (r *Recorder) phase(rec *Recording, op int, what string, m *model.Disk) {
	n, err := r.entries()
	if err != nil && r.err == nil {
		r.err = fmt.Errorf("qemu: reading %s: %w", LogName, err)
	}
	rec.Phases = append(rec.Phases, Phase{Op: op, What: what, Model: m, entries: n, segs: len(r.segs)})
}

// finish reads the log into a trace and maps each phase's entry count
// to a trace index.
func (r *Recorder) finish(rec *Recording, m *model.Disk) error {
	rec.Files = r.files
	var err error
	if rec.Final, err = os.ReadFile(r.path); err != nil {
		return fmt.Errorf("qemu: %w", err)
	}
	logBytes, err := os.ReadFile(filepath.Join(r.dir, LogName))
	if err != nil {
		return fmt.Errorf("qemu: %w", err)
	}
	rec.Log = logBytes
	if len(logBytes) == 0 { // nothing was ever written
		rec.Trace = &crashsim.Trace{}
	} else if rec.Trace, err = crashsim.ReadDMLog(bytes.NewReader(logBytes), int64(len(logBytes)), imageInTree); err != nil {
		return fmt.Errorf("qemu: importing %s: %w", LogName, err)
	}
	idx, err := entryOpIndex(logBytes)
	if err != nil {
		return err
	}
	rec.LogEntries = uint64(len(idx) - 1)
	var shift []int64
	rec.Trace, shift = mergeSegments(rec.Trace, idx, r.segs)
	for i := range rec.Phases {
		e := min(rec.Phases[i].entries, rec.LogEntries)
		rec.Phases[i].Start = idx[e] + shift[rec.Phases[i].segs]
	}
	if len(rec.Phases) == 0 {
		rec.Phases = []Phase{{Op: 0, What: "start", Model: m.Clone()}}
	}
	return nil
}

// entryOpIndex returns, for each e in 0..nr_entries, how many trace ops
// crashsim.ReadDMLog makes of the first e log entries (a FLUSH and a FUA
// each add a sync to the entry's write or discard), walking the entry
// headers with crashsim.ScanDMLog.
func entryOpIndex(log []byte) ([]int64, error) {
	out := []int64{0}
	if len(log) == 0 { // nothing was ever written
		return out, nil
	}
	ops := int64(0)
	_, err := crashsim.ScanDMLog(bytes.NewReader(log), int64(len(log)), func(e crashsim.DMLogEntry) error {
		if e.Flags&crashsim.DMLogFlush != 0 {
			ops++
		}
		if e.Flags&crashsim.DMLogDiscard != 0 || e.HasData() {
			ops++
		}
		if e.Flags&crashsim.DMLogFUA != 0 {
			ops++
		}
		out = append(out, ops)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("qemu: %w", err)
	}
	return out, nil
}

// ErrLogMismatch reports a recording whose log, replayed on the
// snapshot, does not give the file QEMU left.
// It wraps campaign.ErrSkip: the engine counts such a workload as
// skipped, not as a failure (the harness cannot tell what reached the
// file in which order, and QEMU is not at fault).
var ErrLogMismatch = fmt.Errorf("qemu: the replayed blklogwrites log differs from the image file (%w)", campaign.ErrSkip)

func (r *Recording) verifyReplay() error {
	base, err := r.Base()
	if err != nil {
		return err
	}
	fs, err := base.Replay(r.Trace, int64(len(r.Trace.Ops)), crashsim.Options{})
	if err != nil {
		return fmt.Errorf("qemu: replaying the log: %w", err)
	}
	got, err := afero.ReadFile(fs, imageInTree)
	if err != nil {
		return err
	}
	if !bytes.Equal(got, r.Final) {
		at := min(len(got), len(r.Final))
		for i := range at {
			if got[i] != r.Final[i] {
				at = i
				break
			}
		}
		return fmt.Errorf("%w (%d vs %d bytes, first difference at %d)", ErrLogMismatch, len(got), len(r.Final), at)
	}
	return r.verifyTracedFiles(func(p string) ([]byte, error) { return afero.ReadFile(fs, p) })
}

// WritePatterns writes the pattern file of every (non-group) write of w
// into dir/pat, named as a recording names them (patternName), as the
// qemu-io script expects them.
func WritePatterns(w *workload.Workload, dir string) error {
	if err := os.MkdirAll(filepath.Join(dir, PatternDir), 0o755); err != nil {
		return err
	}
	for _, op := range w.Ops {
		if op.Kind != workload.Write {
			continue
		}
		buf := make([]byte, op.Len)
		model.Fill(buf, uint64(op.ID), op.Off)
		if err := os.WriteFile(filepath.Join(dir, patternName(buf)), buf, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// ScriptText returns the recorded qemu-io session as a shell script that
// reproduces it from the snapshot files in the artifact directory.
func (r *Recording) ScriptText() string { return r.ScriptFrom("snapshot") }

// ScriptFrom is ScriptText for an artifact whose snapshot files are in
// directory snap (relative to where the script runs).
func (r *Recording) ScriptFrom(snap string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "#!/bin/sh\n# Reproduces a qedtorture QEMU run (end: %s). Run in this directory:\n", r.End)
	fmt.Fprintf(&b, "# the snapshot files (%s/) are copied over, the image is opened\n# through blklogwrites and the commands below run in one qemu-io.\nset -e\ncp %s/* .\n: > %s\nqemu-io <<'EOF'\n", snap, snap, LogName)
	for _, c := range r.Script {
		b.WriteString(c + "\n")
	}
	b.WriteString("EOF\n")
	return b.String()
}
