package oracle_test

import (
	"strings"
	"testing"

	"github.com/qedtorture/qedtorture/crashsim"
	"github.com/qedtorture/qedtorture/impl/qed/qedtarget"
	"github.com/qedtorture/qedtorture/props/oracle"
	"github.com/qedtorture/qedtorture/props/target"
	"github.com/qedtorture/qedtorture/props/workload"
	"github.com/spf13/afero"
	"github.com/stretchr/testify/require"
)

// oracleCase runs a script on impl/qed over crashsim and returns the
// "drop" crash state at its end (the pending writes lost) and the model.
func oracleCase(t *testing.T, script string) (afero.Fs, *workload.Exec) {
	t.Helper()
	st, e, _ := oracleCases(t, script)
	return st, e
}

// oracleCases is oracleCase, also returning the filesystem as the run left
// it (every pending write kept).
func oracleCases(t *testing.T, script string) (afero.Fs, *workload.Exec, afero.Fs) {
	t.Helper()
	w, err := workload.Parse(strings.NewReader(script))
	require.NoError(t, err)
	base := crashsim.New(crashsim.Options{ImplicitDirSync: true, DiscardTrace: true})
	e, err := workload.NewExec(qedtarget.Target{}, base, "/w", w)
	require.NoError(t, err)
	require.NoError(t, e.RunAll())
	p, err := base.Point()
	require.NoError(t, err)
	st, err := p.State(crashsim.StateID{K: p.K(), Model: crashsim.Model{Base: crashsim.Drop}})
	require.NoError(t, err)
	return st, e, base
}

// The workload of these tests: flushed data at 0x10000 (a cluster far from
// the pending write at 0x20000 and from the liveness sector at 0), on an
// image of 1 MiB.
const oracleScript = `qedtorture-workload v1
image cluster_size=4096 table_size=1 size=1048576
write 0x10000 0x1000 id=1
flush
write 0x20000 0x200 id=2
`

// closeDamageTarget is impl/qed whose writable close then zeroes the
// guest cluster at 0x10000 (flushed data): a close after recovery that
// damages data.
type closeDamageTarget struct{ qedtarget.Target }

type closeDamageDisk struct {
	target.Disk
	fs   afero.Fs
	path string
}

func (t closeDamageTarget) Open(fs afero.Fs, path string, o target.OpenOptions) (target.Disk, error) {
	d, err := t.Target.Open(fs, path, o)
	if err != nil || o.ReadOnly {
		return d, err
	}
	return closeDamageDisk{d, fs, path}, nil
}

func (d closeDamageDisk) Close() error {
	if err := d.Disk.Close(); err != nil {
		return err
	}
	x, err := qedtarget.Target{}.Open(d.fs, d.path, target.OpenOptions{})
	if err != nil {
		return err
	}
	if err := x.WriteZeroes(0x10000, 0x1000); err != nil {
		return err
	}
	return x.Close()
}

// TestOracleRereadsAfterReopen: flushed data damaged by the close after
// recovery fails at data-after-reopen; the same state on impl/qed passes.
func TestOracleRereadsAfterReopen(t *testing.T) {
	st, e := oracleCase(t, oracleScript)
	v := oracle.Judge(qedtarget.Target{}, st, e.ImagePath(), e.Model.Clone(), oracle.Options{})
	require.True(t, v.OK(), "%v", v)
	for _, dur := range []bool{false, true} {
		st, e := oracleCase(t, oracleScript)
		o := oracle.Options{}
		if dur {
			var err error
			o.Durable, err = oracle.NewDurable(e.Model)
			require.NoError(t, err)
		}
		v := oracle.Judge(closeDamageTarget{}, st, e.ImagePath(), e.Model.Clone(), o)
		require.Equal(t, oracle.StageDataAfterReopen, v.Stage, "durable=%v: %v", dur, v)
		require.NotNil(t, v.Mismatch)
		require.Equal(t, int64(0x10000), v.Mismatch.Off)
	}
}

