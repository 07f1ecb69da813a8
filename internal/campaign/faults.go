package campaign

import (
	"cmp"
	"path"
	"slices"
	"strings"

	"github.com/qedtorture/qedtorture/faultfs"
	"github.com/qedtorture/qedtorture/model"
	"github.com/qedtorture/qedtorture/props/check"
	"github.com/qedtorture/qedtorture/props/oracle"
	"github.com/qedtorture/qedtorture/props/workload"
)

// Silent faults (write:lost, write:misdirect, sync:lost, read:bitflip)
// return success: QED has no checksums, so no implementation can notice an
// acknowledged write that never landed. What an implementation is held to
// under them:
//
//   - the damage stays within what the fault touched: the guest bytes of a
//     lost data write, the guest bytes at a misdirect's target, the writes
//     whose durability a lost sync was to ensure, the guest clusters
//     mapped by the table entries a fault hit (a bitflip in a table read:
//     the whole disk, as the flipped entry may point anywhere);
//   - a fault that lands in metadata (the header, the L1 table, an L2
//     table) may leave the image inconsistent: the structural checks (and
//     a read that refuses the bad entry) finding it is the expected
//     outcome, not a failure;
//   - nothing else is lost: every other guest byte must pass the oracle.
//
// A crash state that fails only within that damage is the fault's direct
// effect: counted (Report.FaultEffects), not a failure. The state is judged
// again with the touched guest ranges excused in the model
// (model.Disk.Excuse: any value allowed there); a failure that remains,
// outside them, is a failure of the implementation.

// damage is what the silent faults of a run may have done.
type damage struct {
	ranges []model.Range // guest ranges any value is allowed in
	meta   bool          // metadata may be hit: structural failures are found damage
	lost   bool          // a host write was lost: the file may end before what it links
	size   int64
}

// foundBy reports whether a structural failure is this damage found: any
// structural failure when metadata was hit; after a lost write, one whose
// only violations are links past the end of the file and clusters linked
// twice (a write that would have extended the file never landed, which no
// implementation can see; a later allocation then takes the same cluster
// again).
func (d *damage) foundBy(v *oracle.Verdict) bool {
	if !structural(v.Stage) {
		return false
	}
	if d.meta {
		return true
	}
	if !d.lost || v.Stage != oracle.StageStructureBefore && v.Stage != oracle.StageStructureAfter {
		return false
	}
	for _, r := range []*check.Report{v.Before, v.After} {
		if r == nil {
			continue
		}
		for _, k := range r.Kinds() {
			switch k {
			case check.ViolDataPastEOF, check.ViolTablePastEOF, check.ViolNeedCheckClearButInconsistent, check.ViolNoProbeWithoutBacking,
				check.ViolDoubleRefDataData, check.ViolDoubleRefTableData, check.ViolDoubleRefTableTable:
			default:
				return false
			}
		}
	}
	return true
}

func (d *damage) add(off, n int64) {
	if end := min(off+n, d.size); off < end {
		d.ranges = append(d.ranges, model.Range{Off: max(off, 0), Len: end - max(off, 0)})
	}
}

// within reports whether [off, off+n) lies inside the damaged ranges.
func (d *damage) within(off, n int64) bool {
	for pos := off; pos < off+n; {
		next := pos
		for _, r := range d.ranges {
			if r.Off <= pos && pos < r.Off+r.Len {
				next = max(next, r.Off+r.Len)
			}
		}
		if next == pos {
			return false
		}
		pos = next
	}
	return true
}

// structural reports whether a stage is about the image's structure (where
// damage in metadata is expected to show).
func structural(st oracle.Stage) bool {
	switch st {
	case oracle.StageStructureBefore, oracle.StageRecovery, oracle.StageSize, oracle.StageStructureAfter, oracle.StageLiveness:
		return true
	}
	return false
}

// silentFault reports whether an injection returned success.
func silentFault(in faultfs.Injection) bool {
	return in.Err == nil && (in.Fault == faultfs.FaultLost || in.Fault == faultfs.FaultMisdirect || in.Fault == faultfs.FaultBitflip)
}

