package faultfs

import (
	"syscall"
	"testing"

	"github.com/spf13/afero"
	"github.com/stretchr/testify/require"
)

// TestOverSharesRules: a layer Over another filesystem counts its
// operations against the same rules as the FS it came from (one
// numbering: nth=3 fires at the third write whichever layer makes it),
// logs its injections in the one log, follows Arm, and reaches only its
// own base.
func TestOverSharesRules(t *testing.T) {
	a, b := afero.NewMemMapFs(), afero.NewMemMapFs()
	fs, err := NewFromString(a, 1, "write:eio@nth=3; write:eio@after=9")
	require.NoError(t, err)
	over := fs.Over(b)
	require.NoError(t, afero.WriteFile(fs, "/x", []byte("1"), 0o644))   // write 1
	require.NoError(t, afero.WriteFile(over, "/y", []byte("2"), 0o644)) // write 2
	_, err = b.Stat("/y")
	require.NoError(t, err, "the layer writes into its own base")
	_, err = a.Stat("/y")
	require.Error(t, err, "and not into the other's")
	err = afero.WriteFile(over, "/z", []byte("3"), 0o644) // write 3: fires
	require.ErrorIs(t, err, syscall.EIO)
	require.Equal(t, uint64(3), fs.Matches(0))
	require.Equal(t, 1, fs.Injected())
	require.Equal(t, "/z", fs.Log()[0].Path)
	fs.Arm(false)
	for range 8 {
		require.NoError(t, afero.WriteFile(over, "/w", []byte("4"), 0o644), "disarmed through the shared state")
	}
	require.Equal(t, uint64(11), fs.Matches(1))
	require.Greater(t, fs.Ops(), uint64(11))
}
