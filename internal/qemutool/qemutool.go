package qemutool

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/qedtorture/qedtorture/internal/childrss"
	"github.com/qedtorture/qedtorture/internal/cleanup"
)

// ErrNotFound reports that qemu-img or qemu-io is not installed.
var ErrNotFound = errors.New("qemutool: qemu-img/qemu-io not found (install qemu-utils or set QEMU_IMG/QEMU_IO)")

// ErrTimeout reports that a tool ran longer than its timeout and was killed.
var ErrTimeout = errors.New("qemutool: timed out")

// DefaultTimeout bounds each tool run unless Tool.Timeout says otherwise.
const DefaultTimeout = 60 * time.Second

// Tool is a located pair of QEMU binaries.
type Tool struct {
	ImgPath string        // path of qemu-img
	IOPath  string        // path of qemu-io
	Timeout time.Duration // per run; 0 = DefaultTimeout
	// Context, if set, bounds every run: when it is cancelled, the
	// running tools' process groups are killed and Run returns an error
	// wrapping context.Canceled; no new run starts.
	Context context.Context
	// Dir, if set, is the working directory of every run (relative file
	// names in the arguments, and relative backing names QEMU cannot
	// resolve against a json: filename, are taken from it).
	Dir string
}

// WithContext returns a copy of t whose runs are bounded by ctx.
func (t *Tool) WithContext(ctx context.Context) *Tool {
	c := *t
	c.Context = ctx
	return &c
}

// Ctx is t.Context, or context.Background when it is not set.
func (t *Tool) Ctx() context.Context {
	if t.Context == nil {
		return context.Background()
	}
	return t.Context
}

// Start starts cmd (set up with NewProcessGroup) and Tracks it, as one
// creation for package cleanup: an exit at once on a second signal waits
// until the started child is registered, so that it is killed, never left
// running between its start and its registration. Call release once the
// command has been waited for; on an error nothing was started.
func Start(ctx context.Context, cmd *exec.Cmd) (release func(), err error) {
	done := cleanup.Creating()
	defer done()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return Track(ctx, cmd), nil
}

// Track registers a started command, set up with NewProcessGroup, so that
// its process group is killed when ctx is cancelled and by cleanup.Run (a
// command exiting at once on a second signal leaves no child behind). Call
// release once the command has been waited for.
func Track(ctx context.Context, cmd *exec.Cmd) (release func()) {
	var mu sync.Mutex
	reaped := false
	kill := func() {
		mu.Lock()
		defer mu.Unlock()
		if !reaped {
			_ = KillGroup(cmd)
		}
	}
	unregister := cleanup.Register(kill)
	stop := context.AfterFunc(ctx, kill)
	return func() {
		mu.Lock()
		reaped = true
		mu.Unlock()
		stop()
		unregister()
	}
}

// Find locates qemu-img and qemu-io: $QEMU_IMG and $QEMU_IO when set,
// otherwise $PATH. It returns an error wrapping ErrNotFound when either is
// missing.
func Find() (*Tool, error) {
	img, err := lookup("QEMU_IMG", "qemu-img")
	if err != nil {
		return nil, err
	}
	io, err := lookup("QEMU_IO", "qemu-io")
	if err != nil {
		return nil, err
	}
	return &Tool{ImgPath: img, IOPath: io}, nil
}

func lookup(env, name string) (string, error) {
	if p := os.Getenv(env); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%w: $%s=%q: %v", ErrNotFound, env, p, err)
		}
		return p, nil
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%w: %s: %v", ErrNotFound, name, err)
	}
	return p, nil
}

// Result is the outcome of one tool run.
type Result struct {
	Args     []string // the full command line, binary first
	Stdout   []byte
	Stderr   []byte
	ExitCode int
}

// Err returns nil for exit code 0 and otherwise an error naming the command,
// the exit code and the tool's stderr.
func (r Result) Err() error {
	if r.ExitCode == 0 {
		return nil
	}
	return &ExitError{Args: r.Args, ExitCode: r.ExitCode, Stderr: strings.TrimSpace(string(r.Stderr))}
}

// ExitError is a tool run that exited non-zero.
type ExitError struct {
	Args     []string
	ExitCode int
	Stderr   string
}

func (e *ExitError) Error() string {
	return fmt.Sprintf("qemutool: %s: exit %d: %s", strings.Join(e.Args, " "), e.ExitCode, e.Stderr)
}

