// Package qemuio speaks qemu-io's command language. Today it holds the
// client end: [Proc], one interactive qemu-io process that takes one
// command at a time on stdin and whose prompt delimits each command's
// output, with the parsing of that output ([ParseDump] for `read -v`,
// [Failed] for failure reports). Every QEMU-side part of the suite drives
// QEMU through it: impl/qemu's Target and its blklogwrites recordings, and
// QEMU's recovery judge. The other end is [Shell] (shell.go): a
// qemu-io-compatible interpreter of the same commands over any [Image]
// (`qedtorture io` runs it over impl/qed), with qemu-io 7.2's output lines
// and exit status; black-box targets that speak the language
// (`--target exec:COMMAND`) are driven through the client.
//
// # Guarantees
//
//   - Commands are serialised: a Proc is safe for concurrent use, and
//     every command sent is kept, in order ([Proc.Log]), so a session can
//     be written out as a script that reproduces it.
//   - A batch of commands can be sent ahead ([Proc.Pipeline], on a
//     process started with [StartPipelined]): on Linux qemu-io's stdin is
//     then a packet pipe, one line a packet, so qemu-io runs the whole
//     batch without waiting for a round trip per command (on an ordinary
//     pipe the lines after the first sit in its stdio buffer unseen until
//     more input comes); the replies are those of the same lines sent one
//     at a time, and every line runs, whatever failed before it.
//   - Output is parsed per command; a failure qemu-io reports comes back
//     as a *CommandError naming the command and QEMU's message; a process
//     that died (abort, assertion, kill) as ErrExited with what it
//     printed last (an assertion message, for example).
//   - Each command is bounded by Proc.Timeout; a process is killed with
//     its process group when its context is cancelled, and is on
//     internal/cleanup's list while it runs, so an interrupted command
//     leaves no qemu-io behind.
package qemuio
