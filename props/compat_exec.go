package props

import (
	"github.com/spf13/afero"

	"github.com/qedtorture/qedtorture/props/workload"
)

// Step 5 of the engine migration (docs/architecture.md) moved the executor
// to props/workload (workload.Exec). These aliases and forwarders keep
// props' names working for existing callers and other modules; step 12
// removes all but the door's public ones. New code uses props/workload.

// The executor's types, under their props names.
type (
	Exec    = workload.Exec
	OpError = workload.OpError
)

// ImageName is workload.ImageName.
const ImageName = workload.ImageName

// ErrDataMismatch is workload.ErrDataMismatch.
var ErrDataMismatch = workload.ErrDataMismatch

// BackingName is workload.BackingName.
func BackingName(i int, format string) string { return workload.BackingName(i, format) }

// NewExec is workload.NewExec.
func NewExec(t Target, fs afero.Fs, dir string, w *workload.Workload) (*Exec, error) {
	return workload.NewExec(t, fs, dir, w)
}

// BuildBacking is workload.BuildBacking.
//
// A variable holding the function: its result is a model type, and props
// imports only props/... packages (internal/archtest, step 6).
var BuildBacking = workload.BuildBacking
