package props

import (
	"github.com/qedtorture/qedtorture/impl/qed"
	"github.com/spf13/afero"
)

// QEDTarget drives impl/qed through the Target interface. Options tune the
// opens it makes (cache size, clock); the zero value uses the defaults with
// the idle NEED_CHECK timer disabled so that runs are deterministic.
type QEDTarget struct {
	Options qed.OpenOptions
}

var _ Target = QEDTarget{}

// Name implements Target.
func (QEDTarget) Name() string { return "impl/qed" }

// Create implements Target.
func (QEDTarget) Create(fs afero.Fs, path string, o CreateOptions) error {
	return qed.Create(fs, path, qed.CreateOptions{
		Size:          uint64(o.Size),
		ClusterSize:   o.ClusterSize,
		TableSize:     o.TableSize,
		BackingFile:   o.BackingFile,
		BackingFormat: o.BackingFormat,
	})
}

// Open implements Target.
func (t QEDTarget) Open(fs afero.Fs, path string, o OpenOptions) (Disk, error) {
	opts := t.Options
	opts.ReadOnly = o.ReadOnly
	if opts.IdleClearDelay == 0 {
		opts.IdleClearDelay = -1
	}
	im, err := qed.Open(fs, path, opts)
	if err != nil {
		return nil, err
	}
	return qedDisk{im}, nil
}

type qedDisk struct{ *qed.Image }

func (d qedDisk) Check(repair bool) (CheckResult, error) {
	r, err := d.Image.Check(repair)
	return CheckResult{
		Corruptions:      r.Corruptions,
		CorruptionsFixed: r.CorruptionsFixed,
		Leaks:            r.Leaks,
		CheckErrors:      r.CheckErrors,
	}, err
}
