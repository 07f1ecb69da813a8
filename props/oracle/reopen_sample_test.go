package oracle_test

import (
	"testing"

	"github.com/qedtorture/qedtorture/impl/qed/qedtarget"
	"github.com/qedtorture/qedtorture/props/oracle"
	"github.com/qedtorture/qedtorture/props/target"
	"github.com/spf13/afero"
	"github.com/stretchr/testify/require"
)

// A pending write of 128 KiB over a backing file, far from the flushed
// data and the liveness sector: lost in the drop state, where the closed
// image maps nothing under it and the recovered model holds the backing
// file's data there (what the format reads).
const lostWriteScript = `qedtorture-workload v1
image cluster_size=4096 table_size=1 size=1048576
backing raw size=1048576 fill=1
write 0x10000 0x1000 id=2
flush
write 0x40000 0x20000 id=3
`

// inPlaceScript: the same pending write over clusters allocated and
// flushed before (an in-place write): kept in the state the run left.
const inPlaceScript = `qedtorture-workload v1
image cluster_size=4096 table_size=1 size=1048576
backing raw size=1048576 fill=1
write 0x40000 0x20000 id=2
flush
write 0x40000 0x20000 id=3
`

// reopenCountTarget is impl/qed whose read-only opens (stage 7's reopen)
// count the guest bytes read in [lo, hi).
type reopenCountTarget struct {
	qedtarget.Target
	lo, hi int64
	n      *int64
}

type reopenCountDisk struct {
	target.Disk
	t reopenCountTarget
}

func (t reopenCountTarget) Open(fs afero.Fs, path string, o target.OpenOptions) (target.Disk, error) {
	d, err := t.Target.Open(fs, path, o)
	if err != nil || !o.ReadOnly {
		return d, err
	}
	return reopenCountDisk{d, t}, nil
}

func (d reopenCountDisk) ReadAt(p []byte, off int64) (int, error) {
	if lo, hi := max(off, d.t.lo), min(off+int64(len(p)), d.t.hi); lo < hi {
		*d.t.n += hi - lo
	}
	return d.Disk.ReadAt(p, off)
}

// TestReopenSamplesProvenChanges: stage 7 no longer reads all of a
// pending write that recovery did not keep where the closed image maps
// nothing (the format proves the backing file's bytes there, which the
// recovered model holds), only a sample of it; a byte the reopen returns
// wrong at either edge of that range is still reported at its offset,
// with and without the durable contents. Where the write was kept (in
// place, over mapped clusters: the model's own data) every byte is read,
// and a wrong one in the middle is reported.
func TestReopenSamplesProvenChanges(t *testing.T) {
	const lo, hi = 0x40000, 0x60000
	for _, dur := range []bool{false, true} {
		opts := func(script string) oracle.Options {
			o := oracle.Options{}
			if dur {
				_, e, _ := oracleCases(t, script)
				var err error
				o.Durable, err = oracle.NewDurable(e.Model)
				require.NoError(t, err)
			}
			return o
		}
		// Lost: read in part only.
		st, e, _ := oracleCases(t, lostWriteScript)
		var n int64
		v := oracle.Judge(reopenCountTarget{lo: lo, hi: hi, n: &n}, st, e.ImagePath(), e.Model.Clone(), opts(lostWriteScript))
		require.True(t, v.OK(), "durable=%v: %v", dur, v)
		require.Positive(t, n, "durable=%v: the lost write's range is not sampled", dur)
		require.LessOrEqual(t, n, int64(3*4096), "durable=%v: stage 7 read %d bytes of the lost write's range", dur, n)
		for _, at := range []int64{lo, lo + 0x1ff, hi - 1, hi - 0x200} {
			st, e, _ := oracleCases(t, lostWriteScript)
			v := oracle.Judge(reopenFlipTarget{flipAt: at}, st, e.ImagePath(), e.Model.Clone(), opts(lostWriteScript))
			require.Equal(t, oracle.StageDataAfterReopen, v.Stage, "lost, flip at %#x, durable=%v: %v", at, dur, v)
			require.Equal(t, at, v.Mismatch.Off, "lost, durable=%v", dur)
		}
		// Kept: read whole.
		_, e, live := oracleCases(t, inPlaceScript)
		n = 0
		v = oracle.Judge(reopenCountTarget{lo: lo, hi: hi, n: &n}, live, e.ImagePath(), e.Model.Clone(), opts(inPlaceScript))
		require.True(t, v.OK(), "durable=%v: %v", dur, v)
		require.Equal(t, int64(hi-lo), n, "durable=%v: the kept write is read whole", dur)
		for _, at := range []int64{lo, lo + 0x10003, hi - 1} {
			_, e, live := oracleCases(t, inPlaceScript)
			v := oracle.Judge(reopenFlipTarget{flipAt: at}, live, e.ImagePath(), e.Model.Clone(), opts(inPlaceScript))
			require.Equal(t, oracle.StageDataAfterReopen, v.Stage, "kept, flip at %#x, durable=%v: %v", at, dur, v)
			require.Equal(t, at, v.Mismatch.Off, "kept, durable=%v", dur)
		}
	}
}