// damageOf returns the damage of the silent injections among injs (opOf[j]:
// the guest op in progress at injection j, -1 for none) on a disk of size
// bytes, located with the structure reports reps (with the checker's
// Mapped option; nil entries are skipped).
func damageOf(injs []faultfs.Injection, opOf []int, w *workload.Workload, size int64, reps ...*check.Report) damage {
	d := damage{size: size}
	img := path.Clean(ImagePath)
	for j, in := range injs {
		if !silentFault(in) {
			continue
		}
		if path.Clean(in.Path) != img {
			// A backing file: only reads happen there. A raw backing
			// file's bytes are guest bytes at the same offsets; a qed
			// one's could be anywhere.
			if in.Fault == faultfs.FaultBitflip {
				if strings.HasSuffix(in.Path, ".raw") {
					d.add(in.Off, int64(in.Len))
				} else {
					d.add(0, size)
				}
			}
			continue
		}
		switch {
		case in.Op == faultfs.OpSync:
			d.meta = true
			d.epochWrites(w, opOf[j])
		case in.Op == faultfs.OpTruncate:
			// The file stays shorter than what it links: the clusters
			// allocated in the epoch may end past it (found by check) or
			// be allocated again after a reopen.
			d.lost = true
			d.epochWrites(w, opOf[j])
		case in.Fault == faultfs.FaultBitflip:
			if o := opOf[j]; o >= 0 && o < len(w.Ops) && w.Ops[o].Effect(w.SizeAt(o)).Reads {
				d.add(w.Ops[o].Off, w.Ops[o].Len) // what the guest read
			}
			if !d.hostHit(in.Off, int64(in.Len), true, locating(w, opOf[j], reps)) {
				// A cluster not linked in the file yet: what the epoch
				// wrote there may have been read back and used.
				d.epochWrites(w, opOf[j])
			}
		default: // a lost or misdirected write
			d.lost = true
			rs := locating(w, opOf[j], reps)
			located := d.hostHit(in.Off, int64(in.Len), false, rs)
			if in.Fault == faultfs.FaultMisdirect && in.Detail >= 0 {
				located = d.hostHit(in.Detail, int64(in.Len), false, rs) && located
			}
			if rs == nil {
				// A commit follows: the maps may show reused clusters,
				// but the header and the L1 table never move.
				fixed := fixedMetadata(reps)
				located = d.hostHit(in.Off, int64(in.Len), false, fixed)
				if in.Fault == faultfs.FaultMisdirect && in.Detail >= 0 {
					located = d.hostHit(in.Detail, int64(in.Len), false, fixed) && located
				}
			}
			if !located {
				// Bytes in no table, header or mapped cluster of the
				// maps: a cluster allocated and not yet linked in the
				// file (data, or a fresh table written back): what was
				// in flight is the epoch's writes and their metadata.
				d.meta = true
				d.epochWrites(w, opOf[j])
			}
		}
	}
	if d.lost {
		// The file ended before what it linked: a later allocation may
		// have taken a linked cluster again. Every guest cluster sharing
		// its data cluster with another is damaged.
		for _, rep := range reps {
			d.collisions(rep)
		}
	}
	return d
}

// locating returns the maps that may locate a fault during op o: reps,
// unless a commit runs during or after o. A commit empties the image and
// truncates the clusters it freed, which later allocations take again:
// a map taken after it (the run's end, a crash state during or after it)
// may show a table or data cluster at the host offset the fault hit that
// was something else when it hit (found by a lost L2 table write before a
// commit, located by the end map in the table allocated after it, at
// entries past the image's size: nothing excused, a false failure). The
// fault is then located by none (the epoch's writes are its damage).
func locating(w *workload.Workload, o int, reps []*check.Report) []*check.Report {
	for i := max(o, 0); i < len(w.Ops); i++ {
		if w.Ops[i].Kind == workload.Commit {
			return nil
		}
	}
	return reps
}

// fixedMetadata returns reps cut down to what no operation moves: the
// header and the L1 table (QED fixes l1_table_offset at creation; a commit
// rewrites the L1 table in place and frees only L2 tables and data
// clusters, which later allocations take again). A lost write located
// there is located whatever ran after it: a lost L1 entry unlinks its L2
// table's whole span, the writes after the loss included (they update a
// table no L1 entry links; found by a lost L1 link before a commit: the
// epoch's writes alone were excused, a false failure).
func fixedMetadata(reps []*check.Report) []*check.Report {
	var out []*check.Report
	for _, rep := range reps {
		if rep == nil || !rep.Walked {
			continue
		}
		f := &check.Report{Header: rep.Header, Walked: true}
		for _, t := range rep.Tables {
			if t.Index < 0 {
				f.Tables = append(f.Tables, t)
			}
		}
		out = append(out, f)
	}
	return out
}

