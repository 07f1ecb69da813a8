package interop

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/qedtorture/qedtorture/crashsim"
	"github.com/qedtorture/qedtorture/impl/qed"
)

// TestDeviationRebaseTornName records `qemu-img rebase -u` changing a
// backing name of 605 bytes into one of 705 through QEMU's blklogwrites
// driver and judges the crash states of its log (docs/findings.md, Q6):
// QEMU writes the header fields and the new name in one request from
// offset 0, so a write torn at a sector boundary leaves the new fields
// with a name that is neither the old nor the new one. Rule
// (docs/format.md, "Changing the backing file, committing, resizing"): a
// crash leaves the old name or the new one, whole. impl/qed's SetBacking
// writes the name out of place first (TestCrashSetBacking: no such state).
// This test asserts QEMU's current behaviour: when a release fixes it, it
// fails and should be flipped.
func TestDeviationRebaseTornName(t *testing.T) {
	r := newRig(t)
	oldName := strings.Repeat("./", 300) + "a.raw"
	newName := strings.Repeat("./", 350) + "b.raw"
	for _, f := range []string{"a.raw", "b.raw"} {
		if err := os.WriteFile(r.path(f), make([]byte, 1<<20), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	img := r.path("top.qed")
	r.img("create", "-q", "-f", "qed", "-b", oldName, "-F", "raw", img, "1M")
	snap, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	log := r.path("rebase.log")
	if err := os.WriteFile(log, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	r.img("rebase", "-u", "-b", newName, "-F", "raw", "--image-opts",
		"driver=qed,file.driver=blklogwrites,file.file.filename="+img+",file.log.filename="+log)
	if h, err := qed.ReadHeader(r.osfs, img); err != nil || h.BackingFilename != newName {
		t.Fatalf("after qemu-img rebase -u: %.40q, %v", h.BackingFilename, err)
	}
	logBytes, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	trace, err := crashsim.ReadDMLog(bytes.NewReader(logBytes), int64(len(logBytes)), "/top.qed")
	if err != nil {
		t.Fatal(err)
	}
	start, err := crashsim.NewImage(map[string][]byte{"/top.qed": snap})
	if err != nil {
		t.Fatal(err)
	}
	endFS, err := start.Replay(trace, int64(len(trace.Ops)), crashsim.Options{})
	if err != nil {
		t.Fatal(err)
	}
	end, err := endFS.Point()
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := end.Durable().ReadFile("/top.qed"); !bytes.Equal(got, mustRead(t, img)) {
		t.Fatal("the replayed log does not end at QEMU's file")
	}
	run := &crashsim.Run{Start: start, Trace: trace, End: end, Syncs: map[int64]*crashsim.Point{}}
	o := crashsim.ExploreOptions{AllPoints: true, MaxFailures: -1,
		Models: []crashsim.Model{{Base: crashsim.Torn, Sector: 512, Size: true}}}
	rep, err := run.Explore(o, func(s crashsim.State) error {
		h, err := qed.ReadHeader(s.FS, "/top.qed")
		if err != nil {
			return err
		}
		if h.BackingFilename != oldName && h.BackingFilename != newName {
			return fmt.Errorf("backing name of %d bytes is neither the old (%d) nor the new (%d) one", len(h.BackingFilename), len(oldName), len(newName))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, op := range trace.Ops {
		t.Logf("  %v", op)
	}
	t.Logf("QEMU's log: %d operations, %d crash points, %d states, %d with a mixed name", len(trace.Ops), rep.Points, rep.States, len(rep.Failures))
	if len(rep.Failures) == 0 {
		t.Errorf("no crash state of qemu-img rebase -u mixes the names: Q6 is fixed, flip this test")
	}
	for _, f := range rep.Failures[:min(2, len(rep.Failures))] {
		t.Logf("  %v", f)
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
