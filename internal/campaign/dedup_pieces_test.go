package campaign

import (
	"math/rand/v2"
	"os"
	"testing"

	"github.com/qedtorture/qedtorture/crashsim"
	"github.com/spf13/afero"
	"github.com/stretchr/testify/require"
)

// TestKeyOfRandomOps: over random runs of overlapping, unaligned writes
// (often of the same bytes, so different pieces leave equal files),
// truncates and discards on two files of Dir, two states of a crash
// point get equal keyOf keys exactly when their files are byte-identical,
// for every model; keyOf takes the pieces path at every point (no
// namespace change is pending).
func TestKeyOfRandomOps(t *testing.T) {
	seed := testSeed(t)
	r := rand.New(rand.NewPCG(seed, 5))
	models := append(crashsim.Models(), crashsim.Model{Base: crashsim.Prefix, Size: true})
	pairs, equal, points := 0, 0, 0
	for round := range 10 {
		fsys := crashsim.New(crashsim.Options{ImplicitDirSync: true})
		require.NoError(t, fsys.Mkdir(Dir, 0o755))
		var files []afero.File
		for _, n := range []string{Dir + "/a", Dir + "/b"} {
			f, err := fsys.OpenFile(n, os.O_RDWR|os.O_CREATE, 0o644)
			require.NoError(t, err)
			files = append(files, f)
		}
		// A few distinct buffers, written at a few offsets: the same bytes
		// land at the same place through different writes.
		bufs := make([][]byte, 3)
		for i := range bufs {
			bufs[i] = make([]byte, 1+r.IntN(3000))
			for j := range bufs[i] {
				bufs[i][j] = byte(1 + r.IntN(4))
			}
		}
		offs := []int64{0, 512, 700, 4096, 5000}
		for range 10 {
			f := files[r.IntN(2)]
			switch r.IntN(8) {
			case 0:
				require.NoError(t, f.Truncate(r.Int64N(9000)))
			case 1:
				require.NoError(t, fsys.Apply(crashsim.Op{Kind: crashsim.OpDiscard, Path: f.Name(), Off: offs[r.IntN(len(offs))], Size: r.Int64N(3000)}))
			case 2:
				require.NoError(t, f.Sync())
			default:
				_, err := f.WriteAt(bufs[r.IntN(len(bufs))], offs[r.IntN(len(offs))])
				require.NoError(t, err)
			}
		}
		tr := fsys.Trace()
		for _, k := range []int64{int64(len(tr.Ops)) / 2, int64(len(tr.Ops))} {
			rf, err := fsys.Start().Replay(tr, k, crashsim.Options{ImplicitDirSync: true})
			require.NoError(t, err)
			p := rf.Crash()
			sh := newStateHasher()
			var keys []stateKey
			var images []string
			for _, m := range models {
				for id := range p.IDs(m, crashsim.EnumOptions{Bound: 64, Samples: 24, Seed: seed}) {
					st, err := p.State(id)
					require.NoError(t, err)
					key, ok := sh.keyOf(Dir, p, id, st, 0)
					require.True(t, ok, "round %d %s", round, id)
					img := ""
					for _, n := range []string{"a", "b"} {
						b, err := afero.ReadFile(st, Dir+"/"+n)
						require.NoError(t, err)
						img += n + ":" + string(b) + "\x00"
					}
					keys, images = append(keys, key), append(images, img)
				}
			}
			require.True(t, sh.ps.ok, "round %d k=%d: keyOf fell back to key", round, k)
			points++
			for i := range keys {
				for j := range i {
					pairs++
					same := images[i] == images[j]
					if same {
						equal++
					}
					require.Equal(t, same, keys[i] == keys[j], "round %d k=%d states %d and %d", round, k, i, j)
				}
			}
		}
	}
	require.Positive(t, equal)
	require.Greater(t, pairs, equal)
	t.Logf("%d points, %d pairs of states, %d byte-identical", points, pairs, equal)
}

// keyOfMatchesBytes enumerates the states of p under models and requires
// keyOf's keys to be equal exactly when the files of Dir are
// byte-identical, from the pieces path; it returns how many pairs were
// byte-identical and how many differed.
func keyOfMatchesBytes(t *testing.T, p *crashsim.Point, models []crashsim.Model, names ...string) (equal, differ int) {
	t.Helper()
	sh := newStateHasher()
	var keys []stateKey
	var images []string
	for _, m := range models {
		for id := range p.IDs(m, crashsim.EnumOptions{Bound: 64, Samples: 16, Seed: 1}) {
			st, err := p.State(id)
			require.NoError(t, err)
			key, ok := sh.keyOf(Dir, p, id, st, 0)
			require.True(t, ok, "%s", id)
			img := ""
			for _, n := range names {
				b, err := afero.ReadFile(st, Dir+"/"+n)
				require.NoError(t, err)
				img += n + ":" + string(b) + "\x00"
			}
			keys, images = append(keys, key), append(images, img)
		}
	}
	require.True(t, sh.ps.ok, "keyOf fell back to key")
	for i := range keys {
		for j := range i {
			same := images[i] == images[j]
			if same {
				equal++
			} else {
				differ++
			}
			require.Equal(t, same, keys[i] == keys[j], "states %d and %d", i, j)
		}
	}
	return equal, differ
}

