package oracle_test

import (
	"sync/atomic"
	"testing"

	"github.com/qedtorture/qedtorture/impl/qed/qedtarget"
	"github.com/qedtorture/qedtorture/props/check"
	"github.com/qedtorture/qedtorture/props/oracle"
	"github.com/qedtorture/qedtorture/props/target"
	"github.com/spf13/afero"
	"github.com/stretchr/testify/require"
)

// Tests of Judge written for mutants that survived the rest of the suite
// (see docs/mutation.md).

// readHook is impl/qed whose disks (writable ones when writable is set,
// read-only ones otherwise) pass every read through hook; it counts the
// disks opened and closed.
type readHook struct {
	qedtarget.Target
	writable       bool
	hook           func(p []byte, off int64)
	opened, closed *atomic.Int64
}

type readHookDisk struct {
	target.Disk
	t readHook
}

func (t readHook) Open(fs afero.Fs, path string, o target.OpenOptions) (target.Disk, error) {
	d, err := t.Target.Open(fs, path, o)
	if err != nil {
		return d, err
	}
	if t.opened != nil {
		t.opened.Add(1)
	}
	if t.hook == nil || o.ReadOnly == t.writable {
		return readHookDisk{d, readHook{closed: t.closed}}, nil
	}
	return readHookDisk{d, t}, nil
}

func (d readHookDisk) ReadAt(p []byte, off int64) (int, error) {
	n, err := d.Disk.ReadAt(p, off)
	if d.t.hook != nil {
		d.t.hook(p[:n], off)
	}
	return n, err
}

func (d readHookDisk) Close() error {
	if d.t.closed != nil {
		d.t.closed.Add(1)
	}
	return d.Disk.Close()
}

// flipAt returns a hook that inverts the guest byte at at.
func flipAt(at int64) func(p []byte, off int64) {
	return func(p []byte, off int64) {
		if i := at - off; i >= 0 && i < int64(len(p)) {
			p[i] ^= 0xff
		}
	}
}

// TestJudgeClosesEveryDisk: every disk Judge opens is closed when it
// returns, whether the state passes or fails at a stage that still holds
// the recovered disk open (data) or the reopened one (liveness).
func TestJudgeClosesEveryDisk(t *testing.T) {
	for _, c := range []struct {
		name     string
		writable bool
		hook     func(p []byte, off int64)
		stage    oracle.Stage
	}{
		{"passing", true, nil, ""},
		{"data", true, flipAt(0x10005), oracle.StageData},
		{"liveness", false, flipAt(0x10), oracle.StageLiveness},
		{"data-after-reopen", false, flipAt(0x10005), oracle.StageDataAfterReopen},
	} {
		st, e := oracleCase(t, oracleScript)
		var opened, closed atomic.Int64
		tg := readHook{writable: c.writable, hook: c.hook, opened: &opened, closed: &closed}
		v := oracle.Judge(tg, st, e.ImagePath(), e.Model.Clone(), oracle.Options{})
		require.Equal(t, c.stage, v.Stage, "%s: %v", c.name, v)
		require.Positive(t, opened.Load(), c.name)
		require.Equal(t, opened.Load(), closed.Load(), "%s: disks opened and closed", c.name)
	}
}

// TestJudgeDefaultReadsWhole: with the default options an image of 1 MiB
// (DefaultFullReadLimit) is read whole: one wrong byte in the middle of a
// range nothing wrote, which the sample above the limit misses, fails at
// the data stage; with a limit of 4 KiB it would be sampled.
func TestJudgeDefaultReadsWhole(t *testing.T) {
	const at = 0xc1234
	st, e := oracleCase(t, oracleScript)
	v := oracle.Judge(readHook{writable: true, hook: flipAt(at)}, st, e.ImagePath(), e.Model.Clone(), oracle.Options{})
	require.Equal(t, oracle.StageData, v.Stage, "%v", v)
	require.Equal(t, int64(at), v.Mismatch.Off)
}

// TestJudgeLivenessSector: a wrong byte of the liveness sector after the
// reopen fails at the liveness stage, where it is read first, naming its
// offset.
func TestJudgeLivenessSector(t *testing.T) {
	for _, at := range []int64{0, 0x10, 0x1ff} {
		st, e := oracleCase(t, oracleScript)
		v := oracle.Judge(readHook{hook: flipAt(at)}, st, e.ImagePath(), e.Model.Clone(), oracle.Options{})
		require.Equal(t, oracle.StageLiveness, v.Stage, "flip at %#x: %v", at, v)
		require.Equal(t, at, v.Mismatch.Off)
	}
}

// TestJudgeDataAtTheEnd: stage 7 reads ranges that end at the image's
// size in chunks clipped to them (never past the size): a state with
// flushed data in the image's last cluster and a pending write there
// passes, with and without the durable contents, above and below the
// full-read limit; a wrong byte in the last sector is found.
func TestJudgeDataAtTheEnd(t *testing.T) {
	const script = `qedtorture-workload v1
image cluster_size=4096 table_size=1 size=1048576
write 0xff000 0x1000 id=1
flush
write 0xffe00 0x200 id=2
`
	for _, limit := range []int64{0, 4096} {
		for _, dur := range []bool{false, true} {
			for _, flip := range []bool{false, true} {
				st, e := oracleCase(t, script)
				o := oracle.Options{FullReadLimit: limit}
				if dur {
					var err error
					o.Durable, err = oracle.NewDurable(e.Model)
					require.NoError(t, err)
				}
				var tg target.Target = qedtarget.Target{}
				if flip {
					tg = readHook{hook: flipAt(0xffdff)}
				}
				v := oracle.Judge(tg, st, e.ImagePath(), e.Model.Clone(), o)
				if !flip {
					require.True(t, v.OK(), "limit %d durable=%v: %v", limit, dur, v)
					continue
				}
				require.Equal(t, oracle.StageDataAfterReopen, v.Stage, "limit %d durable=%v: %v", limit, dur, v)
				require.Equal(t, int64(0xffdff), v.Mismatch.Off)
			}
		}
	}
}

