package qemu

import (
	"strings"
	"testing"

	"github.com/qedtorture/qedtorture/crashsim"
	"github.com/qedtorture/qedtorture/impl/qed/qedtarget"
	"github.com/qedtorture/qedtorture/internal/campaign"
	"github.com/qedtorture/qedtorture/internal/qemutool"
	"github.com/qedtorture/qedtorture/internal/strace"
	"github.com/qedtorture/qedtorture/props/oracle"
	"github.com/qedtorture/qedtorture/props/workload"
)

// The image commands (rebase-unsafe, rebase, commit) as workload ops run
// by the one engine on QEMU: qemu-img through blklogwrites
// (--image-opts), appending to the recording's log.

// TestImageCommandsTornBackingName (findings Q6 through the engine):
// `qemu-img rebase -u` writes the header fields and a 700-byte name in
// one request from offset 0: the torn-512 model leaves the new fields
// with a name part new, part old, which the oracle's backing-name stage
// rejects. A name that fits in sector 0 with the fields is written
// atomically: no failure.
func TestImageCommandsTornBackingName(t *testing.T) {
	tool := qemutool.Require(t)
	const head = "qedtorture-workload v1\nimage cluster_size=4096 table_size=2 size=65536\nbacking raw size=49152 fill=1\nwrite 0x1000 0x200 id=2\n"
	torn := []crashsim.Model{{Base: crashsim.Torn, Sector: 512}}
	rep := runQEMU(t, tool, head+"rebase-unsafe 700\nread 0x0 0x10000\n", campaign.Config{Models: torn})
	if len(rep.Failures) != 1 || rep.Failures[0].Signature != "impl/qed/"+string(oracle.StageBackingName) {
		t.Fatalf("rebase -u onto a 700-byte name: want one %s failure, got %+v", oracle.StageBackingName, rep.Failures)
	}
	// The commit into the shorter raw copy: F9 (the base's size in
	// between) once strace records the base's writes, nothing else.
	rep = runQEMU(t, tool, head+"rebase-unsafe 100\nread 0x0 0x10000\ncommit\nread 0x0 0x10000\n", campaign.Config{Models: oracle.DefaultModels(), MaxFailures: 5})
	for _, f := range rep.Failures {
		if f.Signature != "impl/qed/commit-base/size" || !straceFound() {
			t.Errorf("rebase -u onto a 100-byte name, commit: want no failure but F9's, got %+v", f)
		}
	}
	if rep.CrashStates == 0 || (straceFound() && len(rep.Failures) != 1) {
		t.Fatalf("want F9 once the base is recorded: %d states, failures %+v", rep.CrashStates, rep.Failures)
	}
	if rep.Adaptations[string(QuirkCommitKeepsImage)] != 1 {
		t.Errorf("adaptations %v: want the commit run as commit -d", rep.Adaptations)
	}
}

// TestImageCommandsRebaseHeaderNotOrdered (findings F8): qemu-img's safe
// rebase onto nothing copies the backing file's data into the image and
// then rewrites the header without a flush between the last L1 update
// and the header: a crash can keep the header (no backing file) and lose
// the L1 entry, and the guest reads zeros where the backing file's data
// was. impl/qed passes the same workload.
func TestImageCommandsRebaseHeaderNotOrdered(t *testing.T) {
	tool := qemutool.Require(t)
	const script = "qedtorture-workload v1\nimage cluster_size=4096 table_size=2 size=65536\nbacking raw size=49152 fill=1\nrebase none\n"
	subset := []crashsim.Model{{Base: crashsim.Subset}}
	rep := runQEMU(t, tool, script, campaign.Config{Models: subset})
	if len(rep.Failures) != 1 || rep.Failures[0].Stage != string(oracle.StageData) {
		t.Fatalf("QEMU: want one data failure, got %+v", rep.Failures)
	}
	rep = runQEMU(t, tool, script, campaign.Config{Models: subset, Driver: campaign.InProcess(qedtarget.Target{})})
	if len(rep.Failures) != 0 || rep.CrashStates == 0 {
		t.Fatalf("impl/qed: want no failure, got %+v (%d states)", rep.Failures, rep.CrashStates)
	}
}

