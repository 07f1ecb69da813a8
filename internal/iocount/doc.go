// Package iocount counts the I/O requests that reach each file: an afero.Fs
// wrapper for our own implementation, and a reader of dm-log-writes logs
// (QEMU's blklogwrites driver) for QEMU's, so both sides of a comparison are
// counted by the same rules into the same Counts.
//
// # Basics
//
// New(base) returns an *FS that forwards every call to base and, per file
// path (filepath.Clean of the name it was opened with), counts the read and
// write requests, their bytes, the syncs and the truncates. FS.Counts(path)
// returns one file's counts, FS.Total all of them, FS.Reset zeroes them.
// ReadDMLog(r, size) counts a dm-log-writes log the same way, reading only
// the entry headers through crashsim.ScanDMLog, the project's one parser
// of the format (data is skipped, so multi-GiB logs cost no memory).
//
// # Guarantees
//
//   - One request is one call: ReadAt, Read, WriteAt, Write, WriteString
//     each count 1, with the bytes the call moved (its n). A failed call
//     still counts as a request, with the bytes it moved.
//   - File.Sync counts one sync; nothing else does (closing a file is not a
//     sync). In a dm-log, an entry with FLUSH counts one sync before its
//     write (if any) and one with FUA one after it, as the block layer
//     orders them; DISCARD entries count as discards, never as writes.
//   - Counters are atomic: an FS and its files are safe for concurrent use
//     as far as the wrapped Fs is, and counting adds no lock on the I/O path.
//   - File.Unwrap returns the wrapped file, and File.PositionalIOSafe reports
//     whether concurrent ReadAt/WriteAt on it are safe (true when the wrapped
//     file is an *os.File or itself says so), so callers that serialise
//     unsafe files keep real files parallel through the wrapper.
//
// # Caveats
//
// Counting is at the afero interface: what the kernel or the device does
// with a request (merging, splitting, write-back) is not seen. Files are
// keyed by path: two opens of one path share counters, a rename does not
// move them. Seek, Stat, Name and directory operations are not counted.
package iocount
