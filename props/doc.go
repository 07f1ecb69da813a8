// Package props holds the properties that prove integrity and consistency
// of QED images after arbitrary crashes and faults: the crash oracle, the
// state machine and the conformance door. Their first oracle is the
// independent structural checker, package props/check (standard library
// only); the checker's props names (CheckStructure, StructureReport, ...)
// are aliases of it (compat_check.go).
//
// # The door (props/target)
//
// Every implementation is reached through one interface, Target (Create,
// Open) and the Disk it opens (ReadAt, WriteAt, WriteZeroes, Flush, Close,
// Size, Resize, Check), defined in package props/target and aliased here.
// Everything it does with files must go through the afero.Fs it is
// handed, so the crash layer (crashsim) and the fault layer (faultfs) see
// every byte. impl/qed/qedtarget adapts impl/qed; another implementation
// writes a similar adapter of a few dozen lines. props imports no
// implementation.
//
// # The oracle (props/oracle, exec.go)
//
// Exec runs a workload (props/workload) on a Target and mirrors every op
// in a reference model (model.Disk). CheckCrashState (oracle.Judge of
// package props/oracle; the props names are aliases, compat_oracle.go)
// judges one crash state: the raw image's structure (NEED_CHECK clear implies consistent,
// by the independent checker), recovery by a writable open, the size, every
// guest sector against the model (its flushed value with some of the writes
// issued since applied in order: model's sector rule), the structure after
// recovery, liveness (a write, a flush, a clean close, a reopen that needs
// no repair), and every guest byte again through that reopen.
//
// # The state machine (statemachine*.go)
//
// CheckStateMachine is a gopter `commands` property. Its initial states
// range over geometry (cluster 4 KiB..64 KiB, table size 1..16, image
// sizes zero, cluster-aligned, unaligned and spanning several L2 tables),
// backing chains (none, raw, qed, qed over raw or qed; shorter or longer
// than the image) and a preferred crash model. Its commands are the
// workload ops (write with a per-write pattern id, write-zeroes aligned or
// not, read checked against the model, flush, resize, close and reopen,
// check, concurrent groups of writes from several goroutines to disjoint or
// overlapping ranges followed by a flush), any of which may carry
//
//   - a crash: the machine loses power at the op's S-th file sync (or right
//     after it) and the state picked by (crash model, choice) is judged by
//     CheckCrashState, plus up to RunOptions.Explore other states of the
//     same crash point; the workload then goes on from the recovered image;
//   - a fault: the op runs over a faultfs layer failing the N-th write or
//     sync of the image file with EIO, ENOSPC or a short write; the error
//     must surface (wrapping the injected one), nothing may panic, and the
//     image — closed cleanly, or crashed right after the fault so that
//     unsynced writes may be lost — must pass CheckCrashState.
//
// A failing sequence is shrunk (commands removed while it still fails) and
// printed as a Sequence: the workload script with "#! crash" and "#! fault"
// directive comments, the failing crash state written as the choice.
// ParseSequence reads it back; Replay runs it in a regression test;
// PROPS_SEED replays a whole logged run.
//
// CheckFaultSweep adds SQLite-style I/O-error loops: every n-th write or
// sync of a fixed workload fails in turn, with the same requirements.
//
// # For implementers
//
// TestTarget is the conformance entry point, like testing/fstest.TestFS:
//
//	func TestConformance(t *testing.T) {
//		props.TestTarget(t, myTarget{}, props.ConformanceOptions{})
//	}
//
// It runs regressions, the state machine (crashes under every crash model
// of DefaultModels, faults, concurrency) and the fault sweeps, and reports
// every failing subtest with a replayable counterexample. impl/qed is run
// through exactly this door (conformance_test.go). PROPS_SCALE multiplies
// the work for nightly runs.
//
// # Proof that it finds bugs
//
// impl/qed carries a catalogue of seeded defects compiled in only with the
// qeddefects build tag (impl/qed/defects*.go). TestDefects (defects_test.go,
// same tag) switches each on in turn, requires the state machine to detect
// it within a stated budget, and prints time to detect, the shrunk
// counterexample's length and the crash models that catch it:
//
//	go test -tags qeddefects -run TestDefects -v ./props
//
// # The checks check themselves
//
// A run accounts for what it explored, so that a generator or a loop that
// quietly stops exploring fails a test instead of passing vacuously:
// StateMachineResult counts sequences and commands, and Explored counts the
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
// (generator_test.go); the crash sweep judges exactly the states its sync
// points have under each model and the fault sweep runs once per fault
// position, its fault firing every time (sweep_exploration_test.go); a
// failure report's sequence replays through Replay to the same failure.
// TestTarget itself fails a state machine that ran fewer sequences than
// asked within its budget.
//
// # Caveats
//
//   - The +garbage torn models are left out of DefaultModels: a lost sector
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
package props