// recoveryFlipTarget is impl/qed whose writable opens (recovery, stage
// 4's reads) return the guest byte at flipAt inverted and count the guest
// bytes read in [lo, hi) (n, when set).
type recoveryFlipTarget struct {
	qedtarget.Target
	flipAt int64
	lo, hi int64
	n      *int64
}

type recoveryFlipDisk struct {
	target.Disk
	t recoveryFlipTarget
}

func (t recoveryFlipTarget) Open(fs afero.Fs, path string, o target.OpenOptions) (target.Disk, error) {
	d, err := t.Target.Open(fs, path, o)
	if err != nil || o.ReadOnly {
		return d, err
	}
	return recoveryFlipDisk{d, t}, nil
}

func (d recoveryFlipDisk) ReadAt(p []byte, off int64) (int, error) {
	n, err := d.Disk.ReadAt(p, off)
	if i := d.t.flipAt - off; i >= 0 && i < int64(n) {
		p[i] ^= 0xff
	}
	if lo, hi := max(off, d.t.lo), min(off+int64(len(p)), d.t.hi); d.t.n != nil && lo < hi {
		*d.t.n += hi - lo
	}
	return n, err
}

// TestDataStageSamplesProvenPending: above FullReadLimit, stage 4 does not
// read all of a pending write's range that the crashed image's map proves
// (the write lost, no cluster mapped under it: the backing file's bytes,
// its durable contents), only a sample; a byte recovery's open returns
// wrong at either edge of it is still reported at its offset, with and
// without the durable contents. The same write kept in place (its clusters
// mapped) is read whole, and a wrong byte in its middle is reported.
func TestDataStageSamplesProvenPending(t *testing.T) {
	const lo, hi = 0x40000, 0x60000
	for _, dur := range []bool{false, true} {
		opts := func(script string) oracle.Options {
			o := oracle.Options{FullReadLimit: 4096}
			if dur {
				_, e, _ := oracleCases(t, script)
				var err error
				o.Durable, err = oracle.NewDurable(e.Model)
				require.NoError(t, err)
			}
			return o
		}
		st, e, _ := oracleCases(t, lostWriteScript)
		var n int64
		v := oracle.Judge(recoveryFlipTarget{flipAt: -1, lo: lo, hi: hi, n: &n}, st, e.ImagePath(), e.Model.Clone(), opts(lostWriteScript))
		require.True(t, v.OK(), "durable=%v: %v", dur, v)
		require.Positive(t, n, "durable=%v: the lost write's range is not sampled", dur)
		require.LessOrEqual(t, n, int64(3*4096), "durable=%v: stage 4 read %d bytes of the lost write's range", dur, n)
		for _, at := range []int64{lo, lo + 0x1ff, hi - 1, hi - 0x200} {
			st, e, _ := oracleCases(t, lostWriteScript)
			v := oracle.Judge(recoveryFlipTarget{flipAt: at}, st, e.ImagePath(), e.Model.Clone(), opts(lostWriteScript))
			require.Equal(t, oracle.StageData, v.Stage, "lost, flip at %#x, durable=%v: %v", at, dur, v)
			require.Equal(t, at, v.Mismatch.Off, "lost, durable=%v", dur)
		}
		_, e, live := oracleCases(t, inPlaceScript)
		n = 0
		v = oracle.Judge(recoveryFlipTarget{flipAt: -1, lo: lo, hi: hi, n: &n}, live, e.ImagePath(), e.Model.Clone(), opts(inPlaceScript))
		require.True(t, v.OK(), "durable=%v: %v", dur, v)
		require.Equal(t, int64(hi-lo), n, "durable=%v: the kept write is read whole", dur)
		for _, at := range []int64{lo, lo + 0x10003, hi - 1} {
			_, e, live := oracleCases(t, inPlaceScript)
			v := oracle.Judge(recoveryFlipTarget{flipAt: at}, live, e.ImagePath(), e.Model.Clone(), opts(inPlaceScript))
			require.Equal(t, oracle.StageData, v.Stage, "kept, flip at %#x, durable=%v: %v", at, dur, v)
			require.Equal(t, at, v.Mismatch.Off, "kept, durable=%v", dur)
		}
	}
}
