package qemu

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qedtorture/qedtorture/crashsim"
	"github.com/qedtorture/qedtorture/impl/qed/qedtarget"
	"github.com/qedtorture/qedtorture/internal/campaign"
	"github.com/qedtorture/qedtorture/internal/qemutool"
	"github.com/qedtorture/qedtorture/model"
	"github.com/qedtorture/qedtorture/props/oracle"
	"github.com/qedtorture/qedtorture/props/workload"
	"github.com/spf13/afero"
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

// f1Signature is F1's signature: the raw crashed image has NEED_CHECK
// clear and an L2 entry past the end of the file.
const f1Signature = "raw/structure-before-recovery/data-past-eof+need-check-clear-but-inconsistent"

// runQEMU runs one campaign of the script on QEMU through the one engine
// (qemu.Driver, runs ending with a clean close) and returns its report.
func runQEMU(t *testing.T, tool *qemutool.Tool, script string, cfg campaign.Config) *campaign.Report {
	t.Helper()
	w, err := workload.Parse(strings.NewReader(script))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Driver == nil {
		cfg.Driver = &Driver{Tool: tool, Ends: []End{EndClose}}
	}
	cfg.Reference, cfg.Workload, cfg.Iterations, cfg.Seed = qedtarget.Target{}, w, 1, 1
	if cfg.Bound == 0 {
		cfg.Bound, cfg.Samples = crashsim.DefaultBound, crashsim.DefaultSamples // as many states as crashsim enumerates by default
	}
	if cfg.MinimizeCandidates == 0 {
		cfg.MinimizeCandidates = -1
	}
	rep, err := campaign.Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// TestFindingNeedCheckNotDurable (finding F1): the one engine, driving
// QEMU 7.2, finds that QEMU sets NEED_CHECK without a flush before its
// unordered data/L2 writes: every model that can drop the header write
// while keeping the later L2 write of the same epoch leaves NEED_CHECK
// clear with an L2 entry past the end of the file; prefix and drop (writes
// kept in order) pass, QEMU's own recovery included. QEMU's recovery of
// the failing state trusts NEED_CHECK and keeps the inconsistency.
func TestFindingNeedCheckNotDurable(t *testing.T) {
	tool := qemutool.Require(t)
	out := t.TempDir()
	for _, m := range oracle.DefaultModels() {
		cfg := campaign.Config{Models: []crashsim.Model{m}, Driver: &Driver{Tool: tool, Ends: []End{EndClose}, QEMUStates: 4}}
		want := m.Base != crashsim.Prefix && m.Base != crashsim.Drop
		if want && m.Base == crashsim.Subset && !m.Garbage && !m.Size {
			cfg.Out = out
		}
		rep := runQEMU(t, tool, needCheckRepro, cfg)
		found := len(rep.Failures) == 1 && rep.Failures[0].Signature == f1Signature
		if found != want || rep.CrashStates == 0 {
			t.Errorf("model %s: found=%v, want %v (%d states; failures %+v)", m, found, want, rep.CrashStates, rep.Failures)
		}
		if !want && rep.Judged["qemu"] == 0 {
			t.Errorf("model %s: no state judged by QEMU's recovery (%v)", m, rep.Judged)
		}
	}
	arts, _ := filepath.Glob(filepath.Join(out, "*"))
	if len(arts) != 1 {
		t.Fatalf("subset: artifacts %v", arts)
	}
	// QEMU's own writable open does not check (NEED_CHECK is clear), so
	// the dangling entry survives its recovery.
	fs := afero.NewMemMapFs()
	ents, err := os.ReadDir(filepath.Join(arts[0], "image"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(arts[0], "image", e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := afero.WriteFile(fs, "/s/"+e.Name(), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	m, err := model.New(1<<20, nil)
	if err != nil {
		t.Fatal(err)
	}
	v, err := JudgeRecovery(tool, fs, "/s", "/s/"+workload.ImageName, m)
	if err != nil || v.Stage != oracle.StageStructureAfter {
		t.Fatalf("QEMU's recovery of F1's state: want a structure-after-recovery failure, got %v (err %v)", v, err)
	}
}

// TestFindingPartialWriteIntoZeroCluster (finding F2): with a backing
// file, a partial write (data or write-zeroes) into a zero cluster makes
// QEMU fill the rest of the new cluster from the backing file, so bytes
// the guest zeroed read backing data. The differential run against
// impl/qed (--diff) catches it and names QEMU as the side deviating.
func TestFindingPartialWriteIntoZeroCluster(t *testing.T) {
	tool := qemutool.Require(t)
	for _, second := range []string{"write 0x11000 0x1000 id=2", "zero 0x11000 0x1000"} {
		rep := runQEMU(t, tool, `qedtorture-workload v1
image cluster_size=65536 table_size=4 size=1048576
backing raw size=1048576 fill=1
zero 0x10000 0x10000
`+second+`
read 0x12000 0x1000
`, campaign.Config{Diff: campaign.InProcess(qedtarget.Target{}), Models: []crashsim.Model{{Base: crashsim.Prefix}}})
		if len(rep.Failures) != 1 || rep.Failures[0].Signature != "diff/run/target" || !strings.Contains(rep.Failures[0].Message, "pattern of write id 1") {
			t.Fatalf("%s: want QEMU reading the backing file's pattern where impl/qed follows the model; got %+v", second, rep.Failures)
		}
	}
}

// TestFindingConcurrentZeroAssert (finding F3): an unaligned write-zeroes
// that crosses a cluster boundary, in flight together with an allocating
// write, aborts QEMU 7.2 on an assertion in qed_aio_write_alloc: the
// engine reports the crash-free run's failure. The abort needs both
// requests in flight at once, which a loaded machine (CI under -race)
// does not always give qemu-io: the run is tried up to ten times, and
// a run that passes is only the race not hit (any other failure fails).
func TestFindingConcurrentZeroAssert(t *testing.T) {
	tool := qemutool.Require(t)
	for try := 1; ; try++ {
		rep := runQEMU(t, tool, `qedtorture-workload v1
image cluster_size=4096 table_size=16 size=1048576
concurrent 2
  zero 0x400 0x1e00
  write 0x4000 0x200 id=1
`, campaign.Config{Models: []crashsim.Model{{Base: crashsim.Prefix}}})
		if len(rep.Failures) == 1 && rep.Failures[0].Signature == "qemu/workload" && strings.Contains(rep.Failures[0].Message, "allocating_acb == NULL") {
			t.Logf("qemu-io aborted on try %d", try)
			return
		}
		if len(rep.Failures) != 0 || try == 10 {
			t.Fatalf("want qemu-io to abort on the allocating_acb assertion (try %d), got %+v", try, rep.Failures)
		}
	}
}

// growAfterRebaseNoneRepro is the minimized reproducer of finding F10 in
// docs/findings.md: an image whose size ends inside a cluster, over a
// longer backing file, rebased onto no backing file (the safe rebase),
// then grown.
const growAfterRebaseNoneRepro = `qedtorture-workload v1
image cluster_size=8192 table_size=1 size=46080
backing raw size=75264 fill=1
rebase none
resize 0xcc00
read 0xb400 0x1800
`

// TestFindingGrowAfterRebaseNone (finding F10): QEMU 7.2's safe rebase
// copies the partial last cluster in with an allocating write whose
// copy-on-write fills the cluster's tail past the image size from the
// longer backing file; the grow (no backing file left, so QEMU allows it)
// does not zero that tail, and the crash-free run reads the old backing
// file's bytes where the grown space must read zeros. impl/qed passes the
// same workload (TestResizeAfterRebaseNoneReadsZeros).
func TestFindingGrowAfterRebaseNone(t *testing.T) {
	tool := qemutool.Require(t)
	rep := runQEMU(t, tool, growAfterRebaseNoneRepro, campaign.Config{Models: []crashsim.Model{{Base: crashsim.Prefix}}})
	if len(rep.Failures) != 1 || rep.Failures[0].Signature != "qemu/workload/data/backing-for-zeros" || !strings.Contains(rep.Failures[0].Message, "bad data at 0xb400") {
		t.Fatalf("want QEMU reading the old backing file's bytes at 0xb400 in the crash-free run; got %+v", rep.Failures)
	}
}
