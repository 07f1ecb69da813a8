package qemu

import (
	"strings"
	"testing"

	"github.com/qedtorture/qedtorture/crashsim"
	"github.com/qedtorture/qedtorture/impl/qed/qedtarget"
	"github.com/qedtorture/qedtorture/internal/campaign"
	"github.com/qedtorture/qedtorture/internal/qemutool"
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
	rep = runQEMU(t, tool, head+"rebase-unsafe 100\nread 0x0 0x10000\ncommit\nread 0x0 0x10000\n", campaign.Config{Models: oracle.DefaultModels()})
	if len(rep.Failures) != 0 || rep.CrashStates == 0 {
		t.Fatalf("rebase -u onto a 100-byte name, commit: want no failure, got %+v (%d states)", rep.Failures, rep.CrashStates)
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

// TestAdaptImageCommands: a safe rebase onto a file is dropped (the
// recording cannot resolve its relative name), with what needed the
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
	if got := a.String(); !strings.HasSuffix(got, "size=65536\nrebase none\n") {
		t.Fatalf("adapted:\n%s", got)
	}
	if len(ad) != 4 { // the rebase, commit -> commit -d, then rebase-unsafe and commit
		t.Fatalf("adaptations %v", ad)
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