// TestJudgeReopenOldContents: where recovery kept a pending write, a
// reopen that reads the old (durable) contents there again fails at
// data-after-reopen, with and without the durable contents (a block equal
// to them is not skipped inside the ranges recovery changed). The pending
// write rewrites flushed data in place, so the run's own file holds it.
func TestJudgeReopenOldContents(t *testing.T) {
	const script = `qedtorture-workload v1
image cluster_size=4096 table_size=1 size=1048576
write 0x10000 0x1000 id=1
flush
write 0x10200 0x200 id=2
`
	for _, dur := range []bool{false, true} {
		_, e, kept := oracleCases(t, script)
		old := make([]byte, 0x200)
		require.NoError(t, e.Model.ReadDurableAt(old, 0x10200))
		o := oracle.Options{}
		if dur {
			var err error
			o.Durable, err = oracle.NewDurable(e.Model)
			require.NoError(t, err)
		}
		m := e.Model.Clone()
		rm := m.Clone()
		require.True(t, oracle.Judge(qedtarget.Target{}, kept, e.ImagePath(), rm, o).OK())
		now := make([]byte, 0x200)
		require.NoError(t, rm.ReadAt(now, 0x10200))
		require.NotEqual(t, old, now, "recovery kept the pending write")
		_, e, kept = oracleCases(t, script)
		reopenOld := func(p []byte, off int64) { // [0x10200, 0x10400) reads old
			for i := range p {
				if pos := off + int64(i); pos >= 0x10200 && pos < 0x10400 {
					p[i] = old[pos-0x10200]
				}
			}
		}
		v := oracle.Judge(readHook{hook: reopenOld}, kept, e.ImagePath(), m, o)
		require.Equal(t, oracle.StageDataAfterReopen, v.Stage, "durable=%v: %v", dur, v)
		require.Equal(t, int64(0x10200), v.Mismatch.Off, "durable=%v", dur)
	}
}

// TestJudgeBackingPastEmptyImage: an image created empty over a backing
// file and grown must keep hiding the backing file's data; a reopen that
// shows it (here at 0x1000, past the liveness sector) fails at
// data-after-reopen. Stage 7 skipped that range when the image was
// created empty (its BackingLen 0) and passed such a state.
func TestJudgeBackingPastEmptyImage(t *testing.T) {
	const script = `qedtorture-workload v1
image cluster_size=4096 table_size=1 size=0
backing raw size=8192 fill=1
resize 0x10000
flush
write 0x8000 0x200 id=2
`
	st, e := oracleCase(t, script)
	require.Zero(t, e.Model.BackingLen())
	require.True(t, oracle.Judge(qedtarget.Target{}, st, e.ImagePath(), e.Model.Clone(), oracle.Options{}).OK())
	st, e = oracleCase(t, script)
	show := func(p []byte, off int64) { // 0x1000 reads a byte of the backing file
		if i := 0x1000 - off; i >= 0 && i < int64(len(p)) {
			p[i] = 0x5a
		}
	}
	v := oracle.Judge(readHook{hook: show}, st, e.ImagePath(), e.Model.Clone(), oracle.Options{})
	require.Equal(t, oracle.StageDataAfterReopen, v.Stage, "%v", v)
	require.Equal(t, int64(0x1000), v.Mismatch.Off)
}

// TestJudgeInconsistentMessage: a QED image whose NEED_CHECK is clear
// over an inconsistent structure fails before recovery saying so, with
// the kinds and counts the checker found, not that the file is no QED
// image.
func TestJudgeInconsistentMessage(t *testing.T) {
	st, e := oracleCase(t, oracleScript)
	img, err := afero.ReadFile(st, e.ImagePath())
	require.NoError(t, err)
	bad, _, err := check.Plant(img, check.CorruptL2Invalid, false, 1)
	require.NoError(t, err)
	require.NoError(t, afero.WriteFile(st, e.ImagePath(), bad, 0o644))
	v := oracle.Judge(qedtarget.Target{}, st, e.ImagePath(), e.Model.Clone(), oracle.Options{})
	require.Equal(t, oracle.StageStructureBefore, v.Stage, "%v", v)
	require.ErrorContains(t, v.Err, "NEED_CHECK is clear but the image is inconsistent (")
	require.NotContains(t, v.Err.Error(), "not a QED image")
	require.NotContains(t, v.Err.Error(), "no violations")
	require.Regexp(t, `\(\S+ x1(, \S+ x1)*\)$`, v.Err.Error())
}

// TestJudgeRecoverPastSavedReads: when the model's uncertain ranges hold
// more than the data stage keeps for Recover (16 MiB), Recover reads them
// through the target again, in chunks of its own: a state with 16 MiB
// and 64 KiB of pending writes, dropped by the crash, passes.
func TestJudgeRecoverPastSavedReads(t *testing.T) {
	const script = `qedtorture-workload v1
image cluster_size=65536 table_size=1 size=0x1100000
write 0x0 0x1010000 id=1
`
	st, e := oracleCase(t, script)
	v := oracle.Judge(qedtarget.Target{}, st, e.ImagePath(), e.Model.Clone(), oracle.Options{})
	require.True(t, v.OK(), "%v", v)
}