// collisions adds the guest ranges of rep's mapped clusters whose data
// clusters overlap another's.
func (d *damage) collisions(rep *check.Report) {
	if rep == nil {
		return
	}
	type ext struct{ host, end, guest int64 }
	es := make([]ext, len(rep.Mapped))
	for i, r := range rep.Mapped {
		es[i] = ext{int64(rep.MappedHost[i]), int64(rep.MappedHost[i]) + r.Len, r.Off}
	}
	slices.SortFunc(es, func(a, b ext) int { return cmp.Compare(a.host, b.host) })
	for i := range es {
		for j := i + 1; j < len(es) && es[j].host < es[i].end; j++ {
			lo, hi := es[j].host, min(es[i].end, es[j].end)
			d.add(es[i].guest+lo-es[i].host, hi-lo)
			d.add(es[j].guest, hi-lo)
		}
	}
}

// epochWrites adds the guest clusters of the writes (and of the space
// resizes added) since the last flush before op o, through o (what a sync
// lost during o was to make durable; whole clusters: a write that
// allocates fills the rest of its clusters from the backing file or with
// zeros).
func (d *damage) epochWrites(w *workload.Workload, o int) {
	if o < 0 || o >= len(w.Ops) {
		return
	}
	cs := max(int64(w.Geometry.ClusterSize), 1)
	add := func(off, n int64) {
		lo := off / cs * cs
		d.add(lo, (off+n+cs-1)/cs*cs-lo)
	}
	// The size before each resize (a lost sync may lose the hiding of the
	// backing file's data past the old size).
	sizes := w.Sizes()
	start := o
	for start > 0 && !w.Ops[start-1].Effect(sizes[start-1]).Barrier {
		start--
	}
	for i, op := range w.Ops[start : o+1] {
		for _, r := range op.Effect(sizes[start+i]).Changes {
			add(r.Off, r.Len)
		}
	}
}

// hostHit adds what a fault over host bytes [h, h+n) of the image may have
// damaged: the guest bytes of data clusters there, the guest clusters
// mapped by table entries there (a flipped bit in a table read: the whole
// disk), and metadata.
//
// It reports whether one of the maps locates every byte of the range (in
// the header, a table or a mapped cluster).
func (d *damage) hostHit(h, n int64, flip bool, reps []*check.Report) bool {
	end := h + n
	located := false
	for _, rep := range reps {
		if rep == nil || !rep.Walked {
			continue
		}
		covered := int64(0)
		cs := int64(rep.Header.ClusterSize)
		tableBytes := int64(rep.Header.TableSize) * cs
		nelems := tableBytes / 8
		if hdrEnd := int64(max(rep.Header.HeaderSize, 1)) * cs; h < hdrEnd {
			d.meta = true // the header: sizes, features, NEED_CHECK
			covered += min(end, hdrEnd) - h
		}
		for _, t := range rep.Tables {
			lo, hi := max(h, int64(t.Host)), min(end, int64(t.Host)+tableBytes)
			if lo >= hi {
				continue
			}
			d.meta = true
			covered += hi - lo
			if flip {
				d.add(0, d.size)
				continue
			}
			e0, e1 := (lo-int64(t.Host))/8, (hi-int64(t.Host)+7)/8
			if t.Index < 0 { // L1 entries: the spans of their L2 tables
				d.add(e0*nelems*cs, (e1-e0)*nelems*cs)
			} else {
				d.add((int64(t.Index)*nelems+e0)*cs, (e1-e0)*cs)
			}
		}
		for i, r := range rep.Mapped {
			hs := int64(rep.MappedHost[i])
			if lo, hi := max(h, hs), min(end, hs+r.Len); lo < hi {
				d.add(r.Off+lo-hs, hi-lo)
				covered += hi - lo
			}
		}
		located = located || covered >= n
	}
	return located
}
