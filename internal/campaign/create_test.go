package campaign

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qedtorture/qedtorture/crashsim"
	"github.com/qedtorture/qedtorture/impl/qed/qedtarget"
	"github.com/qedtorture/qedtorture/props/oracle"
	"github.com/qedtorture/qedtorture/props/target"
	"github.com/qedtorture/qedtorture/props/workload"
	"github.com/spf13/afero"
	"github.com/stretchr/testify/require"
)

// TestCreateCrashesPassOnQED: with every workload's creation recorded
// under real directory semantics, impl/qed passes; the report counts the
// creation states and those with the image absent (all of them).
func TestCreateCrashesPassOnQED(t *testing.T) {
	seed := testSeed(t)
	g := quickGen()
	g.BackingChance = 0.5 // the backing chain's creation too
	rep, err := Run(context.Background(), Config{Target: qedtarget.Target{}, Seed: seed, Iterations: 6, Workers: 2, Gen: g, Models: quickModels,
		Bound: 16, Samples: 4, SampledPoints: 2, CreateShare: 1})
	require.NoError(t, err)
	require.Empty(t, rep.Failures, "%+v", rep.Failures)
	require.Positive(t, rep.CreationStates)
	require.Positive(t, rep.CreationAbsent)
	// impl/qed syncs the directory last (image.go, Create): a crash before
	// that leaves no image, and once it is done the creation is over.
	require.Equal(t, rep.CreationAbsent, rep.CreationStates, "a crash during impl/qed's creation leaves no image")
	t.Logf("%d crash states, %d during creation (%d with the image absent)", rep.CrashStates, rep.CreationStates, rep.CreationAbsent)
}

// halfCreate is impl/qed whose Create writes the image's header and table
// in place without syncing them before the directory: the name becomes
// durable with a half-written image under it.
type halfCreate struct{ qedtarget.Target }

func (halfCreate) Name() string { return "half-create" }

func (h halfCreate) Create(fs afero.Fs, path string, o target.CreateOptions) error {
	mem := afero.NewMemMapFs()
	if err := h.Target.Create(mem, "/img", o); err != nil {
		return err
	}
	b, err := afero.ReadFile(mem, "/img")
	if err != nil {
		return err
	}
	f, err := fs.Create(path)
	if err != nil {
		return err
	}
	d, err := fs.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	err = d.Sync() // the name first: unsafe
	d.Close()
	if err != nil {
		return err
	}
	if _, err := f.WriteAt(b, 0); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	return f.Close()
}

// TestCreateJudgeCatchesHalfCreate: a create that makes the name durable
// before the image is written leaves a file that is not an image; the
// creation judge rejects it (stage creation), the artifact records the
// creation and replays.
func TestCreateJudgeCatchesHalfCreate(t *testing.T) {
	w, err := workload.Parse(strings.NewReader("qedtorture-workload v1\nimage cluster_size=4096 table_size=1 size=65536\nwrite 0 4096 id=1\nflush\n"))
	require.NoError(t, err)
	out := t.TempDir()
	rep, err := Run(context.Background(), Config{Target: halfCreate{}, Seed: 1, Iterations: 1, Workload: w, Models: []crashsim.Model{{Base: crashsim.Subset}},
		CreateShare: 1, Out: out})
	require.NoError(t, err)
	require.Len(t, rep.Failures, 1)
	fr := rep.Failures[0]
	require.Equal(t, CreateJudgeName, fr.Judge)
	require.True(t, strings.HasPrefix(fr.Signature, "create/"), fr.Signature)
	t.Logf("%s: %s", fr.Signature, fr.Message)
	res, err := Replay(fr.Artifact, ReplayOptions{Resolve: func(string) (Driver, error) { return InProcess(halfCreate{}), nil }})
	require.NoError(t, err)
	require.True(t, res.Fails())
	require.Equal(t, fr.Stage, string(res.Failure.Stage))
	// impl/qed itself passes the same workload's creation.
	rep, err = Run(context.Background(), Config{Target: qedtarget.Target{}, Seed: 1, Iterations: 1, Workload: w, Models: oracle.DefaultModels(), CreateShare: 1})
	require.NoError(t, err)
	require.Empty(t, rep.Failures)
}
