package qedtarget_test

import (
	"testing"

	"github.com/qedtorture/qedtorture/crashsim"
	"github.com/qedtorture/qedtorture/faultfs"
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

// TestOpenL2CacheHint: target.OpenOptions.L2CacheTables bounds impl/qed's
// L2 cache: reads that alternate between two L2 tables read each table
// once with the default cache, and again at every switch with a
// one-table cache (eviction); the data read is the same.
func TestOpenL2CacheHint(t *testing.T) {
	tableReads := func(cache int) int {
		mem := crashsim.New(crashsim.Options{ImplicitDirSync: true})
		require.NoError(t, mem.MkdirAll("/w", 0o755))
		tg := qedtarget.Target{}
		// 4 KiB clusters, one-cluster tables: an L2 table spans 2 MiB.
		require.NoError(t, tg.Create(mem, "/w/image.qed", target.CreateOptions{Size: 8 << 20, ClusterSize: 4096, TableSize: 1}))
		d, err := tg.Open(mem, "/w/image.qed", target.OpenOptions{})
		require.NoError(t, err)
		for _, off := range []int64{0, 2 << 20} {
			_, err = d.WriteAt([]byte{byte(off>>20) + 1}, off)
			require.NoError(t, err)
		}
		require.NoError(t, d.Close())
		ffs, err := faultfs.NewFromString(mem, 0, "read:delay=1ns")
		require.NoError(t, err)
		d, err = tg.Open(ffs, "/w/image.qed", target.OpenOptions{L2CacheTables: cache})
		require.NoError(t, err)
		before := ffs.Matches(0)
		for range 3 {
			for _, off := range []int64{0, 2 << 20} {
				b := make([]byte, 1)
				_, err := d.ReadAt(b, off)
				require.NoError(t, err)
				require.Equal(t, byte(off>>20)+1, b[0])
			}
		}
		require.NoError(t, d.Close())
		return int(ffs.Matches(0) - before)
	}
	// The six guest reads read data clusters alike; the tables differ.
	def, small := tableReads(0), tableReads(1)
	require.Equal(t, def+4, small, "one-table cache: each of the 4 switches after the first two reads the table again")
}