// TestAdaptImageCommands: a safe rebase onto a file is kept when strace
// records it (traced.go), else dropped (the recording through
// blklogwrites cannot resolve its relative name) with what needed the
// backing file it gave; commit runs as commit -d.
func TestAdaptImageCommands(t *testing.T) {
	w, err := workload.Parse(strings.NewReader("qedtorture-workload v1\nimage cluster_size=4096 table_size=2 size=65536\nrebase 0x0 0x1000 id=1\nrebase-unsafe 100\ncommit\nrebase none\n"))
	if err != nil {
		t.Fatal(err)
	}
	a, ad := Adapt(w)
	if err := a.Validate(); err != nil {
		t.Fatal(err)
	}
	if straceFound() { // the safe rebase is recorded by its system calls (traced.go)
		if got := a.String(); !strings.HasSuffix(got, "size=65536\nrebase 0x0 0x1000 id=1\nrebase-unsafe 100\ncommit -d\nrebase none\n") || len(ad) != 1 {
			t.Fatalf("adapted:\n%s%v", got, ad)
		}
	} else {
		if got := a.String(); !strings.HasSuffix(got, "size=65536\nrebase none\n") {
			t.Fatalf("adapted:\n%s", got)
		}
		if len(ad) != 4 { // the rebase, commit -> commit -d, then rebase-unsafe and commit
			t.Fatalf("adaptations %v", ad)
		}
	}
	w, _ = workload.Parse(strings.NewReader("qedtorture-workload v1\nimage cluster_size=4096 table_size=2 size=65536\nbacking raw size=4096 fill=1\ncommit\n"))
	a, ad = Adapt(w)
	if a.Ops[0].String() != "commit -d" || len(ad) != 1 || ad[0].Quirk != QuirkCommitKeepsImage {
		t.Fatalf("adapted %v, %v", a.Ops, ad)
	}
	// A QED base shorter than the image over a longer backing file of its
	// own cannot grow (Q2): a commit into it is dropped; once a rebase -u
	// put a raw copy in its place, the commit runs.
	const chain = "qedtorture-workload v1\nimage cluster_size=4096 table_size=2 size=65536\nbacking qed size=8192 cluster_size=4096 table_size=2 fill=2\nbacking raw size=32768 fill=1\n"
	for _, c := range []struct {
		ops     string
		kept    int
		dropped bool
	}{{"commit -d\n", 0, true}, {"rebase-unsafe 100\ncommit -d\n", 2, false}} {
		w, err = workload.Parse(strings.NewReader(chain + c.ops))
		if err != nil {
			t.Fatal(err)
		}
		a, ad = Adapt(w)
		if len(a.Ops) != c.kept || (len(ad) == 1 && ad[0].Quirk == QuirkGrowOverLongerBacking) != c.dropped || len(ad) > 1 {
			t.Fatalf("%q adapted:\n%s%v", c.ops, a, ad)
		}
	}
}

