package qemu

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/qedtorture/qedtorture/crashsim"
	"github.com/qedtorture/qedtorture/internal/campaign"
	"github.com/qedtorture/qedtorture/internal/qemutool"
	"github.com/qedtorture/qedtorture/internal/strace"
	"github.com/qedtorture/qedtorture/props/target"
	"github.com/spf13/afero"
)

// Crashes during creation (issue 14.2; internal/campaign/create.go).
//
// blklogwrites cannot record `qemu-img create`: the log is a block driver
// over an image that must already exist. So for the workloads whose
// creation is judged (RecordOptions.Create), the setup runs each
// `qemu-img create` (backing chain and image) under strace on the real
// directory (internal/strace), and the recording's trace is that prefix
// followed by the blklogwrites log of the rest of the workload:
//
//   - the prefix replays on the directory as it was before the creation
//     (empty, or holding the old image of a creation over an existing one,
//     durable, name included): Recording.Base;
//   - what the harness itself writes between the qemu-img commands (a raw
//     backing file, the files of image commands, a crafted header, the
//     backing files' data written through qemu-io) is not QEMU's: it is
//     added to the prefix as the difference between the directory and the
//     prefix replayed, each changed file written and synced, and a
//     directory sync after a file the harness created (a careful user's
//     preparation, durable before the next command);
//   - each qemu-img run's recording is checked at once: the prefix
//     replayed must give the directory's files as qemu-img left them; and
//     the whole prefix must give the files the blklogwrites recording
//     snapshots at the first open. A recording that does not is refused
//     (ErrCreateMismatch: a counted skip, as ErrLogMismatch);
//   - directory syncs are honoured as strace records them: qemu-img never
//     syncs the directory, so a new image's name is durable only if
//     something else synced the directory after its creation.
//
// Recording.SetupEnd is 0 (the whole prefix is the creation), CreateEnd
// the prefix's length, and every mark of the blklogwrites part is shifted
// by it.

// ErrCreateMismatch reports a creation whose strace recording, replayed,
// does not give the files qemu-img left. It wraps campaign.ErrSkip: the
// engine counts the workload as skipped (the harness cannot tell what
// reached the files in which order; QEMU is not at fault).
var ErrCreateMismatch = fmt.Errorf("qemu: the recorded creation (qemu-img create under strace) differs from the files it left (%w)", campaign.ErrSkip)

// Creation is the recorded creation of a workload's image and backing
// chain: the prefix of the recording's trace.
type Creation struct {
	Base     map[string][]byte // the directory before the creation
	Trace    *crashsim.Trace   // the creation, on Base
	Commands []string          // the qemu-img commands run under strace
	// Over is the old image the creation replaced (nil: none).
	Over *campaign.OverImage
}

// creating records a creation in progress (Target.cr).
type creating struct {
	tool    *qemutool.Tool
	strace  string // strace's path
	scratch string // strace's outputs
	seq     *strace.Sequence
	cmds    []string
}

func newCreating(tool *qemutool.Tool, stracePath, dir, scratch string) (*creating, error) {
	seq, err := strace.NewSequence(dir)
	if err != nil {
		return nil, fmt.Errorf("qemu: %w", err)
	}
	return &creating{tool: tool, strace: stracePath, scratch: scratch, seq: seq}, nil
}

// create runs `qemu-img create` for real (a path in the directory) under
// strace, after adding the harness's writes since the last command.
func (c *creating) create(real string, o target.CreateOptions) error {
	if err := c.harness(); err != nil {
		return err
	}
	argv := append([]string{c.tool.ImgPath}, CreateArgs(real, o)...)
	c.cmds = append(c.cmds, strings.ReplaceAll("qemu-img "+strings.Join(argv[1:], " "), c.seq.Dir()+string(filepath.Separator), ""))
	if err := c.run(argv); err != nil {
		return err
	}
	if err := c.seq.Verify(); err != nil {
		if errors.Is(err, strace.ErrUnrecorded) {
			return fmt.Errorf("%w: %s: %v", ErrCreateMismatch, c.cmds[len(c.cmds)-1], err)
		}
		return err
	}
	return nil
}

