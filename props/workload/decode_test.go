package workload

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// renumber numbers w's fill and write ids from 1 as Decode does: the
// deepest backing file first, then the writes in op order.
func renumber(w *Workload) *Workload {
	w = w.Clone()
	id := uint32(0)
	for i := len(w.Geometry.Backing) - 1; i >= 0; i-- {
		id++
		w.Geometry.Backing[i].Fill = id
	}
	for i := range w.Ops {
		if w.Ops[i].Kind == Write {
			id++
			w.Ops[i].ID = id
		}
		for j := range w.Ops[i].Group {
			if w.Ops[i].Group[j].Kind == Write {
				id++
				w.Ops[i].Group[j].ID = id
			}
		}
	}
	return w
}

// TestDecodeAnyBytesIsValid: whatever the bytes, Decode gives a workload
// that Validate accepts, within the decoder's bounds.
func TestDecodeAnyBytesIsValid(t *testing.T) {
	seed := uint64(7)
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	for i := range 20000 {
		data := make([]byte, rng.IntN(64))
		for j := range data {
			data[j] = byte(rng.Uint32())
		}
		if i%3 == 0 { // small numbers, so that more ops fit
			for j := range data {
				data[j] &= 0x7f
			}
		}
		w := Decode(data)
		require.NoError(t, w.Validate(), "% x", data)
		require.LessOrEqual(t, len(w.Ops), DecodeMaxOps)
		require.LessOrEqual(t, w.Geometry.Size, int64(DecodeMaxSize))
	}
	require.NoError(t, Decode(nil).Validate())
}

// TestEncodeDecodeRoundTrip: Decode(Encode(w)) is w with its ids
// renumbered, for generated workloads inside the decoder's bounds.
func TestEncodeDecodeRoundTrip(t *testing.T) {
	seed := uint64(3)
	t.Logf("seed %d", seed)
	cfg := DefaultGenConfig()
	cfg.NoExtras()        // the decoder's bounds: small images as created
	cfg.NoImageCommands() // which the decoder does not draw (decodeKinds)
	cfg.ClusterSizes = []uint32{4096, 16384, 65536}
	cfg.MaxClusters = 32
	cfg.Ops = DecodeMaxOps
	rng := rand.New(rand.NewPCG(seed, 0))
	encoded := 0
	for range 2000 {
		w := Generate(rng, cfg)
		data, err := Encode(w)
		if err != nil {
			require.ErrorContains(t, err, "beyond")
			continue
		}
		encoded++
		require.Equal(t, renumber(w).String(), Decode(data).String())
	}
	require.Greater(t, encoded, 1900, "most small generated workloads are inside the decoder's bounds")
}

// TestDecodeEveryKind: every op kind but the image commands can be
// decoded (a new kind needs a line in Decode and Encode, and in
// decodeKinds); the image commands are refused by Encode.
func TestDecodeEveryKind(t *testing.T) {
	for _, op := range []Op{{Kind: Rebase}, {Kind: RebaseUnsafe, Len: 100}, {Kind: Commit}} {
		_, err := Encode(&Workload{Geometry: Geometry{ClusterSize: 4096, TableSize: 1, Size: 1 << 20,
			Backing: []Backing{{Format: "raw", Size: 4096, Fill: 1}}}, Ops: []Op{op}})
		require.ErrorContains(t, err, "not a kind the decoder draws", "%s", op)
	}
	for i, k := range decodeKinds {
		// a 1 MiB image, 4 KiB clusters; then the kind with small fields
		data := []byte{0, 0x80, 0x10, 0, byte(i), 1, 2, 1, 0, 3, 4}
		w := Decode(data)
		require.NotEmpty(t, w.Ops, "kind %s", k)
		require.Equal(t, k, w.Ops[0].Kind)
	}
	_, err := Encode(&Workload{Geometry: Geometry{ClusterSize: 4096, TableSize: 1, Size: DecodeMaxSize + 512}})
	require.ErrorContains(t, err, "beyond")
}

// TestDecodeEdges: a truncated varint ends the input (the bytes after it
// are not read as more fields); a size of DecodeMaxSize/512 sectors is
// DecodeMaxSize; a range's length is taken modulo what is left of the
// image after its offset.
func TestDecodeEdges(t *testing.T) {
	w := Decode([]byte{0, 0x80})
	require.Zero(t, w.Geometry.Size)
	require.Empty(t, w.Geometry.Backing, "the truncated size's byte read again as the chain")
	require.Empty(t, w.Ops)
	size := binary.AppendUvarint([]byte{0}, DecodeMaxSize/512)
	require.Equal(t, int64(DecodeMaxSize), Decode(size).Geometry.Size)
	// 4 KiB clusters, 2 sectors, no backing; a write at 512 of 1+600%512 bytes.
	b := []byte{0, 2, 0, 0}
	b = binary.AppendUvarint(b, 512)
	b = binary.AppendUvarint(b, 600)
	w = Decode(b)
	require.Equal(t, []Op{{Kind: Write, Off: 512, Len: 1 + 600%512, ID: 1}}, w.Ops)
}

// TestEncodeAtTheBounds: an image, a backing file and a resize of
// exactly DecodeMaxSize encode and decode back.
func TestEncodeAtTheBounds(t *testing.T) {
	for _, w := range []*Workload{
		{Geometry: Geometry{ClusterSize: 4096, TableSize: 16, Size: DecodeMaxSize, Backing: []Backing{{Format: "raw", Size: DecodeMaxSize, Fill: 1}}}},
		{Geometry: Geometry{ClusterSize: 4096, TableSize: 16, Size: DecodeMaxSize - 512}, Ops: []Op{{Kind: Resize, Off: DecodeMaxSize}}},
	} {
		require.NoError(t, w.Validate())
		b, err := Encode(w)
		require.NoError(t, err, "%s", w)
		require.Equal(t, w.String(), Decode(b).String())
	}
}
