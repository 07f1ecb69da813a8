package campaign

import (
	"context"
	"strings"
	"testing"

	"github.com/qedtorture/qedtorture/impl/qed/qedtarget"
	"github.com/qedtorture/qedtorture/props/oracle"
	"github.com/qedtorture/qedtorture/props/workload"
	"github.com/stretchr/testify/require"
)

// TestBigShapesJudged: the big shapes of issue 16 (workload.GenConfig's
// PagedChance and BackedLongChance) as the generator draws them, every
// crash state judged, pass on impl/qed: a write across guest clusters 511
// and 512 of a paged table (8 KiB clusters, 16-cluster tables: 128 KiB,
// pages of 512 entries), whose L2 update is one table write over both
// pages (and one over an empty page between two with entries, then a
// reopen), and a long unaligned write over a backing file, a copy-on-write
// of more than 4 MiB with partial clusters at both ends filled from the
// backing file, and one from a cluster boundary (the last cluster's
// rest alone filled from the backing file). With impl/qed's table.write assembling the second page
// of a multi-page range as zeros (tried by hand), the first fails: the
// entry of cluster 512 is lost, its data read as zeros (past the
// backing file's end); with its split copy-on-write stopping at an
// empty head (break for continue, tried by hand) the fourth fails; with
// the empty page between pages with entries written as anything but
// zeros (tried by hand) the third fails at its reopen (the crash states
// before it pass: their recovery repairs the entry NEED_CHECK covers).
func TestBigShapesJudged(t *testing.T) {
	for _, script := range []string{`qedtorture-workload v1
image cluster_size=8192 table_size=16 size=65536
backing raw size=65536 fill=1
write 0x0 0x200 id=3
resize 0x402000
write 0x3fff9c 0xc8 id=4
read 0x3fe000 0x4000
flush
read 0x0 0x402000
`, `qedtorture-workload v1
image cluster_size=8192 table_size=16 size=65536
write 0x2000 0x200 id=1
resize 0xc02000
write 0x3fff00 0x200 id=2
write 0xc00010 0x100 id=3
flush
reopen
read 0x0 0xc02000
`, `qedtorture-workload v1
image cluster_size=4096 table_size=4 size=65536
backing qed size=65536 cluster_size=4096 table_size=1 fill=2
write 0x3000 0x200 id=3
resize 0x600000
write 0x1001 0x5000fe id=4
flush
read 0x0 0x600000
`, `qedtorture-workload v1
image cluster_size=4096 table_size=4 size=65536
backing raw size=6291456 fill=1
resize 0x600000
write 0x1000 0x5000fe id=3
flush
read 0x0 0x600000
`} {
		w, err := workload.Parse(strings.NewReader(script))
		require.NoError(t, err)
		rep, err := Run(context.Background(), Config{Target: qedtarget.Target{}, TargetName: "impl/qed", Seed: 1, Iterations: 1, Workload: w,
			Models: oracle.DefaultModels(), Bound: DefaultBound, Samples: DefaultSamples, SampledPoints: DefaultSampledPoints})
		require.NoError(t, err)
		require.Empty(t, rep.Failures, "%+v", rep.Failures)
		require.Greater(t, rep.CrashStates, int64(0))
	}
}
