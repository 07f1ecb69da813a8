package blackbox

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/qedtorture/qedtorture/crashsim"
	"github.com/qedtorture/qedtorture/impl/qed"
	"github.com/qedtorture/qedtorture/internal/qemutool"
	"github.com/qedtorture/qedtorture/internal/strace"
)

var (
	buildOnce sync.Once
	qtBin     string
	buildErr  error
)

// qedtortureBin builds cmd/qedtorture once per test binary.
func qedtortureBin(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "blackbox-bin")
		if err != nil {
			buildErr = err
			return
		}
		qtBin = filepath.Join(dir, "qedtorture")
		out, err := exec.Command("go", "build", "-o", qtBin, "../../cmd/qedtorture").CombinedOutput()
		if err != nil {
			buildErr = errors.New(string(out))
		}
	})
	if buildErr != nil {
		t.Fatalf("building qedtorture: %v", buildErr)
	}
	return qtBin
}

// record runs argv (with the image path appended) under strace, feeding
// script on stdin, and returns the snapshot before, the recording and
// the program's stdout.
func record(t *testing.T, stracePath, dir string, argv []string, script string) (map[string][]byte, *strace.Recording, string) {
	t.Helper()
	base, o, err := strace.Snapshot(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "strace.txt")
	cmd := strace.Command(context.Background(), stracePath, out, append(argv, filepath.Join(dir, "img.qed")))
	cmd.Dir = dir
	cmd.Stdin = strings.NewReader(script)
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stdout
	_ = cmd.Run() // the exit status is the script's; the recording is what matters
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rec, err := strace.Parse(f, o)
	if err != nil {
		t.Fatalf("parse: %v\nprogram output:\n%s", err, stdout.String())
	}
	return base, rec, stdout.String()
}

