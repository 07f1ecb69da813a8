package campaign

import (
	"testing"

	"github.com/qedtorture/qedtorture/impl/qed/qedtarget"
	"github.com/qedtorture/qedtorture/props/target"
	"github.com/qedtorture/qedtorture/props/workload"
	"github.com/stretchr/testify/require"
)

// plainTarget hides every optional capability of the target it wraps
// (target.ImageOps among them), as a program that speaks qemu-io's
// commands has none.
type plainTarget struct{ target.Target }

// TestImageCommandsDrawnByCapability: the image commands are in the
// default draw for a driver that runs them (impl/qed, its broken
// wrappers), and left out of it when the driver or the diff driver cannot
// (ImageCommander): no generated workload then holds one.
func TestImageCommandsDrawnByCapability(t *testing.T) {
	withOps := Config{Target: qedtarget.Target{}, Iterations: 1}
	require.NoError(t, withOps.setDefaults())
	for _, b := range qedtarget.Broken() {
		require.True(t, RunsImageCommands(InProcess(b)), "%s", b.Name())
	}
	plain := Config{Target: plainTarget{qedtarget.Target{}}, Iterations: 1}
	require.NoError(t, plain.setDefaults())
	diff := Config{Target: qedtarget.Target{}, Diff: InProcess(plainTarget{qedtarget.Target{}}), Iterations: 1}
	require.NoError(t, diff.setDefaults())
	for _, k := range workload.ImageCommandKinds() {
		require.Equal(t, 1, withOps.Gen.Weights[k], "%s with target.ImageOps", k)
		require.Zero(t, plain.Gen.Weights[k], "%s without target.ImageOps", k)
		require.Zero(t, diff.Gen.Weights[k], "%s with a diff target without target.ImageOps", k)
	}
	drawn := map[bool]int{}
	for w := range 300 {
		for _, c := range []Config{withOps, plain} {
			for _, op := range generate(WorkloadSeed(18, w), c.Gen).Ops {
				if op.Kind == workload.Rebase || op.Kind == workload.RebaseUnsafe || op.Kind == workload.Commit {
					drawn[c.Target == withOps.Target]++
				}
			}
		}
	}
	require.Positive(t, drawn[true], "no image command drawn for impl/qed")
	require.Zero(t, drawn[false], "image commands drawn for a target without target.ImageOps")
}
