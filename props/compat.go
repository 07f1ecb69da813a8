package props

import (
	"github.com/spf13/afero"

	"github.com/qedtorture/qedtorture/props/check"
	"github.com/qedtorture/qedtorture/props/workload"
)

// The last of the names props had before the engine migration moved the
// checker (props/check) and the executor (props/workload) out of it
// (docs/architecture.md, step 12): impl/qemu's tests still use these,
// while step 11c reworks them. They go when those tests name the packages
// themselves. New code uses props/check and props/workload.

// ImageName is workload.ImageName.
const ImageName = workload.ImageName

// ViolNeedCheckClearButInconsistent is check.ViolNeedCheckClearButInconsistent.
const ViolNeedCheckClearButInconsistent = check.ViolNeedCheckClearButInconsistent

// CheckStructure is check.Structure.
func CheckStructure(img []byte) *check.Report { return check.Structure(img) }

// NewExec is workload.NewExec.
func NewExec(t Target, fs afero.Fs, dir string, w *workload.Workload) (*workload.Exec, error) {
	return workload.NewExec(t, fs, dir, w)
}
