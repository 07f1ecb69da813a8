package blackbox

import (
	"bytes"
	"path/filepath"
	"testing"

	"github.com/qedtorture/qedtorture/crashsim"
	"github.com/qedtorture/qedtorture/impl/qed"
	"github.com/qedtorture/qedtorture/internal/qemutool"
	"github.com/qedtorture/qedtorture/internal/strace"
)

// TestQEMUImgCreateOverImage is docs/findings.md F7 recorded by hand (the
// campaign finds it too: impl/qemu's TestDriverFindsF7), asserting QEMU 7.2's
// behaviour today: `qemu-img create -f qed` over an existing image
// truncates it, writes the new header and L1 table and syncs once, all in
// one epoch (recorded with strace). A crash that loses the truncate and the
// L1 write but keeps the 64-byte header leaves the new header over the old
// L1 table: the "new, empty" image reads the old image's data. The crash
// model needed is subset (writes of one epoch reaching the disk out of
// order); prefix and drop never show it. qemu-img also never syncs the
// directory, so under real directory semantics a new image is absent
// after any crash until something else syncs it.
func TestQEMUImgCreateOverImage(t *testing.T) {
	st := strace.Require(t)
	tool := qemutool.Require(t)
	dir := t.TempDir()
	img := filepath.Join(dir, "img.qed")
	// The old image: 2 MiB, 64 KiB of 0xab at guest offset 0.
	if r, err := tool.Img("create", "-q", "-f", "qed", img, "2M"); err != nil || r.ExitCode != 0 {
		t.Fatalf("qemu-img create: %v %+v", err, r)
	}
	if r, err := tool.IOBatch(img, "qed", "write -P 0xab 0 64k"); err != nil || r.ExitCode != 0 {
		t.Fatalf("qemu-io: %v %+v", err, r)
	}
	// The new one over it: 1 MiB, the same cluster and table sizes.
	base, rec, out := record(t, st, dir, []string{tool.ImgPath, "create", "-q", "-f", "qed", "-o", "size=1048576"}, "")
	if err := rec.Verify(base, dir); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, o := range rec.Trace.Ops {
		t.Logf("%s", o)
	}
	if rec.Calls["fsync"] > 0 || hasDirSync(rec.Trace) {
		t.Logf("qemu-img synced a directory: calls %v", rec.Calls)
	}
	start, err := crashsim.NewImage(base)
	if err != nil {
		t.Fatal(err)
	}
	endFS, err := start.Replay(rec.Trace, int64(len(rec.Trace.Ops)), crashsim.Options{})
	if err != nil {
		t.Fatal(err)
	}
	end, err := endFS.Point()
	if err != nil {
		t.Fatal(err)
	}
	run := &crashsim.Run{Start: start, Trace: rec.Trace, End: end}
	found := map[string]string{} // model -> first state with old data under the new header
	for _, m := range []crashsim.Model{{Base: crashsim.Prefix}, {Base: crashsim.Drop}, {Base: crashsim.Subset}} {
		_, err := run.Explore(crashsim.ExploreOptions{Models: []crashsim.Model{m}, AllPoints: true, MaxFailures: -1, Bound: 1 << 12},
			func(s crashsim.State) error {
				if _, ok := found[m.String()]; ok {
					return nil
				}
				im, err := qed.Open(s.FS, "/img.qed", qed.OpenOptions{ReadOnly: true, NoLock: true})
				if err != nil {
					return nil // refused: a crash may destroy the old image
				}
				defer im.Close()
				if im.Size() != 1<<20 {
					return nil // the old image
				}
				b := make([]byte, 64<<10)
				if _, err := im.ReadAt(b, 0); err != nil {
					return nil
				}
				if !bytes.Equal(b, make([]byte, len(b))) {
					found[m.String()] = s.ID.String()
				}
				return nil
			})
		if err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("old data under the new header: %v", found)
	if found["subset"] == "" {
		t.Fatalf("QEMU's create over an image no longer shows the old data in any subset crash state (F7 fixed?): update docs/findings.md")
	}
	if found["prefix"] != "" || found["drop"] != "" {
		t.Fatalf("F7's data form needs a reordering model, but prefix or drop shows it: %v", found)
	}
}

// hasDirSync reports whether t syncs a directory.
func hasDirSync(t *crashsim.Trace) bool {
	for _, o := range t.Ops {
		if o.Kind == crashsim.OpDirSync {
			return true
		}
	}
	return false
}
