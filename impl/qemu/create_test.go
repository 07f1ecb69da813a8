package qemu

import (
	"context"
	"os"
	"sort"
	"strings"
	"testing"

	"github.com/qedtorture/qedtorture/crashsim"
	"github.com/qedtorture/qedtorture/impl/qed/qedtarget"
	"github.com/qedtorture/qedtorture/internal/campaign"
	"github.com/qedtorture/qedtorture/internal/qemutool"
	"github.com/qedtorture/qedtorture/internal/strace"
	"github.com/qedtorture/qedtorture/props/workload"
)

// requireStrace returns strace's path, or skips (fails under CI).
func requireStrace(t *testing.T) string {
	t.Helper()
	p, err := strace.Path()
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI is set and strace is required: %v", err)
		}
		t.Skipf("skipping: %v", err)
	}
	return p
}

// createSeed returns the first campaign seed from 1 whose first workload
// is (over) or is not created over an existing image.
func createSeed(over bool) uint64 {
	for s := uint64(1); ; s++ {
		if campaign.CreateOverChosen(campaign.WorkloadSeed(s, 0)) == over {
			return s
		}
	}
}

// runCreate runs one campaign of script on QEMU with its creation recorded
// (CreateShare 1), over an existing image or not, and returns the report.
func runCreate(t *testing.T, tool *qemutool.Tool, script string, over bool, models []crashsim.Model) *campaign.Report {
	t.Helper()
	w, err := workload.Parse(strings.NewReader(script))
	if err != nil {
		t.Fatal(err)
	}
	rep, err := campaign.Run(context.Background(), campaign.Config{Driver: &Driver{Tool: tool, Ends: []End{EndClose}},
		Reference: qedtarget.Target{}, Workload: w, Iterations: 1, Seed: createSeed(over), Models: models,
		CreateShare: 1, MaxFailures: 10, MinimizeCandidates: -1})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func signatures(rep *campaign.Report) []string {
	var out []string
	for s := range rep.Signatures {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

// f7Script is docs/findings.md F7's workload: any image, created over an
// existing one (the campaign's creation share draws the old image:
// campaign.OverImageFor).
const f7Script = "qedtorture-workload v1\nimage cluster_size=65536 table_size=4 size=1048576\nwrite 0x0 0x1000 id=1\nflush\n"

// TestDriverFindsF7 is docs/findings.md F7 found by the campaign, asserting
// QEMU 7.2's behaviour today: `qemu-img create` over an existing image
// truncates it, writes the new header and the L1 table and syncs once,
// all in one epoch. Under the prefix model a crash keeps the truncate and
// the header without the L1 table (a half-written image: signature
// create/raw/structure-before-recovery/... or create/qemu/creation);
// under subset it may also keep the header alone over the old tables (the
// new image reading the old one's data: create/qemu/data). The drop model
// keeps nothing of the epoch: the old image, intact, and no failure.
func TestDriverFindsF7(t *testing.T) {
	tool := qemutool.Require(t)
	requireStrace(t)
	rep := runCreate(t, tool, f7Script, true, []crashsim.Model{{Base: crashsim.Subset}})
	sigs := signatures(rep)
	t.Logf("subset: %d creation states (%d absent, %d old), signatures %v", rep.CreationStates, rep.CreationAbsent, rep.CreationOld, sigs)
	if rep.CreationStates == 0 || rep.CreationOld == 0 {
		t.Fatalf("no creation state over the old image was judged: %+v", rep)
	}
	if rep.Signatures["create/qemu/data"] == 0 {
		t.Fatalf("QEMU's create over an image no longer shows the old data under the new header in a subset state (F7 fixed?): signatures %v; update docs/findings.md and testdata/known/qemu-7.2.txt", sigs)
	}
	for _, s := range sigs {
		if !strings.HasPrefix(s, "create/") {
			t.Errorf("a failure outside the creation: %s", s)
		}
	}
	rep = runCreate(t, tool, f7Script, true, []crashsim.Model{{Base: crashsim.Drop}})
	if len(rep.Signatures) > 0 || rep.CreationOld == 0 {
		t.Fatalf("drop: want the old image intact and no failure, got signatures %v, %d old", signatures(rep), rep.CreationOld)
	}
}

// TestDriverFreshCreationLosesName is F7's second half, asserting QEMU
// 7.2's behaviour today: a fresh `qemu-img create` never syncs the
// directory, and nothing QEMU does later (blklogwrites' flushes are
// fdatasyncs of the file) makes the name durable. Under real directory
// semantics every crash state, during the creation and after it, has the
// image absent: the creation judge accepts that, and the first crash state
// after it (the guest's data flushed or not) fails with the signature
// raw/structure-before-recovery/image-missing. Any crash model shows it.
func TestDriverFreshCreationLosesName(t *testing.T) {
	tool := qemutool.Require(t)
	requireStrace(t)
	rep := runCreate(t, tool, f7Script, false, []crashsim.Model{{Base: crashsim.Prefix}})
	t.Logf("prefix: %d creation states (%d absent, %d old), %d states, signatures %v", rep.CreationStates, rep.CreationAbsent, rep.CreationOld, rep.CrashStates, signatures(rep))
	if rep.CreationStates == 0 || rep.CreationAbsent != rep.CreationStates || rep.CreationOld != 0 {
		t.Fatalf("want every creation state with the image absent: %d states, %d absent, %d old", rep.CreationStates, rep.CreationAbsent, rep.CreationOld)
	}
	if got := signatures(rep); len(got) != 1 || got[0] != "raw/structure-before-recovery/"+campaign.ImageMissing {
		t.Fatalf("signatures %v, want only raw/structure-before-recovery/image-missing (qemu-img syncs the directory now? update docs/findings.md F7)", got)
	}
}
