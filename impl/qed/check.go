package qed

import (
	"fmt"
)

// Check walks the tables and reports what `qemu-img check -f qed` reports,
// counted the way QEMU's qed-check.c counts:
//   - the L1 clusters, every referenced L2 table and every data cluster are
//     marked in a bitmap of the file's whole clusters; a cluster marked twice
//     is a corruption (a table with a doubly referenced cluster is skipped);
//   - an L1 entry that is not a valid table offset, or an L2 entry (not 0 or
//     1) that is not a valid cluster offset, is a corruption; with repair it
//     is set to 0, counted in CorruptionsFixed instead, and the table is
//     rewritten whole;
//   - Allocated counts every L2 entry other than 0 and 1 (invalid ones too),
//     Fragmented those not following the previous one in the same table;
//   - Leaks are unmarked clusters after the header, counted only when every
//     table could be read (CheckErrors == 0). They are never reclaimed.
//
// With repair, if no corruption and no check error remains, NEED_CHECK is
// cleared after a Sync. An I/O error is counted in CheckErrors and also
// returned.
func (im *Image) Check(repair bool) (CheckReport, error) {
	im.mu.Lock()
	defer im.mu.Unlock()
	if err := im.checkOpenLocked(); err != nil {
		return CheckReport{}, err
	}
	if repair && im.readOnly {
		return CheckReport{}, ErrReadOnly
	}
	if !im.readOnly && im.metaDirtyLocked() {
		// The check reads tables from the file: write pending metadata
		// back first (a flush, with its ordering).
		if err := im.flushMetaLocked(); err != nil {
			return CheckReport{}, err
		}
	}
	return im.checkLocked(repair)
}

