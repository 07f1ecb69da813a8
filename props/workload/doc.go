// Package workload is the shared vocabulary of guest operations that the
// property tests, the torture campaign and the QEMU adapter drive through an
// implementation: a Workload is the image geometry (with its backing chain)
// plus an ordered list of Ops.
//
// A workload has a readable, line-oriented script form (Format / Parse) that
// is what failure artifacts store and what `qedtorture replay` reads; the
// two are mirror images and round-trip exactly.
//
// Script form (one item per line, '#' starts a comment):
//
//	qedtorture-workload v1
//	image cluster_size=4096 table_size=2 size=1048576
//	backing qed size=524288 cluster_size=65536 table_size=4 fill=200
//	backing raw size=262144 fill=100
//	write 0x1000 0x200 id=201
//	zero 0x0 0x10000
//	read 0x0 0x2000
//	flush
//	resize 0x200000
//	reopen
//	check
//	concurrent 2
//	  write 0x0 0x1000 id=202
//	  write 0x800 0x1000 id=203
//	rebase 0x2000 0x1000 id=204
//	rebase-unsafe 700
//	commit
//	idle
//	map
//	reopen-ro 0x0 0x2000
//	refused 2
//
// The image line may carry a craft's keys (craft.go) and l2_cache=N: every
// open of the image asks the target for an L2 cache of N tables
// (target.OpenOptions.L2CacheTables; Exec.OpenOptions).
//
// rebase, rebase-unsafe and commit are the image commands (imagecmds.go):
// the image closed, qemu-img rebase, rebase -u or commit run on its files
// through the target's target.ImageOps, the image opened again; the setup
// makes the files they act on.
//
// commit takes -d (the image kept) and -b N (into the file at depth N of
// the geometry's chain: "commit -d -b 2"; valid before any rebase, down
// to the chain's first raw file).
//
// idle lets the image's idle time pass (target.Idler: impl/qed's idle
// NEED_CHECK clear happens there, at a fixed point of the trace); the
// model records nothing.
//
// map, reopen-ro and refused exercise the image's API beyond guest I/O and
// are judged like the rest: map compares the Disk's allocation map
// (target.Mapper) with the model, reopen-ro reads through a read-only open
// and requires its writes refused, refused issues a call the image must
// refuse (target.Strict; variant N of refusedCalls). On a Disk without the
// capability, map and refused do nothing.
//
// Backing lines list the chain from the image's immediate backing file
// outward. A backing image's contents are generated deterministically from
// its fill id (the model's write pattern), so a backing file never has to be
// stored to replay a workload: a raw backing file holds the pattern over its
// whole size; a qed backing file holds it over its first half (rounded down
// to 512 bytes) and reads the rest through from the next file in the chain.
//
// Op kinds are defined once: each kind is a type in its own file (op_*.go)
// that states its bounds (Validate), its script line (Format, Parse), how
// it is drawn (Generate; its default weight) and how it runs (Exec, model
// first and then the I/O), listed once in kindTable (kinds.go). Kinds,
// KindByName, KindNames and DefaultWeights read that table, so the
// keywords of scripts and of --op-weights cannot drift apart.
//
// Exec is the one executor: it builds a workload's backing chain and image
// through a target.Target (package props/target, the only project packages
// it reaches being model and props/target), runs the ops and mirrors each
// in a model.Disk, model first and then the I/O, a flush recorded only
// after the target's flush returned (the contract is on Exec). The
// campaign, the state machine, the conformance door and the QEMU adapter
// all run workloads through it; what the crash or fault layer is, is the
// caller's: Exec sees only the afero.Fs it is given.
//
// Invariants: Validate accepts a workload only if every op lies inside the
// image size current at that op (resize only grows), lengths are positive,
// write and fill ids are non-zero and
// increase from the deepest backing file to the image and then in op order, and the geometry is legal QED.
package workload