// lostMappingTarget is impl/qed whose writable open reads the guest
// cluster at 0x10000 as zeros (as if recovery lost its mapping).
type lostMappingTarget struct{ qedtarget.Target }

type lostMappingDisk struct{ target.Disk }

func (t lostMappingTarget) Open(fs afero.Fs, path string, o target.OpenOptions) (target.Disk, error) {
	d, err := t.Target.Open(fs, path, o)
	if err != nil || o.ReadOnly {
		return d, err
	}
	return lostMappingDisk{d}, nil
}

func (d lostMappingDisk) ReadAt(p []byte, off int64) (int, error) {
	n, err := d.Disk.ReadAt(p, off)
	for i := range p[:n] {
		if pos := off + int64(i); pos >= 0x10000 && pos < 0x11000 {
			p[i] = 0
		}
	}
	return n, err
}

// TestOracleBigImageReadsFlushedData: above FullReadLimit the flushed data
// far from every pending write is still read back (a lost mapping fails
// at data), and impl/qed passes.
func TestOracleBigImageReadsFlushedData(t *testing.T) {
	for _, dur := range []bool{false, true} {
		o := oracle.Options{FullReadLimit: 4096}
		st, e := oracleCase(t, oracleScript)
		if dur {
			var err error
			o.Durable, err = oracle.NewDurable(e.Model)
			require.NoError(t, err)
		}
		v := oracle.Judge(qedtarget.Target{}, st, e.ImagePath(), e.Model.Clone(), o)
		require.True(t, v.OK(), "%v", v)
		st, e = oracleCase(t, oracleScript)
		v = oracle.Judge(lostMappingTarget{}, st, e.ImagePath(), e.Model.Clone(), o)
		require.Equal(t, oracle.StageData, v.Stage, "durable=%v: %v", dur, v)
		require.Equal(t, int64(0x10000), v.Mismatch.Off)
	}
}

// TestOracleEmptyImageMessage: a crashed image of 0 bytes (its creation
// never made durable) fails before recovery with a message that says it is
// not a QED image, not that NEED_CHECK is clear over an inconsistent one.
func TestOracleEmptyImageMessage(t *testing.T) {
	st, e := oracleCase(t, oracleScript)
	require.NoError(t, afero.WriteFile(st, e.ImagePath(), nil, 0o644))
	v := oracle.Judge(qedtarget.Target{}, st, e.ImagePath(), e.Model.Clone(), oracle.Options{})
	require.Equal(t, oracle.StageStructureBefore, v.Stage, "%v", v)
	require.ErrorContains(t, v.Err, "not a QED image: file of 0 bytes")
	require.NotContains(t, v.Err.Error(), "NEED_CHECK is clear")
}

// reopenFlipTarget is impl/qed whose read-only opens (stage 7's reopen)
// return the guest byte at flipAt inverted.
type reopenFlipTarget struct {
	qedtarget.Target
	flipAt int64
}

type reopenFlipDisk struct {
	target.Disk
	flipAt int64
}

func (t reopenFlipTarget) Open(fs afero.Fs, path string, o target.OpenOptions) (target.Disk, error) {
	d, err := t.Target.Open(fs, path, o)
	if err != nil || !o.ReadOnly {
		return d, err
	}
	return reopenFlipDisk{d, t.flipAt}, nil
}

func (d reopenFlipDisk) ReadAt(p []byte, off int64) (int, error) {
	n, err := d.Disk.ReadAt(p, off)
	if i := d.flipAt - off; i >= 0 && i < int64(n) {
		p[i] ^= 0xff
	}
	return n, err
}