// checkLocked does Check with mu held exclusively. Repairs go through the
// one table-write path; the L2 cache is dropped afterwards.
//
// Ordering of a repair: fixed L2 tables, then the fixed L1 table, are
// written in place (each only drops entries to 0, so any prefix of them
// reaching the disk leaves a state the next check repairs again);
// NEED_CHECK is cleared through clearNeedCheckLocked, which syncs those
// writes before the header changes.
func (im *Image) checkLocked(repair bool) (CheckReport, error) {
	g := &im.geo
	rep := CheckReport{
		TotalClusters: int64((im.hdr.ImageSize + g.clusterSize - 1) / g.clusterSize),
	}
	if st, err := im.f.Stat(); err == nil {
		rep.ImageEndOffset = st.Size()
	}
	nclusters := im.fileSize / g.clusterSize
	used := make([]uint64, (nclusters+63)/64) // bounded by the file's size
	mark := func(off, n uint64) bool {
		ok := true
		for c := off / g.clusterSize; n > 0; c, n = c+1, n-1 {
			if c >= nclusters {
				continue // unreachable for validated offsets
			}
			if used[c/64]&(1<<(c%64)) != 0 {
				rep.Corruptions++
				rep.Problems = append(rep.Problems, fmt.Sprintf("cluster %d (offset %d) is referenced more than once", c, c*g.clusterSize))
				ok = false
			}
			used[c/64] |= 1 << (c % 64)
		}
		return ok
	}
	invalid := func(what string, off, value uint64) {
		if repair {
			rep.CorruptionsFixed++
			rep.Problems = append(rep.Problems, fmt.Sprintf("%s = %#x at offset %d: invalid offset, cleared", what, value, off))
		} else {
			rep.Corruptions++
			rep.Problems = append(rep.Problems, fmt.Sprintf("%s = %#x at offset %d: invalid offset", what, value, off))
		}
	}

	var lastErr error
	// defectEarly (DefectRepairClearsNeedCheckFirst) writes the header
	// with NEED_CHECK clear before the first fixed table, unsynced.
	early := false
	defectEarly := func() {
		if early || !repair || !defect(DefectRepairClearsNeedCheckFirst) || im.hdr.Features&FeatureNeedCheck == 0 {
			return
		}
		nh := im.hdr
		nh.Features &^= FeatureNeedCheck
		if err := im.writeHeaderLocked(nh); err != nil {
			lastErr = err
		}
		early = true
	}
	limit := im.fileSize // entries must lie below the last whole cluster
	if defect(DefectRepairOffByOneCluster) {
		limit += g.clusterSize // off by one: the cluster just past the end passes
	}
	mark(im.hdr.L1TableOffset, g.tableSize)
	// Scratch copies of the L1 and of one L2 table, pooled (perf, issue 5).
	l1p, tblp := getEntries(int(g.nelems)), getEntries(int(g.nelems))
	defer putEntries(l1p)
	defer putEntries(tblp)
	l1, tbl := im.l1, *tblp
	// l1 is im.l1 itself when it is whole (a writable open), copied to
	// the scratch table only when a repair clears an entry (perf: the
	// crash oracle's writable open checks every crashed image; the
	// copy of a 256 KiB table showed in the profile).
	owned := false
	if uint64(len(im.l1)) != g.nelems {
		// A read-only open keeps only the L1 entries below the image
		// size (l1Entries); the check walks the whole table, read from
		// the file (which a read-only image never changes).
		l1, owned = *l1p, true
		if err := im.readTable(im.hdr.L1TableOffset, l1); err != nil {
			rep.CheckErrors++
			rep.Problems = append(rep.Problems, fmt.Sprintf("L1 table at %d: %v", im.hdr.L1TableOffset, err))
			return rep, fileErr(im.path, "check", err)
		}
	}
	l1Invalid := 0
	for i := nonZero(l1, 0); i < len(l1); i = nonZero(l1, i+1) {
		e := l1[i]
		if !g.validTableOffset(e, limit) {
			invalid(fmt.Sprintf("L1[%d]", i), im.hdr.L1TableOffset+uint64(i)*entrySize, e)
			if repair && !defect(DefectRepairKeepsInvalidEntries) {
				if !owned {
					l1, owned = *l1p, true
					copy(l1, im.l1)
				}
				l1[i] = 0
			}
			l1Invalid++
			continue
		}
		if !mark(e, g.tableSize) {
			continue // skip a table that overlaps something else
		}
		if err := im.readTable(e, tbl); err != nil {
			rep.CheckErrors++
			lastErr = err
			rep.Problems = append(rep.Problems, fmt.Sprintf("L2 table at %d: %v", e, err))
			continue
		}
		l2Invalid := 0
		last := uint64(0)
		for j := nonZero(tbl, 0); j < len(tbl); j = nonZero(tbl, j+1) {
			d := tbl[j]
			if d == l2ZeroCluster {
				continue
			}
			rep.Allocated++
			if last != 0 && last+g.clusterSize != d {
				rep.Fragmented++
			}
			last = d
			if !g.validClusterOffset(d, limit) {
				invalid(fmt.Sprintf("L2[%d] of table %d", j, e), e+uint64(j)*entrySize, d)
				if repair && !defect(DefectRepairKeepsInvalidEntries) {
					tbl[j] = 0
				}
				l2Invalid++
				continue
			}
			mark(d, 1)
		}
		if l2Invalid > 0 && repair {
			defectEarly()
			if err := im.writeTableLocked(e, tbl, 0, g.nelems); err != nil {
				rep.CheckErrors++
				lastErr = err
			}
		}
	}
	if l1Invalid > 0 && repair {
		defectEarly()
		if err := im.writeTableLocked(im.hdr.L1TableOffset, l1, 0, g.nelems); err != nil {
			rep.CheckErrors++
			lastErr = err
		} else {
			copy(im.l1, l1) // im.l1 is whole when writable
		}
	}
	if repair {
		im.cache.clear()
	}
	if early && lastErr == nil {
		// The defect's one sync, after the header and the tables.
		if err := im.f.Sync(); err != nil {
			lastErr = err
		}
	}
	if lastErr != nil {
		return rep, fileErr(im.path, "check", lastErr)
	}
	for c := uint64(im.hdr.HeaderSize); c < nclusters; c++ {
		if used[c/64]&(1<<(c%64)) == 0 {
			rep.Leaks++
		}
	}
	if repair {
		im.corrupt = rep.Corruptions > 0
		if im.corrupt && im.hdr.Features&FeatureNeedCheck == 0 {
			// Corruption the repair cannot remove (double references)
			// stays: the image must not go on claiming to be clean
			// (NEED_CHECK clear implies consistent). The repaired tables
			// were written first; any prefix of them with the flag still
			// clear is no worse than the image before the repair.
			if err := im.setNeedCheckLocked(); err != nil {
				rep.CheckErrors++
				return rep, err
			}
		}
		if !im.corrupt && im.hdr.Features&FeatureNeedCheck != 0 {
			if err := im.clearNeedCheckLocked(); err != nil {
				rep.CheckErrors++
				return rep, err
			}
		}
	}
	return rep, nil
}

// nonZero returns the index of the first non-zero entry of t at or after
// i (len(t) if none). Runs of zero entries, most of a sparse image's
// tables, are skipped eight at a time (perf: every crashed image's
// writable open checks its tables).
func nonZero(t []uint64, i int) int {
	for ; i+8 <= len(t); i += 8 {
		if t[i]|t[i+1]|t[i+2]|t[i+3]|t[i+4]|t[i+5]|t[i+6]|t[i+7] != 0 {
			break
		}
	}
	for ; i < len(t) && t[i] == 0; i++ {
	}
	return i
}
