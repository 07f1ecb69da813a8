package oracle

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/qedtorture/qedtorture/impl/qed/qedtarget"
	"github.com/qedtorture/qedtorture/model"
	"github.com/qedtorture/qedtorture/props/target"
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

// everySectorOneOfSectors is everySectorOneOf as it was before it
// compared whole blocks first: sector by sector.
func everySectorOneOfSectors(got, a, b []byte) bool {
	for lo := 0; lo < len(got); lo += model.SectorSize {
		hi := min(lo+model.SectorSize, len(got))
		g := got[lo:hi]
		if !(hi <= len(a) && bytes.Equal(g, a[lo:hi])) && !(hi <= len(b) && bytes.Equal(g, b[lo:hi])) {
			return false
		}
	}
	return true
}

// TestEverySectorOneOfBlocks: everySectorOneOf, which passes a block
// wholly equal to one side at once, answers as the sector-by-sector
// comparison over long stretches of either side, stretches of single
// sectors, a short last sector, sides shorter than got (a block reaching
// past one side is compared by sectors), a torn sector and a byte of
// neither anywhere.
func TestEverySectorOneOfBlocks(t *testing.T) {
	seed := uint64(1910)
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 5))
	const n = 3*oneOfBlock + 700
	a, b := make([]byte, n), make([]byte, n)
	model.Fill(a, 1, 0)
	model.Fill(b, 2, 0)
	copy(b[oneOfBlock:2*oneOfBlock], a[oneOfBlock:2*oneOfBlock]) // a stretch where both agree
	passed, failed := 0, 0
	for i := range 400 {
		la, lb := n, n
		if i%3 == 1 {
			la = rng.IntN(n)
		}
		if i%4 == 2 {
			lb = rng.IntN(n)
		}
		got := make([]byte, n)
		for lo := 0; lo < n; {
			run := model.SectorSize * (1 + rng.IntN(300))
			if i%2 == 0 {
				run = model.SectorSize // a new side every sector
			}
			hi := min(lo+run, n)
			src := a
			if rng.IntN(2) == 0 {
				src = b
			}
			copy(got[lo:hi], src[lo:hi])
			lo = hi
		}
		switch i % 7 {
		case 3: // torn
			s := rng.IntN(n / model.SectorSize)
			copy(got[s*model.SectorSize:], a[s*model.SectorSize:s*model.SectorSize+256])
			copy(got[s*model.SectorSize+256:], b[s*model.SectorSize+256:s*model.SectorSize+512])
		case 5: // a byte of neither
			at := rng.IntN(n)
			x := byte(rng.Uint32())
			for x == a[at] || x == b[at] {
				x++
			}
			got[at] = x
		}
		want := everySectorOneOfSectors(got, a[:la], b[:lb])
		require.Equal(t, want, everySectorOneOf(got, a[:la], b[:lb]), "case %d (a %d, b %d bytes)", i, la, lb)
		if want {
			passed++
		} else {
			failed++
		}
	}
	require.Greater(t, passed, 50)
	require.Greater(t, failed, 50)
}

// BenchmarkJudgeCommitBaseQED judges a QED commit base of 32 MiB (64 KiB
// clusters) with its two allowed views given, as a campaign does for
// every crash state of a commit into a QED base: the base holds the
// image's view over its first half and its old contents over the rest.
// B/op shows the guest view's buffer (pooled since issue 19 goal 5's
// session 10); compare builds with ns/op, interleaved.
func BenchmarkJudgeCommitBaseQED(b *testing.B) {
	const size = 32 << 20
	fs := afero.NewMemMapFs()
	tg := qedtarget.Target{}
	require.NoError(b, tg.Create(fs, "/base.qed", target.CreateOptions{Size: size, ClusterSize: 64 << 10, TableSize: 4}))
	old := make([]byte, size)
	model.Fill(old, 1, 0)
	top, err := model.New(size, nil)
	require.NoError(b, err)
	require.NoError(b, top.WriteID(0, size, 2))
	top.Flush()
	view := make([]byte, size)
	require.NoError(b, top.ReadAt(view, 0))
	m, err := CommitBaseModel(old, top)
	require.NoError(b, err)
	d, err := tg.Open(fs, "/base.qed", target.OpenOptions{})
	require.NoError(b, err)
	_, err = d.WriteAt(view[:size/2], 0)
	require.NoError(b, err)
	_, err = d.WriteAt(old[size/2:], size/2)
	require.NoError(b, err)
	require.NoError(b, d.Close())
	b.SetBytes(size)
	b.ReportAllocs()
	for b.Loop() {
		if err := JudgeCommitBaseViews(tg, fs, "/base.qed", "qed", m, old, view); err != nil {
			b.Fatal(err)
		}
	}
}
