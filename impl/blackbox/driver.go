package blackbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/qedtorture/qedtorture/crashsim"
	"github.com/qedtorture/qedtorture/internal/campaign"
	"github.com/qedtorture/qedtorture/internal/qemuio"
	"github.com/qedtorture/qedtorture/internal/strace"
	"github.com/qedtorture/qedtorture/model"
	"github.com/qedtorture/qedtorture/props/check"
	"github.com/qedtorture/qedtorture/props/target"
	"github.com/qedtorture/qedtorture/props/workload"
	"github.com/spf13/afero"
)

// Driver is the campaign driver of `--target exec:COMMAND`: each workload
// runs in a fresh directory; the image and its backing chain are created
// by Setup (impl/qed, wired by cmd/qedtorture: creation is setup, not
// judged), then COMMAND is started under strace with the image path as its
// last argument and driven with qemu-io commands on its stdin (reads with
// `read -v`, writes with `write -s FILE` through pattern files outside the
// directory, `write -z`, `flush`, `truncate`; a reopen is a new process).
// When it has quit, strace's output becomes the trace (Parse), checked
// against the files it left (Verify), and the marks are placed at its
// prompts: the model before guest op i goes where the program printed the
// prompt before the first command of op i.
type Driver struct {
	command string
	argv    []string
	strace  string
	setup   target.Target
	// JudgeBudget is the distinct states per workload the program's own
	// recovery judges (judge.go); 0: none, -1: all. New sets
	// DefaultJudgeBudget.
	JudgeBudget int
	// AdaptFunc, if set, adapts workloads to what the program can run
	// (cmd/qedtorture sets QEMU's adaptations for qemu-io).
	AdaptFunc func(w *workload.Workload) (*workload.Workload, []campaign.Adaptation)
}

// New returns the driver of exec:command; setup creates the images.
func New(command string, setup target.Target) (*Driver, error) {
	argv := strings.Fields(command)
	if len(argv) == 0 {
		return nil, errors.New("exec: empty COMMAND (want exec:PROGRAM [ARGS...])")
	}
	st, err := strace.Path()
	if err != nil {
		return nil, err
	}
	return &Driver{command: command, argv: argv, strace: st, setup: setup, JudgeBudget: DefaultJudgeBudget}, nil
}

func (d *Driver) Name() string { return "exec:" + d.command }

// Adapt is AdaptFunc's, or changes nothing: the commands sent are
// qemu-io's basic ones, and concurrent groups are aio_write commands with
// one-byte patterns (the Disk is a target.GroupWriter).
//
// Without AdaptFunc, the one adaptation is a limit of the recording: two
// writes in flight at once over the same bytes reach the file in an order
// strace does not show (the kernel may even interleave them), so a write
// of a concurrent group that shares a 512-byte sector with an earlier
// write of the group is dropped (as --target qemu drops them for
// blklogwrites; QEMU's Adapt, which AdaptFunc is for qemu-io, does the
// same). Were one left, Verify would refuse the recording.
func (d *Driver) Adapt(w *workload.Workload) (*workload.Workload, []campaign.Adaptation) {
	if d.AdaptFunc != nil {
		return d.AdaptFunc(w)
	}
	return dropConcurrentOverlap(w)
}

// dropConcurrentOverlap drops the writes of concurrent groups that share a
// 512-byte sector with an earlier write of their group.
func dropConcurrentOverlap(w *workload.Workload) (*workload.Workload, []campaign.Adaptation) {
	var ad []campaign.Adaptation
	c := w.Clone()
	for i := range c.Ops {
		op := &c.Ops[i]
		if op.Kind != workload.Concurrent {
			continue
		}
		var g []workload.Op
		for _, sub := range op.Group {
			lo, hi := sub.Off&^511, (sub.Off+sub.Len+511)&^511
			clash := -1
			for j, o := range g {
				if olo, ohi := o.Off&^511, (o.Off+o.Len+511)&^511; lo < ohi && olo < hi {
					clash = j
					break
				}
			}
			if clash >= 0 {
				ad = append(ad, campaign.Adaptation{Kind: "concurrent-overlap (harness)",
					What: fmt.Sprintf("op %d: dropped %s from the concurrent group (shares a sector with %s)", i, sub, g[clash])})
				continue
			}
			g = append(g, sub)
		}
		op.Group = g
	}
	if ad == nil {
		return w, nil
	}
	return c, ad
}

func (d *Driver) Recoverer() target.Target { return nil }

// Judges returns the program's own recovery judge (judge.go) with
// JudgeBudget states a workload, or none.
func (d *Driver) Judges() []campaign.Judge {
	if d.JudgeBudget == 0 {
		return nil
	}
	return []campaign.Judge{&programJudge{d: d, budget: d.JudgeBudget}}
}
func (d *Driver) Close() error { return nil }

// segment is one process's run: its strace output and the trace position
// at which its recording starts in the whole trace.
type segment struct {
	out string
}

