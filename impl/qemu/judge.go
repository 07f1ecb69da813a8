package qemu

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"

	"github.com/qedtorture/qedtorture/internal/qemutool"
	"github.com/qedtorture/qedtorture/model"
	"github.com/qedtorture/qedtorture/props/oracle"
	"github.com/spf13/afero"
)

// JudgeRecovery judges one crash state as QEMU recovers it: the files of
// dir in fs (the crashed image, named image, and its backing chain) are
// copied into a scratch directory, where QEMURecover opens the image
// writable in qemu-io, checks the result with the structural checker,
// reads the guest data back with qemu-img convert and judges it against m,
// and tries QEMU's liveness. The verdict's stage is the stage QEMU's
// recovery failed at (none when the state passed); err is for failures of
// the harness (a tool that could not run). m is not changed. This is the
// judge the campaign engine runs, on its budget of states, besides the
// oracle's recovery by impl/qed.
func JudgeRecovery(tool *qemutool.Tool, fs afero.Fs, dir, image string, m *model.Disk) (*oracle.Verdict, error) {
	scratch, remove, err := tempDir("qedtorture-qemu-state-")
	if err != nil {
		return nil, fmt.Errorf("qemu: %w", err)
	}
	defer remove()
	ents, err := afero.ReadDir(fs, dir)
	if err != nil {
		return nil, fmt.Errorf("qemu: crash state: %w", err)
	}
	var img []byte
	for _, e := range ents {
		if !e.Mode().IsRegular() {
			continue
		}
		b, err := afero.ReadFile(fs, path.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("qemu: crash state: %w", err)
		}
		if path.Join(dir, e.Name()) == path.Clean(image) {
			img = b
			continue
		}
		if err := os.WriteFile(filepath.Join(scratch, e.Name()), b, 0o644); err != nil {
			return nil, fmt.Errorf("qemu: %w", err)
		}
	}
	if img == nil {
		return nil, fmt.Errorf("qemu: crash state has no image %s", image)
	}
	stage, msg, err := QEMURecover(tool, scratch, img, m)
	if err != nil {
		return nil, err
	}
	if stage == "" {
		return &oracle.Verdict{}, nil
	}
	return &oracle.Verdict{Stage: oracle.Stage(stage), Err: errors.New(msg)}, nil
}
