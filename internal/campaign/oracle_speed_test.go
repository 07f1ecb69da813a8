package campaign

import (
	"testing"

	"github.com/qedtorture/qedtorture/crashsim"
	"github.com/qedtorture/qedtorture/props"
	"github.com/spf13/afero"
	"github.com/stretchr/testify/require"
)

// flipTarget is impl/qed whose reads return one guest byte (at flipAt)
// inverted: a data defect the oracle must report at that offset.
type flipTarget struct {
	props.QEDTarget
	flipAt int64
}

type flipDisk struct {
	props.Disk
	flipAt int64
}

func (t flipTarget) Open(fs afero.Fs, path string, o props.OpenOptions) (props.Disk, error) {
	d, err := t.QEDTarget.Open(fs, path, o)
	if err != nil {
		return nil, err
	}
	return flipDisk{d, t.flipAt}, nil
}

func (d flipDisk) ReadAt(p []byte, off int64) (int, error) {
	n, err := d.Disk.ReadAt(p, off)
	if i := d.flipAt - off; i >= 0 && i < int64(n) {
		p[i] ^= 0xff
	}
	return n, err
}

// TestOracleSpeedupsKeepDataChecks: the oracle's speed-ups (the durable
// contents compared per block against a shared zero block, the model's
// uncertain ranges checked once by Recover from the bytes the data stage
// read, lazily generated candidates) still report a wrong guest byte at
// its offset, at the data stage, inside an uncertain range (a pending
// write), outside one over written data and outside one over zeros, with
// and without the durable contents.
func TestOracleSpeedupsKeepDataChecks(t *testing.T) {
	w := benchWorkload(4096, 64<<10, 6, 2)
	rec, err := Record(props.QEDTarget{}, w, 1, "")
	require.NoError(t, err)
	require.True(t, rec.OpErr == nil, "workload failed: %v", rec.OpErr)
	checked := 0
	for _, k := range rec.PointKs(8) {
		m := rec.ModelAt(k)
		unc := m.Uncertain()
		if len(unc) == 0 {
			continue
		}
		d, err := props.NewDurable(m)
		require.NoError(t, err)
		p, err := rec.Point(k)
		require.NoError(t, err)
		// Offsets: in the middle of the last uncertain range, in the
		// first cluster (written and flushed by the workload, or zero),
		// and in the last cluster (never written: zeros).
		last := unc[len(unc)-1]
		for _, at := range []int64{last.Off + last.Len/2, 100, m.Size() - 1} {
			for id := range p.IDs(crashsim.Model{Base: crashsim.Subset}, crashsim.EnumOptions{Bound: 4, Samples: 2, Seed: 1}) {
				for _, dur := range []*props.Durable{nil, d} {
					st, err := p.State(id)
					require.NoError(t, err)
					v := props.CheckCrashState(flipTarget{flipAt: at}, st, ImagePath, m.Clone(), props.OracleOptions{Durable: dur})
					require.Equal(t, props.StageData, v.Stage, "k=%d %s flip at %#x durable=%v: %v", k, id, at, dur != nil, v)
					require.NotNil(t, v.Mismatch)
					require.Equal(t, at, v.Mismatch.Off, "k=%d %s", k, id)
					checked++
				}
			}
		}
	}
	require.Positive(t, checked)
	t.Logf("%d flipped states judged", checked)
}
