package qed

import (
	"bytes"
	"testing"

	"github.com/spf13/afero"
	"github.com/stretchr/testify/require"
)

// TestGrowOverShortLastCluster: the last cluster of an image whose size
// is not a cluster multiple is written only up to the size, so the file
// can end inside it. A grow then looks at the cluster's tail past the old
// size, which lies past the file's end and reads as zeros. afero's
// in-memory file reports that short read as io.ErrUnexpectedEOF, not
// io.EOF: the grow failed with "reading host offset ...: unexpected EOF"
// (props/workload's TestExecGeneratedWorkloads, about 1 seed in 20).
func TestGrowOverShortLastCluster(t *testing.T) {
	fs := afero.NewMemMapFs()
	const size = 0x1ac00
	require.NoError(t, Create(fs, "/i.qed", CreateOptions{Size: size, ClusterSize: 4096, TableSize: 16}))
	im, err := Open(fs, "/i.qed", OpenOptions{})
	require.NoError(t, err)
	data := bytes.Repeat([]byte{0xa5}, 0x600)
	_, err = im.WriteAt(data, 0x1a400)
	require.NoError(t, err)
	st, err := fs.Stat("/i.qed")
	require.NoError(t, err)
	require.NotZero(t, st.Size()%4096, "the file ends inside the last cluster")
	require.NoError(t, im.Resize(0x1b200))
	got := make([]byte, 0x1b200-0x1a400)
	_, err = im.ReadAt(got, 0x1a400)
	require.NoError(t, err)
	require.Equal(t, data, got[:0x600])
	require.Equal(t, make([]byte, len(got)-0x600), got[0x600:], "the grown tail reads zeros")
	require.NoError(t, im.Close())
}
