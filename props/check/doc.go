// Package props holds the properties that prove integrity and consistency
// of QED images after arbitrary crashes and faults, and the independent
// structural checker they use as their first oracle.
//
// # The structural checker (checker*.go)
//
// Structure, ReaderAt and File read a raw
// QED image with their own minimal decoding — they share no code with
// impl/qed, so a decoding bug there cannot hide itself — and return a
// Report listing every Violation found, not just the first:
//
//   - header fields: magic, cluster_size (power of two, 4 KiB..64 MiB),
//     table_size (power of two, 1..16), header_size (non-zero, header_size *
//     cluster_size fits 32 bits), image_size (multiple of 512, at most
//     n*n*cluster_size computed without overflow), unknown incompatible
//     feature bits, backing name range inside the header clusters, and
//     NO_PROBE without BACKING_FILE (a warning);
//   - table placement: the L1 table and every linked L2 table aligned,
//     after the header and wholly inside the file;
//   - entries: every L2 entry 0 (unallocated), 1 (zero cluster) or an
//     aligned data offset after the header and inside the file;
//   - double references: a host cluster referenced twice, classified as
//     table/table, table/data or data/data, with the first reference named;
//   - the crash invariant "NEED_CHECK clear implies fully consistent",
//     reported as its own kind (ViolNeedCheckClearButInconsistent).
//
// "Inside the file" means below the file size rounded down to a whole
// cluster, as in QEMU: bytes past the last whole cluster may be overwritten
// by the next allocation and hold nothing.
//
// Leaked clusters (after the header, referenced by nothing) are counted, not
// reported as violations. The report also counts allocated, zero and
// fragmented clusters with QEMU's definitions, so that its numbers can be
// compared with `qemu-img check --output=json`.
//
// # Guarantees
//
//   - No input panics or hangs. Every allocation and every loop is bounded by
//     the real file size: a table is read only after its placement inside
//     the file is verified, and a table is walked at most once.
//   - The walk follows QEMU's check order and rules, so Corruptions() and
//     Leaks match `qemu-img check` on images QEMU can open: an invalid
//     L1/L2 entry is one corruption, each doubly referenced cluster is one
//     corruption, and an L2 table that collides with an already referenced
//     cluster is not walked.
//   - With NEED_CHECK set, violations that a repairing check removes (invalid
//     L1/L2 entries, which repair sets to 0) are flagged Repairable; double
//     references and header faults never are, because repair cannot fix them.
//
// # The corrupter (plant.go)
//
// Plant damages a copy of a consistent image in one of the ways the checker
// knows (Corruptions: invalid, misaligned, past-EOF and into-metadata
// entries in L1 and L2, an L1 entry pointing at data, L2 tables overlapping
// each other or the L1 table, double references, leaks, a truncated file, a
// garbage header field), with NEED_CHECK set or clear, deterministically
// from a seed. Planted names the bytes changed, the guest ranges whose
// contents the damage (or a repair of it) may change (every other guest
// cluster must read as before through any implementation), and the
// violation kinds the checker must find. It is the input of the repair
// judge: repair paths exist for corruption that a crash of a correct
// implementation cannot produce.
//
// # Caveats
//
//   - The checker validates structure only. An entry that points at a valid
//     cluster holding the wrong bytes (a hole, stale data) is the data
//     oracle's business.
//   - QEMU 7.2 refuses to open images with table_size 1 (its table-offset
//     check treats a one-cluster table as an overflow); the specification
//     allows them and so does this checker.
//   - A Checker reuses its buffers between calls and is not safe
//     for concurrent use; the package-level functions are.
package check
