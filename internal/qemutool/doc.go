// Package qemutool runs QEMU's reference tools, qemu-img and qemu-io, for the
// interop tests and the command line.
//
// # Basics
//
// [Find] locates both binaries (on $PATH, or at $QEMU_IMG / $QEMU_IO when
// set). [Tool.Run] runs one of them with a timeout and captures stdout,
// stderr and the exit code; a non-zero exit is not an error of Run (qemu-img
// check exits 2 and 3 on purpose), [Result.Err] turns it into one.
// [Tool.Check], [Tool.Info] and [Tool.Map] run the `--output=json` forms of
// the qemu-img subcommands and decode them into [Check], [Info] and
// [MapEntry]; the decoders [ParseCheck], [ParseInfo] and [ParseMap] are also
// usable on their own. [Tool.IOBatch] runs many qemu-io commands in one
// process, which is what keeps an interop test fast.
//
// Tests call [Require], which skips the test when QEMU is missing, unless the
// environment variable CI is non-empty: in CI a missing QEMU is a failure.
//
// # Caveats
//
// The JSON decoders keep qemu-img's field names and its habit of leaving out
// zero counts: an absent "corruptions" field decodes as 0. Field sets are
// those of QEMU 7.2; unknown fields are ignored.
package qemutool
