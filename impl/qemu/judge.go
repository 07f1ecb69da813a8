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
	"github.com/qedtorture/qedtorture/props/workload"
	"github.com/spf13/afero"
)

// JudgeRecovery judges one crash state as QEMU recovers it: the files of
// dir in fs (the crashed image, named image, and its backing chain) are
// copied into a scratch directory, where QEMURecover opens the image
// writable in qemu-io, checks the result with the structural checker,
// reads the guest data back with qemu-img convert and judges it against m,
// and tries QEMU's liveness. The verdict's stage is the stage QEMU's
// recovery failed at (none when the state passed); err is for failures of
// the harness (a tool that could not run). m is not changed. It starts
// four QEMU processes per state; the campaign's judge (Driver.Judges)
// recovers in a long-lived qemu-io instead (recoverer.recover), which
// TestPooledRecoveryAgrees holds to the same verdicts as this one.
func JudgeRecovery(tool *qemutool.Tool, fs afero.Fs, dir, image string, m *model.Disk) (*oracle.Verdict, error) {
	files, err := stateFiles(fs, dir, image)
	if err != nil {
		return nil, err
	}
	scratch, remove, err := tempDir("qedtorture-qemu-state-")
	if err != nil {
		return nil, fmt.Errorf("qemu: %w", err)
	}
	defer remove()
	for name, b := range files {
		if name == workload.ImageName {
			continue
		}
		if err := os.WriteFile(filepath.Join(scratch, name), b, 0o644); err != nil {
			return nil, fmt.Errorf("qemu: %w", err)
		}
	}
	stage, msg, err := QEMURecover(tool, scratch, files[workload.ImageName], m)
	if err != nil {
		return nil, err
	}
	return verdict(stage, msg), nil
}

// verdict is the verdict of a stage QEMU's recovery failed at ("" for a
// pass) and its explanation.
func verdict(stage, msg string) *oracle.Verdict {
	if stage == "" {
		return &oracle.Verdict{}
	}
	return &oracle.Verdict{Stage: oracle.Stage(stage), Err: errors.New(msg)}
}

// stateFiles reads the regular files of dir in fs (a crash state: the
// image and its backing chain), the image (path image) under
// workload.ImageName, the others under their names.
func stateFiles(fs afero.Fs, dir, image string) (map[string][]byte, error) {
	ents, err := afero.ReadDir(fs, dir)
	if err != nil {
		return nil, fmt.Errorf("qemu: crash state: %w", err)
	}
	files := map[string][]byte{}
	for _, e := range ents {
		if !e.Mode().IsRegular() {
			continue
		}
		b, err := afero.ReadFile(fs, path.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("qemu: crash state: %w", err)
		}
		name := e.Name()
		if path.Join(dir, e.Name()) == path.Clean(image) {
			name = workload.ImageName
		} else if name == workload.ImageName {
			continue // not the image (a state names its image otherwise)
		}
		files[name] = b
	}
	if files[workload.ImageName] == nil {
		return nil, fmt.Errorf("qemu: crash state has no image %s", image)
	}
	return files, nil
}
