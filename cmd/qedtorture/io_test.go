package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/qedtorture/qedtorture/internal/qemutool"
	"github.com/spf13/afero"
)

// timing matches the numbers of qemu-io's timing line, the only part of
// the output side-by-side comparisons normalise.
var timing = regexp.MustCompile(`(?m)^(.*, \d+ ops; ).*$`)

func normTiming(s string) string { return timing.ReplaceAllString(s, "${1}TIME") }

// ioScript is one side-by-side case: qemu-io's arguments before the image
// (the same for `qedtorture io`), and stdin when there is no -c.
type ioScript struct {
	name  string
	args  []string
	stdin string
	size  string // qemu-img create size (default 1M)
	noImg bool   // no image argument
}

var ioScripts = []ioScript{
	{name: "write-read", args: []string{"-f", "qed", "-c", "write -P 0xab 0 4096", "-c", "read -P 0xab 0 4096", "-c", "read -P 0xac 0 512", "-c", "read 0 4096"}},
	{name: "dump", args: []string{"-c", "write -P 0x41 0 8", "-c", "write -P 0x2e 8 8", "-c", "write -P 0x7a 16 3", "-c", "write -P 0x20 19 1", "-c", "write 20 4", "-c", "read -v 0 21", "-c", "read -v 1022 4", "-c", "read -v -P 0 0 2", "-c", "read -q -P 0x41 0 8", "-c", "read 0 0"}},
	{name: "zero-aio-map", args: []string{"-f", "qed", "-c", "write -P 0x41 0x10000 70000", "-c", "write 1 3", "-c", "map", "-c", "write -z 0 256k", "-c", "map", "-c", "aio_write -P 3 512k 512 1024 512", "-c", "aio_write -q -P 4 600k 4k", "-c", "aio_write -z 700k 4k", "-c", "aio_flush", "-c", "read -P 3 512k 2048", "-c", "read -P 4 600k 4k", "-c", "map", "-c", "flush", "-c", "info"}},
	{name: "truncate", args: []string{"-f", "qed", "-c", "truncate 2M", "-c", "info", "-c", "write -P 9 1536k 4k", "-c", "read -P 9 1536k 4k", "-c", "truncate 512k", "-c", "truncate -m full 4M", "-c", "map", "-c", "write 2M 512"}},
	{name: "errors", args: []string{"-f", "qed", "-c", "bogus", "-c", "write", "-c", "read -P zz 0 1", "-c", "read -x 0 1", "-c", "read -P 1 0 1 2", "-c", "read 1G 1", "-c", "sleep x", "-c", "read 0 x", "-c", "read 1.5 1", "-c", "map x", "-c", "write -z -P 1 0 1", "-c", "write -P 256 0 1", "-c", "write -P 1 -1 1", "-c", "aio_write 1G 1", "-c", "aio_flush", "-c", "write 1k 1k", "-c", "read -P 0xcd 1k 1k", "-c", "sleep 1"}},
	{name: "source-file", args: []string{"-f", "qed", "-c", "write -s ../pat.bin 0 8", "-c", "write -s ../pat.bin 4k 4k", "-c", "read -v 0 8", "-c", "read -v 4090 12", "-c", "write -s nope.bin 0 8", "-c", "write -s ../pat.bin -P 1 0 8"}},
	{name: "quit-stops", args: []string{"-f", "qed", "-c", "write 0 512", "-c", "quit", "-c", "read 0 x"}},
	{name: "clean-exit", args: []string{"-f", "qed", "-c", "write -P 7 0 512", "-c", "read -P 7 0 512"}},
	{name: "stdin", args: []string{"-f", "qed"}, stdin: "write 0 512\nread -P 0 0 512\nclose\nread 0 512\nclose\nflush\nopen -o driver=qed IMG\nopen IMG\nmap\nread -P 0xcd 0 512\n\nquit\nread 0 1\n"},
	{name: "stdin-eof", args: []string{"-f", "qed"}, stdin: "write -P 5 0 1k\nread -P 5 0 1k"},
	{name: "read-only", args: []string{"-r", "-f", "qed", "-c", "write 0 512", "-c", "truncate 2M", "-c", "aio_write 0 512", "-c", "read 0 512", "-c", "map"}},
	{name: "raw", args: []string{"-f", "raw", "-c", "info", "-c", "read -v 0 16", "-c", "write -P 1 0 512", "-c", "read -P 1 0 512"}},
	{name: "open-command", noImg: true, args: []string{"-c", "read 0 1", "-c", "open -r IMG", "-c", "write 0 1", "-c", "close", "-c", "open -o driver=qed IMG", "-c", "write -P 2 0 1", "-c", "open IMG", "-c", "read -P 2 0 1"}},
	{name: "missing", args: []string{"-f", "qed", "-c", "read 0 1"}, size: "missing"},
}