// durableAfter replays the recording up to trace index k and returns the
// durable image a power loss right there leaves (nothing unsynced kept).
func durableAfter(t *testing.T, base map[string][]byte, rec *strace.Recording, k int64) *crashsim.Image {
	t.Helper()
	img, err := crashsim.NewImage(base)
	if err != nil {
		t.Fatal(err)
	}
	fsys, err := img.Replay(rec.Trace, k, crashsim.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return fsys.Crash().Durable()
}

// guestRead reads a guest range of /img.qed in a crash image with impl/qed
// (read-only: no recovery).
func guestRead(t *testing.T, img *crashsim.Image, off, n int64) []byte {
	t.Helper()
	im, err := qed.Open(img.NewFS(crashsim.Options{}), "/img.qed", qed.OpenOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer im.Close()
	b := make([]byte, n)
	if _, err := im.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	return b
}

const script = "write -P 0xab 0 4096\n" +
	"aio_write -q -P 1 65536 512\naio_write -q -P 2 131072 4096\naio_flush\n" +
	"flush\n" +
	"write -P 0xcc 8192 512\n" +
	"truncate 2M\n" +
	"read -P 0xab 0 4096\n"

// checkRecording holds a recording of script to what the program did:
// Verify explains every byte it left, a prompt per command, syncs
// recorded, and the data flushed by "flush" durable in the crash state
// at the end (only synced data survives there).
func checkRecording(t *testing.T, base map[string][]byte, rec *strace.Recording, dir, out string, wantSync bool) {
	t.Helper()
	if err := rec.Verify(base, dir); err != nil {
		t.Fatalf("verify: %v", err)
	}
	// Verify notices a write missing from the recording (the last one:
	// its bytes are the file's).
	for i := len(rec.Trace.Ops) - 1; i >= 0; i-- {
		if rec.Trace.Ops[i].Kind == crashsim.OpWrite {
			short := &strace.Recording{Trace: &crashsim.Trace{Ops: append(append([]crashsim.Op(nil), rec.Trace.Ops[:i]...), rec.Trace.Ops[i+1:]...)}, IOUring: rec.IOUring}
			var ue *strace.UnrecordedError
			if err := short.Verify(base, dir); !errors.As(err, &ue) || ue.Path != "/img.qed" {
				t.Errorf("Verify without write #%d = %v, want an UnrecordedError on /img.qed", i, err)
			}
			break
		}
	}
	if n := strings.Count(script, "\n"); len(rec.Prompts) < n {
		t.Errorf("%d prompts for %d commands (output %q)", len(rec.Prompts), n, out)
	}
	if rec.Calls["pwrite64"]+rec.Calls["pwritev"]+rec.Calls["pwritev2"] == 0 {
		t.Errorf("no writes recorded: %v", rec.Calls)
	}
	syncs := len(rec.Trace.SyncPoints())
	if wantSync && syncs == 0 {
		t.Fatalf("no sync recorded: %v", rec.Calls)
	}
	if !wantSync && syncs != 0 {
		t.Fatalf("%d syncs recorded from a program that drops them: %v", syncs, rec.Calls)
	}
	end := durableAfter(t, base, rec, int64(len(rec.Trace.Ops)))
	if !wantSync {
		if _, err := qed.Open(end.NewFS(crashsim.Options{}), "/img.qed", qed.OpenOptions{ReadOnly: true}); err == nil {
			if got := guestRead(t, end, 0, 4096); bytes.Equal(got, bytes.Repeat([]byte{0xab}, 4096)) {
				t.Fatal("flushed data durable although no sync was recorded")
			}
		}
		return
	}
	for _, c := range []struct {
		off, n int64
		b      byte
	}{{0, 4096, 0xab}, {65536, 512, 1}, {131072, 4096, 2}} {
		if got := guestRead(t, end, c.off, c.n); !bytes.Equal(got, bytes.Repeat([]byte{c.b}, int(c.n))) {
			t.Errorf("after a crash at the end, guest %d+%d is not %#x (flushed before)", c.off, c.n, c.b)
		}
	}
}

func createImage(t *testing.T, bin string) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command(bin, "create", "-f", "qed", filepath.Join(dir, "img.qed"), "1M").CombinedOutput(); err != nil {
		t.Fatalf("create: %v: %s", err, out)
	}
	return dir
}

// TestRecordQedtortureIO records `qedtorture io` running a script.
func TestRecordQedtortureIO(t *testing.T) {
	st := strace.Require(t)
	bin := qedtortureBin(t)
	dir := createImage(t, bin)
	base, rec, out := record(t, st, dir, []string{bin, "io", "-f", "qed"}, script)
	checkRecording(t, base, rec, dir, out, true)
	t.Logf("qedtorture io: %d trace ops, calls %v, %d prompts", len(rec.Trace.Ops), rec.Calls, len(rec.Prompts))
}

// TestRecordBrokenDropSync: the recorder sees that `io --broken-drop-sync`
// never syncs, so the flushed data is not durable in the crash state.
func TestRecordBrokenDropSync(t *testing.T) {
	st := strace.Require(t)
	bin := qedtortureBin(t)
	dir := createImage(t, bin)
	base, rec, out := record(t, st, dir, []string{bin, "io", "--broken-drop-sync", "-f", "qed"}, script)
	checkRecording(t, base, rec, dir, out, false)
}

// TestRecordQemuIO records unmodified qemu-io (which sets up an io_uring
// for polling, but writes through pwritev in its thread pool).
func TestRecordQemuIO(t *testing.T) {
	st := strace.Require(t)
	tool := qemutool.Require(t)
	bin := qedtortureBin(t)
	dir := createImage(t, bin)
	base, rec, out := record(t, st, dir, []string{tool.IOPath, "-f", "qed"}, script)
	checkRecording(t, base, rec, dir, out, true)
	t.Logf("qemu-io: %d trace ops, calls %v, %d prompts, io_uring %v", len(rec.Trace.Ops), rec.Calls, len(rec.Prompts), rec.IOUring)
}

// TestRecordRefusesWrite: dd writes the image with write(2) at the file
// position: refused, naming the call and the file.
func TestRecordRefusesWrite(t *testing.T) {
	st := strace.Require(t)
	dir := t.TempDir()
	img := filepath.Join(dir, "img.qed")
	if err := os.WriteFile(img, make([]byte, 4096), 0o644); err != nil {
		t.Fatal(err)
	}
	_, o, err := strace.Snapshot(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "strace.txt")
	cmd := strace.Command(context.Background(), st, out, []string{"dd", "if=/dev/zero", "of=" + img, "bs=512", "count=1", "conv=notrunc"})
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("dd: %v: %s", err, b)
	}
	f, _ := os.Open(out)
	defer f.Close()
	_, err = strace.Parse(f, o)
	var ue *strace.UnrecordedError
	if !errors.As(err, &ue) || ue.Call != "write" || ue.Path != "/img.qed" {
		t.Fatalf("Parse = %v, want an UnrecordedError naming write on /img.qed", err)
	}
}

// TestRecordRefusesSharedMapping: a writable shared mapping of the image
// is refused, naming mmap.
func TestRecordRefusesSharedMapping(t *testing.T) {
	st := strace.Require(t)
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not found")
	}
	dir := t.TempDir()
	img := filepath.Join(dir, "img.qed")
	if err := os.WriteFile(img, make([]byte, 4096), 0o644); err != nil {
		t.Fatal(err)
	}
	_, o, _ := strace.Snapshot(dir)
	out := filepath.Join(t.TempDir(), "strace.txt")
	prog := "import mmap,os,sys\nfd=os.open(sys.argv[1],os.O_RDWR)\nm=mmap.mmap(fd,4096,mmap.MAP_SHARED,mmap.PROT_WRITE|mmap.PROT_READ)\nm[0:1]=b'x'\nm.close()\n"
	cmd := strace.Command(context.Background(), st, out, []string{py, "-c", prog, img})
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("python: %v: %s", err, b)
	}
	f, _ := os.Open(out)
	defer f.Close()
	_, err = strace.Parse(f, o)
	var ue *strace.UnrecordedError
	if !errors.As(err, &ue) || ue.Call != "mmap" || ue.Path != "/img.qed" {
		t.Fatalf("Parse = %v, want an UnrecordedError naming mmap on /img.qed", err)
	}
}
