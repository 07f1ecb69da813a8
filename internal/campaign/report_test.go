package campaign

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// shardReport is a report of shard i of n with every field Merge combines
// set to a value derived from i, so that a field dropped, taken from the
// wrong report or combined the wrong way shows.
func shardReport(i, n int) *Report {
	k := int64(i + 1)
	return &Report{Version: ReportVersion, Seed: 5, Shard: Shard{i, n}.String(), ShardCount: n, ShardsDone: []int{i},
		Target: "impl/qed", Models: []string{"drop", "prefix"}, Faults: "write:eio@nth=3", FaultShare: 0.5, FaultSweep: 0.3, Iterations: 40, Diff: "other",
		FaultSweeps: 12 * k, FaultSweepRuns: 13 * k, Workloads: 10 * k, FailedWorkloads: k, Skipped: 2 * k, SkipReasons: []string{strings.Repeat("s", i+1)},
		DiffRuns: 3 * k, Faulted: 4 * k, FaultEffects: 5 * k, CrashPoints: 6 * k, CrashStates: 100 * k,
		NestedDepth: i + 1, NestedStates: 7 * k, CreationStates: 8 * k, CreationAbsent: 9 * k, CreationOld: 11 * k,
		OracleRuns: 90 * k, PerModel: map[string]int64{"drop": 40 * k, "prefix": 60 * k},
		Judged: map[string]int64{"impl/qed": 90 * k}, Adaptations: map[string]int64{"kind": k},
		Signatures: map[string]int64{"sig": k}, Known: map[string]int64{"F1": k},
		Failures: []FailureReport{{Workload: i, Signature: "sig"}}, Seconds: float64(10 * k), Workers: i + 1,
		Digest: formatDigest(uint64(1) << i), WorkloadDigest: formatDigest(uint64(1) << (i + 8)),
		Exhaustive: &ExhaustiveReport{Depth: 2, Workloads: 12, Vocabulary: []string{"w"}, Layouts: []string{"l"}, Bound: 16, OverBound: k}}
}

// TestMergeEveryField: Merge adds every count, takes the deepest nested
// depth and the longest shard's seconds, XORs both digests, keeps the
// campaign's identity, bounds the skip reasons, recomputes the rate, and
// labels the shards it covers; a report of another campaign (each
// identity field in turn) is refused naming the field.
func TestMergeEveryField(t *testing.T) {
	a, b := shardReport(0, 3), shardReport(2, 3)
	m, err := Merge(a, b)
	require.NoError(t, err)
	require.Equal(t, ReportVersion, m.Version)
	require.Equal(t, uint64(5), m.Seed)
	require.Equal(t, "0,2/3", m.Shard)
	require.Equal(t, 3, m.ShardCount)
	require.Equal(t, []int{0, 2}, m.ShardsDone)
	require.Equal(t, []int{1}, m.MissingShards)
	require.False(t, m.Complete())
	require.Equal(t, "impl/qed", m.Target)
	require.Equal(t, []string{"drop", "prefix"}, m.Models)
	require.Equal(t, "write:eio@nth=3", m.Faults)
	require.Equal(t, 0.5, m.FaultShare)
	require.Equal(t, 0.3, m.FaultSweep)
	require.EqualValues(t, 48, m.FaultSweeps)
	require.EqualValues(t, 52, m.FaultSweepRuns)
	require.Equal(t, 40, m.Iterations)
	require.Equal(t, "other", m.Diff)
	require.EqualValues(t, 40, m.Workloads)
	require.EqualValues(t, 4, m.FailedWorkloads)
	require.EqualValues(t, 8, m.Skipped)
	require.Equal(t, []string{"s", "sss"}, m.SkipReasons)
	require.EqualValues(t, 12, m.DiffRuns)
	require.EqualValues(t, 16, m.Faulted)
	require.EqualValues(t, 20, m.FaultEffects)
	require.EqualValues(t, 24, m.CrashPoints)
	require.EqualValues(t, 400, m.CrashStates)
	require.Equal(t, 3, m.NestedDepth)
	require.EqualValues(t, 28, m.NestedStates)
	require.EqualValues(t, 32, m.CreationStates)
	require.EqualValues(t, 36, m.CreationAbsent)
	require.EqualValues(t, 44, m.CreationOld)
	require.EqualValues(t, 360, m.OracleRuns)
	require.Equal(t, map[string]int64{"drop": 160, "prefix": 240}, m.PerModel)
	require.Equal(t, map[string]int64{"impl/qed": 360}, m.Judged)
	require.Equal(t, map[string]int64{"kind": 4}, m.Adaptations)
	require.Equal(t, map[string]int64{"sig": 4}, m.Signatures)
	require.Equal(t, map[string]int64{"F1": 4}, m.Known)
	require.Equal(t, []FailureReport{{Workload: 0, Signature: "sig"}, {Workload: 2, Signature: "sig"}}, m.Failures)
	require.Equal(t, 30.0, m.Seconds, "the longest shard")
	require.InDelta(t, 400.0/30, m.StatesPerSecond, 1e-9)
	require.Equal(t, 4, m.Workers)
	require.Equal(t, formatDigest(1|1<<2), m.Digest)
	require.Equal(t, formatDigest(1<<8|1<<10), m.WorkloadDigest)
	require.Equal(t, &ExhaustiveReport{Depth: 2, Workloads: 12, Vocabulary: []string{"w"}, Layouts: []string{"l"}, Bound: 16, OverBound: 4}, m.Exhaustive)
	require.EqualValues(t, 1, a.Exhaustive.OverBound, "the first report's own exhaustive part is not changed")
	require.Empty(t, m.Partial)
	require.False(t, m.Interrupted || m.Checkpoint)

	// One shard: labelled as such, nothing missing; no seconds: no rate.
	one := shardReport(0, 1)
	one.Seconds = 0
	m, err = Merge(one)
	require.NoError(t, err)
	require.Equal(t, "0/1", m.Shard)
	require.True(t, m.Complete())
	require.Zero(t, m.StatesPerSecond)

	// Every shard: "all/N".
	m, err = Merge(shardReport(1, 3), shardReport(0, 3), shardReport(2, 3))
	require.NoError(t, err)
	require.Equal(t, "all/3", m.Shard)
	require.Equal(t, []int{0, 1, 2}, m.ShardsDone)

	// An unsharded campaign's report (shard count 0 in a hand-made
	// report) covers shard 0 of 1.
	z := shardReport(0, 1)
	z.ShardCount = 0
	m, err = Merge(z)
	require.NoError(t, err)
	require.Empty(t, m.MissingShards)

	// The skip reasons are bounded.
	var reps []*Report
	for i := range maxSkipReasons + 2 {
		reps = append(reps, shardReport(i, maxSkipReasons+2))
	}
	m, err = Merge(reps...)
	require.NoError(t, err)
	require.Len(t, m.SkipReasons, maxSkipReasons)

	// Only some reports with an exhaustive part, or none.
	c := shardReport(1, 3)
	c.Exhaustive = nil
	m, err = Merge(c, shardReport(0, 3))
	require.NoError(t, err)
	require.EqualValues(t, 1, m.Exhaustive.OverBound)
	c2 := shardReport(2, 3)
	c2.Exhaustive = nil
	m, err = Merge(c, c2)
	require.NoError(t, err)
	require.Nil(t, m.Exhaustive)
	// Count maps absent everywhere stay absent.
	c.Judged, c2.Judged = nil, map[string]int64{}
	m, err = Merge(c, c2)
	require.NoError(t, err)
	require.Nil(t, m.Judged)

	for _, bad := range []struct {
		what string
		edit func(*Report)
	}{
		{"seed 6", func(r *Report) { r.Seed = 6 }},
		{"shard count 4", func(r *Report) { r.ShardCount = 4 }},
		{"target x", func(r *Report) { r.Target = "x" }},
		{"models [drop]", func(r *Report) { r.Models = []string{"drop"} }},
		{`diff target "y"`, func(r *Report) { r.Diff = "y" }},
		{`faults ""`, func(r *Report) { r.Faults = "" }},
		{"fault share 0.25", func(r *Report) { r.FaultShare = 0.25 }},
		{"fault sweep share 0.5", func(r *Report) { r.FaultSweep = 0.5 }},
		{"iterations 41", func(r *Report) { r.Iterations = 41 }},
		{`digest "zz" is not hex`, func(r *Report) { r.Digest = "zz" }},
		{`workload_digest "zz" is not hex`, func(r *Report) { r.WorkloadDigest = "zz" }},
	} {
		r := shardReport(2, 3)
		bad.edit(r)
		_, err := Merge(shardReport(0, 3), r)
		require.ErrorIs(t, err, ErrMerge, bad.what)
		require.ErrorContains(t, err, "report 1", bad.what)
		require.ErrorContains(t, err, bad.what)
	}
	_, err = Merge()
	require.ErrorIs(t, err, ErrMerge)
	// A report without a workload digest (written before it existed)
	// merges: its share is nothing.
	old := shardReport(2, 3)
	old.WorkloadDigest = ""
	m, err = Merge(shardReport(0, 3), old)
	require.NoError(t, err)
	require.Equal(t, formatDigest(1<<8), m.WorkloadDigest)
}

