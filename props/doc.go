// Package props is the conformance door: TestTarget runs the property
// suite that proves integrity and consistency of QED images after
// arbitrary crashes and faults against an implementation, the way
// testing/fstest.TestFS checks a file system. It is the only non-test
// package that imports testing (internal/archtest), and it imports only
// the props/... packages that hold the suite:
//
//   - props/target, the interface an implementation under test adapts to;
//   - props/workload, the workload vocabulary and the executor;
//   - props/check, the independent structural checker (standard library
//     only), the first oracle;
//   - props/oracle, the crash oracle (oracle.Judge);
//   - props/statemachine, the gopter state machine and the crash and fault
//     sweeps (gopter imports testing: only this door and tests import it).
//
// props' own names are the door's: TestTarget, ConformanceOptions,
// Conformance, Replay, Scale, and the interface an implementation adapts to (Target,
// Disk, CreateOptions, OpenOptions, CheckResult: aliases of props/target's,
// target.go). The names the packages' contents had when they lived in
// props (CheckCrashState, CheckStateMachine, Sequence, ...) are gone
// (migration step 12): use the packages above.
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
// # The executor and the oracle (props/workload, props/oracle)
//
// workload.Exec runs a workload on a Target and mirrors every op in a
// reference model (model.Disk). oracle.Judge judges
// one crash state: the raw image's structure (NEED_CHECK clear implies
// consistent, by the independent checker), recovery by a writable open, the size, every
// guest sector against the model (its flushed value with some of the writes
// issued since applied in order: model's sector rule), the structure after
// recovery, liveness (a write, a flush, a clean close, a reopen that needs
// no repair), and every guest byte again through that reopen.
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
// of DefaultModels, faults, concurrency), the crash sweeps and the fault
// sweeps (props/statemachine), and reports every failing subtest with a
// replayable counterexample. It returns a Conformance, its account of
// what it ran once the defaults, PROPS_SEED and PROPS_SCALE were applied
// (the seed, the state machine's configuration and statemachine.Result,
// the crash sweep's models and states, the fault sweeps): a caller may
// ignore it, or hold the run to what it asked, as props' own tests do
// (conformance_test.go). The state machine's check of itself (every
// sequence asked was run, unless the budget ran out) is a failure of the
// StateMachine subtest. impl/qed is run through exactly this door
// (impl/qed/qedtarget's conformance_test.go). PROPS_SCALE multiplies the
// work for nightly runs.
//
// A failing sequence prints as a Sequence (props/statemachine): the
// workload script with "#! crash" and "#! fault" directive comments;
// Replay runs one in a regression test, and PROPS_SEED replays a whole
// logged run.
package props
