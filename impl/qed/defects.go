package qed

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Seeded defects: the proof that the property suite (package props) finds
// the bug classes of QEMU's QED history. Each Defect names one deliberate
// mistake that the write paths of this package can be switched into; the
// switch exists only in builds with the `qeddefects` tag. In the default
// build defect() is a constant false, every hook is dead code, and the
// package behaves exactly as specified.
//
// The catalogue is exported in every build so that reports can name the
// defects; only SetDefect (qeddefects builds) turns one on.

// Defect identifies one seeded defect (0 = none).
type Defect int

// The seeded defects. See DefectCatalogue for what each one does.
const (
	DefectNone Defect = iota
	DefectNoSyncDataBeforeL2Link
	DefectNoSyncL2BeforeL1Link
	DefectNeedCheckAfterMetadata
	DefectNeedCheckClearedBeforeFlush
	DefectNeedCheckNeverSet
	DefectCacheStaleTable
	DefectZeroesWholeClusters
	DefectCOWPastBackingEndGarbage
	DefectZeroClusterPartialWriteReadsBacking
	DefectRepairKeepsInvalidEntries
	DefectRepairOffByOneCluster
	DefectMaxSizeOverflow
	DefectAllocatorUnalignedEnd
	DefectResizeExposesBacking
	DefectCacheEvictInUse
	DefectSplitSectorWrite
	DefectCloseAfterRecoveryDropsLink
	DefectRecoveryDropsLink
	DefectConcurrentSharedCOWBuffer
	DefectUnallocatedGarbageAfterRepair
	DefectRepairClearsNeedCheckFirst
	DefectSetBackingOneWrite
	DefectRebaseHeaderBeforeCopies
	DefectCommitEmptiesBeforeBaseFlush
	DefectCommitSplitSectorWrite
	numDefects
)

// DefectInfo describes a seeded defect.
type DefectInfo struct {
	Defect Defect
	Name   string // short kebab-case name
	Class  string // the bug class (docs/format.md, Bug classes) it belongs to
	What   string // what the defective code does
}

