package strace

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/qedtorture/qedtorture/crashsim"
	"github.com/spf13/afero"
)

// MaxData is the longest string strace prints per call or iovec element
// (-s): longer writes are refused, never cut.
const MaxData = 16 << 20

// TracedCalls are the system calls strace is asked to report: the ones
// that change files, the ones refused on recorded files, and write for
// the prompt on standard output.
var TracedCalls = []string{
	"write", "writev", "pwrite64", "pwritev", "pwritev2",
	"fsync", "fdatasync", "sync_file_range", "syncfs", "sync",
	"ftruncate", "truncate", "fallocate",
	"open", "openat", "creat",
	"rename", "renameat", "renameat2", "unlink", "unlinkat",
	"mmap", "io_uring_setup", "io_submit", "copy_file_range", "sendfile", "splice",
}

// ErrNoStrace reports that strace is not installed.
var ErrNoStrace = errors.New("strace: strace not found (Debian: apt-get install strace; scripts/install-deps installs it)")

// Path locates strace: $STRACE when set, else $PATH.
func Path() (string, error) {
	if p := os.Getenv("STRACE"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%w: $STRACE=%q: %v", ErrNoStrace, p, err)
		}
		return p, nil
	}
	p, err := exec.LookPath("strace")
	if err != nil {
		return "", ErrNoStrace
	}
	return p, nil
}

// TB is the part of testing.TB Require uses; it keeps the testing
// package out of the non-test code.
type TB interface {
	Helper()
	Skipf(format string, args ...any)
	Fatalf(format string, args ...any)
}

// Require returns strace's path, or skips the test when strace is missing
// — unless the environment variable CI is non-empty, where a missing
// strace fails the test (as qemutool.Require does for QEMU).
func Require(t TB) string {
	t.Helper()
	p, err := Path()
	if err == nil {
		return p
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("CI is set and strace is required: %v", err)
	}
	t.Skipf("skipping: %v", err)
	return ""
}

// Command returns the command that runs argv under strace, writing the
// trace to out (see the package doc for the options and why).
func Command(ctx context.Context, stracePath, out string, argv []string) *exec.Cmd {
	args := []string{
		"-f", "-qq", "-e", "signal=none", "--seccomp-bpf",
		"-y", "-xx", "-v", "-s", strconv.Itoa(MaxData),
		"-e", "trace=" + strings.Join(TracedCalls, ","),
		"-o", out, "--",
	}
	return exec.CommandContext(ctx, stracePath, append(args, argv...)...)
}

// Snapshot reads every regular file under dir (relative slash paths,
// "/img.qed") and the options Parse needs for it.
func Snapshot(dir string) (map[string][]byte, Options, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, Options{}, err
	}
	files := map[string][]byte{}
	o := Options{Dir: abs, Files: map[string]int64{}, Dirs: map[string]bool{"/": true}}
	err = filepath.WalkDir(abs, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		r, _ := filepath.Rel(abs, p)
		rel := path.Clean("/" + filepath.ToSlash(r))
		switch {
		case d.IsDir():
			o.Dirs[rel] = true
		case d.Type().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			files[rel] = b
			o.Files[rel] = int64(len(b))
		}
		return nil
	})
	if err != nil {
		return nil, Options{}, fmt.Errorf("strace: snapshot of %s: %w", dir, err)
	}
	return files, o, nil
}

// Verify replays the recording on base (the files before the run) and
// compares the result with the files under dir now: every byte the
// program left must be explained by the recorded calls. A difference is
// an *UnrecordedError naming the file and offset (and io_uring_setup when
// the program set one up).
func (r *Recording) Verify(base map[string][]byte, dir string) error {
	img, err := crashsim.NewImage(base)
	if err != nil {
		return err
	}
	fsys, err := img.Replay(r.Trace, int64(len(r.Trace.Ops)), crashsim.Options{})
	if err != nil {
		return fmt.Errorf("strace: replaying the recording: %w", err)
	}
	now, _, err := Snapshot(dir)
	if err != nil {
		return err
	}
	call, why := "", "the files differ from the replayed recording"
	if r.IOUring {
		call, why = "io_uring_setup", "the program set up an io_uring and the files differ from the replayed recording (I/O through io_uring is not visible to strace)"
	}
	for name, want := range now {
		got, err := afero.ReadFile(fsys, name)
		if err != nil {
			return &UnrecordedError{Call: orUnknown(call), Path: name, Why: why + ": the file is not in the recording"}
		}
		if !bytes.Equal(got, want) {
			return &UnrecordedError{Call: orUnknown(call), Path: name, Why: fmt.Sprintf("%s: first difference at offset %d (recorded %d bytes, on disk %d)", why, firstDiff(got, want), len(got), len(want))}
		}
	}
	return nil
}

func orUnknown(c string) string {
	if c == "" {
		return "an unrecorded call"
	}
	return c
}

func firstDiff(a, b []byte) int {
	for i := 0; i < len(a) && i < len(b); i++ {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}
