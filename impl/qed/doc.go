// Package qed implements the QED ("QEMU Enhanced Disk") image format exactly
// to its specification (QEMU docs/interop/qed_spec.txt), interoperable with
// QEMU both ways, on top of an afero.Fs so crash and fault layers can wrap
// every file access, backing files included.
//
// # Basics
//
// Create makes an image the way `qemu-img create -f qed` does; Open returns
// an *Image offering guest I/O at any offset and length (ReadAt, WriteAt,
// WriteZeroes), Flush, Close, Resize (grow only), Check (the counts of
// `qemu-img check`) and Map. SetBacking, Rebase and Commit are the
// metadata-changing image utilities (`qemu-img rebase -u`, `rebase`,
// `commit`; rebase.go and commit.go argue their crash safety). The wire format lives in format.go; write
// paths are centralised: one allocator (allocClustersLocked), one
// allocating write in three steps (alloc.go: reserveLocked, fillAndWrite,
// linkAllocLocked; concurrent in allocateConcurrent, all under the lock in
// allocateLocked), one table-link path (linkLocked),
// one table-write path (writeTableLocked), one header-write path
// (writeHeaderLocked), and NEED_CHECK is set and cleared in one place each.
//
// # Guarantees
//
//   - Crash safety, as the spec argues: with a backing file, new data
//     (copy-on-write fill included) is synced before an L2 entry points at
//     it; a new L2 table is written (whole, or above 64 KiB the file
//     extended over it and the sectors of its entries written) and synced
//     before L1 points at it. Without a backing file, NEED_CHECK is durably set before the
//     first unordered metadata update and cleared only after a Sync made
//     all metadata durable (on Close, after a repair that left no
//     corruption, and after an idle period with no allocating writes,
//     default 5 s, on an injectable Clock).
//   - Write-back metadata, for I/O economy (docs/performance.md): an
//     allocating write issues one write request (data and copy-on-write
//     fill together; no zero fill at all into clusters never written
//     before) and no sync. The L2 and L1 changes stay in memory, dirty,
//     until the next metadata writeback (flushMetaLocked), which runs on
//     Flush, Close, Check, Resize, the idle NEED_CHECK clear and when the
//     L2 cache overflows, and applies the ordering above to everything
//     pending at once: one writeback serves any number of allocations.
//     Flush therefore makes completed writes durable with their mappings.
//   - A writable open of an image with NEED_CHECK runs Check with repair
//     first. A read-only open never repairs; a read that meets an invalid
//     table entry fails with a *FormatError instead of returning bytes.
//   - Malformed input yields a *FormatError naming field, value and file
//     offset (errors.Is-matching ErrNotQED, ErrUnsupportedFeature,
//     ErrInvalidHeader or ErrCorrupt); nothing sized by the file is
//     allocated before it is bounded by the file's real size.
//   - Image locks (lock.go): an open of a real OS file takes the advisory
//     byte-range locks QEMU takes (internal/imagelock) before reading or
//     changing anything: read-write for a writable open, read-only (or
//     force-share with OpenOptions.ForceShare) for a read-only open and for
//     every file of the backing chain. A conflict with qemu-img, qemu-io, a
//     VM or another open in this process fails the open with an
//     *imagelock.ConflictError and changes nothing; Create takes the
//     read-write locks before truncating. Files of other filesystems
//     (crashsim, faultfs, in memory) take no locks; NoLock turns them off.
//   - Create refuses a backing file that is the image itself (ErrBackingLoop),
//     by name or, when both exist, by device and inode.
//   - Errors of Open, Create and ReadHeader are *FileError values that name
//     the file once ("PATH: cause"), except lock conflicts (see above).
//   - An *Image is safe for concurrent use. Reads and in-place writes run
//     in parallel. Allocating writes run in parallel too, except for the
//     instants they hold the lock to reserve their clusters (bumping the
//     end of the file) and to link them: their copy-on-write reads and
//     data writes overlap each other, reads and in-place writes. A write
//     into a cluster another write is allocating waits for that link and
//     then writes in place, so no cluster is allocated twice and no write
//     is lost (alloc.go argues the crash safety). Write-zeroes, Check,
//     Resize, Close, the image utilities and the NEED_CHECK clear are
//     serialised and wait for allocations in flight. The L2 cache is
//     bounded and never evicts a table in use.
//
// # Invariants
//
//   - Allocation is append-only: the file length rounded down to a cluster
//     is the allocator; nothing is freed, so lost links are leaks.
//   - The in-memory L1 table and the cached L2 tables are the truth; the
//     file equals them except for the entries recorded as dirty (which are
//     written only after the data they point at, per the ordering above).
//     A dirty table is never evicted, so the cache never loses a mapping
//     and memory stays bounded by the cache size plus pinned tables.
//     A read-only open keeps only the L1 entries below the image size
//     (whole sectors of them); Check then reads the whole L1 from the file.
//   - Tables above 64 KiB (maxWholeTable: QEMU's default 256 KiB tables,
//     up to 1 GiB for 64 MiB clusters and 16-cluster tables) are made by
//     extending the file (a new image's L1, a new L2 table: the file reads
//     zeros there, and only the sectors holding entries are written,
//     flushMetaLocked's ordering), and are held in 4 KiB pages, only those holding
//     entries (table.go): an open, a lookup and Check read only the pages
//     where the file has data (SEEK_DATA, where the file answers it), so
//     memory and time follow the entries an image holds, not its
//     geometry. Their writes are those of a whole []uint64 (one request
//     per table write), except two that write less and leave the same
//     file: a repair writes the sectors of the entries it cleared, not the
//     whole table, and Commit's emptying of a big L1 writes zeros over the
//     pages that held entries (the others are zeros in the file already).
//     Smaller tables are read and written whole as before.
//
// # Caveats
//
//   - QEMU 7.2 cannot open images with table_size 1 (its table-offset
//     overflow test refuses them) and computes the maximum image size
//     modulo 2^64 (refusing every size for e.g. 2 MiB clusters with
//     16-cluster tables). This package follows the spec in both cases.
//   - Like QEMU, an open-time repair that leaves unrepairable corruption
//     (a cluster referenced twice) does not fail the open; NEED_CHECK then
//     stays set, also across Close.
//   - QEMU reports no image-end-offset for QED; CheckReport.ImageEndOffset
//     is the host file length.
package qed
