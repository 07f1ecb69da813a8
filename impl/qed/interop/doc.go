// Package interop holds the QEMU interoperability tests of impl/qed and the
// small helpers they share. It has no production code: everything that
// matters is in its _test.go files, run with `go test ./impl/qed/interop`.
//
// # What is tested
//
//  1. QEMU writes, impl/qed reads (qemu_written_test.go): images created by
//     qemu-img and written by one batched qemu-io per image — cluster sizes
//     4 KiB, 64 KiB, 1 MiB and 2 MiB, table sizes 2, 4 and 16 (1 MiB x 16
//     and 2 MiB x 8 only with QEDTORTURE_INTEROP_FULL set), zero,
//     unaligned and multi-L2-table image sizes, zero clusters made by
//     `write -z`, raw and QED backing chains (backing files shorter than the
//     image, relative names, a QED file used as a raw backing file) — read
//     byte-identical through impl/qed to `qemu-img convert -O raw`, and
//     `qedtorture map` agrees with `qemu-img map`.
//  2. impl/qed writes, QEMU reads (ours_test.go): images made by
//     `qedtorture create` and `qedtorture convert` and written through
//     impl/qed by a seeded random workload (printed seed; set
//     INTEROP_SEED to replay) pass `qemu-img check` clean and read
//     identically with `qemu-img compare` and `qemu-io read -P`.
//  3. Planted corruption (corruption_test.go): invalid L1/L2 offsets,
//     double references, leaks and NEED_CHECK, planted by the corrupters in
//     this package; `qedtorture check` and `qemu-img check` agree on every
//     count and on the exit code, with and without -r all. TestPlantedEveryKind
//     plants every kind of props/check's corrupter (check.Plant, the one the
//     repair mode uses) with NEED_CHECK set and clear, and compares the
//     read-only checks the same way.
//
// # Deviations
//
// Where QEMU cannot agree because it departs from the specification, a test
// named TestDeviation* states QEMU's behaviour and the rule it breaks and
// asserts that impl/qed and qedtorture follow the rule. The list is kept in
// [Deviations].
//
// # Caveats
//
// The tests need qemu-img and qemu-io (Debian's qemu-utils; QEMU 7.2 was
// used to write them): without them they skip, unless the environment
// variable CI is non-empty, where they fail. TestMain builds the qedtorture
// binary once. All files live in t.TempDir on the OS filesystem.
package interop
