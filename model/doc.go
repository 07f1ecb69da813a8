// Package model is a deliberately simple reference model of a virtual disk
// and the crash oracle that says what the disk may read back after a power
// loss. It knows nothing about QED or any image format: it models what a
// guest must see.
//
// # The disk
//
// A [Disk] has a size in bytes (a multiple of [SectorSize]), an optional
// backing [Disk], and contents changed by [Disk.Write] (a recognisable
// pattern, see below), [Disk.WriteBytes] (caller bytes, copied),
// [Disk.WriteZeroes] and [Disk.Grow]. Guest I/O may start and end at any
// byte. Bytes never written read as zero; so do bytes past the end of a
// backing disk that is shorter than the disk, and bytes added by Grow (even
// if the backing disk is longer: growing never exposes backing data, as in
// QEMU since 5.1). A backing disk must be fully flushed when it is attached;
// its durable contents are captured at [New] and later changes to it are not
// seen.
//
// Contents are kept as a sorted map of extents that refer to operation
// records, never as arrays of bytes: memory is proportional to the number of
// operations (plus the bytes given to WriteBytes), not to the disk size. A
// 1 TiB disk with a hundred writes costs a few KiB.
//
// # Patterns
//
// Write does not take bytes. It assigns a fresh pattern id and the caller
// produces the data with [Fill]. The pattern is a function of (id, guest
// offset) only: each 8-byte-aligned word at guest offset w holds
// mix(id<<40 | w>>3), where mix is an invertible 64-bit mixer. Therefore
//   - distinct writes and distinct offsets give distinct words,
//   - no pattern word is all zeros (ids start at 1), so zeros are never
//     mistaken for data,
//   - 16 bytes of pattern data, wherever they are found, name the write and
//     the guest offset they were generated for ([Identify], exact inverse of
//     the mixer): data read from the wrong place ("write 7, but generated
//     for offset 0x3000") is recognised, at any byte shift.
//
// Pattern ids are unique along a backing chain (a disk continues the id
// sequence of its backing disk). Ids are limited to [MaxPatternID] and
// offsets to [MaxSize].
//
// # The crash oracle
//
// The disk keeps two views: the current contents (what a read must return
// while the disk is running: [Disk.Verify], [Disk.ReadAt]) and the durable
// contents as of the last [Disk.Flush], plus the ordered list of operations
// since then (the pending epoch). After a crash, [Disk.VerifyCrash] applies
// the sector rule: each [SectorSize]-aligned guest sector must read as its
// durable value with some subset of the pending writes covering it applied
// in the order they were issued (write-zeroes and WriteBytes count as
// writes). A guest relies on sector atomicity, so a boundary between values
// inside a sector is legal only where a pending guest write starts or ends
// there; whole sectors of a write may be lost independently (a torn write),
// and a write may be kept in one sector and lost in the next. Writes
// recorded between [Disk.BeginGroup] and [Disk.EndGroup] were issued at
// once (a concurrent group): among them any order is allowed. The
// decision is exact (a greedy sweep from the latest write, proved in
// sector.go and checked against brute force in the tests).
// [Disk.CrashSizes] lists the sizes allowed after a crash (the durable
// size and the size of every pending Grow).
//
// Two marks serve fault injection. A write that returned an error
// ([Disk.FailWrite]) may have landed in part anywhere (a short host write
// ends mid-sector): its bytes are judged one by one, in its place in the
// issue order. A range that a silent fault damaged ([Disk.Excuse]) allows
// any value, running or after a crash, until it is written again.
//
// A failed check returns a [*Mismatch]: the rule broken (Reason: "value",
// a byte no candidate allows; "torn", a write applied to part of a sector
// only; "order", an earlier write's value over a later one inside a
// sector) in words (Detail), the guest offset of the first bad
// byte and the length of the bad run (up to its last bad byte before 16
// allowed bytes in a row: bytes that match by chance do not split it), an
// excerpt of the bytes read, every allowed candidate at the first bad byte
// with the operation that produced it, and what the read bytes look like
// ([Disk.Explain]: "zeros", "pattern of write id 12 (op 31) ... generated
// for guest offset 0x3000 (misplaced by -0x2000)", "unknown"). VerifyCrash
// accepts ranges up to the current size; the caller reads a crashed disk
// only up to the size it reports, which must be one of CrashSizes
// ([Disk.ReadDurableAt] gives the "drop" crash state directly).
//
// After a successful recovery, [Disk.Recover] reads back only the uncertain
// ranges ([Disk.Uncertain]: the union of the pending writes), checks them
// by the same rule (bytes outside them are covered by no pending write, so
// the rule decomposes over them exactly), and makes what was read the new durable state, so a workload can continue
// past a crash. Everything outside the uncertain ranges is known and is not
// read.
//
// # Invariants
//
//   - Extent maps are sorted, non-overlapping, non-empty, inside the size
//     they describe, and each extent lies inside the range of its record.
//   - With no pending operations, the durable and current views are equal.
//   - Every operation gets the next operation index (Op, 1-based), including
//     Flush, Grow and Recover, so reports can name the step that produced a
//     value.
//
// # Caveats
//
// A Disk is not safe for concurrent mutation. The read-only methods
// (Verify, VerifyCrash, ReadAt, ReadDurableAt, Uncertain, CrashSizes,
// Explain, String, Describe) may run concurrently with each other, so many crash states can
// be checked in parallel against one Disk. Bad arguments return errors
// ([ErrRange], [ErrShrink], ...), never panics.
package model
