package qemu

import (
	"encoding/binary"
	"path/filepath"
	"testing"

	"github.com/qedtorture/qedtorture/impl/qed"
	"github.com/qedtorture/qedtorture/internal/qemutool"
	"github.com/qedtorture/qedtorture/model"
	"github.com/qedtorture/qedtorture/props/oracle"
	"github.com/qedtorture/qedtorture/props/workload"
	"github.com/spf13/afero"
)

// liveImage returns a clean 1 MiB image (4 KiB clusters) with one cluster
// of pattern 1 at 64 KiB, made by impl/qed, and the model of its contents.
func liveImage(t testing.TB) ([]byte, *model.Disk) {
	t.Helper()
	fs := afero.NewMemMapFs()
	if err := qed.Create(fs, "/i.qed", qed.CreateOptions{Size: 1 << 20, ClusterSize: 4096, TableSize: 4}); err != nil {
		t.Fatal(err)
	}
	im, err := qed.Open(fs, "/i.qed", qed.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	m, err := model.New(1<<20, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := make([]byte, 4096)
	model.Fill(p, 1, 64<<10)
	if _, err := im.WriteAt(p, 64<<10); err != nil {
		t.Fatal(err)
	}
	if err := m.WriteBytes(64<<10, p); err != nil {
		t.Fatal(err)
	}
	m.Flush()
	if err := im.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := afero.ReadFile(fs, "/i.qed")
	if err != nil {
		t.Fatal(err)
	}
	return b, m
}

// TestQEMURecoverLiveness: QEMU's recovery of a sound state passes every
// stage, liveness included (the liveness sector is then in the image);
// an image with a bad L2 entry that NEED_CHECK does not announce (so
// QEMU's open does not repair it) fails once QEMU has written to it and
// closed it; an image QEMU cannot open fails liveness.
func TestQEMURecoverLiveness(t *testing.T) {
	tool := qemutool.Require(t)
	img, m := liveImage(t)

	dir := t.TempDir()
	stage, msg, err := QEMURecover(tool, dir, img, m.Clone())
	if err != nil || stage != "" {
		t.Fatalf("sound image: stage %q (%s), err %v", stage, msg, err)
	}
	im, err := qed.Open(afero.NewOsFs(), filepath.Join(dir, workload.ImageName), qed.OpenOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	got := make([]byte, livenessLen)
	if _, err := im.ReadAt(got, 0); err != nil {
		t.Fatal(err)
	}
	im.Close()
	for i, c := range got {
		if c != livenessPattern {
			t.Fatalf("byte %d after QEMU's liveness write: %#x, want %#x", i, c, livenessPattern)
		}
	}

	// The L2 entry of guest offset 64 KiB points past the end of the file.
	bad := append([]byte(nil), img...)
	h, err := qed.ReadHeader(aferoFile(t, img), "/i.qed")
	if err != nil {
		t.Fatal(err)
	}
	l2 := binary.LittleEndian.Uint64(bad[h.L1TableOffset:])
	binary.LittleEndian.PutUint64(bad[l2+16*8:], uint64(len(bad))+1<<20)
	stage, msg, err = QEMURecover(tool, t.TempDir(), bad, m.Clone())
	if err != nil {
		t.Fatal(err)
	}
	// QEMU reads the bad cluster when converting (an I/O error or
	// zeros), or keeps it past its write and close: either way the state
	// must fail, and never at recovery (NEED_CHECK is clear).
	if stage == "" || stage == string(oracle.StageRecovery) {
		t.Fatalf("image with a bad L2 entry: stage %q (%s)", stage, msg)
	}
	t.Logf("bad L2 entry: %s: %.200s", stage, msg)

	// Liveness alone, on an image QEMU cannot open.
	stage, msg, err = qemuLiveness(tool, filepath.Join(t.TempDir(), "missing.qed"), livenessLen)
	if err != nil || stage != string(oracle.StageLiveness) {
		t.Fatalf("missing image: stage %q (%s), err %v", stage, msg, err)
	}
}

// aferoFile returns an in-memory Fs holding b as /i.qed.
func aferoFile(t testing.TB, b []byte) afero.Fs {
	t.Helper()
	fs := afero.NewMemMapFs()
	if err := afero.WriteFile(fs, "/i.qed", b, 0o644); err != nil {
		t.Fatal(err)
	}
	return fs
}

// TestJudgeRecovery: the judge over a crash state's files passes a sound
// image (its backing file copied beside it) and fails one with a bad L2
// entry that NEED_CHECK does not announce, never at recovery.
func TestJudgeRecovery(t *testing.T) {
	tool := qemutool.Require(t)
	img, m := liveImage(t)
	fs := afero.NewMemMapFs()
	if err := afero.WriteFile(fs, "/s/image.qed", img, 0o644); err != nil {
		t.Fatal(err)
	}
	v, err := JudgeRecovery(tool, fs, "/s", "/s/image.qed", m.Clone())
	if err != nil || !v.OK() {
		t.Fatalf("sound image: %v, err %v", v, err)
	}
	bad := append([]byte(nil), img...)
	h, err := qed.ReadHeader(aferoFile(t, img), "/i.qed")
	if err != nil {
		t.Fatal(err)
	}
	l2 := binary.LittleEndian.Uint64(bad[h.L1TableOffset:])
	binary.LittleEndian.PutUint64(bad[l2+16*8:], uint64(len(bad))+1<<20)
	if err := afero.WriteFile(fs, "/s/image.qed", bad, 0o644); err != nil {
		t.Fatal(err)
	}
	v, err = JudgeRecovery(tool, fs, "/s", "/s/image.qed", m.Clone())
	if err != nil || v.OK() || v.Stage == oracle.StageRecovery {
		t.Fatalf("bad L2 entry: %v, err %v", v, err)
	}
	if _, err := JudgeRecovery(tool, fs, "/s", "/s/missing.qed", m.Clone()); err == nil {
		t.Fatal("a state without its image: want an error")
	}
}
