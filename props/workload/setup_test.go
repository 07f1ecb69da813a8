package workload_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/qedtorture/qedtorture/crashsim"
	"github.com/qedtorture/qedtorture/impl/qed/qedtarget"
	"github.com/qedtorture/qedtorture/internal/racetest"
	"github.com/qedtorture/qedtorture/internal/testseed"
	"github.com/qedtorture/qedtorture/props/target"
	"github.com/qedtorture/qedtorture/props/workload"
	"github.com/spf13/afero"
	"github.com/stretchr/testify/require"
)

// TestSetupCacheSameSetup: a setup through a SetupCache performs the same
// filesystem operations, with the same bytes, as one without, for its
// first use, for every use after it (after the workload ran on the files
// written from the cache: commits write into backing files, which must
// not reach the cached bytes), and for a cache last used by another
// workload.
func TestSetupCacheSameSetup(t *testing.T) {
	racetest.Heavy(t)
	seed := testseed.Seed(t, "PROPS_SEED")
	cfg := workload.DefaultGenConfig()
	cfg.HugeChance = 0
	// Lean on the image commands: their files are what the cache walks.
	for _, k := range workload.ImageCommandKinds() {
		cfg.Weights[k] = 6
	}
	tgt := qedtarget.Target{}
	setup := func(w *workload.Workload, c *workload.SetupCache) (*crashsim.FS, *workload.Exec) {
		t.Helper()
		fs := crashsim.New(crashsim.Options{ImplicitDirSync: true})
		e, err := workload.NewExecCached(tgt, fs, "/w", w, c)
		require.NoError(t, err, "%s", w)
		return fs, e
	}
	same := func(what string, w *workload.Workload, got *crashsim.FS, b []crashsim.Op) {
		t.Helper()
		a := got.Trace().Ops
		require.Equal(t, len(b), len(a), "%s: operations of the setup\n%s", what, w)
		for i := range a {
			x, y := a[i], b[i]
			if x.Kind != y.Kind || x.Path != y.Path || x.Off != y.Off || x.Size != y.Size || !bytes.Equal(x.Data, y.Data) {
				t.Fatalf("%s: setup operation %d is %v at %s+%d (%d bytes), want %v at %s+%d (%d bytes)\n%s",
					what, i, x.Kind, x.Path, x.Off, len(x.Data), y.Kind, y.Path, y.Off, len(y.Data), w)
			}
		}
	}
	c := new(workload.SetupCache)
	imageFiles := 0
	for i := range uint64(30) {
		w := workload.Generate(rand.New(rand.NewPCG(seed, i)), cfg)
		plain, pe := setup(w, nil)
		want := plain.Trace().Ops // the setup's, before the close
		require.NoError(t, pe.Disk.Close())
		for round := range 3 {
			fs, e := setup(w, c)
			same(fmt.Sprintf("workload %d, use %d of the cache", i, round), w, fs, want)
			// Run it (the model's checks of every read apply), so that
			// the next use follows writes over the files the cache's
			// bytes were written to.
			require.NoError(t, e.RunAll(), "workload %d:\n%s", i, w)
			if e.Disk != nil {
				require.NoError(t, e.Disk.Close())
			}
		}
		for _, op := range want {
			if op.Kind == crashsim.OpCreate && (bytes.Contains([]byte(op.Path), []byte("alt")) || bytes.Contains([]byte(op.Path), []byte("unsafe"))) {
				imageFiles++
			}
		}
	}
	// The draws above made image commands' files (the part the cache
	// walks once), not only backing files.
	require.Positive(t, imageFiles, "no image command's file was made")
	t.Logf("%d image commands' files", imageFiles)
}

