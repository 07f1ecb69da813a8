package campaign

import (
	"maps"
	"testing"

	"github.com/qedtorture/qedtorture/crashsim"
	"github.com/qedtorture/qedtorture/impl/qed/qedtarget"
	"github.com/qedtorture/qedtorture/internal/racetest"
	"github.com/qedtorture/qedtorture/props/oracle"
	"github.com/qedtorture/qedtorture/props/target"
	"github.com/qedtorture/qedtorture/props/workload"
	"github.com/spf13/afero"
	"github.com/stretchr/testify/require"
)

// flipTarget is impl/qed whose reads return one guest byte (at flipAt)
// inverted: a data defect the oracle must report at that offset.
type flipTarget struct {
	qedtarget.Target
	flipAt int64
}

type flipDisk struct {
	target.Disk
	flipAt int64
}

func (t flipTarget) Open(fs afero.Fs, path string, o target.OpenOptions) (target.Disk, error) {
	d, err := t.Target.Open(fs, path, o)
	if err != nil {
		return nil, err
	}
	return flipDisk{d, t.flipAt}, nil
}

func (d flipDisk) ReadAt(p []byte, off int64) (int, error) {
	n, err := d.Disk.ReadAt(p, off)
	if i := d.flipAt - off; i >= 0 && i < int64(n) {
		p[i] ^= 0xff
	}
	return n, err
}

// TestOracleSpeedupsKeepDataChecks: the oracle's speed-ups (the durable
// contents compared per block against a shared zero block, the model's
// uncertain ranges checked once by Recover from the bytes the data stage
// read, lazily generated candidates) still report a wrong guest byte at
// its offset, at the data stage, inside an uncertain range (a pending
// write), outside one over written data and outside one over zeros, with
// and without the durable contents.
func TestOracleSpeedupsKeepDataChecks(t *testing.T) {
	w := benchWorkload(4096, 64<<10, 6, 2)
	rec, err := Record(qedtarget.Target{}, w, 1, "")
	require.NoError(t, err)
	require.True(t, rec.OpErr == nil, "workload failed: %v", rec.OpErr)
	checked := 0
	for _, k := range rec.PointKs(8) {
		m := rec.ModelAt(k)
		unc := m.Uncertain()
		if len(unc) == 0 {
			continue
		}
		d, err := oracle.NewDurable(m)
		require.NoError(t, err)
		p, err := rec.Point(k)
		require.NoError(t, err)
		// Offsets: in the middle of the last uncertain range, in the
		// first cluster (written and flushed by the workload, or zero),
		// and in the last cluster (never written: zeros).
		last := unc[len(unc)-1]
		for _, at := range []int64{last.Off + last.Len/2, 100, m.Size() - 1} {
			for id := range p.IDs(crashsim.Model{Base: crashsim.Subset}, crashsim.EnumOptions{Bound: 4, Samples: 2, Seed: 1}) {
				for _, dur := range []*oracle.Durable{nil, d} {
					st, err := p.State(id)
					require.NoError(t, err)
					v := oracle.Judge(flipTarget{flipAt: at}, st, ImagePath, m.Clone(), oracle.Options{Durable: dur})
					require.Equal(t, oracle.StageData, v.Stage, "k=%d %s flip at %#x durable=%v: %v", k, id, at, dur != nil, v)
					require.NotNil(t, v.Mismatch)
					require.Equal(t, at, v.Mismatch.Off, "k=%d %s", k, id)
					checked++
				}
			}
		}
	}
	require.Positive(t, checked)
	t.Logf("%d flipped states judged", checked)
}

// TestStateKeyExact: two crash states of one point get the same dedup key
// exactly when every file of Dir is byte-identical (names, lengths,
// contents), over every state of the subset, torn and prefix models at
// each crash point of a workload with unsynced writes; and the key read
// from the pages the point's unsynced operations touch equals the key
// read from every page. The second workload's image (1 MiB clusters)
// grows by file extensions past the durable length (a new L2 table, data
// clusters), whose holes the key skips (dataRuns).
func TestStateKeyExact(t *testing.T) {
	racetest.Heavy(t)
	t.Run("4K", func(t *testing.T) { testStateKeyExact(t, benchWorkload(4096, 64<<10, 8, 4)) })
	t.Run("1M", func(t *testing.T) { testStateKeyExact(t, benchWorkload(1<<20, 8<<20, 4, 2)) })
}

func testStateKeyExact(t *testing.T, w *workload.Workload) {
	rec, err := Record(qedtarget.Target{}, w, 1, "")
	require.NoError(t, err)
	sh := newStateHasher()
	full := newStateHasher() // same seeds, every page read and compared
	full.s1, full.s2, full.full = sh.s1, sh.s2, true
	pk := newStateHasher() // keyOf: from the states' pieces
	pairs, equal, exactPoints, piecePoints := 0, 0, 0, 0
	for _, k := range rec.PointKs(0) {
		p, err := rec.Point(k)
		require.NoError(t, err)
		var keys, pkeys []stateKey
		var images []map[string]string
		models := []crashsim.Model{{Base: crashsim.Subset}, {Base: crashsim.Torn, Sector: 512}, {Base: crashsim.Prefix},
			{Base: crashsim.Torn, Sector: 4096, Size: true}, {Base: crashsim.Subset, Size: true}, {Base: crashsim.Torn, Sector: 512, Garbage: true}}
		for _, m := range models {
			for id := range p.IDs(m, crashsim.EnumOptions{Bound: 16, Samples: 8, Seed: 1}) {
				st, err := p.State(id)
				require.NoError(t, err)
				pkey, ok := pk.keyOf(Dir, p, id, st, 0)
				require.True(t, ok, "k=%d %s", k, id)
				pkeys = append(pkeys, pkey)
				key, ok := sh.key(Dir, p, st, 0)
				require.True(t, ok)
				fkey, ok := full.key(Dir, p, st, 0)
				require.True(t, ok)
				require.Equal(t, fkey, key, "k=%d %s: reading only the dirty pages changes the key", k, id)
				img := map[string]string{}
				infos, err := afero.ReadDir(st, Dir)
				require.NoError(t, err)
				for _, fi := range infos {
					b, err := afero.ReadFile(st, Dir+"/"+fi.Name())
					require.NoError(t, err)
					img[fi.Name()] = string(b)
				}
				keys, images = append(keys, key), append(images, img)
			}
		}
		if sh.exact {
			exactPoints++
		}
		if pk.ps.ok {
			piecePoints++
		}
		for i := range keys {
			for j := range i {
				pairs++
				same := maps.Equal(images[i], images[j])
				if same {
					equal++
				}
				require.Equal(t, same, keys[i] == keys[j], "k=%d states %d and %d", k, i, j)
				require.Equal(t, same, pkeys[i] == pkeys[j], "keyOf: k=%d states %d and %d", k, i, j)
			}
		}
	}
	require.Positive(t, exactPoints, "the dirty-pages path must be taken")
	require.Positive(t, piecePoints, "keyOf's pieces path must be taken")
	require.Positive(t, equal, "some states must be byte-identical")
	require.Greater(t, pairs, equal, "some states must differ")
	t.Logf("%d pairs of states, %d byte-identical, %d of %d points keyed from pieces", pairs, equal, piecePoints, len(rec.PointKs(0)))
}
