package qedtarget

import (
	"github.com/qedtorture/qedtorture/impl/qed"
	"github.com/qedtorture/qedtorture/props/target"
	"github.com/spf13/afero"
)

// Target drives impl/qed through the target.Target interface. Options tune
// the opens it makes (cache size, clock); the zero value uses the defaults
// with the idle NEED_CHECK timer disabled so that runs are deterministic.
type Target struct {
	Options qed.OpenOptions
}

var _ target.Target = Target{}

// Name implements target.Target.
func (Target) Name() string { return "impl/qed" }

// Create implements target.Target.
func (Target) Create(fs afero.Fs, path string, o target.CreateOptions) error {
	return qed.Create(fs, path, qed.CreateOptions{
		Size:          uint64(o.Size),
		ClusterSize:   o.ClusterSize,
		TableSize:     o.TableSize,
		BackingFile:   o.BackingFile,
		BackingFormat: o.BackingFormat,
	})
}

// Open implements target.Target.
func (t Target) Open(fs afero.Fs, path string, o target.OpenOptions) (target.Disk, error) {
	opts := t.Options
	opts.ReadOnly = o.ReadOnly
	if opts.IdleClearDelay == 0 {
		opts.IdleClearDelay = -1
	}
	im, err := qed.Open(fs, path, opts)
	if err != nil {
		return nil, err
	}
	return disk{im}, nil
}

type disk struct{ *qed.Image }

func (d disk) Check(repair bool) (target.CheckResult, error) {
	r, err := d.Image.Check(repair)
	return target.CheckResult{
		Corruptions:      r.Corruptions,
		CorruptionsFixed: r.CorruptionsFixed,
		Leaks:            r.Leaks,
		CheckErrors:      r.CheckErrors,
	}, err
}
