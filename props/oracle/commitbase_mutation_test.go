package oracle_test

import (
	"errors"
	"testing"

	"github.com/qedtorture/qedtorture/impl/qed/qedtarget"
	"github.com/qedtorture/qedtorture/model"
	"github.com/qedtorture/qedtorture/props/oracle"
	"github.com/qedtorture/qedtorture/props/target"
	"github.com/spf13/afero"
	"github.com/stretchr/testify/require"
)

// Tests of the commit-base judge written for mutants of the code added
// since 67ff2d5 that survived the rest of the suite (docs/mutation.md,
// "props/oracle: the code changed since 67ff2d5").

// commitBaseCase returns a model of a commit (CommitBaseModel of old and
// of an image of topSize bytes written with pattern 2) and its two views
// as the campaign builds them (durable: old, zeros past it, as long as
// the longer of the two).
func commitBaseCase(t *testing.T, old []byte, topSize int64) (m *model.Disk, durable, view []byte) {
	t.Helper()
	top, err := model.New(topSize, nil)
	require.NoError(t, err)
	require.NoError(t, top.WriteID(0, topSize, 2))
	top.Flush()
	view = make([]byte, topSize) // no spare capacity: a read past it panics
	require.NoError(t, top.ReadAt(view, 0))
	m, err = oracle.CommitBaseModel(old, top)
	require.NoError(t, err)
	durable = make([]byte, max(len(old), len(view)))
	copy(durable, old[:len(old)/model.SectorSize*model.SectorSize])
	return m, durable, view
}

// TestJudgeCommitBaseQED: a QED base is judged by its guest view, never
// by its file's bytes: one whose guest view is the image's passes, with
// and without the two views given; one whose guest view is torn fails;
// and one whose file bytes are, sector by sector, the old contents the
// rule allows (a guest that stored the QED file itself) but whose guest
// view is another size fails (the raw fast path must not take it).
func TestJudgeCommitBaseQED(t *testing.T) {
	const size = 64 << 10
	tg := qedtarget.Target{}
	old := make([]byte, size)
	model.Fill(old, 1, 0)
	m, durable, view := commitBaseCase(t, old, size)

	write := func(fs afero.Fs, guest []byte) {
		require.NoError(t, tg.Create(fs, "/base.qed", target.CreateOptions{Size: int64(len(guest)), ClusterSize: 4096, TableSize: 1}))
		d, err := tg.Open(fs, "/base.qed", target.OpenOptions{})
		require.NoError(t, err)
		_, err = d.WriteAt(guest, 0)
		require.NoError(t, err)
		require.NoError(t, d.Close())
	}
	good := afero.NewMemMapFs()
	mixed := append([]byte(nil), view...)
	copy(mixed[4096:8192], old[4096:8192])
	write(good, mixed)
	require.NoError(t, oracle.JudgeCommitBase(tg, good, "/base.qed", "qed", m))
	require.NoError(t, oracle.JudgeCommitBaseViews(tg, good, "/base.qed", "qed", m, durable, view))

	torn := afero.NewMemMapFs()
	tornView := append([]byte(nil), view...)
	copy(tornView[256:512], old[256:512])
	write(torn, tornView)
	require.Error(t, oracle.JudgeCommitBase(tg, torn, "/base.qed", "qed", m))
	require.Error(t, oracle.JudgeCommitBaseViews(tg, torn, "/base.qed", "qed", m, durable, view))

	// The file bytes of a QED image of 8 KiB as the old contents of the
	// base: the same file passes a raw judge and fails a QED one.
	small := afero.NewMemMapFs()
	write(small, view[:8192])
	file, err := afero.ReadFile(small, "/base.qed")
	require.NoError(t, err)
	require.NotEqual(t, 8192, len(file))
	fm, fdurable, fview := commitBaseCase(t, file, int64(len(file)))
	require.NoError(t, oracle.JudgeCommitBaseViews(tg, small, "/base.qed", "raw", fm, fdurable, fview))
	err = oracle.JudgeCommitBaseViews(tg, small, "/base.qed", "qed", fm, fdurable, fview)
	require.True(t, errors.Is(err, oracle.ErrCommitBaseSize), "%v", err)
}

// TestJudgeCommitBaseLongerThanImage: a base longer than the image keeps
// its old size; the 64 KiB block where the image's view ends holds
// sectors of the image's below that end and old ones past it: it passes
// (sector by sector, the view never read past its end), raw and QED, with
// and without the two views; a sector of neither past the end fails.
func TestJudgeCommitBaseLongerThanImage(t *testing.T) {
	const oldSize, topSize = 192 << 10, 65<<10 + 512
	tg := qedtarget.Target{}
	old := make([]byte, oldSize)
	model.Fill(old, 1, 0)
	m, durable, view := commitBaseCase(t, old, topSize)
	require.Equal(t, []int64{oldSize}, m.CrashSizes())

	base := append([]byte(nil), old...)
	copy(base[64<<10:topSize], view[64<<10:]) // the image's last sectors, in the second block
	bad := append([]byte(nil), base...)
	bad[100<<10] ^= 0xff // past the image's end: neither
	for _, c := range []struct {
		name string
		b    []byte
		ok   bool
	}{{"mixed", base, true}, {"neither", bad, false}} {
		fs := afero.NewMemMapFs()
		require.NoError(t, afero.WriteFile(fs, "/base.raw", c.b, 0o644))
		require.NoError(t, tg.Create(fs, "/base.qed", target.CreateOptions{Size: oldSize, ClusterSize: 4096, TableSize: 1}))
		d, err := tg.Open(fs, "/base.qed", target.OpenOptions{})
		require.NoError(t, err)
		_, err = d.WriteAt(c.b, 0)
		require.NoError(t, err)
		require.NoError(t, d.Close())
		for _, f := range []struct{ path, format string }{{"/base.raw", "raw"}, {"/base.qed", "qed"}} {
			errs := []error{
				oracle.JudgeCommitBase(tg, fs, f.path, f.format, m),
				oracle.JudgeCommitBaseViews(tg, fs, f.path, f.format, m, durable, view),
			}
			for i, err := range errs {
				if c.ok {
					require.NoError(t, err, "%s %s views=%v", c.name, f.format, i == 1)
				} else {
					require.Error(t, err, "%s %s views=%v", c.name, f.format, i == 1)
				}
			}
		}
	}
}
