// Package blackbox tests a QED implementation that is a program, not a Go
// package: `--target exec:COMMAND` (issue 13). The program speaks qemu-io's
// command language on stdin (internal/qemuio's client drives it), and every
// file-system call it makes on the image and its backing files is recorded
// with strace and turned into a crashsim trace, which then goes through the
// same crash points, models, judges, minimization and artifacts as every
// other target. The program's own recovery of a crash state is recorded
// the same way ([Driver.RecordRecovery], nested.go), so that crashes
// during it are judged (the campaign's nested judge, issue 14.1); its
// images are created by the setup, not the program (qemu-io's language has
// no create), so creation crashes do not apply.
//
// # Recording
//
// The program runs under strace, and strace's output becomes a crashsim
// trace through internal/strace (Command, Parse, Snapshot,
// Recording.Verify), which impl/qemu shares for recording `qemu-img
// create` (crashes during creation): see that package's doc for which
// calls are recorded, which are refused, and how overlapping calls are
// ordered.
//
// Command boundaries come from the program's own output: each write on its
// standard output that ends with qemu-io's prompt marks the trace position
// at which the program waits for its next command (strace.Recording's
// Prompts), which is where the driver's marks (the model before each guest
// op) go.
package blackbox
