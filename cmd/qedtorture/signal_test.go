//go:build linux

package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/qedtorture/qedtorture/internal/campaign"
	"github.com/qedtorture/qedtorture/internal/qemutool"
	"github.com/qedtorture/qedtorture/internal/racetest"
	"github.com/stretchr/testify/require"
)

// The signal tests run the real qedtorture binary as a child process and
// send it real signals (issue 11, items 6 and 7).

var built struct {
	once sync.Once
	path string
	err  error
	out  []byte
}

// qedtortureBinary builds qedtorture once per test process
// (QEDTORTURE_TEST_BINARY names a prebuilt one instead, e.g. an older
// version to show these tests failing on it).
func qedtortureBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("QEDTORTURE_TEST_BINARY"); p != "" {
		return p
	}
	built.once.Do(func() {
		dir, err := os.MkdirTemp("", "qedtorture-bin-")
		if err != nil {
			built.err = err
			return
		}
		built.path = filepath.Join(dir, "qedtorture")
		args := []string{"build", "-o", built.path}
		if racetest.Enabled {
			args = append(args, "-race")
		}
		cmd := exec.Command("go", append(args, ".")...)
		built.out, built.err = cmd.CombinedOutput()
	})
	if built.err != nil {
		t.Fatalf("go build: %v\n%s", built.err, built.out)
	}
	return built.path
}

func TestMain(m *testing.M) {
	code := m.Run()
	if built.path != "" {
		os.RemoveAll(filepath.Dir(built.path))
	}
	os.Exit(code)
}

// child is a running qedtorture.
type child struct {
	cmd            *exec.Cmd
	stdout, stderr bytes.Buffer
	done           chan struct{}
	code           int
}

// start runs qedtorture with args and TMPDIR=tmp; with slowStop, it
// takes 5 s to start stopping after the first signal (a second signal
// then meets the campaign in full flight).
func start(t *testing.T, tmp string, slowStop bool, args ...string) *child {
	t.Helper()
	c := &child{cmd: exec.Command(qedtortureBinary(t), args...), done: make(chan struct{})}
	c.cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
	if slowStop {
		c.cmd.Env = append(c.cmd.Env, "QEDTORTURE_TEST_STOP_DELAY=5s")
	}
	c.cmd.Stdout, c.cmd.Stderr = &c.stdout, &c.stderr
	require.NoError(t, c.cmd.Start())
	go func() {
		c.cmd.Wait()
		c.code = c.cmd.ProcessState.ExitCode()
		if ws, ok := c.cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			c.code = 128 + int(ws.Signal())
		}
		close(c.done)
	}()
	t.Cleanup(func() {
		select {
		case <-c.done:
		default:
			c.cmd.Process.Kill()
			<-c.done
		}
	})
	return c
}

// wait waits at most d for the child's exit and returns how long it took.
func (c *child) wait(t *testing.T, d time.Duration) time.Duration {
	t.Helper()
	t0 := time.Now()
	select {
	case <-c.done:
		return time.Since(t0)
	case <-time.After(d):
		t.Fatalf("still running %v after the signal\nstdout: %s\nstderr: %s", d, c.stdout.String(), c.stderr.String())
	}
	return 0
}

// waitFor polls cond until it holds (or fails the test after d).
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	for t0 := time.Now(); time.Since(t0) < d; time.Sleep(50 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out after %v waiting for %s", d, what)
}

// checkpoint reads the report file if it is there (a checkpoint or the
// final report).
func checkpoint(name string) *campaign.Report {
	fh, err := os.Open(name)
	if err != nil {
		return nil
	}
	defer fh.Close()
	r, err := campaign.ReadReport(fh)
	if err != nil {
		return nil
	}
	return r
}

// leftovers lists what a qedtorture with TMPDIR=tmp left: scratch
// directories in tmp and live QEMU processes that inherited the TMPDIR.
func leftovers(t *testing.T, tmp string) []string {
	t.Helper()
	var out []string
	es, err := os.ReadDir(tmp)
	require.NoError(t, err)
	for _, e := range es {
		if strings.HasPrefix(e.Name(), "qedtorture-qemu-") {
			out = append(out, "directory "+e.Name())
		}
	}
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		comm, err := os.ReadFile(filepath.Join(p, "comm"))
		if err != nil || !strings.HasPrefix(string(comm), "qemu-") {
			continue
		}
		env, _ := os.ReadFile(filepath.Join(p, "environ"))
		if bytes.Contains(env, []byte("TMPDIR="+tmp+"\x00")) {
			stat, _ := os.ReadFile(filepath.Join(p, "stat"))
			if f := strings.Fields(string(stat)); len(f) > 2 && f[2] == "Z" {
				continue // a zombie: dead, only waiting for its reaper
			}
			out = append(out, "process "+filepath.Base(p)+" "+strings.TrimSpace(string(comm)))
		}
	}
	return out
}

