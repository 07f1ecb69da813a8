package qemutool

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/qedtorture/qedtorture/internal/cleanup"
)

// Outputs captured from qemu-img 7.2 on a 1 MiB image (one data cluster,
// one zero cluster, one more data cluster) and on a corrupted copy.
const (
	checkClean = `{
    "total-clusters": 16,
    "check-errors": 0,
    "allocated-clusters": 2,
    "filename": "a.qed",
    "format": "qed",
    "fragmented-clusters": 1
}`
	checkRepaired = `{
    "total-clusters": 16,
    "corruptions": 1,
    "corruptions-fixed": 1,
    "check-errors": 0,
    "leaks": 2,
    "allocated-clusters": 3,
    "filename": "c.qed",
    "format": "qed",
    "fragmented-clusters": 2
}`
	mapOut = `[{ "start": 0, "length": 65536, "depth": 0, "present": true, "zero": false, "data": true, "offset": 327680},
{ "start": 65536, "length": 65536, "depth": 0, "present": false, "zero": true, "data": false},
{ "start": 131072, "length": 65536, "depth": 0, "present": true, "zero": true, "data": false}]`
	infoOut = `{
    "backing-filename-format": "raw",
    "virtual-size": 1048576,
    "filename": "top.qed",
    "cluster-size": 65536,
    "format": "qed",
    "actual-size": 593920,
    "full-backing-filename": "base.raw",
    "backing-filename": "base.raw",
    "dirty-flag": false
}`
)

func TestParseCheck(t *testing.T) {
	c, err := ParseCheck([]byte(checkClean))
	if err != nil {
		t.Fatal(err)
	}
	if c.TotalClusters != 16 || c.AllocatedClusters != 2 || c.FragmentedClusters != 1 ||
		c.Corruptions != 0 || c.Leaks != 0 || c.CorruptionsFixed != nil || c.Format != "qed" {
		t.Errorf("clean report decoded as %+v", c)
	}
	c, err = ParseCheck([]byte(checkRepaired))
	if err != nil {
		t.Fatal(err)
	}
	if c.Corruptions != 1 || c.Leaks != 2 || c.CorruptionsFixed == nil || *c.CorruptionsFixed != 1 || c.LeaksFixed != nil {
		t.Errorf("repaired report decoded as %+v", c)
	}
	if _, err := ParseCheck([]byte("No errors were found")); err == nil || !strings.Contains(err.Error(), "check JSON") {
		t.Errorf("human output accepted as JSON: %v", err)
	}
}

func TestParseMapAndInfo(t *testing.T) {
	m, err := ParseMap([]byte(mapOut))
	if err != nil {
		t.Fatal(err)
	}
	if len(m) != 3 || m[0].Offset == nil || *m[0].Offset != 327680 || !m[0].Data ||
		m[1].Present || !m[1].Zero || m[1].Offset != nil || !m[2].Present || !m[2].Zero {
		t.Errorf("map decoded as %+v", m)
	}
	in, err := ParseInfo([]byte(infoOut))
	if err != nil {
		t.Fatal(err)
	}
	if in.VirtualSize != 1<<20 || in.ClusterSize != 65536 || in.BackingFilename != "base.raw" ||
		in.BackingFilenameFormat != "raw" || in.DirtyFlag {
		t.Errorf("info decoded as %+v", in)
	}
	if _, err := ParseMap([]byte("{")); err == nil {
		t.Error("truncated map JSON accepted")
	}
}

func TestRunExitCodeAndTimeout(t *testing.T) {
	sh, err := filepath.Abs("/bin/sh")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(sh); err != nil {
		t.Skip("no /bin/sh")
	}
	tool := &Tool{Timeout: 5 * time.Second}
	res, err := tool.Run(sh, "-c", "echo out; echo err >&2; exit 3")
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != 3 || string(res.Stdout) != "out\n" || string(res.Stderr) != "err\n" {
		t.Errorf("got %+v", res)
	}
	var ee *ExitError
	if err := res.Err(); !errors.As(err, &ee) || ee.ExitCode != 3 || ee.Stderr != "err" {
		t.Errorf("Err() = %v", err)
	}
	tool.Timeout = 100 * time.Millisecond
	start := time.Now()
	_, err = tool.Run(sh, "-c", "sleep 10")
	if !errors.Is(err, ErrTimeout) {
		t.Errorf("sleep past the timeout: err = %v, want ErrTimeout", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("timeout took %v", d)
	}
	if _, err := tool.Run(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("running a missing binary succeeded")
	}
}

func TestFindHonoursEnv(t *testing.T) {
	t.Setenv("QEMU_IMG", filepath.Join(t.TempDir(), "no-such-qemu-img"))
	_, err := Find()
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "QEMU_IMG") {
		t.Errorf("Find with a bad $QEMU_IMG: %v", err)
	}
}

