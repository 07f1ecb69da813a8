package qemu

import (
	"strings"
	"testing"

	"github.com/qedtorture/qedtorture/crashsim"
	"github.com/qedtorture/qedtorture/internal/qemutool"
	"github.com/qedtorture/qedtorture/internal/workload"
	"github.com/qedtorture/qedtorture/props"
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
	prefix, err := CheckCrashes(rec, CrashOptions{Tool: tool, QEMUBudget: 4, Models: []crashsim.Model{{Base: crashsim.Prefix}}})
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
		if f.Side == SideRaw && f.Stage == string(props.StageStructureBefore) {
			rep := props.CheckStructure(f.Image)
			found = found || rep.Has(props.ViolNeedCheckClearButInconsistent)
		}
		// QEMU's own writable open does not check (NEED_CHECK is clear),
		// so the dangling entry survives recovery.
		qemuKeeps = qemuKeeps || f.Side == SideQEMU && f.Stage == string(props.StageStructureAfter)
	}
	if !found || !qemuKeeps {
		t.Fatalf("subset: want the NEED_CHECK-clear-but-inconsistent state, and QEMU's recovery keeping it; failures %v", subset.Failures)
	}
}
