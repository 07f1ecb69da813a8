package qemuio

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/qedtorture/qedtorture/internal/childrss"
	"github.com/qedtorture/qedtorture/internal/qemutool"
)

// Sentinel errors.
var (
	// ErrCommand is wrapped by every *CommandError.
	ErrCommand = errors.New("qemuio: qemu-io command failed")
	// ErrExited reports that the qemu-io process is gone (aborted, killed,
	// or exited on its own).
	ErrExited = errors.New("qemuio: qemu-io process has exited")
	// ErrNotOSFS reports an afero.Fs that does not map to real files.
	ErrNotOSFS = errors.New("qemuio: the filesystem must be afero.OsFs or a BasePathFs over it")
	// ErrParse reports qemu-io output this package does not understand.
	ErrParse = errors.New("qemuio: cannot parse qemu-io output")
)

// CommandError is a qemu-io command that reported a failure.
type CommandError struct {
	Cmd    string // the command line sent
	Output string // what qemu-io printed for it
}

func (e *CommandError) Error() string {
	return fmt.Sprintf("qemu-io %q: %s", e.Cmd, strings.TrimSpace(e.Output))
}

func (e *CommandError) Unwrap() error { return ErrCommand }

const prompt = "qemu-io> "

// Proc is one interactive qemu-io process: commands go to its stdin one at
// a time and the prompt that follows each one delimits its output (stdout
// and stderr share one pipe, so their order is kept). Methods are safe for
// concurrent use; commands are serialised.
type Proc struct {
	mu struct {
		sync.Mutex // guards everything below and the pipes
		cmd        *exec.Cmd
		stdin      *os.File
		out        *os.File
		buf        []byte
		done       bool
		waitErr    error
		log        []string        // every command sent, in order
		release    func()          // qemutool.Track's, called once reaped
		ctx        context.Context // StartCommand's: its childrss.Peak hears of the reaped process
		packet     bool            // stdin is a packet pipe: Pipeline sends ahead
	}
	// Timeout bounds each command (0 = one minute).
	Timeout time.Duration
}

// Start starts qemu-io (the binary at ioPath) in dir with no image open
// and waits for its first prompt. The process (with its process group) is
// killed when ctx is cancelled: commands in progress then fail with
// ErrExited. While it runs it is on internal/cleanup's list (through
// qemutool.Track).
func Start(ctx context.Context, ioPath, dir string) (*Proc, error) {
	return StartCommand(ctx, []string{ioPath}, dir)
}

// StartCommand is Start for any program that speaks qemu-io's language:
// argv (the program and its arguments) is started in dir, and its first
// prompt awaited. Black-box targets (impl/blackbox) start theirs under
// strace this way.
func StartCommand(ctx context.Context, argv []string, dir string) (*Proc, error) {
	return startCommand(ctx, argv, dir, false)
}

// StartPipelined is Start with qemu-io's stdin a packet pipe (on Linux),
// one command line a packet, so that [Proc.Pipeline] can send a batch of
// commands ahead and qemu-io runs them one after another without a
// round trip each (see packetPipe). Elsewhere it is Start, and Pipeline
// sends one command at a time. Only for qemu-io itself (whose stdio
// buffer takes a whole line): a program that reads its stdin in smaller
// pieces would lose the rest of each packet.
func StartPipelined(ctx context.Context, ioPath, dir string) (*Proc, error) {
	return startCommand(ctx, []string{ioPath}, dir, true)
}