// TestImageCommandsTraced: the image commands blklogwrites cannot record
// run on the plain files under strace (traced.go), and their system
// calls are in the recording where the log stood: a safe rebase onto a
// file (its copies and its header rewrite, in the image), and a commit's
// writes into the base file, which a crash state built from the
// recording now holds in part. The replayed recording gives the files
// QEMU left, the base included (Record checks it).
func TestImageCommandsTraced(t *testing.T) {
	tool := qemutool.Require(t)
	strace.Require(t) // without it the safe rebase is dropped and the commit's base unrecorded
	w, err := workload.Parse(strings.NewReader("qedtorture-workload v1\nimage cluster_size=4096 table_size=2 size=65536\nbacking raw size=49152 fill=1\n" +
		"write 0x1000 0x2000 id=2\nrebase 0x4000 0x3000 id=3\nwrite 0x9000 0x1000 id=4\ncommit -d\nread 0x0 0x10000\n"))
	if err != nil {
		t.Fatal(err)
	}
	rec, err := Record(tool, w, t.TempDir(), EndClose)
	if err != nil {
		t.Fatal(err)
	}
	if len(rec.Adaptations) != 0 {
		t.Fatalf("adaptations %v: the safe rebase must run", rec.Adaptations)
	}
	start := func(op int) int64 { // the trace index where op's command ran (its last phase)
		s := int64(-1)
		for _, ph := range rec.Phases {
			if ph.Op == op {
				s = ph.Start
			}
		}
		return s
	}
	end := func(op int) int64 {
		for _, ph := range rec.Phases {
			if ph.Op > op {
				return ph.Start
			}
		}
		return int64(len(rec.Trace.Ops))
	}
	writes := func(from, to int64, path string) (n int, header bool) {
		for _, o := range rec.Trace.Ops[from:to] {
			if o.Kind == crashsim.OpWrite && o.Path == path {
				n++
				header = header || o.Off == 0
			}
		}
		return n, header
	}
	if n, header := writes(start(1), end(1), imageInTree); n < 2 || !header {
		t.Errorf("rebase onto alt1.raw: %d writes to the image in its phase (header rewritten: %v), want its copies and the header", n, header)
	}
	if n, _ := writes(start(3), end(3), "/backing0.raw"); n != 0 {
		t.Errorf("commit wrote %d times to backing0.raw, which is no longer the backing file", n)
	}
	if n, _ := writes(start(3), end(3), "/alt1.raw"); n == 0 {
		t.Errorf("commit: no write to the base alt1.raw in its phase; trace:\n%v", rec.Trace.Ops[start(3):end(3)])
	}
	// A crash state in the middle of the commit holds part of the base's
	// writes: the campaign judges it (stage commit-base) like impl/qed's.
	rep := runQEMU(t, tool, w.String(), campaign.Config{Models: oracle.DefaultModels(), Driver: &Driver{Tool: tool, Ends: []End{EndClose}, QEMUStates: 4}})
	if rep.CrashStates == 0 || rep.Adaptations[string(HarnessRebaseRelativeName)] != 0 {
		t.Fatalf("campaign: %d states, adaptations %v", rep.CrashStates, rep.Adaptations)
	}
	for _, f := range rep.Failures {
		t.Logf("failure (QEMU's, to be known or a finding): %s at %s: %s", f.Signature, f.State, f.Message)
	}
}

// TestCommitBaseF1: with the commit's base recorded (traced.go), QEMU's
// F1 shows in a QED base too: the commit's writes into the base set
// NEED_CHECK without a flush before the unordered table update, and a
// subset state leaves the base clean-marked over an entry past its end
// (found by `qedtorture qemu --seed 2030`, workload 28, minimized to
// these two ops). The signature names the checker's kinds, as the
// image's structure stages do; testdata/known lists it under F1.
func TestCommitBaseF1(t *testing.T) {
	tool := qemutool.Require(t)
	strace.Require(t) // without it the commit's base is not recorded
	rep := runQEMU(t, tool, "qedtorture-workload v1\nimage cluster_size=4096 table_size=2 size=114688\nbacking qed size=2560 cluster_size=4096 table_size=2 fill=1\nwrite 0x215e 0x9f id=3\ncommit -d\n",
		campaign.Config{Models: []crashsim.Model{{Base: crashsim.Subset}}})
	const sig = "impl/qed/commit-base/data-past-eof+need-check-clear-but-inconsistent"
	if len(rep.Failures) != 1 || rep.Failures[0].Signature != sig {
		t.Fatalf("want one %s failure, got %+v", sig, rep.Failures)
	}
}
