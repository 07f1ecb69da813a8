package qemu

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/qedtorture/qedtorture/crashsim"
	"github.com/qedtorture/qedtorture/internal/qemutool"
	"github.com/qedtorture/qedtorture/internal/strace"
	"github.com/qedtorture/qedtorture/props/workload"
)

// Two image commands of a recording cannot go through blklogwrites, and
// are recorded by their system calls instead (internal/strace, the
// recorder of impl/blackbox and of QEMU's creation), on the plain files:
//
//   - a safe rebase onto a file: through blklogwrites the image's filename
//     is json:{...}, against which qemu-img 7.2 cannot resolve the
//     relative new backing name ("Cannot use relative backing file names
//     for 'json:...'"); a "file:NAME" name resolves but is what the header
//     then names (a second header rewrite to NAME would leave crash states
//     no user sees), and an absolute name is not the workload's;
//   - a commit: its writes go to the base file, which one blklogwrites
//     node over the image does not log, and a second node over the base
//     cannot be given to qemu-img (the backing's filename comes from the
//     image's header, and qemu-img refuses it beside the backing's "file"
//     options: "Can't specify 'file' and 'filename' options at the same
//     time"; blklogwrites takes no filename).
//
// Under strace -f, every write, truncate and sync qemu-img issues to any
// file of the image's directory (the image and the base alike) is in one
// trace, in the order the calls took effect (syncs at their entry,
// writes at their exit: strace.Parse), checked against the files it left
// (strace.Recording.Verify). The trace is a segment of the recording:
// the qemu-io session has the image closed while the command runs, so it
// goes between the log entries written before and after
// (Recorder.segments, merged by finish). A phase taken after a segment
// starts after it.

// segment is an image command recorded by its system calls: entries is
// the log's entry count when it ran.
type segment struct {
	entries uint64
	ops     []crashsim.Op
}

// straceFound reports whether strace is installed: without it a safe
// rebase onto a file is dropped by Adapt (HarnessRebaseRelativeName), and
// a commit runs through blklogwrites with its base unrecorded, as before.
var straceFound = sync.OnceValue(func() bool {
	_, err := strace.Path()
	return err == nil
})

// traced runs qemu-img with args (the image named last, as a plain qed
// file) in the recording's directory under strace, and appends its
// trace as a segment.
func (r *Recorder) traced(tool *qemutool.Tool, args []string) error {
	r.mu.Lock()
	started := r.proc != nil
	r.mu.Unlock()
	if !started {
		return fmt.Errorf("qemu: %s before the recording's first open", args[0])
	}
	st, err := strace.Path()
	if err != nil {
		return fmt.Errorf("qemu: recording qemu-img %s: %w", args[0], err)
	}
	n, err := r.entries()
	if err != nil {
		return fmt.Errorf("qemu: reading %s: %w", LogName, err)
	}
	base, o, err := strace.Snapshot(r.dir)
	if err != nil {
		return err
	}
	out, err := os.CreateTemp("", "qedtorture-qemu-strace-")
	if err != nil {
		return fmt.Errorf("qemu: %w", err)
	}
	out.Close()
	defer os.Remove(out.Name())
	args = append(args, "-f", "qed", workload.ImageName)
	timeout := tool.Timeout
	if timeout <= 0 {
		timeout = qemutool.DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(tool.Ctx(), timeout)
	defer cancel()
	cmd := strace.Command(ctx, st, out.Name(), append([]string{tool.ImgPath}, args...))
	cmd.Dir = r.dir
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	qemutool.NewProcessGroup(cmd)
	cmd.Cancel = func() error { return qemutool.KillGroup(cmd) }
	cmd.WaitDelay = 2 * time.Second
	release, err := qemutool.Start(context.Background(), cmd)
	if err != nil {
		return fmt.Errorf("qemu: %w", err)
	}
	err = cmd.Wait()
	release()
	if err != nil {
		if cerr := ctx.Err(); cerr != nil {
			err = errors.Join(err, cerr)
		}
		return fmt.Errorf("qemu: qemutool: %s %s: %w: %s", tool.ImgPath, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	f, err := os.Open(out.Name())
	if err != nil {
		return fmt.Errorf("qemu: %w", err)
	}
	rec, err := strace.Parse(f, o)
	f.Close()
	if err != nil {
		return fmt.Errorf("qemu: recording qemu-img %s: %w", args[0], err)
	}
	if err := rec.Verify(base, r.dir); err != nil {
		return fmt.Errorf("qemu: recording qemu-img %s: %w", args[0], err)
	}
	r.mu.Lock()
	r.segs = append(r.segs, segment{entries: n, ops: rec.Trace.Ops})
	r.mu.Unlock()
	return nil
}

// mergeSegments returns t (the log's trace; idx maps a log entry count
// to its trace index) with every segment's ops inserted where the log
// stood when it ran, renumbered, and shift[k], the ops the first k
// segments added.
func mergeSegments(t *crashsim.Trace, idx []int64, segs []segment) (*crashsim.Trace, []int64) {
	shift := make([]int64, len(segs)+1)
	if len(segs) == 0 {
		return t, shift
	}
	out := &crashsim.Trace{Ops: make([]crashsim.Op, 0, len(t.Ops))}
	add := func(o crashsim.Op) {
		o.Index = int64(len(out.Ops))
		out.Ops = append(out.Ops, o)
	}
	k := int64(0)
	for j, s := range segs {
		at := idx[min(s.entries, uint64(len(idx)-1))]
		for ; k < at && k < int64(len(t.Ops)); k++ {
			add(t.Ops[k])
		}
		for _, o := range s.ops {
			add(o)
		}
		shift[j+1] = shift[j] + int64(len(s.ops))
	}
	for ; k < int64(len(t.Ops)); k++ {
		add(t.Ops[k])
	}
	return out, shift
}

// tracedFiles are the files besides the image that the trace names (a
// commit's base).
func (r *Recording) tracedFiles() []string {
	seen := map[string]bool{imageInTree: true}
	var out []string
	for _, o := range r.Trace.Ops {
		if o.Path != "" && !seen[o.Path] {
			seen[o.Path] = true
			out = append(out, o.Path)
		}
	}
	return out
}

// verifyTracedFiles compares the files besides the image that the trace
// writes (a commit's base), replayed, with what is on disk in r.Dir.
func (r *Recording) verifyTracedFiles(replayed func(string) ([]byte, error)) error {
	for _, p := range r.tracedFiles() {
		got, err := replayed(p)
		if err != nil {
			return err
		}
		want, err := os.ReadFile(filepath.Join(r.Dir, filepath.FromSlash(p)))
		if err != nil {
			return fmt.Errorf("qemu: %w", err)
		}
		if !bytes.Equal(got, want) {
			return fmt.Errorf("%w (%s: %d vs %d bytes)", ErrLogMismatch, p, len(got), len(want))
		}
	}
	return nil
}
