package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qedtorture/qedtorture/internal/qemutool"
)

// imageCmdsScript runs every image command op (issue 18) over a backing
// chain: a safe rebase onto a file the setup makes, rebase -u onto a
// 700-byte name, commit, commit -d, and a safe rebase onto nothing.
const imageCmdsScript = `qedtorture-workload v1
image cluster_size=4096 table_size=2 size=65536
backing qed size=49152 cluster_size=4096 table_size=2 fill=2
backing raw size=65536 fill=1
write 0x1000 0x200 id=3
zero 0x9000 0x1000
rebase 0x2000 0x4000 id=4
write 0x7100 0x100 id=5
rebase-unsafe 700
commit
write 0x3000 0x100 id=6
read 0x0 0x10000
commit -d
rebase none
read 0x0 0x10000
`

// TestRunImageCommandsWorkload: `run --workload FILE` with the image
// commands: impl/qed passes every crash state of every default model;
// QEMU (qemu-img through blklogwrites) fails at backing-name on a
// 700-byte rebase -u (findings Q6, which --known counts as known), and
// passes rebase -u onto a short name and commit but for F9 (known).
func TestRunImageCommandsWorkload(t *testing.T) {
	dir := t.TempDir()
	wf := filepath.Join(dir, "w.txt")
	if err := os.WriteFile(wf, []byte(imageCmdsScript), 0o644); err != nil {
		t.Fatal(err)
	}
	runWant(t, exitOK, "run", "--workload", wf, "--seed", "18", "--out", dir, "--progress", "none")

	qemutool.Require(t)
	q := filepath.Join(dir, "q.txt")
	head := "qedtorture-workload v1\nimage cluster_size=4096 table_size=2 size=65536\nbacking raw size=49152 fill=1\nwrite 0x1000 0x200 id=2\n"
	if err := os.WriteFile(q, []byte(head+"rebase-unsafe 700\nread 0x0 0x10000\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"run", "--target", "qemu", "--workload", q, "--crash-model", "torn512", "--seed", "1", "--out", filepath.Join(dir, "art"), "--progress", "none"}
	r := qt(t, args...)
	if r.code != exitRuntime || !strings.Contains(r.stdout, "impl/qed/backing-name") {
		t.Fatalf("rebase -u onto a 700-byte name on QEMU: want a backing-name failure (exit 1), got exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	known := filepath.Join("..", "..", "testdata", "known", "qemu-7.2.txt")
	r = qt(t, append(args, "--known", known)...)
	if !strings.Contains(r.stdout, "known: Q6") {
		t.Fatalf("with --known: want the failure counted as Q6\nstdout: %s\nstderr: %s", r.stdout, r.stderr)
	}
	if err := os.WriteFile(q, []byte(head+"rebase-unsafe 100\ncommit\nread 0x0 0x10000\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// The commit into the shorter raw copy: QEMU's base of a size in
	// between (findings F9, now that strace records the base), known.
	r = qt(t, "run", "--target", "qemu", "--workload", q, "--seed", "1", "--out", filepath.Join(dir, "art2"), "--progress", "none", "--known", known)
	// (the one workload is then not a completed one: exit 1, "nothing
	// was verified", with no failure).
	if !strings.Contains(r.stdout, "known: F9") || strings.Contains(r.stdout, "FAILURE") {
		t.Fatalf("rebase -u onto a short name and commit on QEMU: want F9 known and no failure, got %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
}

// f2Script is findings F2's reproducer: a partial write into a zero
// cluster over a backing file; the read of the zeroed rest returns the
// backing file's data on QEMU 7.2.
const f2Script = `qedtorture-workload v1
image cluster_size=65536 table_size=4 size=1048576
backing raw size=1048576 fill=1
zero 0x10000 0x10000
write 0x11000 0x1000 id=2
read 0x12000 0x1000
`

// TestKnownF2CrashFreeRead: QEMU's F2 in a crash-free read has a signature
// of its own (the backing file's data where zeros were written), which the
// known-findings file names; impl/qed passes the same workload.
func TestKnownF2CrashFreeRead(t *testing.T) {
	dir := t.TempDir()
	wf := filepath.Join(dir, "f2.txt")
	if err := os.WriteFile(wf, []byte(f2Script), 0o644); err != nil {
		t.Fatal(err)
	}
	runWant(t, exitOK, "run", "--workload", wf, "--seed", "1", "--out", filepath.Join(dir, "qed"), "--progress", "none")

	qemutool.Require(t)
	args := []string{"run", "--target", "qemu", "--workload", wf, "--seed", "1", "--out", filepath.Join(dir, "art"), "--progress", "none"}
	r := qt(t, args...)
	if r.code != exitRuntime || !strings.Contains(r.stdout, "signature: qemu/workload/data/backing-for-zeros") {
		t.Fatalf("F2 on QEMU: want a failure signed qemu/workload/data/backing-for-zeros, got exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	known := filepath.Join("..", "..", "testdata", "known", "qemu-7.2.txt")
	r = qt(t, append(args, "--known", known)...)
	if !strings.Contains(r.stdout, "known: F2 or F10 (crash-free read: backing data where zeros are allowed)") || strings.Contains(r.stdout, "FAILURE") {
		t.Fatalf("with --known: want F2 known and no failure\nstdout: %s\nstderr: %s", r.stdout, r.stderr)
	}
}

// TestKnownF10CrashFreeRead: QEMU's F10 (a grow after `rebase none` reads
// the former backing file's bytes) has the same signature as F2's
// crash-free read, which the known-findings file names with both.
func TestKnownF10CrashFreeRead(t *testing.T) {
	qemutool.Require(t)
	dir := t.TempDir()
	wf := filepath.Join(dir, "f10.txt")
	script := "qedtorture-workload v1\nimage cluster_size=8192 table_size=1 size=46080\nbacking raw size=75264 fill=1\nrebase none\nresize 0xcc00\nread 0xb400 0x1800\n"
	if err := os.WriteFile(wf, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	known := filepath.Join("..", "..", "testdata", "known", "qemu-7.2.txt")
	r := qt(t, "run", "--target", "qemu", "--workload", wf, "--seed", "1", "--out", filepath.Join(dir, "art"), "--progress", "none", "--known", known)
	if !strings.Contains(r.stdout, "known: F2 or F10") || strings.Contains(r.stdout, "FAILURE") {
		t.Fatalf("F10 on QEMU with --known: want it known and no failure\nstdout: %s\nstderr: %s", r.stdout, r.stderr)
	}
}
