// Package qemu points the qedtorture suite at QEMU's QED driver: it runs
// workloads through one interactive qemu-io process, records every write
// and flush QEMU issues to the image file with QEMU's blklogwrites driver,
// rebuilds the crash states of that log with crashsim, and judges each
// state with the same oracles as impl/qed (the independent structural
// checker and the model), recovering it both with QEMU and with impl/qed.
//
// # Pieces
//
//   - qemuio.Proc (internal/qemuio) is one interactive qemu-io process
//     (commands on stdin, one prompt per command): the batching unit. Every guest op of a workload
//     is one command (a concurrent group is several aio_write commands and
//     one aio_flush), so a whole workload costs one process.
//   - [Target] implements target.Target over qemu-img (create) and a
//     persistent qemu-io per open image ([Disk]); it drives workload.Exec,
//     workload.BuildBacking and the differential runs (Driver.Run).
//   - [Record] runs a workload through workload.Exec, the one executor of
//     the suite, over a Target in recording mode ([Recorder]): the image is
//     opened as driver=qed, file.driver=blklogwrites, with
//     log-super-update-interval=1 so the log's entry count is current
//     after every command, and the executor's Snapshot marks where each
//     guest op begins. It keeps: the pre-open snapshot of the image and its
//     backing files, the log turned into a crashsim.Trace, the trace index at
//     which each guest op began, a model snapshot per op (the model with
//     that op pending) and the qemu-io script that reproduces the run.
//     The run ends with a clean close, a qemu-io `abort` or a SIGKILL while
//     aio writes may be in flight ([End]).
//   - Crashes during creation (create.go): for the workloads whose
//     creation the campaign judges, [RecordWith] runs each `qemu-img
//     create` of the setup under strace (internal/strace, shared with
//     impl/blackbox), adds the harness's own writes, verifies the prefix
//     against the files it left ([ErrCreateMismatch]) and prepends it to
//     the blklogwrites trace: Recording.CreateEnd is its length; half of
//     them create over an existing image (campaign.OverImageFor).
//   - [Driver] is QEMU on the one campaign engine (internal/campaign;
//     `qedtorture run --target qemu`, and its alias `qedtorture qemu`): a
//     campaign.Driver whose recordings are Record's (the snapshot as the
//     base, the log as the trace), from which the engine enumerates crash
//     points and states and judges each distinct one with the oracle
//     recovering with the reference (impl/qed: the independent checker on
//     the raw bytes first). QEMU's own recovery is a budgeted
//     campaign.Judge ([RecoveryJudge]): a writable open, a flush and a
//     close (QEMU checks and repairs only when NEED_CHECK is set), the
//     structural checker on the result, QEMU's read-back judged against
//     the model, then QEMU-side liveness (a one-sector write and a clean
//     close, the checker again, a read-back after a read-only reopen).
//     The Driver's judge does all of it in long-lived qemu-io processes
//     (pool.go: one per state in flight, each with its own scratch
//     directory, images opened and closed with qemu-io's `open` and
//     `close`; the read-back has QEMU itself compare every byte outside
//     the model's uncertain ranges, which the crash rule fixes, with the
//     model's durable contents, and the uncertain bytes with a guess of
//     them (what the crashed image maps there), under QEMU's quorum
//     driver over the image and a raw file of those bytes (a guess QEMU
//     does not confirm is read back with `read -v`; a difference in the
//     certain bytes fails the read: every
//     byte is then read back, the model's data ranges with `read -v` and
//     the others verified zero with `read -P 0`, or with `qemu-img
//     convert` above 128 KiB of data, and the model judges them), and
//     reads the unconfirmed uncertain ranges with `read -v` in the
//     writable open the liveness write then uses; a state's commands go to qemu-io in two
//     pipelined batches, qemuio.Proc.Pipeline, not a round trip each:
//     the recovery with the comparison, then the uncertain ranges'
//     read-back with the liveness write and its read-only reopen, the
//     verdict taken from the replies in the stages' order),
//     [JudgeParallel] states of a workload at once (a
//     campaign.PreparedJudge in a sliding window: the verdicts are taken
//     in the sample's order, so the outcome is one-at-a-time judging's);
//     the Driver is a campaign.OverlappedDriver: each campaign worker
//     keeps [WorkloadsInFlight] workloads going, one recorded or judged
//     by QEMU while another is checked in process;
//     [JudgeRecovery] and
//     [QEMURecover] do it with four fresh QEMU processes per state, and
//     TestPooledRecoveryAgrees holds the two to the same verdicts. The Driver is also a
//     campaign.Runner: differential runs (--diff) run a workload through
//     [Target] without blklogwrites and read the guest data back with
//     qemu-img convert; the comparison is the engine's.
//   - [Adapt] removes what QEMU 7.2 cannot run from a generated workload
//     (table_size 1, grows of an image whose backing file is longer than
//     it, and a commit into a QED base that would have to grow so; a
//     commit runs as commit -d; a safe rebase onto a file only when strace
//     is missing) and says what it changed: those are recorded findings,
//     not failures.
//   - [Target] implements target.ImageOps (imageops.go): the workload ops
//     rebase, rebase-unsafe and commit run qemu-img on the closed image.
//     In a recording, rebase -u and rebase onto nothing go through
//     blklogwrites with --image-opts, appending to the recording's log; a
//     safe rebase onto a file (whose relative name qemu-img cannot resolve
//     against the json: filename) and a commit (whose base one log does
//     not record) run on the plain files under strace (traced.go), their
//     system calls on every file a segment of the trace where the log
//     stood, so the header rewrite, the copies and the base's writes are
//     all in the crash states.
//
// # The seam for another implementation
//
// An external implementation needs two things: a target.Target (create,
// open, guest I/O, check) for the differential runs, and a way to record
// the writes and flushes it issues to its image file as a crashsim.Trace
// (here blklogwrites; for a Go package, crashsim.FS itself; for a C
// library, an LD_PRELOAD or a FUSE layer writing the same dm-log format),
// plus a command that recovers a crash state on real files. Everything
// after the trace — points, states, oracles, reports — is implementation
// independent ([Recording] is the hand-over, turned into a
// campaign.Recording by the Driver). Adding one is a file like target.go,
// a recorder like record.go and a driver like driver.go
// (docs/architecture.md, "Where a change goes").
//
// # Guarantees
//
//   - One qemu-io process per recorded workload and per open Disk; QEMU's
//     recovery judge reuses one long-lived qemu-io per state in flight
//     (JudgeParallel per workload in flight; a fresh one after 500
//     states, or after QEMU died on a state), plus a qemu-img convert for
//     a state whose bytes the quorum read could not vouch for and with more
//     than 128 KiB of data; the QEMU budget is a parameter.
//   - Scratch directories (recordings, the pool's states) are made on a
//     memory filesystem (/dev/shm) unless TMPDIR names another place
//     (tempdir.go): no scratch file has to survive a power loss, and
//     there QEMU's flushes are not real fdatasyncs.
//   - The imported log is validated: replaying the whole trace on the
//     snapshot gives exactly the file QEMU left (tested for clean close
//     and abort).
//   - Crash states are identified by crashsim.StateID and replay from the
//     recording (snapshot + trace) bit for bit.
//   - qemu-io output is parsed per command (the prompt delimits it);
//     command failures come back as *CommandError naming the command and
//     QEMU's message.
//
// # Interruption and cleanup
//
// The engine's context reaches every QEMU process: Driver.Record, Run and
// RecoveryJudge bind the tool to it (qemutool.Tool.WithContext, and
// qemuio.Start), so an interrupted campaign (SIGINT or SIGTERM on the
// command line) kills the qemu-io and qemu-img process groups in flight.
// Every child process group and scratch directory (qedtorture-qemu-*) is
// registered with internal/cleanup while it exists, so a command exiting
// at once on a second signal leaves none behind.
//
// # Caveats
//
//   - The log holds what QEMU issued to the image file in blklogwrites'
//     order. Two writes in flight at once to the same host sectors may
//     reach the file in the other order, so the replayed log could
//     disagree with the file: Adapt drops the writes of a concurrent group
//     that share a 512-byte sector with an earlier one of the group
//     (HarnessConcurrentOverlap), and Record checks that the whole log
//     replayed on the snapshot gives exactly QEMU's file whenever no write
//     was in flight at the end (ErrLogMismatch otherwise, which wraps
//     campaign.ErrSkip: the engine counts such recordings as skipped). Disjoint in-flight writes are
//     serialised in the log in one order; subset and torn cover the others.
//   - After a SIGKILL the last entries QEMU issued may be missing from the
//     log (the kill can land between the image write and the log write);
//     the states then come from an earlier moment of the same op, which
//     the model allows.
//   - Files live on the OS filesystem (qemu-io needs real paths); Target
//     accepts afero.OsFs and afero.BasePathFs over it only.
//   - Concurrent groups run as qemu-io aio_write commands, which take only
//     a byte pattern (-P), not a pattern file: their writes are recorded
//     in the model as bytes, so misplaced data from them is recognised by
//     value, not by origin.
//   - Needs qemu-img and qemu-io; written against Debian's QEMU 7.2.
package qemu