// DefectCatalogue lists every seeded defect, in Defect order.
var DefectCatalogue = []DefectInfo{
	{DefectNoSyncDataBeforeL2Link, "no-sync-data-before-l2-link", "flush ordering: data vs L2 link (backing)",
		"with a backing file, links the new cluster in L2 without syncing its data and copy-on-write fill first"},
	{DefectNoSyncL2BeforeL1Link, "no-sync-l2-before-l1-link", "flush ordering: L2 table vs L1 link",
		"writes the L1 entry of a new L2 table without syncing the table first"},
	{DefectNeedCheckAfterMetadata, "need-check-after-metadata", "NEED_CHECK protocol: set after instead of before",
		"without a backing file, sets NEED_CHECK after linking the new cluster instead of before"},
	{DefectNeedCheckClearedBeforeFlush, "need-check-cleared-before-flush", "NEED_CHECK protocol: cleared before the flush",
		"clears NEED_CHECK in the header before the sync that makes the metadata durable"},
	{DefectNeedCheckNeverSet, "need-check-never-set", "NEED_CHECK protocol: never set",
		"never sets NEED_CHECK before unordered metadata updates"},
	{DefectCacheStaleTable, "cache-stale-table", "cache: stale cached copy after an update",
		"after updating a cached L2 table on disk, the cache keeps the stale copy (as if the in-use table had been evicted and re-read before the write)"},
	{DefectZeroesWholeClusters, "zeroes-whole-clusters", "write-zeroes masking backing data",
		"unaligned write-zeroes zero the whole clusters they touch"},
	{DefectCOWPastBackingEndGarbage, "cow-past-backing-end-garbage", "copy-on-write past the backing end",
		"copy-on-write does not zero the part of a new cluster past the backing file's end (stale buffer bytes)"},
	{DefectZeroClusterPartialWriteReadsBacking, "zero-cluster-partial-write-reads-backing", "zero-cluster partial writes",
		"a partial write into a zero cluster fills the rest from the backing file instead of zeros"},
	{DefectRepairKeepsInvalidEntries, "repair-keeps-invalid-entries", "repair: invalid entries not cleared",
		"repair counts invalid L1/L2 entries as fixed but leaves them, then clears NEED_CHECK"},
	{DefectRepairOffByOneCluster, "repair-off-by-one-cluster", "repair + size arithmetic: off-by-one bound",
		"repair's bound check accepts an entry pointing at the cluster just past the end of the file"},
	{DefectMaxSizeOverflow, "max-size-overflow", "size arithmetic: overflow of the maximum image size",
		"computes the maximum image size n*n*cluster_size in 32 bits"},
	{DefectAllocatorUnalignedEnd, "allocator-unaligned-end", "size arithmetic: last partial cluster",
		"the allocator starts at the raw file length instead of rounding it down to a cluster"},
	{DefectResizeExposesBacking, "resize-exposes-backing", "size arithmetic: grown area over a longer backing file",
		"growing the image does not hide the backing file's data past the old size"},
	{DefectCacheEvictInUse, "cache-evicts-in-use-table", "cache: in-use L2 table evicted and re-read stale",
		"the L2 cache evicts tables over its bound even when pinned or dirty, so a pending update is lost and the table re-read stale"},
	{DefectSplitSectorWrite, "split-sector-write", "sector atomicity: a guest sector written in two pieces",
		"an in-place data write is issued as two host writes split 256 bytes into a sector (a bounce buffer split at a non-sector boundary), so a crash can tear a guest sector inside a guest write"},
	{DefectCloseAfterRecoveryDropsLink, "close-after-recovery-drops-link", "recovery: the first close after a repair damages flushed data",
		"the first writable close after an open that repaired the image writes back a stale L2 entry: the highest guest cluster mapped (other than cluster 0) loses its data cluster"},
	{DefectRecoveryDropsLink, "recovery-drops-link", "recovery: a repair that loses a mapping of flushed data",
		"the repair on open clears the L2 entry of the lowest guest cluster mapped (other than cluster 0); judged on images above the oracle's full-read limit (ReadLimit), where only the oracle's map-based read-back sees it"},
	{DefectConcurrentSharedCOWBuffer, "concurrent-shared-cow-buffer", "concurrency: allocations in flight share one buffer",
		"concurrent allocating writes build copy-on-write fill and data in the image's one scratch buffer (as the serialised path does under the lock), so one allocation can write another's bytes into its new cluster"},
	{DefectUnallocatedGarbageAfterRepair, "unallocated-garbage-after-repair", "recovery: wrong bytes for an unallocated range after a repair",
		"after an open that ran the repair, a read of an unallocated guest cluster with no backing file behind it returns stale buffer bytes instead of zeros where its guest offset lies at or past the file's length at open (the zero-fill bound compares a guest offset with a host length); judged on images above the oracle's full-read limit (ReadLimit), where the oracle reads only what the checker's map cannot prove and a sample of what it proves"},
	{DefectRepairClearsNeedCheckFirst, "repair-clears-need-check-first", "recovery: an unsafe write order only a crash during recovery shows",
		"the repair on open writes the header with NEED_CHECK clear before the tables it fixes, and syncs once after both: a crash during that recovery can leave NEED_CHECK clear over the invalid entries (found only by crashes during recovery: DefectNested)"},
	{DefectSetBackingOneWrite, "set-backing-one-write", "header rewrite: a backing name torn across sectors",
		"rebase -u writes the header fields and the new backing name in one write from offset 0, the name right after the fields over the old one (as QEMU 7.2 does): a name that spans sectors can be torn, leaving the new fields with a name part new, part old"},
	{DefectRebaseHeaderBeforeCopies, "rebase-header-before-copies", "flush ordering: rebase header vs copies",
		"the safe rebase rewrites the header to name the new backing file before it copies the clusters whose data differ (and makes them durable only after)"},
	{DefectCommitEmptiesBeforeBaseFlush, "commit-empties-before-base-flush", "flush ordering: commit's emptying vs the base's data",
		"commit empties the image before the data it wrote into the base file is durable"},
	{DefectCommitSplitSectorWrite, "commit-split-sector-write", "sector atomicity: a base sector written in two pieces",
		"commit writes each chunk into a raw base as two writes split 256 bytes into its first sector, so a crash can tear a base sector (half old, half the image's)"},
}

// DefectNested reports whether d is a defect of the recovery's own write
// order, which a single crash followed by a clean recovery cannot show:
// only a crash during the recovery does (the campaign's nested judge,
// internal/campaign/nested.go). Suites that judge one crash skip it.
func DefectNested(d Defect) bool { return d == DefectRepairClearsNeedCheckFirst }

// DefectReadLimit is the oracle's FullReadLimit under which a defect is
// meant to be judged (0: the default): DefectRecoveryDropsLink stands for a
// lost mapping on an image too big to read back whole, and
// DefectUnallocatedGarbageAfterRepair for wrong bytes where the checker's
// map proves zeros on such an image, which the small images of the
// property tests and campaigns reach with a small limit.
func DefectReadLimit(d Defect) int64 {
	if d == DefectRecoveryDropsLink || d == DefectUnallocatedGarbageAfterRepair {
		return 4096
	}
	return 0
}

// String returns the defect's name.
func (d Defect) String() string {
	if d > DefectNone && int(d) <= len(DefectCatalogue) {
		return DefectCatalogue[d-1].Name
	}
	if d == DefectNone {
		return "none"
	}
	return "Defect(" + strconv.Itoa(int(d)) + ")"
}