// pendingMark is a mark taken live: which process, and how many commands
// it had been sent.
type pendingMark struct {
	op       int
	seg      int
	commands int
	model    *model.Disk
}

// run is one workload's recording in progress.
type run struct {
	d       *Driver
	dir     string // the recorded directory (the image and its chain)
	scratch string // pattern files and strace outputs, outside dir
	base    map[string][]byte
	opts    strace.Options
	segs    []segment
	marks   []pendingMark
	disk    *disk
	mu      sync.Mutex
}

func (d *Driver) Record(ctx context.Context, w *workload.Workload, o campaign.RecordOptions) (*campaign.Recording, error) {
	if o.Faults != "" {
		return nil, errors.New("exec: fault injection needs an in-process target")
	}
	top, err := os.MkdirTemp("", "qedtorture-exec-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(top)
	r := &run{d: d, dir: filepath.Join(top, "w"), scratch: filepath.Join(top, "s")}
	for _, p := range []string{r.dir, r.scratch} {
		if err := os.Mkdir(p, 0o755); err != nil {
			return nil, err
		}
	}
	fs := afero.NewBasePathFs(afero.NewOsFs(), r.dir)
	tgt := &execTarget{r: r, ctx: ctx}
	e, err := workload.NewExec(tgt, fs, "/", w)
	if err != nil {
		r.kill()
		if cerr := ctx.Err(); cerr != nil {
			return nil, cerr
		}
		return nil, fmt.Errorf("exec: setup: %w", err)
	}
	rec := &campaign.Recording{W: w, Seed: o.Seed, Dir: "/", Image: "/" + workload.ImageName, Options: crashsim.Options{ImplicitDirSync: true},
		Recorder: "strace (the program's file-system calls on the image and its backing files)"}
	r.marks = append(r.marks, pendingMark{op: -1, seg: 0, commands: 0, model: e.Model.Clone()})
	e.Snapshot = func(i int, m *model.Disk) {
		r.mu.Lock()
		defer r.mu.Unlock()
		n := 0
		if r.disk != nil {
			n = r.disk.commands()
		}
		r.marks = append(r.marks, pendingMark{op: i, seg: len(r.segs) - 1, commands: n, model: m})
	}
	runErr := e.RunAll()
	if e.Disk != nil {
		if err := e.Disk.Close(); err != nil && runErr == nil {
			runErr = err
		}
	}
	if err := ctx.Err(); err != nil {
		// Interrupted: the program was killed with the context, and what
		// it did not finish is not a finding.
		r.kill()
		return nil, err
	}
	if runErr != nil {
		var oe *workload.OpError
		if !errors.As(runErr, &oe) {
			r.kill()
			return nil, runErr
		}
		rec.OpErr = oe
	}
	r.kill()
	rec.EndModel = e.Model.Clone()
	if err := r.finish(rec); err != nil {
		return nil, err
	}
	rec.SetupEnd = 0
	return rec, nil
}

// finish turns the run's strace outputs into rec's trace over the files
// at the first open (Base), checked against the files the processes left
// (Verify), and places the marks taken live at the program's prompts.
func (r *run) finish(rec *campaign.Recording) error {
	// The trace: every process's recording, in order.
	seq := strace.SequenceFrom(r.base, r.opts)
	for _, s := range r.segs {
		if err := seq.AppendFile(s.out); err != nil {
			return fmt.Errorf("exec: %w", err)
		}
	}
	trace, prompts := seq.Trace, seq.Prompts
	if err := seq.Verify(); err != nil {
		return fmt.Errorf("exec: %w", err)
	}
	for _, m := range r.marks {
		k := int64(0)
		if m.seg >= 0 && m.seg < len(prompts) {
			ps := prompts[m.seg]
			switch {
			case m.commands < len(ps):
				k = ps[m.commands]
			case len(ps) > 0:
				k = ps[len(ps)-1]
			}
		} else if m.seg >= len(prompts) && len(trace.Ops) > 0 {
			k = int64(len(trace.Ops))
		}
		if n := len(rec.Marks); n > 0 && rec.Marks[n-1].K > k {
			k = rec.Marks[n-1].K
		}
		rec.Marks = append(rec.Marks, campaign.Mark{Op: m.op, K: k, Model: m.model})
	}
	base, err := crashsim.NewImage(r.base)
	if err != nil {
		return err
	}
	rec.Base, rec.Trace = base, trace
	return nil
}

func (r *run) kill() {
	if r.disk != nil {
		r.disk.proc.Kill()
	}
}

// execTarget creates images with the driver's setup target and opens them
// by starting the program under strace.
type execTarget struct {
	r   *run
	ctx context.Context
}

func (t *execTarget) Name() string { return t.r.d.Name() }

func (t *execTarget) Create(fs afero.Fs, path string, o target.CreateOptions) error {
	return t.r.d.setup.Create(fs, path, o)
}

func (t *execTarget) Open(fs afero.Fs, path string, o target.OpenOptions) (target.Disk, error) {
	r := t.r
	if path != "/"+workload.ImageName {
		// Backing files are written in the setup, in process.
		return t.r.d.setup.Open(fs, path, o)
	}
	if r.base == nil {
		base, opts, err := strace.Snapshot(r.dir)
		if err != nil {
			return nil, err
		}
		r.base, r.opts = base, opts
	}
	out := filepath.Join(r.scratch, fmt.Sprintf("strace%d.txt", len(r.segs)))
	argv := append([]string{r.d.strace, "-f", "-qq", "-e", "signal=none", "--seccomp-bpf", "-y", "-xx", "-v", "-s", fmt.Sprint(strace.MaxData),
		"-e", "trace=" + strings.Join(strace.TracedCalls, ","), "-o", out, "--"}, r.d.argv...)
	argv = append(argv, filepath.Join(r.dir, workload.ImageName))
	r.mu.Lock()
	r.segs = append(r.segs, segment{out: out})
	r.mu.Unlock()
	p, err := qemuio.StartCommand(t.ctx, argv, r.dir)
	if err != nil {
		return nil, fmt.Errorf("exec: starting %s: %w", r.d.command, err)
	}
	d := &disk{r: r, proc: p, path: filepath.Join(r.dir, workload.ImageName), start: len(p.Log())}
	r.mu.Lock()
	r.disk = d
	r.mu.Unlock()
	// The size, from the header: the program is asked nothing else.
	size, err := imageSize(d.path)
	if err != nil {
		p.Kill()
		return nil, err
	}
	d.size = size
	return d, nil
}

func imageSize(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	rep, err := check.File(f)
	if err != nil {
		return 0, err
	}
	return int64(rep.Header.ImageSize), nil
}

// disk is an image open in the program.
type disk struct {
	r     *run
	proc  *qemuio.Proc
	path  string
	start int
	mu    sync.Mutex
	size  int64
	seq   int
}

func (d *disk) commands() int { return len(d.proc.Log()) - d.start }

func (d *disk) ReadAt(p []byte, off int64) (int, error) {
	return d.proc.ReadAt("exec", p, off)
}

func (d *disk) WriteAt(p []byte, off int64) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	d.mu.Lock()
	d.seq++
	name := filepath.Join(d.r.scratch, fmt.Sprintf("w%d.bin", d.seq))
	d.mu.Unlock()
	if err := os.WriteFile(name, p, 0o644); err != nil {
		return 0, err
	}
	defer os.Remove(name)
	if _, err := d.proc.Do(fmt.Sprintf("write -q -s %s %d %d", name, off, len(p))); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (d *disk) WriteZeroes(off, n int64) error {
	_, err := d.proc.Do(fmt.Sprintf("write -q -z %d %d", off, n))
	return err
}

func (d *disk) Flush() error {
	_, err := d.proc.Do("flush")
	return err
}

func (d *disk) Close() error {
	return d.proc.Quit()
}

func (d *disk) Size() int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.size
}