// run runs argv under strace in the sequence's directory and appends its
// recording. strace and qemu-img share a process group, killed whole when
// the campaign's context ends or the tool's timeout passes: killing strace
// alone would leave qemu-img detached mid-call, holding the output pipe.
func (c *creating) run(argv []string) error {
	timeout := c.tool.Timeout
	if timeout <= 0 {
		timeout = qemutool.DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(c.tool.Ctx(), timeout)
	defer cancel()
	out := c.seq.Output(c.scratch)
	cmd := strace.Command(ctx, c.strace, out, argv)
	cmd.Dir = c.seq.Dir()
	var output bytes.Buffer
	cmd.Stdout, cmd.Stderr = &output, &output
	qemutool.NewProcessGroup(cmd)
	cmd.Cancel = func() error { return qemutool.KillGroup(cmd) }
	cmd.WaitDelay = 2 * time.Second
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	release, err := qemutool.Start(context.Background(), cmd) // ctx's cancellation is cmd.Cancel's
	if err == nil {
		err = cmd.Wait()
		release()
	}
	if cerr := c.tool.Ctx().Err(); cerr != nil {
		return fmt.Errorf("qemu: %s: %w", c.cmds[len(c.cmds)-1], cerr)
	}
	if err != nil {
		return fmt.Errorf("qemu: %s (under strace): %w: %s", c.cmds[len(c.cmds)-1], err, strings.TrimSpace(output.String()))
	}
	if err := c.seq.AppendFile(out); err != nil {
		return fmt.Errorf("qemu: %w", err)
	}
	return nil
}

// recorded reports whether name (relative, "/x") is a file of the
// recording: not the log, not a pattern file.
func recorded(name string) bool {
	return name != "/"+LogName && !strings.HasPrefix(name, "/"+PatternDir+"/")
}

// harness adds what the directory's files hold beyond the prefix
// replayed: writes the harness made itself (see above).
func (c *creating) harness() error {
	now, _, err := strace.Snapshot(c.seq.Dir())
	if err != nil {
		return err
	}
	img, err := crashsim.NewImage(c.seq.Base)
	if err != nil {
		return err
	}
	fs, err := img.Replay(c.seq.Trace, int64(len(c.seq.Trace.Ops)), crashsim.Options{})
	if err != nil {
		return fmt.Errorf("qemu: replaying the creation: %w", err)
	}
	names := make([]string, 0, len(now))
	for n := range now {
		if recorded(n) {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	created := false
	for _, n := range names {
		want := now[n]
		got, err := afero.ReadFile(fs, n)
		var ops []crashsim.Op
		switch {
		case err != nil:
			created = true
			ops = append(ops, crashsim.Op{Kind: crashsim.OpCreate, Path: n})
			if len(want) > 0 {
				ops = append(ops, crashsim.Op{Kind: crashsim.OpWrite, Path: n, Data: want})
			}
		case !bytes.Equal(got, want):
			if len(want) > 0 {
				ops = append(ops, crashsim.Op{Kind: crashsim.OpWrite, Path: n, Data: want})
			}
			if len(want) < len(got) {
				ops = append(ops, crashsim.Op{Kind: crashsim.OpTruncate, Path: n, Size: int64(len(want))})
			}
		default:
			continue
		}
		ops = append(ops, crashsim.Op{Kind: crashsim.OpSync, Path: n})
		c.seq.Add(ops...)
	}
	if created {
		c.seq.Add(crashsim.Op{Kind: crashsim.OpDirSync, Path: "/"})
	}
	return nil
}

// finish adds the harness's last writes and checks the prefix against
// the files the blklogwrites recording snapshotted at the first open.
func (c *creating) finish(files map[string][]byte) (*Creation, error) {
	img, err := crashsim.NewImage(c.seq.Base)
	if err != nil {
		return nil, err
	}
	fs, err := img.Replay(c.seq.Trace, int64(len(c.seq.Trace.Ops)), crashsim.Options{})
	if err != nil {
		return nil, fmt.Errorf("qemu: replaying the creation: %w", err)
	}
	for n, want := range files {
		got, err := afero.ReadFile(fs, n)
		if err != nil || !bytes.Equal(got, want) {
			return nil, fmt.Errorf("%w: %s at the first open (replayed: %d bytes, %v; on disk %d bytes)", ErrCreateMismatch, n, len(got), err, len(want))
		}
	}
	return &Creation{Base: c.seq.Base, Trace: c.seq.Trace, Commands: c.cmds}, nil
}

// createPrefix prepends the creation to the recording handed to the
// engine: Base, Trace, SetupEnd, CreateEnd, marks.
func createPrefix(rec *campaign.Recording, cr *Creation) error {
	base, err := crashsim.NewImage(cr.Base)
	if err != nil {
		return err
	}
	p := int64(len(cr.Trace.Ops))
	t := &crashsim.Trace{Ops: make([]crashsim.Op, 0, len(cr.Trace.Ops)+len(rec.Trace.Ops))}
	for _, tr := range []*crashsim.Trace{cr.Trace, rec.Trace} {
		for _, o := range tr.Ops {
			o.Index = int64(len(t.Ops))
			t.Ops = append(t.Ops, o)
		}
	}
	rec.Base, rec.Trace = base, t
	rec.SetupEnd, rec.CreateEnd = 0, p
	for i := range rec.Marks {
		if rec.Marks[i].Op >= 0 {
			rec.Marks[i].K += p
		}
	}
	rec.Over = cr.Over
	rec.Recorder = "strace (QEMU's qemu-img create, with real directory semantics), then " + rec.Recorder
	return nil
}

// creationScript is the comment of repro.sh naming the creation's
// commands (the script itself starts from the files they left).
func creationScript(cr *Creation) string {
	var b strings.Builder
	b.WriteString("# The creation was recorded with strace: the files in created/ are what\n# these commands (and the harness's own writes) left in a directory holding base/:\n")
	for _, c := range cr.Commands {
		fmt.Fprintf(&b, "#   %s\n", c)
	}
	return b.String()
}