func startCommand(ctx context.Context, argv []string, dir string, pipelined bool) (*Proc, error) {
	ioPath := argv[0]
	var (
		inR, inW *os.File
		packet   bool
		err      error
	)
	if pipelined {
		inR, inW, packet, err = packetPipe()
	} else {
		inR, inW, err = os.Pipe()
	}
	if err != nil {
		return nil, fmt.Errorf("qemuio: pipe: %w", err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		inR.Close()
		inW.Close()
		return nil, fmt.Errorf("qemuio: pipe: %w", err)
	}
	cmd := exec.Command(ioPath, argv[1:]...)
	cmd.Dir = dir
	cmd.Stdin, cmd.Stdout, cmd.Stderr = inR, outW, outW
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	qemutool.NewProcessGroup(cmd)
	release, err := qemutool.Start(ctx, cmd)
	if err != nil {
		inR.Close()
		inW.Close()
		outR.Close()
		outW.Close()
		return nil, fmt.Errorf("qemuio: starting %s: %w", ioPath, err)
	}
	inR.Close()
	outW.Close()
	p := &Proc{}
	p.mu.cmd, p.mu.stdin, p.mu.out, p.mu.ctx, p.mu.packet = cmd, inW, outR, ctx, packet
	p.mu.release = release
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, err := p.readPromptLocked(); err != nil {
		p.killLocked()
		return nil, fmt.Errorf("qemuio: qemu-io did not start: %w", err)
	}
	return p, nil
}

// Pid returns the process id.
func (p *Proc) Pid() int { return p.mu.cmd.Process.Pid }

// Exited reports whether the process is known to have ended (its end was
// seen and it was reaped, or it was killed).
func (p *Proc) Exited() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mu.done
}

// Log returns every command sent so far, in order.
func (p *Proc) Log() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.mu.log...)
}

// readPromptLocked reads until the next prompt and returns what came
// before it.
func (p *Proc) readPromptLocked() (string, error) {
	timeout := p.Timeout
	if timeout <= 0 {
		timeout = time.Minute
	}
	_ = p.mu.out.SetReadDeadline(time.Now().Add(timeout))
	chunk := make([]byte, 64<<10)
	// from is where the prompt may begin: the bytes before it were
	// searched already (a large read -v dump arrives in many chunks).
	from := 0
	for {
		if i := bytes.Index(p.mu.buf[from:], []byte(prompt)); i >= 0 {
			i += from
			out := string(p.mu.buf[:i])
			p.mu.buf = append(p.mu.buf[:0], p.mu.buf[i+len(prompt):]...)
			return out, nil
		}
		from = max(0, len(p.mu.buf)-len(prompt)+1)
		n, err := p.mu.out.Read(chunk)
		p.mu.buf = append(p.mu.buf, chunk[:n]...)
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return string(p.mu.buf), fmt.Errorf("qemuio: no prompt from qemu-io after %v", timeout)
			}
			p.reapLocked()
			return string(p.mu.buf), fmt.Errorf("%w (%v): output %q", ErrExited, p.mu.waitErr, clip(string(p.mu.buf)))
		}
	}
}

func (p *Proc) reapLocked() {
	if p.mu.done {
		return
	}
	p.mu.done = true
	p.mu.waitErr = p.mu.cmd.Wait()
	p.mu.release()
	childrss.Record(p.mu.ctx, p.mu.cmd.ProcessState)
	p.mu.stdin.Close()
	p.mu.out.Close()
}

func clip(s string) string {
	if len(s) > 300 {
		return s[:300] + "..."
	}
	return s
}

// Do sends one command and returns its output; a failure reported by
// qemu-io is a *CommandError.
func (p *Proc) Do(line string) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.doLocked(line)
}

func (p *Proc) doLocked(line string) (string, error) {
	if p.mu.done {
		return "", ErrExited
	}
	p.mu.log = append(p.mu.log, line)
	if _, err := p.mu.stdin.WriteString(line + "\n"); err != nil {
		p.reapLocked()
		return "", fmt.Errorf("%w: writing %q: %v", ErrExited, line, err)
	}
	out, err := p.readPromptLocked()
	if err != nil {
		return out, err
	}
	if Failed(out) {
		return out, &CommandError{Cmd: line, Output: out}
	}
	return out, nil
}

// Reply is the outcome of one command of a [Proc.Pipeline].
type Reply struct {
	Out string // what qemu-io printed for the command
	// Err is nil, a *CommandError (qemu-io reported a failure), or the
	// process's end (wrapping ErrExited, or no prompt in time): then the
	// command and every later one of the batch did not complete.
	Err error
}

// pipelineMax bounds a line Pipeline sends ahead: one packet
// (PIPE_BUF), newline included.
const pipelineMax = 4096

