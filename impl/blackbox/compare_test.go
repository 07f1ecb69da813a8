package blackbox

import (
	"context"
	"crypto/sha256"
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/qedtorture/qedtorture/crashsim"
	"github.com/qedtorture/qedtorture/impl/qed/qedtarget"
	"github.com/qedtorture/qedtorture/impl/qemu"
	"github.com/qedtorture/qedtorture/internal/campaign"
	"github.com/qedtorture/qedtorture/internal/qemutool"
	"github.com/qedtorture/qedtorture/internal/strace"
	"github.com/qedtorture/qedtorture/props/workload"
)

// epochs describes a trace as its sync epochs: per epoch, the sorted
// writes (offset, length, data hash) and truncates.
func epochs(t *crashsim.Trace) [][]string {
	out := [][]string{{}}
	for _, o := range t.Ops {
		switch o.Kind {
		case crashsim.OpSync:
			out = append(out, []string{})
		case crashsim.OpWrite:
			h := sha256.Sum256(o.Data)
			out[len(out)-1] = append(out[len(out)-1], fmt.Sprintf("write %#x+%#x %x", o.Off, len(o.Data), h[:4]))
		case crashsim.OpTruncate:
			out[len(out)-1] = append(out[len(out)-1], fmt.Sprintf("truncate %#x", o.Size))
		}
	}
	for _, e := range out {
		sort.Strings(e)
	}
	return out
}

// TestRecordingMatchesBlklogwrites records one workload through
// exec:qemu-io (system calls) and through --target qemu's blklogwrites
// recording, and compares them sync epoch by sync epoch.
func TestRecordingMatchesBlklogwrites(t *testing.T) {
	strace.Require(t)
	tool := qemutool.Require(t)
	w, err := workload.Parse(strings.NewReader("qedtorture-workload v1\nimage cluster_size=65536 table_size=4 size=1048576\n" +
		"write 0x1000 0x3000 id=1\nflush\nwrite 0x20000 0x10000 id=2\nzero 0x40000 0x10000\nflush\nwrite 0x1200 0x200 id=3\nresize 0x200000\nflush\n"))
	if err != nil {
		t.Fatal(err)
	}
	d, err := New(tool.IOPath+" -f qed", qedtarget.Target{})
	if err != nil {
		t.Fatal(err)
	}
	d.JudgeBudget = 0
	er, err := d.Record(context.Background(), w, campaign.RecordOptions{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	qr, err := qemu.Record(tool, w, t.TempDir(), qemu.EndClose)
	if err != nil {
		t.Fatal(err)
	}
	a, b := epochs(er.Trace), epochs(qr.Trace)
	t.Logf("strace: %d ops, %d sync epochs; blklogwrites: %d ops, %d sync epochs", len(er.Trace.Ops), len(a), len(qr.Trace.Ops), len(b))
	// The one expected difference: QED's 64-byte header update is a
	// 64-byte pwrite under file-posix (request alignment 1), and a
	// 512-byte read-modify-write under blklogwrites (512-byte sectors).
	if len(a) != len(b) {
		t.Fatalf("%d sync epochs recorded by system calls, %d by blklogwrites", len(a), len(b))
	}
	for i := range a {
		x, y := strings.Join(a[i], "\n"), strings.Join(b[i], "\n")
		if x == y {
			continue
		}
		t.Logf("epoch %d differs:\n  strace:       %s\n  blklogwrites: %s", i, strings.Join(a[i], "\n                "), strings.Join(b[i], "\n                "))
		if len(a[i]) != len(b[i]) {
			t.Errorf("epoch %d: %d writes by system calls, %d by blklogwrites", i, len(a[i]), len(b[i]))
			continue
		}
		for j := range a[i] {
			if a[i][j] != b[i][j] && !(strings.HasPrefix(a[i][j], "write 0x0+0x40 ") && strings.HasPrefix(b[i][j], "write 0x0+0x200 ")) {
				t.Errorf("epoch %d: %q recorded by system calls, %q by blklogwrites", i, a[i][j], b[i][j])
			}
		}
	}
}