// TestIOMatchesQemuIO runs each script through qemu-io 7.2 and through
// `qedtorture io` on copies of one image and requires the same stdout,
// stderr and exit status (timing numbers aside), and the same files after.
func TestIOMatchesQemuIO(t *testing.T) {
	tool := qemutool.Require(t)
	for _, sc := range ioScripts {
		t.Run(sc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "pat.bin"), []byte("abc"), 0o644); err != nil {
				t.Fatal(err)
			}
			var imgs [2]string
			for i := range imgs {
				imgs[i] = filepath.Join(dir, []string{"q", "g"}[i], "img.qed")
				if err := os.MkdirAll(filepath.Dir(imgs[i]), 0o755); err != nil {
					t.Fatal(err)
				}
				if sc.size == "missing" {
					continue
				}
				size := sc.size
				if size == "" {
					size = "1M"
				}
				if out, err := exec.Command(tool.ImgPath, "create", "-f", "qed", imgs[i], size).CombinedOutput(); err != nil {
					t.Fatalf("qemu-img create: %v: %s", err, out)
				}
			}
			args := func(img string) []string {
				a := make([]string, len(sc.args))
				for i, s := range sc.args {
					a[i] = strings.ReplaceAll(s, "IMG", img)
				}
				if !sc.noImg {
					a = append(a, img)
				}
				return a
			}
			// qemu-io, in the image's directory so that messages naming
			// the image are the same.
			cmd := exec.Command(tool.IOPath, args("img.qed")...)
			cmd.Dir = filepath.Dir(imgs[0])
			cmd.Stdin = strings.NewReader(strings.ReplaceAll(sc.stdin, "IMG", "img.qed"))
			var qout, qerr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &qout, &qerr
			qcode := 0
			if err := cmd.Run(); err != nil {
				ee, ok := err.(*exec.ExitError)
				if !ok {
					t.Fatal(err)
				}
				qcode = ee.ExitCode()
			}
			// qedtorture io, in process.
			t.Chdir(filepath.Dir(imgs[1]))
			var gout, gerr bytes.Buffer
			e := &env{fs: afero.NewOsFs(), stdout: &gout, stderr: &gerr, stdin: strings.NewReader(strings.ReplaceAll(sc.stdin, "IMG", "img.qed"))}
			gcode := run(e, append([]string{"io"}, args("img.qed")...))

			if gcode != qcode {
				t.Errorf("exit status %d, qemu-io's %d", gcode, qcode)
			}
			if g, q := normTiming(gout.String()), normTiming(qout.String()); g != q {
				t.Errorf("stdout differs:\n--- qedtorture io\n%s\n--- qemu-io\n%s", g, q)
			}
			if g, q := gerr.String(), qerr.String(); g != q {
				t.Errorf("stderr differs:\n--- qedtorture io\n%s\n--- qemu-io\n%s", g, q)
			}
			if sc.size == "missing" {
				return
			}
			// The same guest contents afterwards.
			format := "qed"
			if sc.args[1] == "raw" {
				format = "raw"
			}
			out, err := exec.Command(tool.ImgPath, "compare", "-f", format, "-F", format, imgs[0], imgs[1]).CombinedOutput()
			if err != nil {
				t.Errorf("qemu-img compare after the script: %v: %s", err, out)
			}
		})
	}
}

