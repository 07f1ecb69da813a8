package campaign

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"

	"github.com/qedtorture/qedtorture/impl/qed/qedtarget"
	"github.com/qedtorture/qedtorture/props/oracle"
	"github.com/qedtorture/qedtorture/props/target"
	"github.com/qedtorture/qedtorture/props/workload"
	"github.com/spf13/afero"
	"github.com/stretchr/testify/require"
)

// rewritesBase is impl/qed whose commit into a deeper base (-b) first
// scribbles over a sector of the base that the image allocates (synced),
// which the commit then overwrites with the image's data: the final base
// is right, the image reads the same throughout, a crash in between
// leaves the base with a sector that is neither its old contents nor the
// image's.
type rewritesBase struct{ qedtarget.Target }

func (rewritesBase) Name() string { return "broken:commit-rewrites-base" }

func (r rewritesBase) Commit(fs afero.Fs, p string, o target.CommitOptions) error {
	if o.Base != "" {
		base := "/w/" + o.Base
		if err := scribble(fs, base); err != nil {
			return err
		}
	}
	return r.Target.Commit(fs, p, o)
}

func scribble(fs afero.Fs, name string) error {
	f, err := fs.OpenFile(name, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.WriteAt(bytes.Repeat([]byte{0xaa}, 512), 0x1000); err != nil {
		return err
	}
	return f.Sync()
}

// TestCommitDeeperBaseJudged: the crash states of a commit -b judge the
// base at depth 2 (stage commit-base) as those of a commit into the own
// backing file judge it: a commit that passes through a base
// fails there, impl/qed's passes.
func TestCommitDeeperBaseJudged(t *testing.T) {
	w, err := workload.Parse(strings.NewReader(`qedtorture-workload v1
image cluster_size=4096 table_size=1 size=262144
backing qed size=196608 cluster_size=4096 table_size=2 fill=2
backing raw size=131072 fill=1
write 0x1000 0x3000 id=3
commit -b 2
read 0x0 0x40000
`))
	require.NoError(t, err)
	for _, c := range []struct {
		tgt  target.Target
		fail bool
	}{{qedtarget.Target{}, false}, {rewritesBase{}, true}} {
		rep, err := Run(context.Background(), Config{Target: c.tgt, TargetName: c.tgt.Name(), Seed: 1, Iterations: 1, Workload: w,
			Models: oracle.DefaultModels(), Bound: DefaultBound, Samples: DefaultSamples, SampledPoints: DefaultSampledPoints})
		require.NoError(t, err)
		if !c.fail {
			require.Empty(t, rep.Failures, "%+v", rep.Failures)
			continue
		}
		require.NotEmpty(t, rep.Failures, c.tgt.Name())
		f := rep.Failures[0]
		require.Equal(t, string(oracle.StageCommitBase), string(f.Stage), "%+v", f)
		require.Contains(t, f.Message, "backing1.raw")
	}
}