// defectGarblePastBackingEnd overwrites the bytes of a copy-on-write buffer
// that lie past the backing file's end (which must read as zeros) with
// stale-looking bytes, as an uninitialised bounce buffer would hold
// (DefectCOWPastBackingEndGarbage).
func (im *Image) defectGarblePastBackingEnd(buf []byte, gpos uint64) {
	if im.backing == nil {
		return
	}
	end := im.backing.length()
	for i := range buf {
		if int64(gpos)+int64(i) >= end {
			buf[i] = 0xa5
		}
	}
}

// defectGarbleUnallocated overwrites the bytes of p (read at guest offset
// gpos from an unallocated cluster with no backing file, so zeros) at or
// past the guest offset equal to the file's length at open with
// stale-looking bytes (DefectUnallocatedGarbageAfterRepair).
func (im *Image) defectGarbleUnallocated(p []byte, gpos uint64) {
	for i := range p {
		if gpos+uint64(i) >= im.openLen {
			p[i] = 0xdb
		}
	}
}

// defectSplitWrite writes p at host in two pieces split 256 bytes into a
// sector (DefectSplitSectorWrite); it reports false (nothing written) when
// p has no such point inside it.
func (im *Image) defectSplitWrite(p []byte, host uint64) (bool, error) {
	cut := (host/SectorSize)*SectorSize + SectorSize/2
	if cut <= host {
		cut += SectorSize
	}
	k := cut - host
	if k >= uint64(len(p)) {
		return false, nil
	}
	if _, err := im.f.WriteAt(p[:k], int64(host)); err != nil {
		return true, err
	}
	_, err := im.f.WriteAt(p[k:], int64(cut))
	return true, err
}

// defectDropLink clears, in the file, the L2 entry of the highest guest
// cluster (lowest, if lowest is set) other than cluster 0 that has a data
// cluster, as writing back a stale copy of its table would (the data
// cluster leaks), syncs, and drops the cached tables
// (DefectCloseAfterRecoveryDropsLink: highest; DefectRecoveryDropsLink:
// lowest, the cluster least likely to hold the writes in flight at the
// crash). mu must be held exclusively.
func (im *Image) defectDropLink(lowest bool) error {
	tbl := im.newTable(im.geo.nelems)
	defer tbl.release()
	n := im.l1.len()
	for ii := range n {
		i := n - 1 - ii
		if lowest {
			i = ii
		}
		l2 := im.l1.get(i)
		if l2 == 0 {
			continue
		}
		if err := im.readTable(l2, &tbl); err != nil {
			return err
		}
		m := tbl.len()
		for jj := range m {
			j := m - 1 - jj
			if lowest {
				j = jj
			}
			if tbl.get(j) <= 1 || (i == 0 && j == 0) {
				continue
			}
			tbl.set(j, 0)
			if err := im.writeTableLocked(l2, &tbl, j, 1); err != nil {
				return err
			}
			im.cache.clear()
			return im.f.Sync()
		}
	}
	return nil
}

// sharedCOWBufferDefect returns n bytes of the image's scratch buffer to an
// allocation in flight, with no lock held (DefectConcurrentSharedCOWBuffer:
// the data race is the defect).
func (im *Image) sharedCOWBufferDefect(n uint64) []byte {
	im.defectMu.Lock()
	defer im.defectMu.Unlock()
	if im.defectCOW == nil || uint64(len(im.defectCOW)) < n {
		im.defectCOW = make([]byte, n)
	}
	return im.defectCOW[:n]
}

// DefectSelection parses a comma-separated list of seeded-defect names
// (as the seeded-defect suites' PROPS_DEFECT and CAMPAIGN_DEFECT take
// them): nil for an empty list (every defect), an error naming the first
// unknown name (a misspelt selection would otherwise run nothing).
func DefectSelection(list string) (map[string]bool, error) {
	if strings.TrimSpace(list) == "" {
		return nil, nil
	}
	known := map[string]bool{}
	for _, info := range DefectCatalogue {
		known[info.Name] = true
	}
	sel := map[string]bool{}
	for _, name := range strings.Split(list, ",") {
		name = strings.TrimSpace(name)
		if !known[name] {
			return nil, fmt.Errorf("no seeded defect named %q (impl/qed/defects.go)", name)
		}
		sel[name] = true
	}
	return sel, nil
}

// DefectSelectionEnv is DefectSelection of the environment variable env
// (the seeded-defect suites' PROPS_DEFECT and CAMPAIGN_DEFECT), its error
// naming the variable and its value.
func DefectSelectionEnv(env string) (map[string]bool, error) {
	v := os.Getenv(env)
	sel, err := DefectSelection(v)
	if err != nil {
		return nil, fmt.Errorf("%s=%q: %w", env, v, err)
	}
	return sel, nil
}
