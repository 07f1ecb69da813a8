// Command qedtorture is the project's command line: torture campaigns that
// judge every crash state of generated workloads (run, replay, report merge),
// the same campaign against QEMU's QED driver (qemu), a qemu-img-bench-like
// benchmark (bench), and image utilities shaped like qemu-img's (create,
// info, check, map, convert) over the impl/qed implementation.
//
// # Basics
//
//	qedtorture create [-o cluster_size=N,table_size=N] [-b BACKING [-F raw|qed]] IMG [SIZE]
//	qedtorture info   [--output human|json] IMG
//	qedtorture check  [-r leaks|all] [--output human|json] IMG
//	qedtorture map    [--output human|json] IMG
//	qedtorture convert [-f raw|qed] [-O raw|qed] [-o cluster_size=N,table_size=N] SRC DST
//	qedtorture run    [--duration D | --iterations N] [--seed S] [--crash-model M] [--shard I/N] ...
//	qedtorture replay ARTIFACT_DIR
//	qedtorture report merge [-o FILE] REPORT...
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
// qemu-img: 0 clean, 2 corruptions, 3 leaks only, 1 the check itself failed.
// Every error is one line on stderr, prefixed "qedtorture: ".
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
