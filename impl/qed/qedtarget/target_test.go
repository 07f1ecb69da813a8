package qedtarget_test

import (
	"testing"

	"github.com/qedtorture/qedtorture/crashsim"
	"github.com/qedtorture/qedtorture/impl/qed/qedtarget"
	"github.com/qedtorture/qedtorture/props/target"
	"github.com/stretchr/testify/require"
)

// unsyncedAfterFlush writes one cluster through t on a fresh crash
// filesystem, flushes, and returns how many file operations a power loss
// right then could still lose.
func unsyncedAfterFlush(t *testing.T, tg target.Target) int {
	t.Helper()
	fs := crashsim.New(crashsim.Options{ImplicitDirSync: true})
	require.NoError(t, fs.MkdirAll("/w", 0o755))
	require.NoError(t, tg.Create(fs, "/w/image.qed", target.CreateOptions{Size: 1 << 20, ClusterSize: 4096, TableSize: 1}))
	d, err := tg.Open(fs, "/w/image.qed", target.OpenOptions{})
	require.NoError(t, err)
	_, err = d.WriteAt(make([]byte, 4096), 8192)
	require.NoError(t, err)
	require.NoError(t, d.Flush())
	p, err := fs.Point()
	require.NoError(t, err)
	n := len(p.Unsynced())
	require.NoError(t, d.Close())
	return n
}

// TestBrokenBreakWhatTheySay: after a guest flush nothing is left to lose
// on impl/qed; broken:noflush and broken:nosync leave the write unsynced
// (the promise each one breaks), and their names are their --target names.
func TestBrokenBreakWhatTheySay(t *testing.T) {
	require.Zero(t, unsyncedAfterFlush(t, qedtarget.Target{}), "impl/qed: a flush makes everything durable")
	var names []string
	for _, b := range qedtarget.Broken() {
		names = append(names, b.Name())
		require.Positive(t, unsyncedAfterFlush(t, b), "%s: the flushed write must still be losable", b.Name())
	}
	require.Equal(t, []string{"broken:nosync", "broken:noflush"}, names)
}
