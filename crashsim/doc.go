// Package crashsim is an in-memory afero.Fs that loses what was not
// synced, records what it did, and enumerates the states a power loss
// could leave.
//
// # Basics
//
// An FS keeps, for every file, its contents and length as of its last
// Sync (durable) and the ordered list of operations since (unsynced:
// writes, truncates). Reads see everything, as through a page cache. Each
// operation that changes something gets a global index and is recorded in
// a Trace (create, mkdir, write, truncate, sync, directory sync, remove,
// rename); reads and metadata calls (Chmod, Chtimes) are not recorded.
//
// A crash point is a moment "just before operation k". FS.Crash, the
// CrashAt hook ("crash at the k-th operation") and the OnSync hook ("crash
// at every sync") return a *Point: the durable image plus the unsynced
// operations. From a Point, a crash Model and a choice, State builds a
// crash state, which is itself a live FS starting from those bytes, so a
// recovery can run on it and be crashed again.
//
// # Durability rules
//
//   - File data and length: File.Sync makes that file's prior operations
//     durable, and only that file's.
//   - Directory entries (create, mkdir, remove, rename): durable only once
//     the directory holding them is synced: open the directory (Open) and
//     call Sync on it, as POSIX requires and as ext4/xfs behave without
//     luck. A directory sync persists the directory's current entries; a
//     rename between two directories is durable in each only once that
//     one is synced (a crash between the two syncs may show the file under
//     both names or neither). An entry whose parent directory is not
//     durable is not visible after a crash.
//   - Options.ImplicitDirSync makes every entry change durable at once,
//     for users who only care about file data. It is off by default: the
//     strict rule is the one real filesystems give, and code that creates
//     a file and relies on it after a crash must sync the directory.
//
// # Crash models
//
// Model selects which unsynced operations survive (docs/format.md, Crash
// models):
// Prefix (the first j, in issue order), Drop (none), Subset (any subset),
// Torn (any subset, and a write may keep only some of its 512-byte or
// 4 KiB sectors, optionally with Garbage in a lost one) and the Size
// effect on top of any of them (an extending write that did not fully
// survive may leave its new length, the gap reading zeros). Surviving
// operations are applied in issue order, which covers every value a
// byte could hold after a crash: the durable one or any written since.
// Unsynced namespace operations are never kept (they need a directory
// sync); only the data operations of files with a durable name are
// choices, so operations on files a crash removes cost nothing.
//
// # Enumeration and identity
//
// Point.Count gives the exact number of choice vectors of a model (2^n for
// Subset of n operations, n+1 for Prefix, 1 for Drop, a product over
// sectors for Torn); Point.IDs yields all of them by ordinal when the count
// is at most a bound, else a seeded sample. A StateID prints as
// "k=17/subset/5" or "k=17/torn512+garbage/seed=123", parses back with
// ParseStateID, and Point.State rebuilds it bit for bit. For Subset and
// Torn, the states at a sync include those of every earlier point since the
// previous sync of the same files, so sweeping Trace.SyncPoints suffices.
//
// # Cost
//
// Storage is a persistent radix tree of 4 KiB pages per file. Snapshots
// (Sync, Point, crash states) share pages; a write copies only the path to
// the pages it touches, so building a state costs time proportional to
// the unsynced operations it keeps, not to the file size, and a 64 MiB
// file is never copied. Zero pages that were never written are holes.
//
// Point.AppendPieces describes a state without building it: the parts of
// the unsynced operations it keeps, in the order they apply over the
// durable image (shared with the trace's data), so that a caller can
// summarize many states of one point in time proportional to their pieces
// (the campaign's dedup key).
//
// # Crashing
//
// After a crash the old FS is dead: every operation on it and on its open
// files fails with ErrCrashed, so goroutines of the crashed instance cannot
// leak writes into the recovered state (which is a different FS).
//
// # Traces and dm-log-writes
//
// A Trace encodes to a compact binary form (MarshalBinary) and replays on
// the image it started from (FS.Start, Image.Replay), giving the same
// Points. ReadDMLog turns a log written by Linux's dm-log-writes or QEMU's
// blklogwrites driver into a trace on one file, so crash states of any
// external implementation's I/O can be rebuilt from a snapshot of its
// image taken before the log began; ScanDMLog checks a log and walks its
// entry headers without reading data (for counting I/O in huge logs).
//
// # Final states
//
// A crash state that is judged and thrown away can be built with
// Point.FinalState: a filesystem with Options.Final keeps no trace and no
// unsynced operations (it can never crash), so a write costs only the
// pages it changes, and FS.Release hands those pages back for the next
// state. Contents are exactly Point.State's.
//
// # Exploring a workload
//
// Explore is the whole crash test of Go code that writes through an
// afero.Fs: it runs the code (the workload, a func(*FS) error) once on a
// fresh recording filesystem, then hands every crash state that matters to
// the caller's check, a func(State) error that reads the crashed files (and
// typically runs the code's own recovery on them) and says what is wrong.
// The crash points judged are:
//
//   - every sync (file or directory): the point just before it, which for
//     Subset and Torn also covers every earlier moment since the previous
//     sync of the same files;
//   - the end: a power loss after the workload returned. It is always
//     judged, because the last operations of a run are often the ones
//     whose durability nobody asked for (the classic: rename a file whose
//     data was never synced, sync the directory, return; every sync point
//     looks fine, only the end shows an empty file);
//   - optionally, sampled operation indices (ExploreOptions.SampledPoints,
//     seeded) or every index (AllPoints).
//
// At each point and for each model (DefaultExploreModels unless given),
// every state is checked when there are at most Bound of them, else Samples
// seeded ones: exactly the states Point.IDs names, each built with
// Point.FinalState and released after the check. A state the check rejects
// is reported by its StateID, whose text form ("k=4/subset+size/0")
// rebuilds the same bytes with Replay, given the same workload and options.
//
// Guarantees (stated by explore_test.go):
//
//   - the points judged are the syncs at or after From, the sampled indices
//     and the end, ascending, each once;
//   - per point and model, the states checked are exactly
//     Point.IDs(model, EnumOptions{Bound, Samples, PointSeed(Seed, K)});
//   - sampled points and states depend only on Seed: two explorations of a
//     deterministic workload with the same options check the same states,
//     and Replay rebuilds any of them byte for byte;
//   - a state's filesystem is valid only during the check (it is released
//     after): keep its StateID, not the FS;
//   - no allocation per state beyond FinalState's: an engine with its own
//     recording (the QED campaign) fills in a Run and calls Run.Explore,
//     with its own de-duplication in the check (a state key must know what
//     the check depends on, so the explorer does not guess one).
//
// Faults are faultfs' side (faultfs.SweepRules): the same workload run once
// per fault, each outcome and the files after it checked; over a crashsim
// base the check can crash those files too.
//
// # Caveats
//
//   - Renaming a directory is not supported (ErrUnsupported); files only.
//   - Permissions and times are kept but not enforced, recorded, or made
//     durable; ModTime is the Unix epoch unless set with Chtimes.
//   - A failed operation (bad flags, missing file) is not recorded and
//     gets no index.
//   - The whole FS takes one mutex; it is meant for tests, not speed
//     under contention.
package crashsim
