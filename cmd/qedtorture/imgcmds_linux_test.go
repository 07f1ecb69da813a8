//go:build linux

package main

import (
	"strings"
	"testing"

	"github.com/qedtorture/qedtorture/internal/imagelock"
	"github.com/qedtorture/qedtorture/internal/qemutool"
)

// TestNewCommandsAgainstQEMULocks: the writers among the new commands are
// refused, changing nothing, while qemu-io holds what they would write;
// the readers are refused beside a writer unless -U.
func TestNewCommandsAgainstQEMULocks(t *testing.T) {
	tool := qemutool.Require(t)
	t.Chdir(t.TempDir())
	chainFiles(t, tool)
	runWant(t, exitOK, "create", "-q", "other.qed", "1M")
	before := snap(t, "top.qed", "base.qed", "nb.qed", "other.qed")
	h, err := tool.Hold("top.qed", "-f", "qed")
	if err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"resize", "top.qed", "2M"},
		{"rebase", "-u", "-b", "nb.qed", "top.qed"},
		{"rebase", "-b", "nb.qed", "top.qed"},
		{"commit", "top.qed"},
		{"convert", "-n", "-O", "qed", "other.qed", "top.qed"},
		{"dd", "if=other.qed", "of=top.qed"},
	} {
		r := runWant(t, exitRuntime, args...)
		if !strings.Contains(r.stderr, "lock: is another process using the image [") {
			t.Errorf("%q beside qemu-io: %q", args, r.stderr)
		}
	}
	// Readers: refused beside the writer, fine with -U.
	r := qt(t, "compare", "top.qed", "top.qed")
	if r.code != exitCompareError || !strings.Contains(r.stderr, sharedLockMsg+"top.qed]?") {
		t.Errorf("compare beside qemu-io: %d %q", r.code, r.stderr)
	}
	runWant(t, exitOK, "compare", "-q", "-U", "top.qed", "top.qed")
	runWant(t, exitOK, "info", "-U", "--backing-chain", "top.qed")
	runWant(t, exitOK, "measure", "-U", "-O", "qed", "top.qed")
	runWant(t, exitOK, "dd", "-U", "if=top.qed", "of=copy.raw")
	h.Release()
	before.unchanged(t, "commands refused beside qemu-io")

	// A VM on top.qed holds its backing file base.qed: a commit of another
	// overlay of base.qed into it is refused.
	h, err = tool.Hold("top.qed", "-f", "qed")
	if err != nil {
		t.Fatal(err)
	}
	// QEMU locks the backing file after the image Hold waited for.
	if err := qemutool.WaitLocked("base.qed", imagelock.ReadOnly); err != nil {
		t.Fatal(err)
	}
	runWant(t, exitOK, "create", "-q", "-b", "base.qed", "-F", "qed", "ov2.qed")
	qemuIO(t, tool, "ov2.qed", "write -P 8 0 4k")
	if r := runWant(t, exitRuntime, "commit", "ov2.qed"); !strings.Contains(r.stderr, writeLockMsg+"base.qed]?") {
		t.Errorf("commit into a base QEMU reads: %q", r.stderr)
	}
	h.Release()
	before.unchanged(t, "commit into a base held by QEMU")
}
