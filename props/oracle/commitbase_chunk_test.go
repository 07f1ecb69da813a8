package oracle

import (
	"math/rand/v2"
	"testing"

	"github.com/qedtorture/qedtorture/impl/qed/qedtarget"
	"github.com/qedtorture/qedtorture/model"
	"github.com/spf13/afero"
	"github.com/stretchr/testify/require"
)

// TestRawBaseOneOfChunks: a raw commit base judged chunk by chunk
// (rawBaseOneOf) passes exactly when the whole-file comparison does, over
// several chunks with a short last one: sectors of the old contents and
// of the image's mixed at random (every chunk, the sectors past the old
// contents included), a sector torn or holding a byte of neither in any
// chunk, the old size, the image's and another. JudgeCommitBaseViews
// gives JudgeCommitBase's verdict and message either way.
func TestRawBaseOneOfChunks(t *testing.T) {
	seed := uint64(1905)
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 3))
	old := make([]byte, 150_000) // 292 whole sectors and a part
	model.Fill(old, 1, 0)
	const topSize = 3*oracleChunk + 3*model.SectorSize
	top, err := model.New(topSize, nil)
	require.NoError(t, err)
	require.NoError(t, top.WriteID(0, topSize, 2))
	top.Flush()
	view := make([]byte, topSize)
	require.NoError(t, top.ReadAt(view, 0))
	m, err := CommitBaseModel(old, top)
	require.NoError(t, err)
	durable := make([]byte, topSize)
	oldSize := len(old) / model.SectorSize * model.SectorSize
	copy(durable, old[:oldSize])

	mixed := func(n int) []byte {
		b := make([]byte, n)
		for lo := 0; lo < n; lo += model.SectorSize {
			hi := min(lo+model.SectorSize, n)
			if rng.IntN(2) == 0 {
				copy(b[lo:hi], durable[lo:hi])
			} else {
				copy(b[lo:hi], view[lo:hi])
			}
		}
		return b
	}
	passed, failed := 0, 0
	for i := range 200 {
		var base []byte
		want := true
		switch i % 5 {
		case 0:
			base = mixed(oldSize)
		case 1, 2:
			base = mixed(topSize)
		case 3: // a sector torn between the two, in any chunk
			base = mixed(topSize)
			s := rng.IntN(topSize / model.SectorSize)
			lo := s * model.SectorSize
			copy(base[lo:lo+256], durable[lo:lo+256])
			copy(base[lo+256:lo+512], view[lo+256:lo+512])
			want = false
		case 4:
			if i%10 == 4 { // another size
				base = mixed(topSize - model.SectorSize)
			} else { // a byte of neither
				base = mixed(topSize)
				at := rng.IntN(topSize)
				x := byte(rng.Uint32())
				for x == durable[at] || x == view[at] {
					x++
				}
				base[at] = x
			}
			want = false
		}
		fs := afero.NewMemMapFs()
		require.NoError(t, afero.WriteFile(fs, "/base.raw", base, 0o644))
		require.Equal(t, want, rawBaseOneOf(fs, "/base.raw", m, durable, view), "case %d", i)
		errWhole := JudgeCommitBase(qedtarget.Target{}, fs, "/base.raw", "raw", m)
		errViews := JudgeCommitBaseViews(qedtarget.Target{}, fs, "/base.raw", "raw", m, durable, view)
		if want {
			require.NoError(t, errWhole, "case %d", i)
			passed++
		} else {
			require.Error(t, errWhole, "case %d", i)
			failed++
		}
		require.Equal(t, errString(errWhole), errString(errViews), "case %d", i)
	}
	require.Positive(t, passed)
	require.Positive(t, failed)
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
