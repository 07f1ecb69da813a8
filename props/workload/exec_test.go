package workload_test

import (
	"math/rand/v2"
	"testing"

	"github.com/qedtorture/qedtorture/impl/qed/qedtarget"
	"github.com/qedtorture/qedtorture/internal/testseed"
	"github.com/qedtorture/qedtorture/props/check"
	"github.com/qedtorture/qedtorture/props/target"
	"github.com/qedtorture/qedtorture/props/workload"
	"github.com/spf13/afero"
	"github.com/stretchr/testify/require"
)

// TestExecGeneratedWorkloads runs generated workloads on impl/qed without
// crashes: every read must match the model, and the final image must be
// consistent and read back entirely as the model says. The seed is random
// and printed; PROPS_SEED=N replays it.
func TestExecGeneratedWorkloads(t *testing.T) {
	seed := testseed.Seed(t, "PROPS_SEED")
	cfg := workload.DefaultGenConfig()
	cfg.HugeChance = 0 // every guest byte is read back at once below: no 4 GiB images
	for i := range uint64(40) {
		w := workload.Generate(rand.New(rand.NewPCG(seed, i)), cfg)
		fs := afero.NewMemMapFs()
		e, err := workload.NewExec(qedtarget.Target{}, fs, "/w", w)
		require.NoError(t, err, "workload %d:\n%s", i, w)
		require.NoError(t, e.RunAll(), "workload %d:\n%s", i, w)
		require.NoError(t, e.Disk.Close())
		e.Model.Flush()
		f, err := fs.Open(e.ImagePath())
		require.NoError(t, err)
		rep, err := check.File(f)
		require.NoError(t, f.Close())
		require.NoError(t, err)
		require.True(t, rep.IsConsistent(), "workload %d:\n%s\n%s", i, w, rep)
		require.False(t, rep.NeedCheck())
		d, err := qedtarget.Target{}.Open(fs, e.ImagePath(), target.OpenOptions{ReadOnly: true})
		require.NoError(t, err)
		buf := make([]byte, d.Size())
		_, err = d.ReadAt(buf, 0)
		require.NoError(t, err)
		require.NoError(t, e.Model.Verify(0, buf), "workload %d:\n%s", i, w)
		require.NoError(t, d.Close())
	}
}