// Run runs binary (t.ImgPath or t.IOPath) with args. The error is non-nil only when
// the tool could not be started, was killed by the timeout (ErrTimeout) or
// ended by a signal; a non-zero exit code is reported in Result.ExitCode.
func (t *Tool) Run(binary string, args ...string) (Result, error) {
	timeout := t.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(t.Ctx(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Dir = t.Dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	// Kill the whole process group at the timeout, and stop waiting for
	// output pipes held open by a stray grandchild soon after.
	NewProcessGroup(cmd)
	cmd.Cancel = func() error { return KillGroup(cmd) }
	cmd.WaitDelay = 2 * time.Second
	// C locale: stable messages and number formats to parse.
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	release, err := Start(context.Background(), cmd) // ctx's cancellation is cmd.Cancel's
	if err == nil {
		err = cmd.Wait()
		release()
		childrss.Record(t.Ctx(), cmd.ProcessState) // its own peak, for a childrss.Watch in t's context
	}
	res := Result{Args: append([]string{binary}, args...), Stdout: stdout.Bytes(), Stderr: stderr.Bytes()}
	if cerr := t.Ctx().Err(); cerr != nil {
		return res, fmt.Errorf("qemutool: %s: %w", strings.Join(res.Args, " "), cerr)
	}
	if ctx.Err() == context.DeadlineExceeded {
		return res, fmt.Errorf("%w after %v: %s", ErrTimeout, timeout, strings.Join(res.Args, " "))
	}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee) && ee.ExitCode() >= 0:
		res.ExitCode = ee.ExitCode()
	default:
		return res, fmt.Errorf("qemutool: %s: %w", strings.Join(res.Args, " "), err)
	}
	return res, nil
}

// RunImg runs qemu-img with args.
func (t *Tool) RunImg(args ...string) (Result, error) { return t.Run(t.ImgPath, args...) }

// RunIO runs qemu-io with args.
func (t *Tool) RunIO(args ...string) (Result, error) { return t.Run(t.IOPath, args...) }

// Img runs qemu-img with args and fails on a non-zero exit.
func (t *Tool) Img(args ...string) (Result, error) {
	res, err := t.RunImg(args...)
	if err != nil {
		return res, err
	}
	return res, res.Err()
}

// IOBatch runs all cmds (qemu-io command strings such as "write -P 0xab 0 4k")
// in one qemu-io process on the image at path in format fmtName ("qed" or
// "raw"). qemu-io reports a failed command on stdout and still exits 0 in some
// versions, so IOBatch also fails when the output mentions a failure.
func (t *Tool) IOBatch(path, fmtName string, cmds ...string) (Result, error) {
	args := []string{"-f", fmtName}
	for _, c := range cmds {
		args = append(args, "-c", c)
	}
	args = append(args, path)
	res, err := t.RunIO(args...)
	if err != nil {
		return res, err
	}
	if err := res.Err(); err != nil {
		return res, err
	}
	if bad := ioFailure(res.Stdout, res.Stderr); bad != "" {
		return res, fmt.Errorf("qemutool: qemu-io on %s: %s", path, bad)
	}
	return res, nil
}

// ioFailure finds the first line of qemu-io output that reports a failed
// command ("failed", "Pattern verification failed", "error").
func ioFailure(outs ...[]byte) string {
	for _, out := range outs {
		for _, line := range strings.Split(string(out), "\n") {
			l := strings.ToLower(line)
			if strings.Contains(l, "fail") || strings.Contains(l, "error") || strings.Contains(l, "invalid") {
				return strings.TrimSpace(line)
			}
		}
	}
	return ""
}

// Check is qemu-img check's JSON report (QAPI ImageCheck). Counts qemu-img
// leaves out when zero decode as 0.
type Check struct {
	Filename           string `json:"filename"`
	Format             string `json:"format"`
	CheckErrors        int64  `json:"check-errors"`
	ImageEndOffset     int64  `json:"image-end-offset,omitempty"`
	Corruptions        int64  `json:"corruptions,omitempty"`
	Leaks              int64  `json:"leaks,omitempty"`
	CorruptionsFixed   *int64 `json:"corruptions-fixed,omitempty"`
	LeaksFixed         *int64 `json:"leaks-fixed,omitempty"`
	TotalClusters      int64  `json:"total-clusters,omitempty"`
	AllocatedClusters  int64  `json:"allocated-clusters,omitempty"`
	FragmentedClusters int64  `json:"fragmented-clusters,omitempty"`
	CompressedClusters int64  `json:"compressed-clusters,omitempty"`
}

