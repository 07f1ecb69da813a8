package main

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qedtorture/qedtorture/impl/qed"
	"github.com/spf13/afero"
)

// result is one in-process run of the command line.
type result struct {
	code           int
	stdout, stderr string
}

// qt runs qedtorture with args in-process.
func qt(t *testing.T, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	code := Run(args, &out, &errb)
	return result{code, out.String(), errb.String()}
}

// wantExit fails unless r ended with code; for failures it also requires
// exactly one "qedtorture: " line on stderr.
func (r result) wantExit(t *testing.T, code int, args ...string) {
	t.Helper()
	if r.code != code {
		t.Fatalf("qedtorture %q: exit %d, want %d\nstdout: %s\nstderr: %s", args, r.code, code, r.stdout, r.stderr)
	}
	// check's findings (exit 2 and 3) are reported on stdout alone.
	if len(args) > 0 && args[0] == "check" && (code == exitCheckCorrupt || code == exitCheckLeaks) && r.stdout != "" {
		if r.stderr != "" {
			t.Errorf("qedtorture %q: findings also on stderr: %q", args, r.stderr)
		}
		return
	}
	if code == exitUsage || code == exitRuntime {
		lines := strings.Split(strings.TrimRight(r.stderr, "\n"), "\n")
		if len(lines) != 1 || !strings.HasPrefix(lines[0], "qedtorture: ") {
			t.Errorf("qedtorture %q: stderr is not one \"qedtorture: \" line: %q", args, r.stderr)
		}
		if strings.Contains(r.stderr, "panic") || strings.Contains(r.stderr, "internal error") {
			t.Errorf("qedtorture %q: panicked: %s", args, r.stderr)
		}
	}
}

// runWant is qt plus wantExit.
func runWant(t *testing.T, code int, args ...string) result {
	t.Helper()
	r := qt(t, args...)
	r.wantExit(t, code, args...)
	return r
}

// newImage creates a QED image with qed.Create and writes the given
// (offset, byte) pairs, each filling 4 KiB, through impl/qed.
func newImage(t *testing.T, dir, name string, opts qed.CreateOptions, writes map[int64]byte) string {
	t.Helper()
	fs := afero.NewOsFs()
	p := filepath.Join(dir, name)
	if err := qed.Create(fs, p, opts); err != nil {
		t.Fatal(err)
	}
	im, err := qed.Open(fs, p, qed.OpenOptions{IdleClearDelay: -1})
	if err != nil {
		t.Fatal(err)
	}
	for off, b := range writes {
		if _, err := im.WriteAt(bytes.Repeat([]byte{b}, 4096), off); err != nil {
			t.Fatal(err)
		}
	}
	if err := im.Close(); err != nil {
		t.Fatal(err)
	}
	return p
}

// readU64 and writeU64 poke the image file directly (corrupters).
func readU64(t *testing.T, path string, off int64) uint64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var b [8]byte
	if _, err := f.ReadAt(b[:], off); err != nil {
		t.Fatal(err)
	}
	return binary.LittleEndian.Uint64(b[:])
}

func writeU64(t *testing.T, path string, off int64, v uint64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], v)
	if _, err := f.WriteAt(b[:], off); err != nil {
		t.Fatal(err)
	}
}

// appendZeros grows the file by n bytes (leaked clusters when whole).
func appendZeros(t *testing.T, path string, n int) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(make([]byte, n)); err != nil {
		t.Fatal(err)
	}
}

// Header field offsets used by the corrupters (see the spec's table).
const (
	offFeatures = 16
	offL1Table  = 40
)

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
