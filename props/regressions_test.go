package props

import "testing"

// regressionPartialClusterReuse is a shrunk counterexample the state
// machine found in impl/qed (as of 5aaf1db): the allocator reuses the partial
// cluster at the end of the file, which a crash left holding stale guest
// data; a later crash that keeps the new L2 link but loses the
// copy-on-write zero fill then shows another guest offset's data
// (/work/notes/props-findings.md, finding 2).
const regressionPartialClusterReuse = `qedtorture-workload v1
image cluster_size=16384 table_size=2 size=212992
#! fault write:enospc nth=4 then=crash model=torn512 choice=298079
write 0xd600 0x6a00 id=3
#! crash sync=0 model=torn512 choice=747684
write 0xfd41 0x918 id=5
write 0x1c000 0x4000 id=12
#! crash sync=1 model=torn512 choice=seed:1163202189167445691
reopen
`

func TestRegressionPartialClusterReuse(t *testing.T) {
	Replay(t, QEDTarget{}, regressionPartialClusterReuse)
}
