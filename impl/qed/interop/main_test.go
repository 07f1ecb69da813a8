package interop

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"testing"

	"github.com/qedtorture/qedtorture/impl/qed"
	"github.com/qedtorture/qedtorture/internal/qemutool"
	"github.com/spf13/afero"
)

// qedtortureBin is the qedtorture binary TestMain built, or "" with
// buildErr saying why not.
var (
	qedtortureBin string
	buildErr      error
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "interop-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	qedtortureBin, buildErr = buildQedtorture(dir)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func buildQedtorture(dir string) (string, error) {
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goBin); err != nil {
		if goBin, err = exec.LookPath("go"); err != nil {
			return "", fmt.Errorf("no go command to build qedtorture: %w", err)
		}
	}
	out := filepath.Join(dir, "qedtorture")
	cmd := exec.Command(goBin, "build", "-o", out, "github.com/qedtorture/qedtorture/cmd/qedtorture")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building qedtorture: %v\n%s", err, b)
	}
	return out, nil
}

// rig is one test's tools and scratch directory.
type rig struct {
	t    *testing.T
	q    *qemutool.Tool
	dir  string
	osfs afero.Fs
}

func newRig(t *testing.T) *rig {
	t.Helper()
	q := qemutool.Require(t)
	return &rig{t: t, q: q, dir: t.TempDir(), osfs: afero.NewOsFs()}
}

func (r *rig) path(name string) string { return filepath.Join(r.dir, name) }

// img runs qemu-img and fails the test on a non-zero exit.
func (r *rig) img(args ...string) string {
	r.t.Helper()
	res, err := r.q.Img(args...)
	if err != nil {
		r.t.Fatal(err)
	}
	return string(res.Stdout)
}

// io runs a batch of qemu-io commands on path (format fmtName).
func (r *rig) io(path, fmtName string, cmds ...string) {
	r.t.Helper()
	if len(cmds) == 0 {
		return
	}
	if res, err := r.q.IOBatch(path, fmtName, cmds...); err != nil {
		r.t.Fatalf("%v\n%s", err, res.Stdout)
	}
}

// qt runs the qedtorture binary and returns stdout, stderr and the exit
// code.
func (r *rig) qt(args ...string) (string, string, int) {
	r.t.Helper()
	if buildErr != nil {
		r.t.Fatal(buildErr)
	}
	res, err := r.q.Run(qedtortureBin, args...)
	if err != nil {
		r.t.Fatal(err)
	}
	return string(res.Stdout), string(res.Stderr), res.ExitCode
}

// qtOK runs qedtorture and fails unless it exits 0.
func (r *rig) qtOK(args ...string) string {
	r.t.Helper()
	out, errs, code := r.qt(args...)
	if code != 0 {
		r.t.Fatalf("qedtorture %q: exit %d: %s", args, code, errs)
	}
	return out
}

// window is a guest byte range to compare.
type window struct{ off, n int64 }

// compareWithRaw reads each window of the QED image at qedPath through
// impl/qed (read-only) and of the raw file rawPath (past its end: zeros)
// and fails on the first difference.
func (r *rig) compareWithRaw(qedPath, rawPath string, size int64, ws []window) {
	r.t.Helper()
	im, err := qed.Open(r.osfs, qedPath, qed.OpenOptions{ReadOnly: true})
	if err != nil {
		r.t.Fatalf("impl/qed cannot open QEMU's image: %v", err)
	}
	defer im.Close()
	if im.Size() != size {
		r.t.Fatalf("impl/qed size %d, qemu-img %d", im.Size(), size)
	}
	raw, err := os.Open(rawPath)
	if err != nil {
		r.t.Fatal(err)
	}
	defer raw.Close()
	for _, w := range clipWindows(ws, size) {
		got := make([]byte, w.n)
		if _, err := im.ReadAt(got, w.off); err != nil {
			r.t.Fatalf("impl/qed ReadAt(%d, %d): %v", w.off, w.n, err)
		}
		want := make([]byte, w.n)
		// A raw file shorter than the image reads as zeros past its end.
		if _, err := raw.ReadAt(want, w.off); err != nil && !errors.Is(err, io.EOF) {
			r.t.Fatal(err)
		}
		if i := firstDiff(got, want); i >= 0 {
			r.t.Fatalf("guest byte %d: impl/qed reads %#02x, qemu-img convert wrote %#02x (window %d+%d)",
				w.off+int64(i), got[i], want[i], w.off, w.n)
		}
	}
}

// clipWindows clips windows to [0, size), dropping empty ones and splitting
// big ones into 4 MiB reads.
func clipWindows(ws []window, size int64) []window {
	var out []window
	for _, w := range ws {
		s, e := max(w.off, 0), min(w.off+w.n, size)
		for ; s < e; s += 4 << 20 {
			out = append(out, window{s, min(e-s, 4<<20)})
		}
	}
	return out
}

func firstDiff(a, b []byte) int {
	if bytes.Equal(a, b) {
		return -1
	}
	for i := range a {
		if a[i] != b[i] {
			return i
		}
	}
	return len(a)
}

// checkJSON runs qedtorture check --output json on img and decodes it
// with the same decoder as qemu-img's report.
func (r *rig) checkJSON(img string, args ...string) qemutool.Check {
	r.t.Helper()
	c, _ := r.checkJSONCode(img, args...)
	return c
}

// checkJSONCode is checkJSON plus the exit code.
func (r *rig) checkJSONCode(img string, args ...string) (qemutool.Check, int) {
	r.t.Helper()
	out, errs, code := r.qt(append(append([]string{"check", "--output", "json"}, args...), img)...)
	c, err := qemutool.ParseCheck([]byte(out))
	if err != nil {
		r.t.Fatalf("qedtorture check: exit %d, %v, stderr %s", code, err, errs)
	}
	return c, code
}

// compareInfo checks that qedtorture info --output json and qemu-img info
// --output=json agree on every field QEMU prints for a QED image.
func (r *rig) compareInfo(img string) {
	r.t.Helper()
	want, err := r.q.Info(img)
	if err != nil {
		r.t.Fatal(err)
	}
	got, err := qemutool.ParseInfo([]byte(r.qtOK("info", "--output", "json", img)))
	if err != nil {
		r.t.Fatal(err)
	}
	got.FormatSpecific, want.FormatSpecific = nil, nil // QEMU 7.2 prints none for QED
	// QEMU 7.2 prints dirty-flag false even with NEED_CHECK set (see
	// QEMUBugs); qedtorture reports the bit.
	if l, err := ReadLayout(img); err == nil && l.Header.Features&qed.FeatureNeedCheck != 0 {
		if !got.DirtyFlag {
			r.t.Errorf("qedtorture info: dirty-flag false on an image with NEED_CHECK set")
		}
		got.DirtyFlag = want.DirtyFlag
	}
	if !reflect.DeepEqual(got, want) {
		r.t.Errorf("qedtorture info %+v\nqemu-img info   %+v", got, want)
	}
}