// TestOracleRereadChecksChangedRanges: stage 7 compares the ranges
// recovery may have changed (a pending write's) with the bytes stage 4
// read there rather than with the model's patterns; a byte changed there
// by the reopen is still reported at its offset, with and without the
// durable contents, as is one in flushed data and one next to the
// liveness sector (the sector itself is read at the liveness stage).
func TestOracleRereadChecksChangedRanges(t *testing.T) {
	for _, kept := range []bool{false, true} { // the pending write lost (drop) or kept (its end state)
		for _, at := range []int64{0x20000, 0x20010, 0x201ff, 0x200, 0x10005} {
			for _, dur := range []bool{false, true} {
				st, e, live := oracleCases(t, oracleScript)
				if kept {
					st = live
				}
				o := oracle.Options{}
				if dur {
					var err error
					o.Durable, err = oracle.NewDurable(e.Model)
					require.NoError(t, err)
				}
				v := oracle.Judge(reopenFlipTarget{flipAt: at}, st, e.ImagePath(), e.Model.Clone(), o)
				require.Equal(t, oracle.StageDataAfterReopen, v.Stage, "kept=%v flip at %#x durable=%v: %v", kept, at, dur, v)
				require.NotNil(t, v.Mismatch)
				require.Equal(t, at, v.Mismatch.Off, "kept=%v durable=%v", kept, dur)
			}
		}
	}
}

// unallocatedGarbageTarget is impl/qed whose writable opens (recovery)
// read the guest bytes from 0x80000 on, never written by oracleScript, as
// 0xdb instead of zeros.
type unallocatedGarbageTarget struct{ qedtarget.Target }

type unallocatedGarbageDisk struct{ target.Disk }

func (t unallocatedGarbageTarget) Open(fs afero.Fs, path string, o target.OpenOptions) (target.Disk, error) {
	d, err := t.Target.Open(fs, path, o)
	if err != nil || o.ReadOnly {
		return d, err
	}
	return unallocatedGarbageDisk{d}, nil
}

func (d unallocatedGarbageDisk) ReadAt(p []byte, off int64) (int, error) {
	n, err := d.Disk.ReadAt(p, off)
	for i := range p[:n] {
		if off+int64(i) >= 0x80000 {
			p[i] = 0xdb
		}
	}
	return n, err
}

// TestOracleBigImageSamplesUnallocated: above FullReadLimit, wrong bytes
// where the checker's map proves zeros (an unallocated range far from
// every write), returned only after recovery, are still found at the data
// stage (the sampled gaps), with and without the durable contents.
func TestOracleBigImageSamplesUnallocated(t *testing.T) {
	for _, dur := range []bool{false, true} {
		o := oracle.Options{FullReadLimit: 4096}
		st, e := oracleCase(t, oracleScript)
		if dur {
			var err error
			o.Durable, err = oracle.NewDurable(e.Model)
			require.NoError(t, err)
		}
		v := oracle.Judge(unallocatedGarbageTarget{}, st, e.ImagePath(), e.Model.Clone(), o)
		require.Equal(t, oracle.StageData, v.Stage, "durable=%v: %v", dur, v)
		require.GreaterOrEqual(t, v.Mismatch.Off, int64(0x80000))
	}
}

// TestJudgeBackingName: with Options.BackingNames, a header naming any
// other backing file fails at StageBackingName, before recovery; the
// names listed pass (the image commands' rule, docs/campaigns.md).
func TestJudgeBackingName(t *testing.T) {
	st, e := oracleCase(t, `qedtorture-workload v1
image cluster_size=4096 table_size=1 size=65536
backing raw size=8192 fill=1
write 0x1000 0x200 id=2
rebase-unsafe 600
`)
	name := workload.UnsafeName(1, 600)
	// The failing judgement stops before recovery: st is unchanged.
	v := oracle.Judge(qedtarget.Target{}, st, e.ImagePath(), e.Model.Clone(), oracle.Options{BackingNames: []string{"backing0.raw"}})
	require.Equal(t, oracle.StageBackingName, v.Stage, "%s", v)
	require.Contains(t, v.Err.Error(), "neither the old nor the new name")
	v = oracle.Judge(qedtarget.Target{}, st, e.ImagePath(), e.Model.Clone(), oracle.Options{BackingNames: []string{"backing0.raw", name}})
	require.True(t, v.OK(), "%s", v)
}
