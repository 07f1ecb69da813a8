// Package faultfs wraps any afero.Fs and injects I/O faults chosen by rules.
//
// A rule says which operations it matches (operation kind, path glob, byte
// range), when it fires among those matches (the n-th, every n-th, after n,
// with a seeded probability) and what fault it injects (EIO, ENOSPC, EINTR,
// a short write, a lost write or sync, a misdirected write, a bit flip on
// read) or what latency it adds (a delay). Rules are values (Rule) and have a small textual form that tests and
// the command line pass as strings:
//
//	write:enospc@nth=17
//	sync:eio@p=0.01
//	write:short@every=5,path=*.qed
//	read:bitflip@after=3,off=0-65536
//	write:misdirect=+512@nth=2
//	read|write:eio@path=/img/*.qed;sync:lost@every=2
//	read:delay=1ms@path=back.raw
//
// # Grammar
//
//	ruleset = "" | rule { ";" rule }        (spaces around rules are ignored)
//	rule    = ops ":" fault [ "@" cond { "," cond } ]
//	ops     = "*" | op { "|" op }
//	op      = "open" | "create" | "read" | "write" | "sync" | "truncate" | "stat"
//	        | "remove" | "rename" | "close" | "mkdir" | "readdir"
//	fault   = "eio" | "enospc" | "eintr"          (any op)
//	        | "short" [ "=" size ]               (write: store min(size, len-1) bytes, default len/2)
//	        | "lost"                             (write, sync, truncate: acknowledge, do nothing)
//	        | "misdirect" "=" ( "+" | "-" ) size  (write: store at off+delta, clamped at 0)
//	        | "bitflip" [ "=" uint ]             (read: flip that bit of the window, default seeded)
//	        | "delay" "=" duration               (any op: wait, then go on; Go syntax: 1ms, 250us)
//	cond    = "nth=" uint1 | "every=" uint1 | "after=" uint   (at most one of the three)
//	        | "p=" prob                          (0 < prob <= 1)
//	        | "path=" glob                       (path.Match syntax, no ',' or ';')
//	        | "off=" size "-" [ size ]           (half-open byte range [a,b); "a-" is [a,∞))
//	size    = digits [ "k" | "m" | "g" ]         (binary multiples, case-insensitive)
//
// Each key appears at most once in a rule. Parse errors are *ParseError values
// (errors.Is(err, ErrSyntax)) giving the 1-based column, the offending token and
// what was expected. Rule.String returns the canonical form, which parses back
// to an equal Rule; RuleSet.String joins rules with "; ".
//
// # Operations
//
// Every call through the wrapper is classified as exactly one operation:
// Create and OpenFile with os.O_CREATE are "create", Open and other OpenFile
// calls are "open"; Read and ReadAt are "read"; Write, WriteAt and WriteString
// are "write"; File.Sync is "sync"; File.Truncate is "truncate"; Fs.Stat and
// File.Stat are "stat"; Remove and RemoveAll are "remove"; Rename is "rename";
// File.Close is "close"; Mkdir and MkdirAll are "mkdir"; Readdir and
// Readdirnames are "readdir". Seek, Name, Chmod, Chown and Chtimes pass
// through and are not counted.
//
// # Matching
//
// A rule's filter is its operation set, its path glob and its byte range.
// The glob is matched with path.Match against the slash-cleaned name: against
// the whole name if the glob contains a '/', else against the base name
// (like .gitignore). File operations use the name the file was opened with.
// A rename matches if its old or its new name matches. The byte range matches
// an operation whose range [off, off+len) intersects it (a zero-length
// operation matches if off lies in it); read and write have their offset
// (the current position for Read and Write), truncate has off = the new size
// and len 0; other operations never match a rule with a byte range.
//
// Each rule counts the operations its filter matches (1, 2, 3, ...), and its
// trigger looks at that count m: nth=N fires at m == N, every=N at every
// multiple of N, after=N for every m > N, no trigger for every match. p=P
// then keeps a firing with probability P, decided by a hash of (seed, rule
// text, m), so a rule's decisions depend only on its own match count and the
// seed: adding or removing other rules never changes them.
//
// # Precedence and composition
//
// Every rule counts every operation its filter matches, whether or not
// another rule fires. When several rules fire on one operation, the first
// in rule-set order injects its fault and the others do nothing for that
// operation (at most one fault per operation).
//
// # Faults
//
// The error faults (eio, enospc, eintr) skip the underlying operation and
// return the errno wrapped as the os package does (*os.PathError, or
// *os.LinkError for rename), so errors.Is(err, syscall.EIO) holds. A failed
// open or create returns a nil File and creates nothing. A failing close
// still closes the underlying file (as close(2) releases the descriptor). A
// failing sync does not reach the underlying file system: over crashsim its
// unsynced writes stay unsynced, which models "after a failed fsync the
// page cache state is unknown".
//
// short writes a prefix (io.Writer semantics: n < len(p)) and returns an
// ENOSPC *os.PathError, as a full disk does. lost returns success without
// touching the file (a sequential Write still advances the position).
// misdirect stores the data delta bytes away from where it was asked for
// and reports success; a sequential Write leaves the position at off+len as
// if nothing were wrong. bitflip performs the read and flips one bit of the
// bytes returned that lie inside the rule's byte range (the window); the
// bit is bitflip=K modulo the window's bit count (bit K%8 of byte K/8,
// least significant first), or chosen by hash(seed, rule, m).
//
// delay is latency, not a failure: the operation waits that long (outside
// every lock of the wrapper, so concurrent operations wait in parallel) and
// then proceeds. It does not take part in precedence: the waits of all
// firing delay rules add up, and the first firing non-delay rule still
// injects its fault after the wait ("read:delay=1ms; read:eio@nth=5" slows
// every read and fails the fifth). Each firing delay is logged as an
// Injection with Detail = the wait in nanoseconds and no error. A File
// reports PositionalIOSafe() as its wrapped file does, so callers that
// serialise other files' positional I/O (impl/qed) keep delayed reads of
// an *os.File concurrent: `qedtorture bench --fault` uses this to give a
// backing file 1 ms per read.
//
// # Log and counters
//
// Every injection is recorded as an Injection (operation sequence number,
// operation, path, offset, length, fault, rule index and text, the error
// returned, and what the fault did). FS.Log returns them in sequence order;
// a test asserts that the error it got is the one injected with
// errors.Is(got, inj.Err) (the very same error value is returned). FS.Ops
// counts all classified operations and FS.Matches the per-rule filter
// matches. FS.Arm(false) stops injection while counting continues.
//
// Count and Sweep implement SQLite-style I/O error loops: Count runs a
// workload over a disarmed wrapper and returns how many operations a filter
// matches; Sweep then reruns it with the fault at the n-th match for every n.
// SweepRules is the whole fault test of any Go code that writes through an
// afero.Fs (the fault side of crashsim.Explore): every rule of a rule set
// swept (all n, or MaxRuns spread), each outcome handed to the caller's
// check with the injection, the run's error and the files after the fault
// (over a crashsim base the check can crash them and judge every state),
// panics caught, and each failing run reported with the rule text
// ("write:eio@nth=3") that replays it with the sweep's seed.
//
// # Concurrency and determinism
//
// An FS and its Files are safe for concurrent use as far as the wrapped Fs
// is. Rule decisions are taken under one mutex, and I/O is done outside it.
// For a given seed and a given sequence of operations, the injections are
// identical; with concurrent callers the sequence is the order in which the
// operations reach that mutex.
//
// # Caveats
//
// Injection happens at the afero interface: the wrapped Fs is never told
// about it, so a lost or misdirected write is invisible to everything but the
// data. Sequential Write with misdirect uses WriteAt and Seek, which fails
// for files opened with O_APPEND on the OS file system. Go's os package
// retries EINTR itself, so real callers on *os.File rarely see it; eintr is
// there to test code that must not treat it as fatal. Lstat and symlink
// extensions of the wrapped Fs are not forwarded. The log keeps every
// injection: a rule firing on every operation of a long run grows it.
package faultfs
