package qemu

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/qedtorture/qedtorture/internal/qemuio"
	"github.com/qedtorture/qedtorture/internal/qemutool"
	"github.com/qedtorture/qedtorture/model"
	"github.com/qedtorture/qedtorture/props/oracle"
	"github.com/qedtorture/qedtorture/props/workload"
	"github.com/spf13/afero"
)

// QEMURecover writes img as image.qed into dir (which holds the backing
// files) and recovers it as a guest would: a writable open in qemu-io
// (QEMU checks and repairs only when NEED_CHECK is set) and a clean
// close. The result must be consistent with NEED_CHECK clear (structural
// checker); then the guest data is read back with `qemu-img convert -O
// raw` and judged against m (not modified). Last, liveness, as impl/qed's
// oracle runs it: QEMU writes a sector at offset 0 and closes cleanly (the
// image must again be consistent with NEED_CHECK clear) and a fresh
// read-only qemu-io reads the sector back. It returns the failing stage
// ("" when the state passed) and an explanation; err is for failures of
// the harness itself.
func QEMURecover(tool *qemutool.Tool, dir string, img []byte, m *model.Disk) (stage, msg string, err error) {
	p := filepath.Join(dir, workload.ImageName)
	if err := os.WriteFile(p, img, 0o644); err != nil {
		return "", "", err
	}
	if stage, msg, err := qemuIOStage(tool, oracle.StageRecovery, "writable open", "-f", "qed", "-c", "flush", p); stage != "" || err != nil {
		return stage, msg, err
	}
	if stage, msg, err := cleanAfter(p, "a writable open and close"); stage != "" || err != nil {
		return stage, msg, err
	}
	out := filepath.Join(dir, "readback.raw")
	defer os.Remove(out)
	res, err := tool.RunImg("convert", "-f", "qed", "-O", "raw", p, out)
	if err != nil {
		return "", "", err
	}
	if res.ExitCode != 0 {
		return string(oracle.StageData), fmt.Sprintf("qemu-img convert failed after recovery: %s", bytes.TrimSpace(res.Stderr)), nil
	}
	data, err := os.ReadFile(out)
	if err != nil {
		return "", "", err
	}
	size := int64(len(data))
	if !slices.Contains(m.CrashSizes(), size) {
		return string(oracle.StageSize), fmt.Sprintf("recovered size %#x, model allows %#x", size, m.CrashSizes()), nil
	}
	if err := m.VerifyCrash(0, data); err != nil {
		return string(oracle.StageData), err.Error(), nil
	}
	if size == 0 {
		return "", "", nil // nothing to write
	}
	return qemuLiveness(tool, p, min(size, livenessLen))
}

// livenessLen and livenessPattern are QEMU's liveness write: one sector of
// a byte pattern at offset 0 (qemu-io write -P).
const (
	livenessLen     = 512
	livenessPattern = 0xa5
)

// qemuLiveness writes n bytes of livenessPattern at offset 0 of the
// recovered image at p with a flush and a clean exit of qemu-io, checks
// that the image is consistent with NEED_CHECK clear, and reads the bytes
// back in a new read-only qemu-io.
func qemuLiveness(tool *qemutool.Tool, p string, n int64) (stage, msg string, err error) {
	write := fmt.Sprintf("write -P %#x 0 %d", livenessPattern, n)
	if stage, msg, err := qemuIOStage(tool, oracle.StageLiveness, "write after recovery", "-f", "qed", "-c", write, "-c", "flush", p); stage != "" || err != nil {
		return stage, msg, err
	}
	if stage, msg, err := cleanAfter(p, "recovery, a write and a clean close"); stage != "" || err != nil {
		return stage, msg, err
	}
	read := fmt.Sprintf("read -P %#x 0 %d", livenessPattern, n)
	return qemuIOStage(tool, oracle.StageLiveness, "reading back the write after reopening", "-f", "qed", "-r", "-c", read, p)
}

// qemuIOStage runs qemu-io with args: a non-zero exit or a failed command
// is a failure at stage, explained by what was attempted.
func qemuIOStage(tool *qemutool.Tool, stage oracle.Stage, what string, args ...string) (string, string, error) {
	res, err := tool.RunIO(args...)
	if err != nil {
		return "", "", err
	}
	if res.ExitCode != 0 || qemuio.Failed(string(res.Stdout)+string(res.Stderr)) {
		return string(stage), fmt.Sprintf("%s in qemu-io failed (exit %d): %s", what, res.ExitCode,
			bytes.TrimSpace(append(res.Stdout, res.Stderr...))), nil
	}
	return "", "", nil
}

// cleanAfter requires the image at p to be consistent with NEED_CHECK
// clear after what QEMU just did to it (a structure-after-recovery
// failure otherwise).
func cleanAfter(p, what string) (string, string, error) {
	after, err := checkFile(afero.NewOsFs(), p)
	if err != nil {
		return "", "", err
	}
	if !after.IsConsistent() || after.NeedCheck() {
		return string(oracle.StageStructureAfter), fmt.Sprintf("after %s in qemu-io: consistent=%v need_check=%v\n%s", what, after.IsConsistent(), after.NeedCheck(), after), nil
	}
	return "", "", nil
}