// Pipeline sends lines (commands) as one batch and returns one Reply per
// line, in order. On a process started with StartPipelined (Linux) every
// line is written at once, each one packet, and qemu-io runs them one
// after another, the prompts delimiting their outputs as with Do: one
// round trip for the batch instead of one per command. Unlike a sequence
// of Do calls, the lines after a failing command still run (qemu-io does
// not know they depend on it): a batch must be harmless to run to its
// end whatever fails (end one that opens an image with a close, say).
// Elsewhere, or with a line too long for one packet, the lines are sent
// one at a time, with the same replies. When the process ends (or gives
// no prompt in time, when it is killed: its output is then out of step),
// that line and every later one get the error. Safe for concurrent use.
func (p *Proc) Pipeline(lines ...string) []Reply {
	p.mu.Lock()
	defer p.mu.Unlock()
	reps := make([]Reply, len(lines))
	ahead := p.mu.packet
	for _, l := range lines {
		ahead = ahead && len(l) < pipelineMax && !strings.Contains(l, "\n")
	}
	if !ahead || p.mu.done {
		for i, l := range lines {
			reps[i].Out, reps[i].Err = p.doLocked(l)
			if reps[i].Err != nil && !errors.Is(reps[i].Err, ErrCommand) {
				fill(reps[i+1:], reps[i].Err)
				break
			}
		}
		return reps
	}
	p.mu.log = append(p.mu.log, lines...)
	// The writer runs beside the reader: a batch whose output fills the
	// output pipe while its input fills the input pipe cannot deadlock.
	stdin, wrote := p.mu.stdin, make(chan struct{})
	go func() {
		defer close(wrote)
		for _, l := range lines {
			if _, err := stdin.WriteString(l + "\n"); err != nil {
				return // the process is gone: the reader sees it too
			}
		}
	}()
	for i, l := range lines {
		out, err := p.readPromptLocked()
		switch {
		case err != nil:
			if !p.mu.done { // no prompt in time: the stream is out of step
				p.killLocked()
			}
			reps[i] = Reply{Out: out, Err: err}
			fill(reps[i+1:], err)
			<-wrote
			return reps
		case Failed(out):
			reps[i] = Reply{Out: out, Err: &CommandError{Cmd: l, Output: out}}
		default:
			reps[i] = Reply{Out: out}
		}
	}
	<-wrote
	return reps
}

// fill sets every reply of reps to the process's end err.
func fill(reps []Reply, err error) {
	for i := range reps {
		reps[i].Err = fmt.Errorf("%w: not run: %v", ErrExited, err)
	}
}

// ClearLog forgets the commands sent so far (a long-lived process, whose
// log would otherwise grow without bound).
func (p *Proc) ClearLog() {
	p.mu.Lock()
	p.mu.log = nil
	p.mu.Unlock()
}

// Failed reports whether qemu-io output reports a failure (dump lines,
// whatever their ASCII column says, never do).
func Failed(out string) bool {
	for _, l := range strings.Split(out, "\n") {
		if isDumpLine(l) {
			continue
		}
		switch {
		case strings.HasPrefix(l, "qemu-io: "),
			strings.Contains(l, "failed"),
			strings.Contains(l, "not found"),
			strings.Contains(l, "no file open"),
			strings.Contains(l, "can't open"),
			strings.Contains(l, "Invalid"),
			strings.Contains(l, "invalid"):
			return true
		}
	}
	return false
}

// Abort sends qemu-io's `abort` (the process dies by SIGABRT without
// flushing or closing anything) and reaps it.
func (p *Proc) Abort() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mu.done {
		return ErrExited
	}
	p.mu.log = append(p.mu.log, "abort")
	if _, err := p.mu.stdin.WriteString("abort\n"); err != nil {
		p.reapLocked()
		return nil
	}
	_, _ = p.readPromptLocked() // ends in EOF when the process dies
	p.reapLocked()
	return nil
}

// Kill sends SIGKILL to the process (and its group) at once, without
// waiting for the command in progress, and reaps it.
func (p *Proc) Kill() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.killLocked()
}

func (p *Proc) killLocked() error {
	if p.mu.done {
		return ErrExited
	}
	_ = qemutool.KillGroup(p.mu.cmd)
	p.reapLocked()
	return nil
}

