package campaign

import (
	"context"
	"testing"

	"github.com/qedtorture/qedtorture/crashsim"
	"github.com/qedtorture/qedtorture/impl/qed/qedtarget"
	"github.com/stretchr/testify/require"
)

// TestCampaignExploration: a campaign asserts its own exploration. Its
// report counts exactly the crash points and states its configuration
// implies, recounted here workload by workload from the seeds: every
// workload of the index space completed; at each, every sync after the
// setup, the end and the sampled operation indices are crash points; at
// each point every configured model contributes its states (all of them up
// to Bound, else Samples, and at least one); the per-model counts add up.
func TestCampaignExploration(t *testing.T) {
	seed := testSeed(t)
	cfg := Config{Target: qedtarget.Target{}, Seed: seed, Iterations: 6, Workers: 2, Gen: quickGen(), Models: quickModels,
		Bound: 16, Samples: 4, SampledPoints: 3}
	rep, err := Run(context.Background(), cfg)
	require.NoError(t, err)
	require.Empty(t, rep.Failures, "%+v", rep.Failures)
	require.EqualValues(t, cfg.Iterations, rep.Workloads, "workloads completed")
	require.Zero(t, rep.Skipped)

	var points, states int64
	perModel := map[string]int64{}
	for w := range cfg.Iterations {
		ws := WorkloadSeed(seed, w)
		wl := generate(ws, cfg.Gen)
		rec, err := Record(qedtarget.Target{}, wl, ws, "")
		require.NoError(t, err)
		require.Nil(t, rec.OpErr)
		ks := rec.PointKs(cfg.SampledPoints)
		require.GreaterOrEqual(t, len(ks), len(rec.Syncs), "workload %d: every sync is a crash point", w)
		require.Equal(t, rec.End.K(), ks[len(ks)-1], "workload %d: the end is a crash point", w)
		for k := range rec.Syncs {
			require.Contains(t, ks, k, "workload %d: sync at %d", w, k)
		}
		points += int64(len(ks))
		for _, k := range ks {
			p, err := rec.Point(k)
			require.NoError(t, err)
			for _, m := range cfg.Models {
				n := int64(0)
				for range p.IDs(m, crashsim.EnumOptions{Bound: cfg.Bound, Samples: cfg.Samples}) {
					n++
				}
				require.Positive(t, n, "workload %d point %d: no state under %s", w, k, m)
				perModel[m.String()] += n
				states += n
			}
		}
	}
	require.Equal(t, points, rep.CrashPoints, "crash points")
	require.Equal(t, states, rep.CrashStates, "crash states")
	require.Len(t, rep.PerModel, len(cfg.Models))
	for m, n := range perModel {
		require.Equal(t, n, rep.PerModel[m], "crash states under %s", m)
		require.GreaterOrEqual(t, n, points, "at least one state per point under %s", m)
	}
	// Deduplication skips only byte-identical repeats: the oracle ran at
	// least once per workload and never more than once per state.
	require.LessOrEqual(t, rep.OracleRuns, rep.CrashStates)
	require.GreaterOrEqual(t, rep.OracleRuns, rep.Workloads)
	t.Logf("%d workloads, %d points, %d states (%d oracle runs), per model %v", rep.Workloads, points, states, rep.OracleRuns, rep.PerModel)
}
