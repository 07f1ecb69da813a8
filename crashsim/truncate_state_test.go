package crashsim

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestStateTruncateThenExtend: a crash state that kept an unsynced
// truncate shrinking a file reads zeros past the new length when a
// recovery writes past it again (crash states are written to: the
// recovery of a crash state, and crashes during that recovery). Before
// the fix, the flatten that the first write triggers kept the truncated
// pages (the state's size already equalled the truncate's), and the
// extending write exposed the removed bytes between the old end and it.
func TestStateTruncateThenExtend(t *testing.T) {
	fs := New(Options{ImplicitDirSync: true})
	f, err := fs.Create("/f")
	require.NoError(t, err)
	_, err = f.WriteAt(bytes.Repeat([]byte{1}, 3*PageSize), 0)
	require.NoError(t, err)
	require.NoError(t, f.Sync())
	require.NoError(t, f.Truncate(PageSize+100))
	p := fs.Crash()
	id := StateID{K: p.K(), Model: Model{Base: Prefix}, Ordinal: 1} // the truncate kept
	for _, final := range []bool{false, true} {
		st, err := p.State(id)
		if final {
			st, err = p.FinalState(id)
		}
		require.NoError(t, err)
		g, err := st.OpenFile("/f", 2, 0)
		require.NoError(t, err)
		fi, err := g.Stat()
		require.NoError(t, err)
		require.EqualValues(t, PageSize+100, fi.Size())
		_, err = g.WriteAt([]byte{2}, 2*PageSize+10)
		require.NoError(t, err)
		b := make([]byte, 3*PageSize)
		_, err = g.ReadAt(b[:2*PageSize+11], 0)
		require.NoError(t, err)
		require.True(t, bytes.Equal(bytes.Repeat([]byte{1}, PageSize+100), b[:PageSize+100]), "final=%v: the kept bytes", final)
		require.True(t, bytes.Equal(make([]byte, PageSize-90), b[PageSize+100:2*PageSize+10]), "final=%v: the truncated bytes read zeros", final)
		require.Equal(t, byte(2), b[2*PageSize+10])
	}
}
