// Package strace records what a program does to the files of one
// directory by running it under strace, and turns strace's output into a
// crashsim trace replayable on the directory's files as they were before
// (issue 13's black-box recorder, shared by impl/blackbox, which records
// `exec:` programs, and impl/qemu, which records `qemu-img create` for
// crashes during creation).
//
// # Recording
//
// [Command] wraps a program in strace: all threads and children (-f),
// file descriptors decoded to paths (-y), every string in hex (-xx, so
// that paths and data parse without ambiguity), no abbreviation (-v) and
// strings up to [MaxData] bytes (-s), filtered in the kernel
// (--seccomp-bpf) to the calls in [TracedCalls]. [Parse] reads strace's
// output and keeps the calls on files under one directory (the image and
// its backing files):
//
//   - pwrite64, pwritev, pwritev2 with their data (cut to the count the
//     call returned) become writes; fsync and fdatasync syncs (of a
//     directory: directory syncs); syncfs and sync a sync of every file and
//     the directory; ftruncate and truncate truncates; fallocate a length
//     change, a discard (PUNCH_HOLE) or zeros (ZERO_RANGE); open, openat
//     and creat creates (O_CREAT of a file that did not exist) and
//     truncates (O_TRUNC); rename, renameat, renameat2, unlink and
//     unlinkat renames and removes. Failed calls change nothing.
//   - sync_file_range is not a sync: it flushes no metadata and no disk
//     cache, so it is recorded as nothing (a program that relies on it is
//     judged as if it had not called it).
//   - Writes at the file position (write, writev), writes through a shared
//     writable mapping (mmap with PROT_WRITE and MAP_SHARED), Linux AIO
//     (io_submit) and copies into a file (copy_file_range, sendfile,
//     splice) on a recorded file are refused: [Parse] returns an
//     *[UnrecordedError] naming the call and the file. io_uring cannot be
//     seen per file (its submissions are in shared memory): a program that
//     sets one up (qemu-io does, for polling its file descriptors only) is
//     accepted, and [Recording.Verify] decides: the trace replayed on the
//     files as they were before must give the files as the program left
//     them, or the recording is refused, naming io_uring_setup if it was
//     called.
//
// # Order and durability
//
// Calls of different threads overlap; strace prints an unfinished call's
// entry and exit on two lines. A write takes effect at its exit (it may
// still be in flight until it returns); a sync at its entry, so that only
// the writes that returned before the sync began are durable after it. The
// trace is therefore one serial execution the program could have had (the
// sync finishing at once, the overlapping writes after it): every crash
// state it yields is one a power loss could leave, and the writes in
// flight during a sync are exactly the ones it may lose.
//
// # Prompts
//
// Each write on the program's standard output that ends with qemu-io's
// prompt ([Prompt]) marks the trace position at which the program waits
// for its next command ([Recording].Prompts): impl/blackbox's command
// boundaries.
//
// # Sequences
//
// [Sequence] records several programs run one after the other on the same
// directory (a backing file's creation, then the image's) as one trace:
// each run is parsed with the files as the earlier runs left them, and
// its operations appended in order.
//
// Why strace and not ptrace from Go: strace decodes every system call of
// every architecture it supports, follows threads and children, maps file
// descriptors to paths through /proc (also for descriptors passed between
// processes or inherited), filters in the kernel with seccomp-bpf so that
// untraced calls cost nothing, and is packaged by Debian; a Go tracer would
// have to re-implement the decoding of a dozen calls with their iovecs and
// the fd-to-path bookkeeping, and would be one more thing to test. The
// price is a text format, which the hex-only (-xx) output makes exact.
package strace