// TestReadReportVersions: versions 1 and 2 are read, 0 and 3 refused
// (naming the version), as are unknown fields.
func TestReadReportVersions(t *testing.T) {
	for v, ok := range map[string]bool{"0": false, "1": true, "2": true, "3": false} {
		r, err := ReadReport(strings.NewReader(`{"version":` + v + `,"seed":9}`))
		if !ok {
			require.ErrorContains(t, err, "version "+v, v)
			continue
		}
		require.NoError(t, err, v)
		require.EqualValues(t, 9, r.Seed)
	}
	_, err := ReadReport(strings.NewReader(`{"version":2,"bogus":1}`))
	require.ErrorContains(t, err, "bogus")
	var buf bytes.Buffer
	rep := shardReport(1, 3)
	require.NoError(t, rep.WriteJSON(&buf))
	back, err := ReadReport(&buf)
	require.NoError(t, err)
	require.Equal(t, rep, back)
}

// TestExhaustiveSummary: the one line of an exhaustive report, with the
// workloads of the other shards and the pairs over the bound only when
// there are any.
func TestExhaustiveSummary(t *testing.T) {
	r := &Report{Workloads: 9, FailedWorkloads: 2, Skipped: 1, CrashStates: 50,
		Exhaustive: &ExhaustiveReport{Depth: 2, Workloads: 12, Bound: 16}}
	require.Equal(t, "exhaustive to depth 2: 11 workloads, 50 crash states, 2 failures", r.ExhaustiveSummary())
	r.Skipped = 0
	require.Equal(t, "exhaustive to depth 2: 11 workloads, 50 crash states, 2 failures (of 12 workloads in all shards)", r.ExhaustiveSummary())
	r.Exhaustive.OverBound = 1
	require.Equal(t, "exhaustive to depth 2: 11 workloads, 50 crash states, 2 failures (of 12 workloads in all shards); 1 (point, model) pairs over the bound 16 were sampled", r.ExhaustiveSummary())
	require.Empty(t, (&Report{}).ExhaustiveSummary())
}