// qemuChildren counts the live QEMU processes started by pid.
func qemuChildren(pid int) int {
	n := 0
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		stat, err := os.ReadFile(filepath.Join(p, "stat"))
		if err != nil {
			continue
		}
		s := string(stat)
		i := strings.LastIndexByte(s, ')')
		if i < 0 || !strings.Contains(s[:i], "(qemu-") {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			n++
		}
	}
	return n
}

// TestRunSignals: SIGINT and SIGTERM stop `run` within 10 s with the
// summary and report marked interrupted, exit 130 and 143, a progress bar
// that does not jump to 100 %, and the failures found so far written as
// complete artifacts; a checkpoint written during the run is a valid
// report that merges; a second signal exits at once.
func TestRunSignals(t *testing.T) {
	for _, c := range []struct {
		name   string
		sig    []syscall.Signal
		code   int
		broken bool
	}{
		{"SIGINT", []syscall.Signal{syscall.SIGINT}, 130, false},
		{"SIGTERM with failures", []syscall.Signal{syscall.SIGTERM}, 143, true},
		{"SIGINT twice", []syscall.Signal{syscall.SIGINT, syscall.SIGINT}, 130, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			rep, out := filepath.Join(dir, "r.json"), filepath.Join(dir, "out")
			args := runArgs([]string{"run", "--duration", "2m", "--seed", "8", "--report", rep, "--out", out,
				"--checkpoint-interval", "100ms"}, quick, []string{"--progress", "bar", "--workers", "1"})
			if c.broken {
				args = append(args, "--target", "broken:noflush", "--max-failures", "1000")
			}
			p := start(t, dir, len(c.sig) > 1, args...)
			var cp *campaign.Report
			waitFor(t, 90*time.Second, "a checkpoint", func() bool {
				cp = checkpoint(rep)
				return cp != nil && cp.Workloads+int64(len(cp.Failures)) > 0 && (!c.broken || len(cp.Failures) > 0)
			})
			require.True(t, cp.Checkpoint)
			require.False(t, cp.Interrupted)
			// A checkpoint (what a killed run leaves) merges, and says so.
			cpCopy := filepath.Join(dir, "cp.json")
			b, err := os.ReadFile(rep)
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(cpCopy, b, 0o644))
			r := runWant(t, exitOK, "report", "merge", "-o", filepath.Join(dir, "m.json"), cpCopy)
			require.Contains(t, r.stdout, "is a checkpoint")
			require.True(t, readReport(t, filepath.Join(dir, "m.json")).Checkpoint)

			t0 := time.Now()
			for _, s := range c.sig {
				require.NoError(t, p.cmd.Process.Signal(s))
				time.Sleep(100 * time.Millisecond)
			}
			p.wait(t, 15*time.Second)
			took := time.Since(t0)
			require.Less(t, took, 10*time.Second)
			require.Equal(t, c.code, p.code, "stdout: %s\nstderr: %s", p.stdout.String(), p.stderr.String())
			t.Logf("stopped %v after the signal", took)
			require.NotContains(t, p.stderr.String(), "100%", "the bar jumped to 100 %")
			if _, err := os.Stat(out); err == nil {
				noTemps(t, out)
			}
			noTemps(t, dir)
			if len(c.sig) > 1 {
				require.Contains(t, p.stderr.String(), "again: exiting at once")
				return
			}
			require.Contains(t, p.stdout.String(), "interrupted by "+strings.Fields(c.name)[0]+":")
			require.Contains(t, p.stderr.String(), "qedtorture: interrupted by "+strings.Fields(c.name)[0])
			final := readReport(t, rep)
			require.True(t, final.Interrupted)
			require.False(t, final.Checkpoint)
			require.GreaterOrEqual(t, final.Workloads, cp.Workloads)
			if c.broken {
				require.GreaterOrEqual(t, len(final.Failures), len(cp.Failures))
				for _, fr := range final.Failures {
					require.NotEmpty(t, fr.Artifact, "%+v", fr)
					require.FileExists(t, filepath.Join(fr.Artifact, "workload.txt"))
					require.FileExists(t, filepath.Join(fr.Artifact, "meta.json"))
				}
				rr := qt(t, "replay", final.Failures[0].Artifact)
				require.Equal(t, exitRuntime, rr.code, "the artifact replays: %s%s", rr.stdout, rr.stderr)
			}
		})
	}
}

