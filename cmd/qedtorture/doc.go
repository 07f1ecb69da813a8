// Command qedtorture is the project's command line: torture campaigns that
// judge every crash state of generated workloads (run, replay, show, report
// merge, report html),
// the same campaign against QEMU's QED driver (qemu), a qemu-img-bench-like
// benchmark (bench), and image utilities shaped like qemu-img's (create,
// info, check, map, convert, compare, resize, rebase, commit, measure, dd)
// over the impl/qed implementation, one file per command.
//
// # Basics
//
//	qedtorture create [-o cluster_size=N,table_size=N] [-b BACKING [-F raw|qed]] IMG [SIZE]
//	qedtorture info   [--output human|json] [-U] IMG
//	qedtorture check  [-r leaks|all] [--output human|json] [-U] IMG
//	qedtorture map    [--output human|json] [-U] IMG
//	qedtorture convert [-f raw|qed] [-O raw|qed] [-o ...] [-B BACKING] [-S N] [-n] [-p] [-U] SRC DST
//	qedtorture compare [-f fmt] [-F fmt] [-s] [-p] [-q] [-U] IMG1 IMG2
//	qedtorture resize [--shrink] [-q] IMG [+|-]SIZE
//	qedtorture rebase [-u] [-p] [-U] -b BACKING [-F raw|qed] IMG
//	qedtorture commit [-b BASE] [-d] [-p] [-q] IMG
//	qedtorture measure [-O raw|qed] [-o ...] (--size N | IMG)
//	qedtorture dd     [-O raw|qed] [-p] [bs=N] [count=N] [skip=N] if=SRC of=DST
//	qedtorture run    [--duration D | --iterations N] [--seed S] [--crash-model M] [--seed S --shard I/N] [--html FILE] ...
//	qedtorture replay ARTIFACT_DIR
//	qedtorture show   [--hexdump OFF+LEN] [--html FILE] ARTIFACT_DIR [STATE-ID]
//	qedtorture report merge [-o FILE] [--allow-partial] REPORT...
//	qedtorture report html REPORT.json OUT.html
//	qedtorture qemu   [flags of run]          (the campaign against qemu-io)
//	qedtorture bench  [-c N] [-d N] [-s N] [-S N] [-w] ... IMG
//
// Sizes are bytes, or a number with a binary suffix K, M, G, T, P or E
// (case-insensitive, powers of 1024). Image sizes must be multiples of 512.
//
// # Exit codes
//
// 0 success; 1 a runtime error (missing file, malformed image, I/O error);
// 2 a usage error (unknown flag or subcommand, bad argument). check follows
// qemu-img: 0 clean, 2 corruptions, 3 leaks only, 1 the check itself failed;
// compare too: 0 identical, 1 different, 2 an error. -p prints qemu-img's
// progress line (progress.go).
// Every error is one line on stderr, prefixed "qedtorture: ". The campaign
// commands (run, qemu) exit 130 after SIGINT and 143 after SIGTERM.
//
// # Safety of the image utilities
//
// Every image file they open is locked as QEMU 7.2 locks it
// (internal/imagelock, through impl/qed): read-write for create, check -r,
// bench -w and an existing convert destination; read-only for info, check,
// map, bench and convert's source and its backing chain; -U (force-share)
// reads beside a writer. convert refuses a destination that is its source
// or any file of the source's backing chain (by device and inode, and by
// path with symlinks resolved), and writes its output through
// internal/atomicfile (temporary name, sync, rename, directory sync;
// removed on error). create refuses an image that is its own backing file
// or in its backing file's chain. dd writes as convert; convert -n writes
// in place. rebase, commit and resize change images through impl/qed's
// crash-safe SetBacking, Rebase, Commit and Resize, locked read-write.
// Error lines name the file once
// (fileError). README.md's "Safety" section states the guarantees.
//
// # Safety of the campaigns
//
// run and qemu check --out and --report before the first workload
// (checkOutputs), write reports and artifacts through internal/atomicfile
// (a report only names an artifact once it is durably complete), record a
// failure whose artifact could not be written (stderr, summary, the
// report's artifact_error), rewrite the report as a checkpoint every
// --checkpoint-interval, and handle SIGINT/SIGTERM (interrupt.go): the
// first signal cancels the campaign's context (artifacts, summary and
// report still written, marked interrupted), a second one (or the campaign
// still running 10 s later) runs internal/cleanup (children killed,
// temporaries removed) and exits at once.
//
// # Testing
//
// Every subcommand runs in-process through [Run], which takes the arguments
// and the output streams and returns the exit code; main only wires it to
// the process.
//
// # Caveats
//
// check -r leaks changes nothing: QED never reclaims leaked clusters, and
// unlike QEMU (which repairs corruptions for any -r mode) only -r all
// repairs invalid offsets. map finds holes in a raw backing file with
// SEEK_DATA/SEEK_HOLE on the OS filesystem only; elsewhere a raw file is all
// data.
package main