// ParseCheck decodes qemu-img check --output=json.
func ParseCheck(b []byte) (Check, error) {
	var c Check
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("qemutool: decoding check JSON: %w (input %q)", err, clip(b))
	}
	return c, nil
}

// Check runs `qemu-img check -f qed --output=json [-r repair] path` and
// returns the decoded report and qemu-img's exit code (0 clean,
// 2 corruptions, 3 leaks only, 1 check failed). repair is "", "leaks" or
// "all". A report that cannot be decoded is an error unless the exit code is
// 1 (the check failed before printing one).
func (t *Tool) Check(path, repair string) (Check, int, error) {
	args := []string{"check", "-f", "qed", "--output=json"}
	if repair != "" {
		args = append(args, "-r", repair)
	}
	res, err := t.RunImg(append(args, path)...)
	if err != nil {
		return Check{}, -1, err
	}
	c, perr := ParseCheck(res.Stdout)
	if perr != nil && res.ExitCode != 1 {
		return c, res.ExitCode, fmt.Errorf("%w (exit %d, stderr %q)", perr, res.ExitCode, res.Stderr)
	}
	return c, res.ExitCode, nil
}

// Info is qemu-img info's JSON report, the fields this project uses.
type Info struct {
	Filename              string          `json:"filename"`
	Format                string          `json:"format"`
	VirtualSize           int64           `json:"virtual-size"`
	ActualSize            int64           `json:"actual-size"`
	ClusterSize           int64           `json:"cluster-size"`
	DirtyFlag             bool            `json:"dirty-flag"`
	BackingFilename       string          `json:"backing-filename"`
	FullBackingFilename   string          `json:"full-backing-filename"`
	BackingFilenameFormat string          `json:"backing-filename-format"`
	FormatSpecific        json.RawMessage `json:"format-specific"`
}

// ParseInfo decodes qemu-img info --output=json (one image, no chain).
func ParseInfo(b []byte) (Info, error) {
	var in Info
	if err := json.Unmarshal(b, &in); err != nil {
		return in, fmt.Errorf("qemutool: decoding info JSON: %w (input %q)", err, clip(b))
	}
	return in, nil
}

// Info runs `qemu-img info --output=json path` (format probed).
func (t *Tool) Info(path string) (Info, error) {
	res, err := t.Img("info", "--output=json", path)
	if err != nil {
		return Info{}, err
	}
	return ParseInfo(res.Stdout)
}

// MapEntry is one element of qemu-img map --output=json.
type MapEntry struct {
	Start   int64  `json:"start"`
	Length  int64  `json:"length"`
	Depth   int    `json:"depth"`
	Present bool   `json:"present"`
	Zero    bool   `json:"zero"`
	Data    bool   `json:"data"`
	Offset  *int64 `json:"offset,omitempty"`
}

// ParseMap decodes qemu-img map --output=json.
func ParseMap(b []byte) ([]MapEntry, error) {
	var m []MapEntry
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("qemutool: decoding map JSON: %w (input %q)", err, clip(b))
	}
	return m, nil
}

// Map runs `qemu-img map -f qed --output=json path`.
func (t *Tool) Map(path string) ([]MapEntry, error) {
	res, err := t.Img("map", "-f", "qed", "--output=json", path)
	if err != nil {
		return nil, err
	}
	return ParseMap(res.Stdout)
}

func clip(b []byte) []byte {
	if len(b) > 200 {
		return b[:200]
	}
	return b
}

// TB is the part of testing.TB that Require needs; it keeps the testing
// package out of binaries that import qemutool.
type TB interface {
	Helper()
	Skipf(format string, args ...any)
	Fatalf(format string, args ...any)
}

// Require returns the located tools, or skips the test when they are missing
// — unless the environment variable CI is non-empty, where a missing QEMU
// fails the test.
func Require(t TB) *Tool {
	t.Helper()
	tool, err := Find()
	if err == nil {
		return tool
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("CI is set and QEMU is required: %v", err)
	}
	t.Skipf("skipping: %v", err)
	return nil
}