// TestIOReadOnlyWritesNothing: with -r, no byte of the image changes,
// even for a script of writes and for an image that needs a check.
func TestIOReadOnlyWritesNothing(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "img.qed")
	runWant(t, 0, "create", "-f", "qed", img, "1M")
	r := qt(t, "io", "-c", "write -P 1 0 4k", img)
	if r.code != 0 {
		t.Fatalf("write: %d %s %s", r.code, r.stdout, r.stderr)
	}
	// Set NEED_CHECK (features bit 1 at offset 24).
	writeU64(t, img, 24, readU64(t, img, 24)|2)
	before := sha(t, img)
	r = qt(t, "io", "-r", "-c", "write 0 512", "-c", "truncate 2M", "-c", "read -P 1 0 4k", "-c", "map", "-c", "flush", img)
	if r.code != 1 || !strings.Contains(r.stderr, "Block node is read-only") {
		t.Fatalf("io -r: exit %d, stderr %q", r.code, r.stderr)
	}
	if !strings.Contains(r.stdout, "read 4096/4096 bytes at offset 0") {
		t.Errorf("io -r did not read: %q", r.stdout)
	}
	if sha(t, img) != before {
		t.Fatal("io -r changed the image")
	}
}

// TestIOLocks: io takes the image locks: a writable io fails while qemu-io
// holds the image, and -r -U reads it.
func TestIOLocks(t *testing.T) {
	tool := qemutool.Require(t)
	dir := t.TempDir()
	img := filepath.Join(dir, "img.qed")
	runWant(t, 0, "create", "-f", "qed", img, "1M")
	cmd := exec.Command(tool.IOPath, "-f", "qed", img)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { in.Close(); cmd.Wait() }()
	in.Write([]byte("write 0 512\n"))
	// The write's report says the image is open (and locked).
	br := bufio.NewReader(out)
	for {
		l, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("qemu-io: %v", err)
		}
		if strings.Contains(l, "wrote") {
			break
		}
	}
	go io.Copy(io.Discard, br)
	r := qt(t, "io", "-c", "read 0 1", img)
	if r.code != 1 || !strings.Contains(r.stderr, "can't open device") {
		t.Fatalf("writable io beside qemu-io: exit %d, stderr %q", r.code, r.stderr)
	}
	r = qt(t, "io", "-r", "-U", "-c", "read 0 1", img)
	if r.code != 0 {
		t.Fatalf("io -r -U beside qemu-io: exit %d, stderr %q", r.code, r.stderr)
	}
}

func sha(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

// TestRunExecFlags: the exec target's flags are refused where they do not
// apply, before any campaign starts.
func TestRunExecFlags(t *testing.T) {
	r := runWant(t, exitUsage, "run", "--exec-states", "3", "--iterations", "1")
	if !strings.Contains(r.stderr, "--exec-states is for --target exec:COMMAND") {
		t.Errorf("stderr %q", r.stderr)
	}
	r = runWant(t, exitUsage, "run", "--target", "exec:", "--iterations", "1")
	if !strings.Contains(r.stderr, "empty COMMAND") && !strings.Contains(r.stderr, "strace") {
		t.Errorf("stderr %q", r.stderr)
	}
	r = runWant(t, exitUsage, "run", "--target", "exec:qedtorture io", "--fault", "write:eio@nth=3", "--iterations", "1")
	if !strings.Contains(r.stderr, "--fault") && !strings.Contains(r.stderr, "strace") {
		t.Errorf("stderr %q", r.stderr)
	}
}
