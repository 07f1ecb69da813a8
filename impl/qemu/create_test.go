package qemu

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/qedtorture/qedtorture/crashsim"
	"github.com/qedtorture/qedtorture/impl/qed/qedtarget"
	"github.com/qedtorture/qedtorture/internal/campaign"
	"github.com/qedtorture/qedtorture/internal/qemutool"
	"github.com/qedtorture/qedtorture/internal/strace"
	"github.com/qedtorture/qedtorture/props/target"
	"github.com/qedtorture/qedtorture/props/workload"
)

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
	strace.Require(t)
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
	strace.Require(t)
	rep := runCreate(t, tool, f7Script, false, []crashsim.Model{{Base: crashsim.Prefix}})
	t.Logf("prefix: %d creation states (%d absent, %d old), %d states, signatures %v", rep.CreationStates, rep.CreationAbsent, rep.CreationOld, rep.CrashStates, signatures(rep))
	if rep.CreationStates == 0 || rep.CreationAbsent != rep.CreationStates || rep.CreationOld != 0 {
		t.Fatalf("want every creation state with the image absent: %d states, %d absent, %d old", rep.CreationStates, rep.CreationAbsent, rep.CreationOld)
	}
	if got := signatures(rep); len(got) != 1 || got[0] != "raw/structure-before-recovery/"+campaign.ImageMissing {
		t.Fatalf("signatures %v, want only raw/structure-before-recovery/image-missing (qemu-img syncs the directory now? update docs/findings.md F7)", got)
	}
}

// TestRecordCreation: with the creation recorded, the recording's prefix
// holds the qemu-img commands' own operations (the backing file's and the
// image's, over the old image) and the harness's writes (the raw backing
// file, created, synced and its directory synced), never a directory sync
// of QEMU's; replayed on the directory as it was before, it gives the files
// the blklogwrites recording starts from. A prefix that does not is
// refused as a counted skip (ErrCreateMismatch wraps campaign.ErrSkip).
func TestRecordCreation(t *testing.T) {
	tool := qemutool.Require(t)
	st := strace.Require(t)
	w, err := workload.Parse(strings.NewReader("qedtorture-workload v1\nimage cluster_size=65536 table_size=4 size=1048576\n" +
		"backing qed size=1048576 cluster_size=65536 table_size=4 fill=3\nbacking raw size=524288 fill=2\nwrite 0x0 0x1000 id=4\nflush\n"))
	if err != nil {
		t.Fatal(err)
	}
	rec, err := RecordWith(tool, w, t.TempDir(), EndClose, RecordOptions{Create: true, Over: true, Strace: st})
	if err != nil {
		t.Fatal(err)
	}
	cr := rec.Create
	if cr == nil || len(cr.Commands) != 2 || cr.Over == nil {
		t.Fatalf("creation %+v", cr)
	}
	if _, ok := cr.Base["/"+workload.ImageName]; !ok || len(cr.Base) != 1 {
		t.Fatalf("the base holds %d files, want the old image alone", len(cr.Base))
	}
	var qemuWrites, dirSyncs int
	for _, o := range cr.Trace.Ops {
		switch {
		case o.Kind == crashsim.OpDirSync:
			dirSyncs++
		case o.Kind == crashsim.OpWrite && o.Path == "/"+workload.ImageName:
			qemuWrites++
		}
	}
	// One directory sync: the harness's, after the raw backing file.
	if qemuWrites == 0 || dirSyncs != 1 {
		t.Fatalf("prefix: %d writes of the image, %d directory syncs; want some and 1:\n%v", qemuWrites, dirSyncs, cr.Trace.Ops)
	}
	c := &creating{seq: strace.SequenceFrom(cr.Base, strace.Options{})}
	c.seq.Add(cr.Trace.Ops...)
	if _, err := c.finish(rec.Files); err != nil {
		t.Fatalf("the prefix does not replay to the recorded files: %v", err)
	}
	files := map[string][]byte{}
	for n, b := range rec.Files {
		files[n] = b
	}
	files["/"+workload.ImageName] = append([]byte(nil), files["/"+workload.ImageName]...)
	files["/"+workload.ImageName][100] ^= 1
	if _, err := c.finish(files); !errors.Is(err, ErrCreateMismatch) || !errors.Is(err, campaign.ErrSkip) {
		t.Fatalf("a prefix that differs from the files: %v, want ErrCreateMismatch, a campaign.ErrSkip", err)
	}
}

// TestCreateUnderStraceEndsWithContext: when the campaign's context ends
// while a recorded qemu-img runs, the whole process group is killed and
// the creation returns at once. Killing strace alone (exec.CommandContext's
// default) detached the traced program, which kept the output pipe open:
// here a stand-in for qemu-img that sleeps 30 s would hold the recording
// that long (a real qemu-img hung forever).
func TestCreateUnderStraceEndsWithContext(t *testing.T) {
	st := strace.Require(t)
	dir, scratch := t.TempDir(), t.TempDir()
	slow := filepath.Join(scratch, "qemu-img")
	if err := os.WriteFile(slow, []byte("#!/bin/sh\nsleep 30\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	c, err := newCreating((&qemutool.Tool{ImgPath: slow}).WithContext(ctx), st, dir, scratch)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = c.create(filepath.Join(dir, workload.ImageName), target.CreateOptions{Size: 1 << 20, ClusterSize: 65536, TableSize: 4})
	if took := time.Since(start); err == nil || took > 10*time.Second {
		t.Fatalf("create returned %v after %v; want the context's error within seconds", err, took)
	}
	t.Logf("%v", err)
}