// fakeTB records what Require does instead of stopping the test.
type fakeTB struct{ skipped, failed string }

func (f *fakeTB) Helper()                           {}
func (f *fakeTB) Skipf(format string, args ...any)  { f.skipped = fmt.Sprintf(format, args...) }
func (f *fakeTB) Fatalf(format string, args ...any) { f.failed = fmt.Sprintf(format, args...) }

func TestRequireSkipsOrFails(t *testing.T) {
	t.Setenv("QEMU_IMG", filepath.Join(t.TempDir(), "absent"))
	t.Setenv("CI", "")
	var f fakeTB
	if Require(&f) != nil || f.skipped == "" || f.failed != "" {
		t.Errorf("without CI: %+v", f)
	}
	t.Setenv("CI", "1")
	f = fakeTB{}
	if Require(&f) != nil || f.failed == "" {
		t.Errorf("with CI: %+v", f)
	}
}

// TestRealQEMU exercises the wrappers against the installed tools: a batch
// of qemu-io writes, check (clean and leaking), info and map.
func TestRealQEMU(t *testing.T) {
	tool := Require(t)
	dir := t.TempDir()
	img := filepath.Join(dir, "a.qed")
	if _, err := tool.Img("create", "-q", "-f", "qed", img, "1M"); err != nil {
		t.Fatal(err)
	}
	if _, err := tool.IOBatch(img, "qed", "write -P 0xab 0 64k", "write -z 128k 64k", "write 300k 1k", "read -P 0xab 0 64k"); err != nil {
		t.Fatal(err)
	}
	if _, err := tool.IOBatch(img, "qed", "read -P 0xcd 0 512"); err == nil {
		t.Error("a failing pattern verification passed")
	}
	c, code, err := tool.Check(img, "")
	if err != nil || code != 0 || c.AllocatedClusters != 2 || c.TotalClusters != 16 {
		t.Errorf("check: %+v exit %d err %v", c, code, err)
	}
	// Two unreferenced clusters at the end are leaks only: exit 3.
	f, err := os.OpenFile(img, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(make([]byte, 2*65536)); err != nil {
		t.Fatal(err)
	}
	f.Close()
	c, code, err = tool.Check(img, "")
	if err != nil || code != 3 || c.Leaks != 2 || c.Corruptions != 0 {
		t.Errorf("check with leaks: %+v exit %d err %v", c, code, err)
	}
	in, err := tool.Info(img)
	if err != nil || in.VirtualSize != 1<<20 || in.Format != "qed" || in.ClusterSize != 65536 {
		t.Errorf("info: %+v %v", in, err)
	}
	m, err := tool.Map(img)
	if err != nil || len(m) == 0 || !m[0].Data || m[0].Start != 0 {
		t.Errorf("map: %+v %v", m, err)
	}
	var total int64
	for _, e := range m {
		total += e.Length
	}
	if total != 1<<20 {
		t.Errorf("map covers %d bytes, want %d", total, 1<<20)
	}
}

// TestRunContextKills: cancelling a tool's context kills the running
// process group at once, Run says so, and nothing stays on cleanup's list.
func TestRunContextKills(t *testing.T) {
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("no sleep(1)")
	}
	ctx, cancel := context.WithCancel(context.Background())
	tool := (&Tool{}).WithContext(ctx)
	n := cleanup.Len()
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	_, err = tool.Run(sleep, "30")
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Run after cancel: %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Run returned %v after the cancellation", d)
	}
	if cleanup.Len() != n {
		t.Fatalf("cleanup list %d, want %d", cleanup.Len(), n)
	}
	// A cancelled context starts nothing.
	if _, err := tool.Run(sleep, "30"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Run on a cancelled context: %v", err)
	}
}

// TestTrackKillsOnCancel: a tracked command's process group is killed
// when its context is cancelled.
func TestTrackKillsOnCancel(t *testing.T) {
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("no sleep(1)")
	}
	cmd := exec.Command(sleep, "30")
	NewProcessGroup(cmd)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	release := Track(ctx, cmd)
	start := time.Now()
	cancel()
	_ = cmd.Wait()
	release()
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("killed after %v", d)
	}
}