func (d *disk) Resize(n int64) error {
	if _, err := d.proc.Do(fmt.Sprintf("truncate %d", n)); err != nil {
		return err
	}
	d.mu.Lock()
	d.size = n
	d.mu.Unlock()
	return nil
}

var _ target.GroupWriter = (*disk)(nil)

// WriteGroup implements target.GroupWriter: every write of a concurrent
// group is an aio_write (a byte pattern each), then aio_flush waits for
// them all: the program's own concurrency is exercised.
func (d *disk) WriteGroup(ws []target.GroupWrite) error {
	for _, w := range ws {
		var cmd string
		if w.Zero {
			cmd = fmt.Sprintf("aio_write -q -z %d %d", w.Off, w.Len)
		} else {
			if int64(len(w.Data)) != w.Len || w.Len == 0 || bytes.Count(w.Data, w.Data[:1]) != len(w.Data) {
				return fmt.Errorf("exec: aio_write takes a one-byte pattern; the group write at %#x is not one", w.Off)
			}
			cmd = fmt.Sprintf("aio_write -q -P %d %d %d", w.Data[0], w.Off, w.Len)
		}
		if _, err := d.proc.Do(cmd); err != nil {
			return err
		}
	}
	_, err := d.proc.Do("aio_flush")
	return err
}

// PatternOnly implements target.GroupWriter: aio_write takes a byte
// pattern.
func (*disk) PatternOnly() bool { return true }

// Check runs the independent checker on the live file (the program keeps
// it open; its metadata may be in flight, so only a structural
// inconsistency counts).
func (d *disk) Check(repair bool) (target.CheckResult, error) {
	if repair {
		return target.CheckResult{}, errors.New("exec: the program's image is not repaired during a recording")
	}
	f, err := os.Open(d.path)
	if err != nil {
		return target.CheckResult{}, err
	}
	defer f.Close()
	rep, err := check.File(f)
	if err != nil {
		return target.CheckResult{}, err
	}
	if !rep.IsConsistent() {
		return target.CheckResult{}, fmt.Errorf("live image inconsistent:\n%s", rep)
	}
	return target.CheckResult{}, nil
}