// TestRunSIGKILLLeavesCheckpoint: a run killed without warning (a
// preempted machine) leaves its last checkpoint, a complete report.
func TestRunSIGKILLLeavesCheckpoint(t *testing.T) {
	dir := t.TempDir()
	rep := filepath.Join(dir, "r.json")
	p := start(t, dir, false, runArgs([]string{"run", "--duration", "2m", "--seed", "8", "--report", rep, "--out", dir,
		"--checkpoint-interval", "50ms"}, quick)...)
	waitFor(t, 90*time.Second, "a checkpoint", func() bool {
		cp := checkpoint(rep)
		return cp != nil && cp.Workloads > 0
	})
	time.Sleep(200 * time.Millisecond)
	require.NoError(t, p.cmd.Process.Kill())
	p.wait(t, 5*time.Second)
	r := readReport(t, rep)
	require.True(t, r.Checkpoint)
	require.Positive(t, r.Workloads)
	// A SIGKILL during a checkpoint's write may leave its temporary
	// (".r.json.tmp-*", skipped by a "report merge r*.json" glob); the
	// report itself is always whole.
}

// TestQEMUSignals: SIGINT stops `qemu` within 10 s, exit 130, the report
// marked interrupted, its scratch directories and qemu-io/qemu-img
// processes gone; the failures found so far get their artifacts; a second
// signal exits at once and still leaves nothing behind.
func TestQEMUSignals(t *testing.T) {
	qemutool.Require(t)
	for _, c := range []struct {
		name    string
		sig     []syscall.Signal
		code    int
		finding bool
	}{
		{"SIGINT", []syscall.Signal{syscall.SIGINT}, 130, false},
		{"SIGTERM with a finding", []syscall.Signal{syscall.SIGTERM}, 143, true},
		{"SIGINT twice", []syscall.Signal{syscall.SIGINT, syscall.SIGINT}, 130, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			tmp := filepath.Join(dir, "tmp")
			require.NoError(t, os.Mkdir(tmp, 0o755))
			rep, out := filepath.Join(dir, "r.json"), filepath.Join(dir, "art")
			args := []string{"qemu", "--duration", "2m", "--seed", "9", "--ops", "6", "--max-clusters", "16",
				"--crash-model", "prefix,drop", "--qemu-states", "4", "--out", out, "--report", rep, "--progress", "none",
				"--checkpoint-interval", "100ms"}
			if c.finding {
				// F1 of docs/findings.md, repeated: found in the first workload.
				wf := filepath.Join(dir, "w.txt")
				require.NoError(t, os.WriteFile(wf, []byte("qedtorture-workload v1\nimage cluster_size=65536 table_size=4 size=1048576\n"+
					"write 0x0 0x1000 id=1\nreopen\nwrite 0x20000 0x1000 id=2\nflush\n"), 0o644))
				// No crashes during creation: F7 (qemu-img create never
				// syncs the directory) would be found first, with no image.
				args = []string{"qemu", "--workload", wf, "--duration", "2m", "--ends", "close", "--crash-model", "subset", "--create-crashes", "0",
					"--qemu-states", "0", "--diff=false", "--seed", "1", "--out", out, "--report", rep, "--progress", "none",
					"--checkpoint-interval", "100ms"}
			}
			p := start(t, tmp, len(c.sig) > 1, args...)
			waitFor(t, 90*time.Second, "a workload done and QEMU running", func() bool {
				var cp campaign.Report
				b, err := os.ReadFile(rep)
				return err == nil && json.Unmarshal(b, &cp) == nil && cp.Checkpoint &&
					(c.finding && cp.FailedWorkloads > 0 || !c.finding && cp.Workloads > 0) && qemuChildren(p.cmd.Process.Pid) > 0
			})
			t0 := time.Now()
			for _, s := range c.sig {
				require.NoError(t, p.cmd.Process.Signal(s))
				time.Sleep(100 * time.Millisecond)
			}
			p.wait(t, 15*time.Second)
			took := time.Since(t0)
			require.Less(t, took, 10*time.Second)
			t.Logf("stopped %v after the signal", took)
			require.Equal(t, c.code, p.code, "stdout: %s\nstderr: %s", p.stdout.String(), p.stderr.String())
			// Killed process groups are reaped by the time qedtorture exits.
			left := leftovers(t, tmp)
			for t0 := time.Now(); len(left) > 0 && time.Since(t0) < 2*time.Second; left = leftovers(t, tmp) {
				time.Sleep(50 * time.Millisecond)
			}
			require.Empty(t, left, "left behind")
			if len(c.sig) > 1 {
				require.Contains(t, p.stderr.String(), "again: exiting at once")
				return
			}
			require.Contains(t, p.stdout.String(), "interrupted by "+strings.Fields(c.name)[0])
			var final map[string]any
			b, err := os.ReadFile(rep)
			require.NoError(t, err)
			require.NoError(t, json.Unmarshal(b, &final))
			require.Equal(t, true, final["interrupted"])
			require.Nil(t, final["checkpoint"])
			if c.finding {
				fs := final["failures"].([]any)
				require.NotEmpty(t, fs)
				art := fs[0].(map[string]any)["artifact"].(string)
				require.FileExists(t, filepath.Join(art, "workload.txt"))
				require.FileExists(t, filepath.Join(art, "image", "image.qed"))
				noTemps(t, out)
			}
		})
	}
}
