package campaign

import (
	"path"
	"strings"
	"testing"

	"github.com/qedtorture/qedtorture/props/workload"
	"github.com/stretchr/testify/require"
)

// TestCommitBaseOfMemo: commitBaseOf, which remembers its answers per
// workload and op, answers as Workload.CommitBase does for every op of two
// workloads whose commits at the same op index name different bases
// (asked twice each, in an order that interleaves them: a memo keyed by
// the op alone, or not emptied when full, answers wrongly).
func TestCommitBaseOfMemo(t *testing.T) {
	parse := func(s string) *workload.Workload {
		w, err := workload.Parse(strings.NewReader(s))
		require.NoError(t, err)
		return w
	}
	const head = "qedtorture-workload v1\nimage cluster_size=4096 table_size=2 size=65536\n"
	ws := []*workload.Workload{
		parse(head + "backing qed size=8192 cluster_size=4096 table_size=2 fill=1\ncommit -d\ncommit\nwrite 0x0 0x200 id=9\n"),
		parse(head + "backing raw size=8192 fill=1\ncommit\nrebase 0x0 0x1000 id=5\ncommit\n"),
	}
	for round := range 2 * maxCommitBases {
		for wi, w := range ws {
			for op := -1; op <= len(w.Ops); op++ {
				st := &State{Rec: &Recording{W: w}, Image: "/d/" + workload.ImageName, GuestOp: op}
				base, format, ok, err := commitBaseOf(st)
				name, wantFormat, _, wantOK, _, wantErr := w.CommitBase(op)
				require.Equal(t, wantErr, err, "round %d, workload %d, op %d", round, wi, op)
				require.Equal(t, wantOK, ok, "round %d, workload %d, op %d", round, wi, op)
				if ok {
					require.Equal(t, path.Join("/d", name), base, "round %d, workload %d, op %d", round, wi, op)
					require.Equal(t, wantFormat, format, "round %d, workload %d, op %d", round, wi, op)
				}
			}
		}
	}
	require.LessOrEqual(t, len(commitBases.m), maxCommitBases)
}