// Quit sends `quit` and waits for the process to exit (closing any open
// image cleanly first, as qemu-io does at exit).
func (p *Proc) Quit() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mu.done {
		return nil
	}
	p.mu.log = append(p.mu.log, "quit")
	_, _ = p.mu.stdin.WriteString("quit\n")
	p.mu.stdin.Close()
	_, _ = p.readPromptLocked()
	p.reapLocked()
	var ee *exec.ExitError
	if p.mu.waitErr != nil && !errors.As(p.mu.waitErr, &ee) {
		return p.mu.waitErr
	}
	return nil
}

// ParseDump decodes the hex dump `read -v off n` prints into p (len n)
// and checks that it covers [off, off+len(p)) exactly. A dump line is an
// offset column (%08x, wider past 4 GiB) followed by ":  " and up to 16
// groups of two lowercase hex digits and a space; other lines (the
// statistics) are skipped. It walks the output once without allocating
// (a dump of a megabyte is four and a half megabytes of text).
func ParseDump(out string, off int64, p []byte) error {
	got := 0
	for len(out) > 0 {
		l := out
		if i := strings.IndexByte(out, '\n'); i >= 0 {
			l, out = out[:i], out[i+1:]
		} else {
			out = ""
		}
		c := dumpColon(l)
		if c < 0 {
			continue
		}
		at, ok := parseHex(l[:c])
		if !ok {
			continue
		}
		pos := int64(at) - off
		if pos != int64(got) {
			return fmt.Errorf("%w: dump line at %#x, expected %#x", ErrParse, at, off+int64(got))
		}
		s := l[c+3:]
		for j := 0; j < 16 && len(s) >= 3*j+3; j++ {
			g := s[3*j : 3*j+3]
			hi, lo := hexVal[g[0]], hexVal[g[1]]
			if g[2] != ' ' || hi > 15 || lo > 15 {
				break
			}
			if got >= len(p) {
				return fmt.Errorf("%w: dump longer than %d bytes", ErrParse, len(p))
			}
			p[got] = hi<<4 | lo
			got++
		}
	}
	if got != len(p) {
		return fmt.Errorf("%w: dump holds %d bytes, want %d", ErrParse, got, len(p))
	}
	return nil
}

// hexVal maps a lowercase hex digit to its value, every other byte to 255.
var hexVal = func() (t [256]byte) {
	for i := range t {
		t[i] = 255
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = byte(c - '0')
	}
	for c := 'a'; c <= 'f'; c++ {
		t[c] = byte(c - 'a' + 10)
	}
	return t
}()

// dumpColon returns where the ":  " after a dump line's offset column
// begins (8 or 16: the first ":  " of the line must be there), or -1.
func dumpColon(l string) int {
	c := strings.Index(l, ":  ")
	if c != 8 && c != 16 {
		return -1
	}
	return c
}

// parseHex parses s as hexadecimal digits (either case), as
// strconv.ParseUint(s, 16, 64) does for at most 16 digits.
func parseHex(s string) (uint64, bool) {
	if s == "" {
		return 0, false
	}
	var v uint64
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		v = v<<4 | uint64(c)
	}
	return v, true
}

func isDumpLine(l string) bool {
	c := dumpColon(l)
	if c < 0 {
		return false
	}
	_, ok := parseHex(l[:c])
	return ok
}

// ReadAt reads len(p) guest bytes at off through the running qemu-io with
// `read -v` (a hex dump), 1 MiB per command; errors name what, the prefix
// saying whose disk (e.g. "qemu", "exec").
func (p *Proc) ReadAt(prefix string, b []byte, off int64) (int, error) {
	const chunk = 1 << 20
	for done := 0; done < len(b); {
		n := min(len(b)-done, chunk)
		at := off + int64(done)
		out, err := p.Do(fmt.Sprintf("read -v %d %d", at, n))
		if err != nil {
			return done, err
		}
		if err := ParseDump(out, at, b[done:done+n]); err != nil {
			return done, fmt.Errorf("%s: read %d+%d: %w", prefix, at, n, err)
		}
		done += n
	}
	return len(b), nil
}
