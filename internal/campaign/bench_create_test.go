package campaign

import (
	"testing"

	"github.com/qedtorture/qedtorture/crashsim"
	"github.com/qedtorture/qedtorture/impl/qed/qedtarget"
	"github.com/qedtorture/qedtorture/props/target"
	"github.com/qedtorture/qedtorture/props/workload"
	"github.com/stretchr/testify/require"
)

// BenchmarkCreateJudgeGeometry is the creation judge's geometry check of
// one crash state of a creation of issue 19 goal 5's geometry (4 MiB
// clusters, 16-cluster tables: a 64 MiB L1 table made by extending the
// file) over a raw backing file, on crashsim: what every crash state
// during a creation pays before the oracle. Compare builds with ns/op,
// interleaved.
func BenchmarkCreateJudgeGeometry(b *testing.B) {
	g := workload.Geometry{ClusterSize: 4 << 20, TableSize: 16, Size: 32 << 20, Backing: []workload.Backing{{Format: "raw", Size: 1 << 20}}}
	fsys := crashsim.New(crashsim.Options{ImplicitDirSync: true})
	require.NoError(b, fsys.MkdirAll("/d", 0o755))
	f, err := fsys.Create("/d/" + workload.BackingName(0, "raw"))
	require.NoError(b, err)
	require.NoError(b, f.Truncate(1<<20))
	require.NoError(b, f.Close())
	require.NoError(b, qedtarget.Target{}.Create(fsys, "/d/img.qed", target.CreateOptions{Size: g.Size, ClusterSize: g.ClusterSize, TableSize: g.TableSize,
		BackingFile: workload.BackingName(0, "raw"), BackingFormat: "raw"}))
	st := &State{FS: fsys, Image: "/d/img.qed", Rec: &Recording{W: &workload.Workload{Geometry: g}}}
	j := &createJudge{t: qedtarget.Target{}}
	b.ReportAllocs()
	for b.Loop() {
		if err := j.geometry(st); err != nil {
			b.Fatal(err)
		}
	}
}
