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
	// l1 is im.l1 itself when it is whole (a writable open: perf, the
	// crash oracle's writable open checks every crashed image). A
	// read-only open keeps only the L1 entries below the image size
	// (l1Entries); the check then walks the whole table, read from the
	// file (which a read-only image never changes) into a scratch table.
	l1 := &im.l1
	if im.l1.len() != g.nelems {
		scratch := im.newTable(g.nelems)
		defer scratch.release()
		l1 = &scratch
		if err := im.readTable(im.hdr.L1TableOffset, l1); err != nil {
			rep.CheckErrors++
			rep.Problems = append(rep.Problems, fmt.Sprintf("L1 table at %d: %v", im.hdr.L1TableOffset, err))
			return rep, fileErr(im.path, "check", err)
		}
	}
	// A repair clears invalid L1 entries in im.l1 (only a writable open
	// repairs) and puts them back if the table write fails, so that the
	// in-memory table stays what the file holds.
	type clearedEntry struct{ i, old uint64 }
	var l1Cleared []clearedEntry
	// The scratch L2 table, pooled (perf, issue 5); a big one holds only
	// the pages the file has data in (table.read).
	tbl := im.newTable(g.nelems)
	defer tbl.release()
	var l2Cleared []uint64
	l1Invalid := 0
	for i := l1.nextNonZero(0); i < l1.len(); i = l1.nextNonZero(i + 1) {
		e := l1.get(i)
		if !g.validTableOffset(e, limit) {
			invalid(fmt.Sprintf("L1[%d]", i), im.hdr.L1TableOffset+i*entrySize, e)
			if repair && !defect(DefectRepairKeepsInvalidEntries) {
				l1Cleared = append(l1Cleared, clearedEntry{i, e})
				l1.set(i, 0)
			}
			l1Invalid++
			continue
		}
		if !mark(e, g.tableSize) {
			continue // skip a table that overlaps something else
		}
		if err := im.readTable(e, &tbl); err != nil {
			rep.CheckErrors++
			lastErr = err
			rep.Problems = append(rep.Problems, fmt.Sprintf("L2 table at %d: %v", e, err))
			continue
		}
		l2Invalid := 0
		l2Cleared = l2Cleared[:0]
		last := uint64(0)
		for j := tbl.nextNonZero(0); j < tbl.len(); j = tbl.nextNonZero(j + 1) {
			d := tbl.get(j)
			if d == l2ZeroCluster {
				continue
			}
			rep.Allocated++
			if last != 0 && last+g.clusterSize != d {
				rep.Fragmented++
			}
			last = d
			if !g.validClusterOffset(d, limit) {
				invalid(fmt.Sprintf("L2[%d] of table %d", j, e), e+j*entrySize, d)
				if repair && !defect(DefectRepairKeepsInvalidEntries) {
					tbl.set(j, 0)
					l2Cleared = append(l2Cleared, j)
				}
				l2Invalid++
				continue
			}
			mark(d, 1)
		}
		if l2Invalid > 0 && repair {
			defectEarly()
			if err := im.writeRepairedLocked(e, &tbl, l2Cleared); err != nil {
				rep.CheckErrors++
				lastErr = err
			}
		}
	}
	if l1Invalid > 0 && repair {
		defectEarly()
		idx := make([]uint64, len(l1Cleared))
		for k, c := range l1Cleared {
			idx[k] = c.i
		}
		if err := im.writeRepairedLocked(im.hdr.L1TableOffset, l1, idx); err != nil {
			rep.CheckErrors++
			lastErr = err
			for _, c := range l1Cleared {
				l1.set(c.i, c.old)
			}
		}
	}
	if repair {
		im.cache.clear()
	}
	if defect(DefectRepairClearsNeedCheckFirst) && early && lastErr == nil {
		// The defect's one sync, after the header and the tables (early
		// is only ever set with the defect; naming it here lets the
		// coverage count leave the block out as defect code).
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

// writeRepairedLocked writes a table a repair changed: a whole table (at
// most 64 KiB, maxWholeTable) whole, as QEMU's check does; a big one
// (paged) as the sectors of the entries cleared, in index order, one
// write each (perf: a 64 MiB table is not rewritten for one entry). The
// sectors not written hold what the file holds (the table was just read
// from it, or is im.l1, which equals the file after the writeback Check
// starts with), so the file ends the same either way, and every prefix of
// the writes only drops entries to 0, which the next check repairs again
// (checkLocked's ordering: NEED_CHECK is cleared only after a Sync that
// follows all of them).
func (im *Image) writeRepairedLocked(off uint64, t *table, cleared []uint64) error {
	if t.whole() {
		return im.writeTableLocked(off, t, 0, t.len())
	}
	const perSector = SectorSize / entrySize
	done := ^uint64(0)
	for _, j := range cleared {
		if j/perSector == done {
			continue
		}
		done = j / perSector
		if err := im.writeTableLocked(off, t, j, 1); err != nil {
			return err
		}
	}
	return nil
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
