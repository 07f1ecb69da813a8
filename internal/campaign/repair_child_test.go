//go:build linux

package campaign

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/qedtorture/qedtorture/internal/childrss"
)

// The memory bound of an out-of-process repair path (repair.go's
// runRepair): the peak resident set of each child it started, held to
// twice the bound. Linux alone: the child's peak is wait4's ru_maxrss,
// known only above this process's own (internal/childrss).

const childTouchEnv = "CAMPAIGN_TEST_CHILD_TOUCH_MB"

// TestRepairChildTouch is a helper process, no test of its own: run by
// childRepairer with childTouchEnv set, it touches that many MiB and
// returns.
func TestRepairChildTouch(t *testing.T) {
	mb, err := strconv.Atoi(os.Getenv(childTouchEnv))
	if err != nil {
		t.Skip("the child process of TestRepairChildMemory")
	}
	// Anonymous memory outside Go's heap: under -race the detector
	// shadows what a test touches on the heap, which would make the
	// child's peak about twice what it touched (a CI run saw 745 MB for
	// 360 MiB), and the collector never sees it.
	b, err := syscall.Mmap(-1, 0, mb<<20, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(b); i += 4096 {
		b[i] = 1
	}
	if err := syscall.Munmap(b); err != nil {
		t.Fatal(err)
	}
}

// childRepairer is an out-of-process path that repairs nothing: it starts
// this test binary as a child touching mb MiB and reports the child to
// the repair's childrss.Peak, as internal/qemutool does for QEMU's tools.
type childRepairer struct{ mb int }

func (childRepairer) Name() string    { return "test:child" }
func (childRepairer) Check() bool     { return true }
func (childRepairer) InProcess() bool { return false }
func (r childRepairer) Repair(ctx context.Context, _ string) ([]string, error) {
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestRepairChildTouch$", "-test.count=1")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%d", childTouchEnv, r.mb))
	out, err := cmd.CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("child: %w: %s", err, out)
	}
	childrss.Record(ctx, cmd.ProcessState)
	return nil, nil
}

// TestRepairChildMemory: a child of an out-of-process repair that reaches
// more than twice the bound is a "memory" failure naming twice the bound;
// one under twice the bound is none. The child touches 64 MiB more than
// this process's own peak so far (so its peak is known as its own).
func TestRepairChildMemory(t *testing.T) {
	var self syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &self); err != nil {
		t.Fatal(err)
	}
	mb := int(self.Maxrss>>10) + 64 // ru_maxrss is in KiB on Linux
	if mb > 1<<10 {
		t.Skipf("this process's peak is %d MiB: a child above it would take too much memory", mb-64)
	}
	t.Logf("the child touches %d MiB", mb)
	for _, c := range []struct {
		bound int64
		want  string // the failure, "" for none
	}{
		{1 << 20, fmt.Sprintf("memory: a child process reached %%d bytes resident (bound %d)", 2<<20)},
		{int64(mb) << 20, ""},
	} {
		var fails []string
		unrep, err, ok := runRepair(context.Background(), RepairConfig{Timeout: time.Minute, MemoryBound: c.bound},
			childRepairer{mb}, "unused", 0, func(rule, format string, args ...any) {
				fails = append(fails, rule+": "+fmt.Sprintf(format, args...))
			})
		if !ok || err != nil || unrep != nil {
			t.Fatalf("bound %d: ok %v, err %v, unrepaired %v, failures %v", c.bound, ok, err, unrep, fails)
		}
		var rss int64
		switch {
		case c.want == "" && len(fails) != 0:
			t.Errorf("a child of about %d MiB under a bound of %d MiB: failures %v", mb, c.bound>>20, fails)
		case c.want != "" && len(fails) != 1:
			t.Errorf("a child of about %d MiB over twice a bound of %d bytes: failures %v", mb, c.bound, fails)
		case c.want != "":
			if _, err := fmt.Sscanf(fails[0], c.want, &rss); err != nil || rss < int64(mb)<<20 || !strings.HasSuffix(fails[0], fmt.Sprintf("(bound %d)", 2*c.bound)) {
				t.Errorf("failure %q: want %q with at least %d MiB (%v)", fails[0], c.want, mb, err)
			}
		}
	}
}
