package workload_test

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/qedtorture/qedtorture/impl/qed/qedtarget"
	"github.com/qedtorture/qedtorture/props/target"
	"github.com/qedtorture/qedtorture/props/workload"
	"github.com/spf13/afero"
	"github.com/stretchr/testify/require"
)

// idleCounter is impl/qed whose Disks count their Idle calls.
type idleCounter struct {
	qedtarget.Target
	n *int
}

func (c idleCounter) Open(fs afero.Fs, p string, o target.OpenOptions) (target.Disk, error) {
	d, err := c.Target.Open(fs, p, o)
	if err != nil {
		return nil, err
	}
	return countingIdler{d, c.n}, nil
}

type countingIdler struct {
	target.Disk
	n *int
}

func (c countingIdler) Idle() error { *c.n++; return c.Disk.(target.Idler).Idle() }

// TestIdleOp: "idle" round-trips, is refused in a concurrent group,
// calls the Disk's Idle (and is a no-op on a Disk without it); the
// generator inserts it after the first op (IdleChance), and Decode draws
// it.
func TestIdleOp(t *testing.T) {
	const script = "qedtorture-workload v1\nimage cluster_size=4096 table_size=2 size=65536\nwrite 0x0 0x1000 id=1\nidle\nread 0x0 0x1000\n"
	w, err := workload.Parse(strings.NewReader(script))
	require.NoError(t, err)
	require.Equal(t, script, w.String())
	_, err = workload.Parse(strings.NewReader("qedtorture-workload v1\nimage cluster_size=4096 table_size=2 size=65536\nidle 1\n"))
	require.ErrorContains(t, err, "idle takes 0 argument(s)")
	bad := w.Clone()
	bad.Ops = []workload.Op{{Kind: workload.Concurrent, Group: []workload.Op{{Kind: workload.Idle}}}}
	require.ErrorContains(t, bad.Validate(), "concurrent groups hold writes only")

	n := 0
	e, err := workload.NewExec(idleCounter{qedtarget.Target{}, &n}, afero.NewMemMapFs(), "/w", w)
	require.NoError(t, err)
	require.NoError(t, e.RunAll())
	require.Equal(t, 1, n)
	e, err = workload.NewExec(struct{ target.Target }{qedtarget.Target{}}, afero.NewMemMapFs(), "/w", w)
	require.NoError(t, err)
	require.NoError(t, e.RunAll(), "a Disk without Idle: nothing")

	cfg := workload.DefaultGenConfig()
	cfg.IdleChance = 1
	for i := range uint64(50) {
		w := workload.Generate(rand.New(rand.NewPCG(3, i)), cfg)
		idle := 0
		for j, op := range w.Ops {
			if op.Kind == workload.Idle {
				idle++
				require.Positive(t, j, "after the first op")
			}
		}
		require.Equal(t, 1, idle, "workload %d", i)
	}
	// The kind byte 11 decodes to idle (appended to the decoder's kinds).
	d := workload.Decode([]byte{0, 16, 0, 11})
	require.Len(t, d.Ops, 1)
	require.Equal(t, workload.Idle, d.Ops[0].Kind)
	b, err := workload.Encode(d)
	require.NoError(t, err)
	require.Equal(t, d.String(), workload.Decode(b).String())
}

// TestGenerateNoOpsNoIdle: a configuration that asks for no ops and no
// extra that adds one draws an empty workload: the idle op, inserted
// after the first op, has no place (instead of failing on the empty
// list).
func TestGenerateNoOpsNoIdle(t *testing.T) {
	cfg := workload.DefaultGenConfig()
	cfg.Ops, cfg.IdleChance = 0, 1
	cfg.HostileChance, cfg.HostileAgainChance, cfg.LongChance, cfg.HugeChance = 0, 0, 0, 0
	cfg.PagedChance, cfg.BackedLongChance, cfg.CraftChance, cfg.TailChance, cfg.ZeroDataChance = 0, 0, 0, 0, 0
	for seed := range uint64(50) {
		if w := workload.Generate(rand.New(rand.NewPCG(1, seed)), cfg); len(w.Ops) != 0 {
			t.Fatalf("seed %d: ops %v in a workload asked to have none", seed, w.Ops)
		}
	}
}
