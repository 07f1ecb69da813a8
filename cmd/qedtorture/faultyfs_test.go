package main

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/qedtorture/qedtorture/impl/qed"
	"github.com/spf13/afero"
)

// failingFs fails every ReadAt at or past failFrom with an I/O error, and
// panics in OpenFile when panicky: enough to drive check into "the check
// failed" and Run into its panic guard.
type failingFs struct {
	afero.Fs
	failFrom int64
	panicky  bool
}

type failingFile struct {
	afero.File
	failFrom int64
}

var errInjected = errors.New("injected I/O error")

func (f *failingFs) OpenFile(name string, flag int, perm os.FileMode) (afero.File, error) {
	if f.panicky {
		panic("injected panic")
	}
	file, err := f.Fs.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return &failingFile{File: file, failFrom: f.failFrom}, nil
}

func (f *failingFs) Open(name string) (afero.File, error) { return f.OpenFile(name, os.O_RDONLY, 0) }

func (f *failingFile) ReadAt(p []byte, off int64) (int, error) {
	if off >= f.failFrom {
		return 0, errInjected
	}
	return f.File.ReadAt(p, off)
}

func runWithFs(fs afero.Fs, args ...string) result {
	var out, errb bytes.Buffer
	code := run(&env{fs: fs, stdout: &out, stderr: &errb}, args)
	return result{code, out.String(), errb.String()}
}

// TestCheckFailedExitsOne: an I/O error while reading an L2 table makes the
// check itself fail: exit 1 and one line naming the error.
func TestCheckFailedExitsOne(t *testing.T) {
	dir := t.TempDir()
	img := newImage(t, dir, "io.qed", qed.CreateOptions{Size: 1 << 20}, map[int64]byte{0: 1})
	l2 := int64(readU64(t, img, 65536))
	fs := &failingFs{Fs: afero.NewOsFs(), failFrom: l2}
	args := []string{"check", img}
	r := runWithFs(fs, args...)
	r.wantExit(t, exitRuntime, args...)
	if !strings.Contains(r.stderr, "check failed") || !strings.Contains(r.stderr, "injected") {
		t.Errorf("stderr %q: want the check failure and its cause", r.stderr)
	}
}

// TestPanicIsContained: a panic below a command becomes exit 1 and one
// "internal error" line, not a crash.
func TestPanicIsContained(t *testing.T) {
	r := runWithFs(&failingFs{Fs: afero.NewOsFs(), panicky: true}, "info", "x.qed")
	if r.code != exitRuntime || !strings.HasPrefix(r.stderr, "qedtorture: internal error: injected panic") ||
		strings.Count(r.stderr, "\n") != 1 {
		t.Errorf("exit %d, stderr %q", r.code, r.stderr)
	}
}
