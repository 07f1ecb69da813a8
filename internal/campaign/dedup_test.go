package campaign

import (
	"slices"
	"testing"

	"github.com/qedtorture/qedtorture/crashsim"
	"github.com/qedtorture/qedtorture/impl/qed/qedtarget"
	"github.com/spf13/afero"
	"github.com/stretchr/testify/require"
)

// TestStateKeyIgnoresHistory: a state's key depends on its point and its
// bytes only, not on what the hasher hashed before: the campaign keeps one
// hasher per worker across workloads, so the point before may be another
// recording's at the same trace index (its durable image and unsynced
// operations another workload's).
func TestStateKeyIgnoresHistory(t *testing.T) {
	a, err := Record(qedtarget.Target{}, benchWorkload(4096, 64<<10, 8, 4), 1, "")
	require.NoError(t, err)
	b, err := Record(qedtarget.Target{}, benchWorkload(4096, 64<<10, 8, 2), 1, "")
	require.NoError(t, err)
	shared := newStateHasher()
	checked := 0
	for _, k := range b.PointKs(4) {
		if k >= int64(len(a.Trace.Ops)) {
			continue
		}
		pa, err := a.Point(k)
		require.NoError(t, err)
		pb, err := b.Point(k)
		require.NoError(t, err)
		fresh := newStateHasher()
		fresh.s1, fresh.s2 = shared.s1, shared.s2
		for id := range pb.IDs(crashsim.Model{Base: crashsim.Subset}, crashsim.EnumOptions{Bound: 16, Samples: 8, Seed: 1}) {
			// The shared hasher saw a's point at the same index last.
			sa, err := pa.State(crashsim.StateID{K: k, Model: crashsim.Model{Base: crashsim.Drop}})
			require.NoError(t, err)
			_, ok := shared.key(Dir, pa, sa, 0)
			require.True(t, ok)
			sb, err := pb.State(id)
			require.NoError(t, err)
			got, ok := shared.key(Dir, pb, sb, 0)
			require.True(t, ok)
			want, ok := fresh.key(Dir, pb, sb, 0)
			require.True(t, ok)
			require.Equal(t, want, got, "k=%d %s: the key after another recording's point", k, id)
			// keyOf (the campaign's), likewise.
			_, ok = shared.keyOf(Dir, pa, crashsim.StateID{K: k, Model: crashsim.Model{Base: crashsim.Drop}}, sa, 0)
			require.True(t, ok)
			got, ok = shared.keyOf(Dir, pb, id, sb, 0)
			require.True(t, ok)
			want, ok = fresh.keyOf(Dir, pb, id, sb, 0)
			require.True(t, ok)
			require.Equal(t, want, got, "k=%d %s: keyOf after another recording's point", k, id)
			checked++
		}
	}
	require.Greater(t, checked, 4, "states checked")
}

// TestStateKeyZerosOverData: a crash state whose file reads zeros where
// the durable file holds data, at the same length, gets another key than
// the state that keeps the durable data: an unsynced shrink and regrow
// (both truncates kept), and an unsynced discard (as QEMU's block-layer
// log records them).
func TestStateKeyZerosOverData(t *testing.T) {
	data := make([]byte, 3*hashPage)
	for i := range data {
		data[i] = byte(i%251 + 1)
	}
	for _, c := range []struct {
		name   string
		zeroed [2]int // the bytes the change zeroes
		// change makes the unsynced change, on f or as ops appended to
		// the trace tr (returned; nil: made on f).
		change func(f afero.File, tr *crashsim.Trace) *crashsim.Trace
	}{
		{"shrink and regrow", [2]int{0, len(data)}, func(f afero.File, _ *crashsim.Trace) *crashsim.Trace {
			require.NoError(t, f.Truncate(0))
			require.NoError(t, f.Truncate(int64(len(data))))
			return nil
		}},
		{"discard", [2]int{hashPage, 2 * hashPage}, func(_ afero.File, tr *crashsim.Trace) *crashsim.Trace {
			w := tr.Ops[len(tr.Ops)-2] // the write before the sync
			require.Equal(t, crashsim.OpWrite, w.Kind)
			tr.Ops = append(tr.Ops, crashsim.Op{Index: int64(len(tr.Ops)), Kind: crashsim.OpDiscard, File: w.File, Path: w.Path, Off: hashPage, Size: hashPage})
			return tr
		}},
	} {
		fs := crashsim.New(fsOptions)
		require.NoError(t, fs.MkdirAll(Dir, 0o755))
		f, err := fs.Create(ImagePath)
		require.NoError(t, err)
		_, err = f.WriteAt(data, 0)
		require.NoError(t, err)
		require.NoError(t, f.Sync())
		var p *crashsim.Point
		if tr := c.change(f, fs.Trace()); tr != nil {
			rfs, err := crashsim.EmptyImage().Replay(tr, int64(len(tr.Ops)), fsOptions)
			require.NoError(t, err)
			p, err = rfs.Point()
			require.NoError(t, err)
		} else {
			p, err = fs.Point()
			require.NoError(t, err)
		}
		require.NoError(t, f.Close())
		sh, pk := newStateHasher(), newStateHasher()
		keys, pkeys := map[string]stateKey{}, map[string]stateKey{} // by the file's contents
		for id := range p.IDs(crashsim.Model{Base: crashsim.Subset}, crashsim.EnumOptions{Bound: 64, Samples: 64, Seed: 1}) {
			st, err := p.State(id)
			require.NoError(t, err)
			b, err := afero.ReadFile(st, ImagePath)
			require.NoError(t, err)
			key, ok := sh.key(Dir, p, st, 0)
			require.True(t, ok)
			if k, seen := keys[string(b)]; seen {
				require.Equal(t, k, key, "%s, %s: the same bytes", c.name, id)
			}
			keys[string(b)] = key
			pkey, ok := pk.keyOf(Dir, p, id, st, 0)
			require.True(t, ok)
			if k, seen := pkeys[string(b)]; seen {
				require.Equal(t, k, pkey, "%s, %s: keyOf, the same bytes", c.name, id)
			}
			pkeys[string(b)] = pkey
		}
		require.True(t, pk.ps.ok, "%s: keyOf from pieces", c.name)
		require.NotEqual(t, pkeys[string(slices.Concat(data[:c.zeroed[0]], make([]byte, c.zeroed[1]-c.zeroed[0]), data[c.zeroed[1]:]))], pkeys[string(data)], "%s: keyOf: the zeros and the durable data share a key", c.name)
		zeroed := slices.Clone(data)
		clear(zeroed[c.zeroed[0]:c.zeroed[1]])
		require.Contains(t, keys, string(zeroed), "%s: a state with the zeros", c.name)
		require.Contains(t, keys, string(data), "%s: a state with the durable data", c.name)
		require.NotEqual(t, keys[string(zeroed)], keys[string(data)], "%s: the zeros and the durable data share a key", c.name)
	}
}
