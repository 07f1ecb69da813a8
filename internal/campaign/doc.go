// Package campaign is the engine of `qedtorture run` and `qedtorture
// replay`: it generates workloads from a seed, has a Driver run and record
// each on the implementation under test, enumerates the crash states a
// power loss could leave at every sync point and at sampled operation
// indices, hands each to its judges (oracle.Judge, the oracle
// judge, first), and turns a failure into a minimized, replayable
// artifact.
//
// # The seam
//
// Driver (driver.go, its doc comment is the contract) is everything the
// engine needs from an implementation: run this workload and hand over its
// Recording (the files when the trace began, every file operation since,
// a Mark per guest op: where it began in the trace and the model with it
// pending, what the guest saw). InProcess(target) is the driver of a Go
// implementation run over crashsim in this process (impl/qed and its
// broken and defect wrappers). A Judge decides whether a crash state is
// acceptable: the oracle judge (recovery by the driver's Recoverer, or
// Config.Reference) judges every distinct state; a driver adds its own
// (QEMU's recovery, with a budget), Config.Judges add judges for every
// target. A budgeted PreparedJudge has its sample judged in a sliding
// window of states, the verdicts taken in the sample's order, so that
// the outcome is that of one state at a time. An OverlappedDriver (QEMU)
// has each worker keep several workloads in flight, at most Workers of
// them in the in-process checks at once. The engine enumerates states with crashsim's explorer
// (crashsim.Run.Explore), so the crash points and states of a campaign are
// the explorer's for the same run (TestCampaignPicksTheExplorersStates).
//
// # Seeds and shards
//
// A campaign has one seed. Workload w (w = 0, 1, 2, ...) uses the seed
// WorkloadSeed(seed, w), so a workload is named by (campaign seed, w) and
// regenerated bit for bit from it. Shard I of N runs exactly the workloads
// with w % N == I, so N shards never repeat each other's work, and with a
// fixed number of iterations the union of the shards is the unsharded run:
// Merge of their reports has the same workloads, crash-state counts (per
// model) and digest as one unsharded report.
//
// # One workload
//
// In process, Record runs the workload through workload.Exec on a
// crashsim.FS (with ImplicitDirSync: the campaign tests the image files'
// crash safety, not the durability of their directory entries) optionally
// wrapped in faultfs, keeping the trace, and as marks the model clone Exec
// hands to its Snapshot hook before each guest operation's I/O together
// with the index of the next filesystem operation at that moment. A crash
// point K (just before filesystem operation K) is judged against the last
// mark taken at or before K: the guest operation in progress, whose own
// effects the model holds as pending (allowed either way).
//
// Crash points are every file sync after the setup, up to Config.SampledPoints
// operation indices drawn from the workload's seed, and the end of the run
// (a crash after the last operation, or right after a fault stopped it).
// At each point and for each crash model the states are enumerated
// exhaustively when their count is at most Config.Bound, else
// Config.Samples of them are drawn (seeded); see crashsim.Point.IDs.
//
// The data check uses the model's durable contents computed once per
// mark (oracle.Options.Durable; same verdicts), and states of one
// crash point whose bytes (every file, 128-bit hash of the pages that
// differ from the point's durable image) equal a state every judge passed
// against the same mark share its verdicts: Report.CrashStates counts
// every state, Report.OracleRuns the states judged (Config.NoDedup turns
// this off).
//
// # Targets
//
// The engine imports no implementation: Config.Driver or Config.Target is
// required, and Replay takes a Resolver for the target name an artifact records. The
// command line maps --target names (cmd/qedtorture/targets.go): "impl/qed",
// the deliberately broken wrappers "broken:noflush" (a guest flush does
// nothing) and "broken:nosync" (every file sync is dropped), and, in
// builds with the qeddefects tag, every seeded defect of impl/qed as
// "defect:NAME" (all in impl/qed/qedtarget). A target that implements
// target.ReadLimiter is judged with its oracle full-read limit.
//
// # Failures
//
// A failure is a crash state a judge rejects (Failure.Judge says which,
// its Stage where), or
// a guest operation that failed in the crash-free run without an injected
// fault (stage "workload": a read that disagreed with the model, an I/O
// error nothing explains). Faults injected with Config.Faults make op
// errors expected: the run stops there, and the end point is judged.
//
// A failing case is minimized deterministically (within a bound of
// Config.MinimizeCandidates runs and Config.MinimizeTimeout): chunks of
// workload operations are dropped (halves, then smaller, down to single
// ops), concurrent groups are tried as sequential writes and the backing
// chain is dropped, each change kept if some crash state of the same stage
// (under the failing state's model) still fails; finally the simplest
// failing state of the minimized workload is picked: the earliest crash
// point over every operation index, the weakest model, the lowest ordinal. WriteArtifact stores the case (see artifact.go for the files);
// Replay rebuilds the crash state from an artifact and judges it again.
//
// # Interruption, checkpoints and outputs
//
// Cancelling Run's context is an interruption (the command line cancels it
// on SIGINT or SIGTERM): no workload starts after it, the workloads in
// flight stop at their next crash state and are not counted, a failure
// being minimized keeps the smallest case found so far, every failure
// found gets its artifact, and the report is marked Interrupted. The
// duration running out is not an interruption. Config.Checkpoint receives,
// every Config.CheckpointEvery, a report of the run so far (Checkpoint
// set); the command line rewrites the report file with it.
//
// Artifacts are written through internal/atomicfile (a temporary directory
// next to the final name, every file synced, renamed, the parent synced)
// and a failure joins the list reports are built from only after its
// artifact is committed: no report, checkpoint or final, names an artifact
// that is not durably complete. An artifact that cannot be written leaves
// nothing behind; the failure keeps its place in the report with
// FailureReport.ArtifactError. Merge accepts checkpointed and interrupted
// reports (marking the result) and lists the shards no report covers
// (Report.MissingShards).
//
// # Determinism and caveats
//
//   - Everything random derives from the campaign seed. A workload with
//     concurrent groups interleaves its writes as the Go scheduler runs
//     them, so its trace (and the state counts) may differ between runs;
//     artifacts therefore store the trace, and Replay uses it when the
//     re-run's trace differs. Shard/merge equivalence is exact for
//     workloads without concurrent groups.
//   - With faults, the rules count operations of the whole run (setup
//     included); a fault that hits the setup skips the workload (counted
//     in Report.Skipped).
//   - The crash states of one workload are checked by one worker; the
//     pool runs workloads in parallel.
package campaign
