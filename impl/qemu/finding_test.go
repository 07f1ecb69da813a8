package qemu

import (
	"errors"
	"strings"
	"testing"

	"github.com/qedtorture/qedtorture/crashsim"
	"github.com/qedtorture/qedtorture/impl/qed/qedtarget"
	"github.com/qedtorture/qedtorture/internal/qemuio"
	"github.com/qedtorture/qedtorture/internal/qemutool"
	"github.com/qedtorture/qedtorture/props"
	"github.com/qedtorture/qedtorture/props/oracle"
	"github.com/qedtorture/qedtorture/props/workload"
)

// needCheckRepro is the minimized reproducer of finding F1 in
// docs/findings.md: on an image without a backing file whose NEED_CHECK
// is clear (here after a reopen), an allocating write into an existing L2
// table.
const needCheckRepro = `qedtorture-workload v1
image cluster_size=65536 table_size=4 size=1048576
write 0x0 0x1000 id=1
reopen
write 0x20000 0x1000 id=2
flush
`

// TestFindingNeedCheckNotDurable: the suite finds, end to end, that QEMU
// 7.2 sets NEED_CHECK without a flush before its unordered data/L2 writes:
// under the subset model a crash leaves NEED_CHECK clear with an L2 entry
// past the end of the file. Under prefix (writes kept in order) the same
// recording passes, so the finding needs a reordering model.
func TestFindingNeedCheckNotDurable(t *testing.T) {
	tool := qemutool.Require(t)
	w, err := workload.Parse(strings.NewReader(needCheckRepro))
	if err != nil {
		t.Fatal(err)
	}
	rec, err := Record(tool, w, t.TempDir(), EndClose)
	if err != nil {
		t.Fatal(err)
	}
	// Which models expose it: every model that can drop the header
	// write while keeping the later L2 write of the same epoch.
	for _, m := range oracle.DefaultModels() {
		res, err := CheckCrashes(rec, CrashOptions{Models: []crashsim.Model{m}, SkipQED: true})
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, f := range res.Failures {
			found = found || Signature(f) == KnownNeedCheck
		}
		want := m.Base != crashsim.Prefix && m.Base != crashsim.Drop
		if found != want || res.States == 0 {
			t.Errorf("model %s: found=%v, want %v (%d states)", m, found, want, res.States)
		}
	}
	prefix, err := CheckCrashes(rec, CrashOptions{Tool: tool, Reference: qedtarget.Target{}, QEMUBudget: 4, Models: []crashsim.Model{{Base: crashsim.Prefix}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(prefix.Failures) != 0 || prefix.States == 0 || prefix.QEMUChecked == 0 {
		t.Fatalf("prefix: want states checked and no failure, got %+v", prefix)
	}
	subset, err := CheckCrashes(rec, CrashOptions{Tool: tool, QEMUBudget: -1, SkipQED: true, Models: []crashsim.Model{{Base: crashsim.Subset}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("subset: %d states, %d distinct, %d through QEMU", subset.States, subset.Distinct, subset.QEMUChecked)
	var found, qemuKeeps bool
	for _, f := range subset.Failures {
		t.Logf("%s", f)
		if f.Side == SideRaw && f.Stage == string(oracle.StageStructureBefore) {
			rep := props.CheckStructure(f.Image)
			found = found || rep.Has(props.ViolNeedCheckClearButInconsistent)
		}
		// QEMU's own writable open does not check (NEED_CHECK is clear),
		// so the dangling entry survives recovery.
		qemuKeeps = qemuKeeps || f.Side == SideQEMU && f.Stage == string(oracle.StageStructureAfter)
	}
	if !found || !qemuKeeps {
		t.Fatalf("subset: want the NEED_CHECK-clear-but-inconsistent state, and QEMU's recovery keeping it; failures %v", subset.Failures)
	}
}

// TestFindingPartialWriteIntoZeroCluster (finding F2): with a backing
// file, a partial write (data or write-zeroes) into a zero cluster makes
// QEMU fill the rest of the new cluster from the backing file, so bytes
// the guest zeroed read backing data. The differential run names the rule
// and that impl/qed follows it.
func TestFindingPartialWriteIntoZeroCluster(t *testing.T) {
	tool := qemutool.Require(t)
	for _, second := range []string{"write 0x11000 0x1000 id=2", "zero 0x11000 0x1000"} {
		w, err := workload.Parse(strings.NewReader(`qedtorture-workload v1
image cluster_size=65536 table_size=4 size=1048576
backing raw size=1048576 fill=1
zero 0x10000 0x10000
` + second + `
read 0x12000 0x1000
`))
		if err != nil {
			t.Fatal(err)
		}
		res, err := Diff(tool, qedtarget.Target{}, w, t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Differences) != 1 || res.Differences[0].Follows != "impl/qed" || !strings.Contains(res.Differences[0].QEMU, "pattern of write id 1") {
			t.Fatalf("%s: want QEMU reading the backing file's pattern where impl/qed follows the model; got %v", second, res.Differences)
		}
	}
}

// TestFindingConcurrentZeroAssert (finding F3): an unaligned write-zeroes
// that crosses a cluster boundary, in flight together with an allocating
// write, aborts QEMU 7.2 on an assertion in qed_aio_write_alloc.
func TestFindingConcurrentZeroAssert(t *testing.T) {
	tool := qemutool.Require(t)
	w, err := workload.Parse(strings.NewReader(`qedtorture-workload v1
image cluster_size=4096 table_size=16 size=1048576
concurrent 2
  zero 0x400 0x1e00
  write 0x4000 0x200 id=1
`))
	if err != nil {
		t.Fatal(err)
	}
	_, err = Record(tool, w, t.TempDir(), EndClose)
	var re *RunError
	if !errors.As(err, &re) || !errors.Is(err, qemuio.ErrExited) || !strings.Contains(err.Error(), "allocating_acb == NULL") {
		t.Fatalf("want qemu-io to abort on the allocating_acb assertion, got %v", err)
	}
}
