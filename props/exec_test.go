package props

import (
	"math/rand/v2"
	"testing"

	"github.com/qedtorture/qedtorture/props/workload"
	"github.com/spf13/afero"
	"github.com/stretchr/testify/require"
)

// TestExecGeneratedWorkloads runs generated workloads on impl/qed without
// crashes: every read must match the model, and the final image must be
// consistent and read back entirely as the model says.
func TestExecGeneratedWorkloads(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d (replay: PROPS_SEED=%d)", seed, seed)
	seed = envSeed(t, seed)
	cfg := workload.DefaultGenConfig()
	for i := range uint64(40) {
		w := workload.Generate(rand.New(rand.NewPCG(seed, i)), cfg)
		fs := afero.NewMemMapFs()
		e, err := NewExec(QEDTarget{}, fs, "/w", w)
		require.NoError(t, err, "workload %d:\n%s", i, w)
		require.NoError(t, e.RunAll(), "workload %d:\n%s", i, w)
		require.NoError(t, e.Disk.Close())
		e.Model.Flush()
		rep, err := CheckStructureFile(fs, e.ImagePath())
		require.NoError(t, err)
		require.True(t, rep.IsConsistent(), "workload %d:\n%s\n%s", i, w, rep)
		require.False(t, rep.NeedCheck())
		d, err := QEDTarget{}.Open(fs, e.ImagePath(), OpenOptions{ReadOnly: true})
		require.NoError(t, err)
		buf := make([]byte, d.Size())
		_, err = d.ReadAt(buf, 0)
		require.NoError(t, err)
		require.NoError(t, e.Model.Verify(0, buf), "workload %d:\n%s", i, w)
		require.NoError(t, d.Close())
	}
}
