package props

import "testing"

// qedRegressions are shrunk counterexamples the state machine found in
// impl/qed, kept as regression cases; the comment above each says what
// broke and when it was fixed. Each replays with Replay and must pass.
var qedRegressions = map[string]string{
	// The allocator reused the partial cluster at the end of the file, which
	// a crash had left holding stale guest data; a later crash that kept the
	// new L2 link but lost the copy-on-write zero fill showed another guest
	// offset's data (found at 5aaf1db).
	"partial-cluster-reuse": `qedtorture-workload v1
image cluster_size=16384 table_size=2 size=212992
#! fault write:enospc nth=4 then=crash model=torn512 choice=298079
write 0xd600 0x6a00 id=3
#! crash sync=0 model=torn512 choice=747684
write 0xfd41 0x918 id=5
write 0x1c000 0x4000 id=12
#! crash sync=1 model=torn512 choice=seed:1163202189167445691
reopen
`,
	// A zero copy-on-write tail of a fresh cluster was not written; a read
	// whose host run began in an older cluster and ran into the fresh one
	// failed with EOF (write-back version of impl/qed, 21:45).
	"fresh-cluster-short-read": `qedtorture-workload v1
image cluster_size=8192 table_size=2 size=0
backing qed size=512 cluster_size=65536 table_size=16 fill=1
resize 0x6000
#! crash sync=1 model=drop choice=386274
write 0x800 0x1800 id=23
write 0x5ce2 0x31e id=25
check
#! crash sync=2 model=drop choice=784660
write 0x2c00 0x2200 id=26
resize 0xa000
write 0x5400 0x1c00 id=27
read 0x4e00 0x3a00
`,
	// A safe rebase none copied the partial last cluster in with an
	// allocating write, whose copy-on-write filled the tail past the size
	// from the longer backing file; a grow with no backing file left did
	// not zero that tail, and the new space read the old backing file's
	// bytes (PROPS_SEED=1950462680711793124; fixed in Resize, which now
	// zeros the last cluster's tail whether or not a backing file remains).
	"rebase-none-then-grow": `qedtorture-workload v1
image cluster_size=8192 table_size=1 size=46080
backing raw size=75264 fill=1
rebase none
#! fault write:eio nth=2 then=crash model=subset choice=0
resize 0xcc00
`,
}

func TestRegressions(t *testing.T) {
	for name, seq := range qedRegressions {
		t.Run(name, func(t *testing.T) { Replay(t, QEDTarget{}, seq) })
	}
}
