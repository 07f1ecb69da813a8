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

// readFails wraps a Target whose disks fail to read (and close fine).
type readFails struct{ target.Target }

func (c readFails) Open(fs afero.Fs, p string, o target.OpenOptions) (target.Disk, error) {
	d, err := c.Target.Open(fs, p, o)
	if err != nil {
		return nil, err
	}
	return failingRead{d}, nil
}

type failingRead struct{ target.Disk }

func (failingRead) ReadAt([]byte, int64) (int, error) { return 0, errors.New("read injected") }

// TestReadGuest: a raw file reads as its bytes, a QED file as its guest
// view (not its bytes); the file is not written; a missing file, a
// failing open, read and close are errors naming the step.
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
	_, err = target.ReadGuest(readFails{tg}, fs, "/img.qed", "qed")
	require.EqualError(t, err, "read: read injected")
}

// shortRead wraps a Target whose disks read only the first half of a
// request and report no error (a broken io.ReaderAt).
type shortRead struct{ target.Target }

func (s shortRead) Open(fs afero.Fs, p string, o target.OpenOptions) (target.Disk, error) {
	d, err := s.Target.Open(fs, p, o)
	if err != nil {
		return nil, err
	}
	return halfRead{d}, nil
}

type halfRead struct{ target.Disk }

func (h halfRead) ReadAt(p []byte, off int64) (int, error) {
	return h.Disk.ReadAt(p[:len(p)/2], off)
}

// TestReadGuestInto: read into a reused buffer (holding another view's
// bytes), a QED file's guest view is what ReadGuest returns, in that
// buffer when it is long enough and in a new one when it is not; what a
// short read without error leaves is zeros, as in a new buffer, not the
// buffer's old bytes; a raw file reads as ReadGuest reads it.
func TestReadGuestInto(t *testing.T) {
	fs := afero.NewMemMapFs()
	tg := qedtarget.Target{}
	require.NoError(t, tg.Create(fs, "/img.qed", target.CreateOptions{Size: 1 << 16, ClusterSize: 4096, TableSize: 1}))
	d, err := tg.Open(fs, "/img.qed", target.OpenOptions{})
	require.NoError(t, err)
	_, err = d.WriteAt([]byte{7, 8, 9}, 0x1001)
	require.NoError(t, err)
	_, err = d.WriteAt([]byte{5}, 0xf000)
	require.NoError(t, err)
	require.NoError(t, d.Close())
	want, err := target.ReadGuest(tg, fs, "/img.qed", "qed")
	require.NoError(t, err)

	stale := make([]byte, 1<<17)
	for i := range stale {
		stale[i] = 0xa5
	}
	got, err := target.ReadGuestInto(tg, fs, "/img.qed", "qed", stale)
	require.NoError(t, err)
	require.Equal(t, want, got)
	require.Same(t, &stale[0], &got[0], "a long enough buffer is reused")
	exact := make([]byte, len(want))
	got, err = target.ReadGuestInto(tg, fs, "/img.qed", "qed", exact)
	require.NoError(t, err)
	require.Equal(t, want, got)
	require.Same(t, &exact[0], &got[0], "a buffer of exactly the view's size is reused")

	small := make([]byte, 10)
	got, err = target.ReadGuestInto(tg, fs, "/img.qed", "qed", small)
	require.NoError(t, err)
	require.Equal(t, want, got)
	require.NotSame(t, &small[0], &got[0])

	for i := range stale {
		stale[i] = 0xa5
	}
	fresh, err := target.ReadGuest(shortRead{tg}, fs, "/img.qed", "qed")
	require.NoError(t, err)
	got, err = target.ReadGuestInto(shortRead{tg}, fs, "/img.qed", "qed", stale)
	require.NoError(t, err)
	require.Equal(t, fresh, got, "a short read leaves zeros, not the buffer's old bytes")
	require.Equal(t, byte(0), got[0xf000], "the unread half")

	require.NoError(t, afero.WriteFile(fs, "/raw", []byte("abc"), 0o644))
	got, err = target.ReadGuestInto(tg, fs, "/raw", "raw", stale)
	require.NoError(t, err)
	require.Equal(t, []byte("abc"), got)
}
