package qemu

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/qedtorture/qedtorture/crashsim"
	"github.com/qedtorture/qedtorture/internal/qemuio"
	"github.com/qedtorture/qedtorture/internal/qemutool"
	"github.com/qedtorture/qedtorture/model"
	"github.com/qedtorture/qedtorture/props"
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
	imageInTree = "/" + props.ImageName
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

// logOpts returns the -o options of an open through blklogwrites.
func logOpts(appendLog bool) string {
	o := "driver=qed,file.driver=blklogwrites,file.file.driver=file,file.file.filename=" + props.ImageName +
		",file.log.driver=file,file.log.filename=" + LogName + ",file.log-super-update-interval=1"
	if appendLog {
		return o + ",file.log-append=on"
	}
	return o + ",file.log-sector-size=512"
}

// groupByte is the byte pattern of a concurrent group's write (aio_write
// takes only a byte pattern): non-zero and distinct for neighbouring ids.
func groupByte(id uint32) byte { return byte(id%255) + 1 }

// Record runs w (adapted with Adapt) through one qemu-io process on a
// QED image over blklogwrites in dir (which must be empty or absent) and
// returns the recording. A *RunError reports a failure QEMU showed during
// the run; the recording is returned with it when it is usable.
func Record(tool *qemutool.Tool, w *workload.Workload, dir string, end End) (*Recording, error) {
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
	fs := afero.NewOsFs()
	t := Target{Tool: tool}
	bm, err := props.BuildBacking(t, fs, dir, w.Geometry.Backing)
	if err != nil {
		return nil, err
	}
	g := w.Geometry
	co := props.CreateOptions{Size: g.Size, ClusterSize: g.ClusterSize, TableSize: g.TableSize}
	if len(g.Backing) > 0 {
		co.BackingFile = props.BackingName(0, g.Backing[0].Format)
		co.BackingFormat = g.Backing[0].Format
	}
	if err := t.Create(fs, filepath.Join(dir, props.ImageName), co); err != nil {
		return nil, err
	}
	m, err := model.New(g.Size, bm)
	if err != nil {
		return nil, err
	}
	rec := &Recording{W: w, Adaptations: ad, End: end, Dir: dir, Files: map[string][]byte{}}
	names := []string{props.ImageName}
	for i, b := range g.Backing {
		names = append(names, props.BackingName(i, b.Format))
	}
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			return nil, fmt.Errorf("qemu: snapshot: %w", err)
		}
		rec.Files["/"+n] = b
	}
	if err := os.WriteFile(filepath.Join(dir, LogName), nil, 0o644); err != nil {
		return nil, fmt.Errorf("qemu: %w", err)
	}
	p, err := qemuio.Start(tool.Ctx(), tool.IOPath, dir)
	if err != nil {
		return nil, err
	}
	r := &recorder{rec: rec, p: p, m: m, dir: dir}
	runErr := r.run()
	rec.Script = p.Log()
	if runErr != nil {
		p.Kill()
		if !errors.As(runErr, new(*RunError)) {
			return nil, runErr
		}
	}
	if err := r.finish(); err != nil {
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

type recorder struct {
	rec *Recording
	p   *qemuio.Proc
	m   *model.Disk
	dir string
}

// entries reads nr_entries from the log's super block.
func (r *recorder) entries() (uint64, error) {
	f, err := os.Open(filepath.Join(r.dir, LogName))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var b [8]byte
	if _, err := f.ReadAt(b[:], 16); err != nil {
		return 0, nil // not written yet
	}
	return binary.LittleEndian.Uint64(b[:]), nil
}

func (r *recorder) phase(op int, what string) error {
	n, err := r.entries()
	if err != nil {
		return err
	}
	r.rec.Phases = append(r.rec.Phases, Phase{Op: op, What: what, Model: r.m.Clone(), entries: n})
	return nil
}

func (r *recorder) do(op int, cmd string) (string, error) {
	out, err := r.p.Do(cmd)
	if err != nil {
		return out, &RunError{Op: op, Cmd: cmd, Err: err}
	}
	return out, nil
}

func (r *recorder) read(op int, p []byte, off int64) error {
	const chunk = 1 << 20
	for done := 0; done < len(p); done += chunk {
		n := min(len(p)-done, chunk)
		at := off + int64(done)
		out, err := r.do(op, fmt.Sprintf("read -v %d %d", at, n))
		if err != nil {
			return err
		}
		if err := qemuio.ParseDump(out, at, p[done:done+n]); err != nil {
			return &RunError{Op: op, Cmd: "read", Err: err}
		}
	}
	return nil
}

func (r *recorder) run() error {
	if _, err := r.p.Do("open -o " + logOpts(false)); err != nil {
		return fmt.Errorf("qemu: open through blklogwrites: %w", err)
	}
	ops := r.rec.W.Ops
	last := len(ops)
	if r.rec.End != EndClose && last > 0 && ops[last-1].Kind == workload.Concurrent {
		last-- // run as the in-flight group of the abrupt end
	}
	for i, op := range ops[:last] {
		if err := r.step(i, op); err != nil {
			return err
		}
	}
	switch r.rec.End {
	case EndClose:
		if err := r.phase(len(ops), "close"); err != nil {
			return err
		}
		if _, err := r.do(len(ops), "close"); err != nil {
			return err
		}
		r.m.Flush()
		return r.p.Quit()
	default:
		if last < len(ops) {
			// The group's writes are issued and the process dies with
			// them possibly in flight.
			op := ops[last]
			r.rec.InFlight = true
			r.m.BeginGroup() // issued at once: after a crash, in any order
			for _, sub := range op.Group {
				if err := r.modelWrite(sub, true); err != nil {
					return err
				}
			}
			r.m.EndGroup()
			if err := r.phase(last, op.String()+" (in flight at "+string(r.rec.End)+")"); err != nil {
				return err
			}
			for _, sub := range op.Group {
				if _, err := r.do(last, aioCmd(sub)); err != nil {
					return err
				}
			}
		} else if err := r.phase(len(ops), string(r.rec.End)); err != nil {
			return err
		}
		if r.rec.End == EndAbort {
			return r.p.Abort()
		}
		return r.p.Kill()
	}
}

func aioCmd(sub workload.Op) string {
	if sub.Kind == workload.Write {
		return fmt.Sprintf("aio_write -q -P %d %d %d", groupByte(sub.ID), sub.Off, sub.Len)
	}
	return fmt.Sprintf("aio_write -q -z %d %d", sub.Off, sub.Len)
}

// modelWrite records a write in the model; group writes (aio, byte
// pattern) are recorded as their bytes.
func (r *recorder) modelWrite(op workload.Op, group bool) error {
	switch {
	case op.Kind == workload.WriteZeroes:
		return r.m.WriteZeroes(op.Off, op.Len)
	case group:
		return r.m.WriteBytes(op.Off, bytes.Repeat([]byte{groupByte(op.ID)}, int(op.Len)))
	default:
		return r.m.WriteID(op.Off, op.Len, uint64(op.ID))
	}
}

func (r *recorder) step(i int, op workload.Op) error {
	switch op.Kind {
	case workload.Write:
		if err := r.modelWrite(op, false); err != nil {
			return err
		}
		buf := make([]byte, op.Len)
		model.Fill(buf, uint64(op.ID), op.Off)
		name := path.Join(PatternDir, fmt.Sprintf("%d.bin", op.ID))
		if err := os.WriteFile(filepath.Join(r.dir, name), buf, 0o644); err != nil {
			return err
		}
		if err := r.phase(i, op.String()); err != nil {
			return err
		}
		_, err := r.do(i, fmt.Sprintf("write -q -s %s %d %d", name, op.Off, op.Len))
		return err
	case workload.WriteZeroes:
		if err := r.modelWrite(op, false); err != nil {
			return err
		}
		if err := r.phase(i, op.String()); err != nil {
			return err
		}
		_, err := r.do(i, fmt.Sprintf("write -q -z %d %d", op.Off, op.Len))
		return err
	case workload.Read:
		if err := r.phase(i, op.String()); err != nil {
			return err
		}
		buf := make([]byte, op.Len)
		if err := r.read(i, buf, op.Off); err != nil {
			return err
		}
		if err := r.m.Verify(op.Off, buf); err != nil {
			return &RunError{Op: i, Cmd: op.String(), Err: fmt.Errorf("%w: %w", props.ErrDataMismatch, err)}
		}
		return nil
	case workload.Flush:
		if err := r.phase(i, op.String()); err != nil {
			return err
		}
		if _, err := r.do(i, "flush"); err != nil {
			return err
		}
		r.m.Flush()
		return nil
	case workload.Resize:
		if err := r.m.Grow(op.Off); err != nil {
			return err
		}
		if err := r.phase(i, op.String()); err != nil {
			return err
		}
		_, err := r.do(i, fmt.Sprintf("truncate %d", op.Off))
		return err
	case workload.Reopen:
		if err := r.phase(i, op.String()); err != nil {
			return err
		}
		if _, err := r.do(i, "close"); err != nil {
			return err
		}
		r.m.Flush()
		_, err := r.do(i, "open -o "+logOpts(true))
		return err
	case workload.Check:
		if err := r.phase(i, op.String()); err != nil {
			return err
		}
		rep, err := checkFile(afero.NewOsFs(), filepath.Join(r.dir, props.ImageName))
		if err != nil {
			return &RunError{Op: i, Cmd: "check", Err: err}
		}
		if !rep.IsConsistent() {
			return &RunError{Op: i, Cmd: "check", Err: fmt.Errorf("live image inconsistent:\n%s", rep)}
		}
		return nil
	case workload.Concurrent:
		if err := r.phase(i, op.String()+" (flush before)"); err != nil {
			return err
		}
		if _, err := r.do(i, "flush"); err != nil {
			return err
		}
		r.m.Flush()
		r.m.BeginGroup() // issued at once: after a crash, in any order
		for _, sub := range op.Group {
			if err := r.modelWrite(sub, true); err != nil {
				return err
			}
		}
		r.m.EndGroup()
		if err := r.phase(i, op.String()); err != nil {
			return err
		}
		for _, sub := range op.Group {
			if _, err := r.do(i, aioCmd(sub)); err != nil {
				return err
			}
		}
		if _, err := r.do(i, "aio_flush"); err != nil {
			return err
		}
		if _, err := r.do(i, "flush"); err != nil {
			return err
		}
		return r.checkGroup(i, op)
	}
	return fmt.Errorf("qemu: unknown op kind %v", op.Kind)
}

// checkGroup reads back what a concurrent group wrote (every byte must be
// one of the covering writes' values) and makes it the model's durable
// contents, as props.Exec does.
func (r *recorder) checkGroup(i int, op workload.Op) error {
	lo, hi := op.Group[0].Off, op.Group[0].Off+op.Group[0].Len
	for _, s := range op.Group {
		lo, hi = min(lo, s.Off), max(hi, s.Off+s.Len)
	}
	got := make([]byte, hi-lo)
	if err := r.read(i, got, lo); err != nil {
		return err
	}
	for k, b := range got {
		pos := lo + int64(k)
		covered, ok := false, false
		for _, s := range op.Group {
			if pos >= s.Off && pos < s.Off+s.Len {
				covered = true
				want := byte(0)
				if s.Kind == workload.Write {
					want = groupByte(s.ID)
				}
				ok = ok || b == want
			}
		}
		if covered && !ok {
			return &RunError{Op: i, Cmd: op.String(), Err: fmt.Errorf("%w: after the concurrent group, byte at %#x is %#02x, written by none of the group's writes covering it",
				props.ErrDataMismatch, pos, b)}
		}
	}
	err := r.m.Recover(r.m.Size(), func(p []byte, off int64) error { return r.read(i, p, off) })
	if err != nil {
		return &RunError{Op: i, Cmd: op.String(), Err: fmt.Errorf("%w: after the concurrent group: %w", props.ErrDataMismatch, err)}
	}
	return nil
}

// finish reads the log into a trace and maps each phase's entry count
// to a trace index.
func (r *recorder) finish() error {
	rec := r.rec
	var err error
	if rec.Final, err = os.ReadFile(filepath.Join(r.dir, props.ImageName)); err != nil {
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
	for i := range rec.Phases {
		e := min(rec.Phases[i].entries, rec.LogEntries)
		rec.Phases[i].Start = idx[e]
	}
	if len(rec.Phases) == 0 {
		rec.Phases = []Phase{{Op: 0, What: "start", Model: r.m.Clone()}}
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
var ErrLogMismatch = errors.New("qemu: the replayed blklogwrites log differs from the image file")

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
		at := firstDiff(got, r.Final)
		return fmt.Errorf("%w (%d vs %d bytes, first difference at %d)", ErrLogMismatch, len(got), len(r.Final), at)
	}
	return nil
}

// WritePatterns writes the pattern file of every (non-group) write of w
// into dir/pat, as the qemu-io script expects them.
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
		if err := os.WriteFile(filepath.Join(dir, PatternDir, fmt.Sprintf("%d.bin", op.ID)), buf, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// ScriptText returns the recorded qemu-io session as a shell script that
// reproduces it from the snapshot files in the artifact directory.
func (r *Recording) ScriptText() string {
	var b strings.Builder
	fmt.Fprintf(&b, "#!/bin/sh\n# Reproduces a qedtorture QEMU run (end: %s). Run in this directory:\n", r.End)
	fmt.Fprintf(&b, "# the snapshot files (snapshot/) are copied over, the image is opened\n# through blklogwrites and the commands below run in one qemu-io.\nset -e\ncp snapshot/* .\n: > %s\nqemu-io <<'EOF'\n", LogName)
	for _, c := range r.Script {
		b.WriteString(c + "\n")
	}
	b.WriteString("EOF\n")
	return b.String()
}