// TestKeyOfDurableHoleThenData: the durable file has a hole (its first
// page, never written) followed by data, and the unsynced writes cover
// sectors on both sides of that edge, rewriting the durable bytes (so
// keeping or dropping them leaves the same file) or changing them: the
// durable contributions of the sectors after the hole count (a sector
// of data right after a hole taken as a hole splits byte-identical
// states).
func TestKeyOfDurableHoleThenData(t *testing.T) {
	data := make([]byte, 2*hashPage)
	for i := range data {
		data[i] = byte(i%251 + 1)
	}
	fsys := crashsim.New(crashsim.Options{ImplicitDirSync: true})
	require.NoError(t, fsys.Mkdir(Dir, 0o755))
	f, err := fsys.OpenFile(Dir+"/a", os.O_RDWR|os.O_CREATE, 0o644)
	require.NoError(t, err)
	_, err = f.WriteAt(data, hashPage) // [0, 4096) stays a hole
	require.NoError(t, err)
	require.NoError(t, f.Sync())
	n, err := f.Seek(0, crashsim.SeekData)
	require.NoError(t, err)
	require.EqualValues(t, hashPage, n, "the durable file's first page is a hole")
	// The same bytes as the durable file across the edge (zeros, then the
	// data), then other bytes at the end of the data.
	same := append(make([]byte, keySector), data[:2*keySector]...)
	_, err = f.WriteAt(same, hashPage-keySector)
	require.NoError(t, err)
	_, err = f.WriteAt([]byte("other bytes"), 2*hashPage-100)
	require.NoError(t, err)
	equal, differ := keyOfMatchesBytes(t, fsys.Crash(), []crashsim.Model{{Base: crashsim.Subset}, {Base: crashsim.Torn, Sector: keySector}}, "a")
	require.Positive(t, equal, "states that keep and drop the rewrite of the durable bytes")
	require.Positive(t, differ)
}

// TestKeyOfReusesOnlyTheSameWrite: the campaign keeps one hasher per
// worker across workloads, and keyOf reuses the sums of a write still
// pending from the point it prepared last: a write of another recording
// at the same trace index, offset and length, but with other bytes, is
// summed afresh (its key equals a fresh hasher's).
func TestKeyOfReusesOnlyTheSameWrite(t *testing.T) {
	point := func(fill byte) *crashsim.Point {
		fsys := crashsim.New(crashsim.Options{ImplicitDirSync: true})
		require.NoError(t, fsys.Mkdir(Dir, 0o755))
		f, err := fsys.OpenFile(Dir+"/a", os.O_RDWR|os.O_CREATE, 0o644)
		require.NoError(t, err)
		_, err = f.WriteAt(make([]byte, 4*keySector), 0)
		require.NoError(t, err)
		require.NoError(t, f.Sync())
		b := make([]byte, 2*keySector)
		for i := range b {
			b[i] = fill
		}
		_, err = f.WriteAt(b, keySector)
		require.NoError(t, err)
		return fsys.Crash()
	}
	all := func(p *crashsim.Point) []crashsim.StateID {
		var ids []crashsim.StateID
		for id := range p.IDs(crashsim.Model{Base: crashsim.Subset}, crashsim.EnumOptions{Bound: 8, Samples: 8, Seed: 1}) {
			ids = append(ids, id)
		}
		require.Len(t, ids, 2, "the write kept or dropped")
		return ids
	}
	pa, pb := point(1), point(2)
	shared := newStateHasher()
	fresh := newStateHasher()
	fresh.s1, fresh.s2 = shared.s1, shared.s2
	for _, id := range all(pa) {
		st, err := pa.State(id)
		require.NoError(t, err)
		_, ok := shared.keyOf(Dir, pa, id, st, 0)
		require.True(t, ok)
	}
	keys := map[stateKey]bool{}
	for _, id := range all(pb) {
		st, err := pb.State(id)
		require.NoError(t, err)
		got, ok := shared.keyOf(Dir, pb, id, st, 0)
		require.True(t, ok)
		want, ok := fresh.keyOf(Dir, pb, id, st, 0)
		require.True(t, ok)
		require.Equal(t, want, got, "%s: keyOf after another recording's write at the same index", id)
		keys[got] = true
	}
	require.True(t, shared.ps.ok && fresh.ps.ok, "keyOf from pieces")
	require.Len(t, keys, 2, "the write kept and dropped: two keys")
}

// TestKeyOfSectorEdges: keyOf at the edges of sectors and of the durable
// file: unsynced writes that rewrite the durable bytes of the first, the
// third (one sector after another rewrite: two sums with a sector
// between them) and the last sector of the durable file (so that
// keeping or dropping them leaves the same file), and a write of other
// bytes that ends one byte before a sector's end. Keys are equal exactly
// when the files are.
func TestKeyOfSectorEdges(t *testing.T) {
	data := make([]byte, 8*keySector)
	for i := range data {
		data[i] = byte(i/keySector*7 + i%13 + 1)
	}
	fsys := crashsim.New(crashsim.Options{ImplicitDirSync: true})
	require.NoError(t, fsys.Mkdir(Dir, 0o755))
	f, err := fsys.OpenFile(Dir+"/a", os.O_RDWR|os.O_CREATE, 0o644)
	require.NoError(t, err)
	_, err = f.WriteAt(data, 0)
	require.NoError(t, err)
	require.NoError(t, f.Sync())
	for _, s := range []int{0, 2, 7} { // the durable bytes again
		_, err = f.WriteAt(data[s*keySector:(s+1)*keySector], int64(s*keySector))
		require.NoError(t, err)
	}
	other := make([]byte, keySector-1)
	for i := range other {
		other[i] = 0xee
	}
	_, err = f.WriteAt(other, 5*keySector)
	require.NoError(t, err)
	equal, differ := keyOfMatchesBytes(t, fsys.Crash(), []crashsim.Model{{Base: crashsim.Subset}}, "a")
	require.Positive(t, equal, "states that keep and drop the rewrites of the durable bytes")
	require.Positive(t, differ)
}
