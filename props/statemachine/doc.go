// Package statemachine is the gopter state machine of the property suite,
// and the crash and fault sweeps: the systematic searches the conformance
// door (package props, TestTarget) runs against an implementation.
//
// gopter imports testing, so only the door and tests import this package
// (internal/archtest: cmd/qedtorture links neither). Everything it judges
// goes through props/oracle; everything it runs goes through
// props/workload's executor on a props/target Target over crashsim (and
// faultfs for faults).
//
// # The state machine (statemachine.go, gen.go)
//
// Check is a gopter `commands` property. Its initial states
// range over geometry (cluster 4 KiB..64 KiB, table size 1..16, image
// sizes zero, cluster-aligned, unaligned and spanning several L2 tables),
// backing chains (none, raw, qed, qed over raw or qed; shorter or longer
// than the image) and a preferred crash model. Its commands are the
// workload ops (write with a per-write pattern id, write-zeroes, read
// checked against the model, flush, resize, close and reopen, check,
// concurrent groups of writes from several goroutines followed by a
// flush; for a target with target.ImageOps the image commands rebase,
// rebase-unsafe and commit, judged with the backing-name and commit-base
// rules, and run again after a crash or fault interrupted one), each
// drawn by its kind's own generator (workload.OpGen, the one
// workload.Generate draws the campaign's workloads with; ranges
// cluster-aligned, sector-aligned or not, around the image's start and its
// L2 table boundaries), so every kind of props/workload is drawn here
// without a change to this package. Any command may carry
//
//   - a crash: the machine loses power at the op's S-th file sync (or right
//     after it) and the state picked by (crash model, choice) is judged by
//     oracle.Judge, plus up to RunOptions.Explore other states of the
//     same crash point; the workload then goes on from the recovered image;
//   - a fault: the op runs over a faultfs layer failing the N-th write or
//     sync of the image file with EIO, ENOSPC or a short write; the error
//     must surface (wrapping the injected one), nothing may panic, and the
//     image — closed cleanly, or crashed right after the fault so that
//     unsynced writes may be lost — must pass oracle.Judge.
//
// A failing sequence is shrunk (commands removed while it still fails) and
// printed as a Sequence: the workload script with "#! crash" and "#! fault"
// directive comments, the failing crash state written as the choice.
// ParseSequence reads it back; props.Replay runs it in a regression test;
// PROPS_SEED replays a whole logged run.
//
// CheckCrashSweep judges every crash state (up to a bound) of every sync
// of a fixed workload and of its end, recorded with crashsim.Record and
// explored with crashsim.Run.Explore, the explorer the campaign engine
// uses. CheckFaultSweep adds SQLite-style I/O-error loops on
// faultfs.SweepRules: every n-th write or sync of a fixed workload fails
// in turn, with the same requirements.
//
// # Proof that it finds bugs
//
// impl/qed carries a catalogue of seeded defects compiled in only with the
// qeddefects build tag (impl/qed/defects*.go). TestDefects (defects_test.go,
// same tag) switches each on in turn, requires the state machine to detect
// it within a stated budget, and prints time to detect, the shrunk
// counterexample's length and the crash models that catch it:
//
//	go test -tags qeddefects -run TestDefects -v ./props/statemachine
//
// # The checks check themselves
//
// A run accounts for what it explored, so that a generator or a loop that
// quietly stops exploring fails a test instead of passing vacuously:
// Result counts sequences and commands, and Explored counts the
// op kinds, the crash directives and the crash states judged per crash
// model, the faults per rule, the geometries, size classes (SizeClass) and
// backing layouts (BackingLayout) of the sequences run. The tests hold
// these to the configuration: every sequence asked for runs (a budget
// stops a run only after its first batch), each sequence has at least
// Steps/4 commands, every crash directive is judged under its own model,
// every disk opened is closed (the final close of each sequence
// included), and each op kind, model, rule and layout appears once the
// draws make it near certain (exploration_test.go); the generators are
// held to their stated draw probabilities over many cheap draws
// (generator_test.go); the crash sweep judges exactly the states its
// points (syncs and the end) have under each model and the fault sweep runs once per fault
// position, its fault firing every time (sweep_exploration_test.go); a
// failure report's sequence replays to the same failure (through the
// door's Replay: props/replay_test.go). The door's TestTarget itself fails a
// state machine that ran fewer sequences than asked within its budget.
//
// # Caveats
//
//   - The +garbage torn models are left out of oracle.DefaultModels: a lost sector
//     holding garbage fails the data oracle for any format without data
//     checksums, QED included.
//   - A crash is placed at a file sync (or between ops). Under subset and
//     torn the states at a sync include those of every earlier moment since
//     the previous sync; under prefix a few intermediate states are not
//     reached.
//   - Runs with concurrent groups are not bit-for-bit replayable: the
//     interleaving of the goroutines' file operations varies.
//   - qedtarget.Target runs impl/qed with its idle NEED_CHECK clear off (a
//     run is faster than its 5 s delay, and a real timer would make runs
//     differ).
//     TestIdleClearCrashSafe (idle_test.go) is that path's crash test: a
//     manual clock idles impl/qed after every write and a crash sweep
//     judges every state of every sync, the idle clear's included.
package statemachine
