package target_test

import (
	"errors"
	"testing"

	"github.com/qedtorture/qedtorture/impl/qed/qedtarget"
	"github.com/qedtorture/qedtorture/props/target"
	"github.com/spf13/afero"
	"github.com/stretchr/testify/require"
)

// closeFails wraps a Target whose disks fail to close.
type closeFails struct{ target.Target }

func (c closeFails) Open(fs afero.Fs, p string, o target.OpenOptions) (target.Disk, error) {
	d, err := c.Target.Open(fs, p, o)
	if err != nil {
		return nil, err
	}
	return failingClose{d}, nil
}

type failingClose struct{ target.Disk }

func (failingClose) Close() error { return errors.New("injected") }

// TestReadGuest: a raw file reads as its bytes, a QED file as its guest
// view (not its bytes); the file is not written; a missing file, a
// failing open and a failing close are errors naming the step.
func TestReadGuest(t *testing.T) {
	fs := afero.NewMemMapFs()
	require.NoError(t, afero.WriteFile(fs, "/raw", []byte("abc"), 0o644))
	got, err := target.ReadGuest(qedtarget.Target{}, fs, "/raw", "raw")
	require.NoError(t, err)
	require.Equal(t, []byte("abc"), got)

	tg := qedtarget.Target{}
	require.NoError(t, tg.Create(fs, "/img.qed", target.CreateOptions{Size: 1 << 16, ClusterSize: 4096, TableSize: 1}))
	d, err := tg.Open(fs, "/img.qed", target.OpenOptions{})
	require.NoError(t, err)
	_, err = d.WriteAt([]byte{7, 8, 9}, 0x1001)
	require.NoError(t, err)
	require.NoError(t, d.Close())
	before, err := afero.ReadFile(fs, "/img.qed")
	require.NoError(t, err)

	got, err = target.ReadGuest(tg, fs, "/img.qed", "qed")
	require.NoError(t, err)
	want := make([]byte, 1<<16)
	copy(want[0x1001:], []byte{7, 8, 9})
	require.Equal(t, want, got)
	after, err := afero.ReadFile(fs, "/img.qed")
	require.NoError(t, err)
	require.Equal(t, before, after, "the file was written")

	_, err = target.ReadGuest(tg, fs, "/missing.qed", "qed")
	require.ErrorContains(t, err, "open: ")
	_, err = target.ReadGuest(closeFails{tg}, fs, "/img.qed", "qed")
	require.EqualError(t, err, "close: injected")
}