// TestSetupCacheKeepsBytes: a setup through a SetupCache after the first
// writes the very bytes the first generated (the same memory, written
// frozen), for the image commands' files as for the raw backing file:
// the image commands' files are walked once, not on every use (mutant
// checked by hand: the walk kept as not done after it succeeded, so that
// every use walks again, fails here; the files are then the same bytes
// in new memory, which TestSetupCacheSameSetup cannot tell).
func TestSetupCacheKeepsBytes(t *testing.T) {
	w, err := workload.Parse(strings.NewReader(imageCmdsScript))
	require.NoError(t, err)
	c := new(workload.SetupCache)
	var traces [][]crashsim.Op
	for range 3 {
		fs := crashsim.New(crashsim.Options{ImplicitDirSync: true})
		e, err := workload.NewExecCached(qedtarget.Target{}, fs, "/w", w, c)
		require.NoError(t, err)
		var raw []crashsim.Op // the writes of the raw files the setup made
		for _, op := range fs.Trace().Ops {
			if op.Kind == crashsim.OpWrite && strings.HasSuffix(op.Path, ".raw") && len(op.Data) > 0 {
				raw = append(raw, op)
			}
		}
		traces = append(traces, raw)
		require.NoError(t, e.RunAll())
		require.NoError(t, e.Disk.Close())
	}
	first := traces[0]
	// The raw backing file and the three image commands' files
	// (alt3.raw, copy5.raw, alt10.raw).
	require.Len(t, first, 4, "raw files written by the setup: %v", first)
	for use, ops := range traces[1:] {
		require.Len(t, ops, len(first), "use %d of the cache", use+2)
		for i, op := range ops {
			require.Equal(t, first[i].Path, op.Path, "use %d, write %d", use+2, i)
			require.True(t, &op.Data[0] == &first[i].Data[0] && len(op.Data) == len(first[i].Data),
				"use %d of the cache: %s written from bytes generated again, not the first use's", use+2, op.Path)
		}
	}
}

// bufScribbler is impl/qed with a Disk that changes the caller's bytes after
// each write (io.WriterAt forbids it): a broken target's way of reaching
// what the caller keeps.
type bufScribbler struct{ qedtarget.Target }

func (s bufScribbler) Open(fs afero.Fs, path string, opts target.OpenOptions) (target.Disk, error) {
	d, err := s.Target.Open(fs, path, opts)
	if err != nil {
		return nil, err
	}
	return bufScribbleDisk{d}, nil
}

type bufScribbleDisk struct{ target.Disk }

func (d bufScribbleDisk) WriteAt(p []byte, off int64) (int, error) {
	n, err := d.Disk.WriteAt(p, off)
	if len(p) > 0 {
		p[0] ^= 0xff
	}
	return n, err
}

// TestSetupCacheTargetCannotScribble: the bytes a setup writes through the
// target (a QED backing file's fill) are not the cache's, so a target that
// changes a caller's bytes after writing them cannot change what a later
// setup of the workload writes (mutant checked by hand: the QED backing
// file's fill taken from the cache fails here).
func TestSetupCacheTargetCannotScribble(t *testing.T) {
	w, err := workload.Parse(strings.NewReader(imageCmdsScript))
	require.NoError(t, err)
	require.Equal(t, "qed", w.Geometry.Backing[0].Format)
	backingWrites := func(c *workload.SetupCache) [][]byte {
		fs := crashsim.New(crashsim.Options{ImplicitDirSync: true})
		e, err := workload.NewExecCached(bufScribbler{}, fs, "/w", w, c)
		require.NoError(t, err)
		require.NoError(t, e.Disk.Close())
		var out [][]byte
		for _, op := range fs.Trace().Ops {
			if op.Kind == crashsim.OpWrite && strings.HasSuffix(op.Path, "backing0.qed") {
				out = append(out, op.Data)
			}
		}
		return out
	}
	want := backingWrites(nil)
	require.NotEmpty(t, want)
	c := new(workload.SetupCache)
	for use := range 3 {
		require.Equal(t, want, backingWrites(c), "use %d of the cache: the QED backing file's writes differ from a setup without it", use+1)
	}
}
