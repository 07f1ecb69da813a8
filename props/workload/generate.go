package workload

import (
	"math/rand/v2"
	"slices"
)

// GenConfig bounds randomly generated workloads. The zero value is not
// useful; start from DefaultGenConfig.
type GenConfig struct {
	ClusterSizes []uint32 // image cluster sizes to pick from
	TableSizes   []uint32 // image table sizes to pick from
	// MaxClusters bounds the image size in clusters (sizes are then
	// aligned, unaligned to the cluster, or zero).
	MaxClusters int64
	// BackingChance is the probability of a backing chain (length 1..MaxChain).
	BackingChance float64
	MaxChain      int
	// WideChance is the probability of a wide image: the smallest cluster
	// and table sizes, spanning two or three L2 tables, with operations
	// near the start of each table's range, so that several L1 entries,
	// several L2 tables and cache eviction are exercised.
	WideChance float64
	// Ops is the number of top-level operations.
	Ops int
	// Legal images and requests the main draw never makes (issue 14,
	// part 3), each drawn after the ops so that the workloads without
	// them are drawn as before (drawExtras):
	//
	// CraftChance is the probability of a crafted image (Craft: one of
	// unknown compat or autoclear bits, NEED_CHECK set, header_size > 1,
	// an L1 table after a gap, a long backing file name, a raw backing
	// file probed, a partial cluster at the end).
	CraftChance float64
	// BigClusterChance is the probability that the image takes a cluster
	// size from BigClusterSizes with one-cluster tables (its requests stay
	// those drawn for the smaller cluster: from one sector up).
	BigClusterChance float64
	BigClusterSizes  []uint32
	// LongChance is the probability of a long request appended: a grow if
	// needed, then a write of 4 to 8 MiB (more than impl/qed's largest
	// buffer), unaligned at both ends, spanning many clusters.
	LongChance float64
	// HugeChance is the probability that the image grows above 4 GiB and
	// is written across its end and across 4 GiB (when its geometry
	// addresses that much).
	HugeChance float64
	// HostileChance is the probability of a "hostile V S" op (op_hostile.go:
	// an image the format forbids, built and judged apart from the
	// workload's files) inserted at a drawn position among the ops.
	HostileChance float64
	// HostileAgainChance is the probability of a second hostile op,
	// drawn after the idle op (with it 0 the workloads are those of
	// before):
	// 41 variants drawn once in half the workloads left a few of them
	// out of a minute's campaign (issue 16.2, class V).
	HostileAgainChance float64
	// L2CacheChance is the probability that an image spanning more than
	// one L2 table is opened with an L2 cache of one or two tables
	// (Geometry.L2Cache): the tables it goes on using are evicted,
	// written back and read again (drawn last, so the rest of the
	// workload is the one drawn without it).
	L2CacheChance float64
	// IdleChance is the probability of an "idle" op (op_idle.go: the
	// image's idle work, impl/qed's NEED_CHECK clear, at a fixed point)
	// inserted at a drawn position after the first op (drawn after
	// everything else, so the rest of the workload is the one drawn
	// without it).
	IdleChance float64
	// PagedChance is the probability that an image whose tables are
	// paged (over 64 KiB: impl/qed holds them in pages of 512 entries)
	// grows past guest cluster 512 and takes a write across the boundary
	// of guest clusters 511 and 512 (half of the time a write into guest
	// cluster 1536 too), then a flush: entries of one L2 table on both
	// sides of a page boundary (and of an empty page) written in one
	// request (drawn after the idle op).
	PagedChance float64
	// BackedLongChance is the probability that an image with a backing
	// file takes a long write drawn as LongChance's (4 to 8 MiB) but
	// starting on a cluster boundary, then a flush: a copy-on-write above
	// impl/qed's one-buffer bound, its partial last cluster filled from
	// the backing file or, past its end, with zeros (drawn last).
	BackedLongChance float64
	// TailChance is the probability that an image with a backing file,
	// no image command and a partial last cluster gets that backing file
	// made longer than its size, then a write into the last cluster (its
	// copy-on-write fills the bytes past the size from the backing
	// file), a grow of a sector to two clusters and a read of the grown
	// tail: a grow over an allocated last cluster whose bytes past the
	// size are not zeros, which the image must zero (drawn last).
	TailChance float64
	// ZeroDataChance is the probability that a workload on a non-empty
	// image starts with a write of one or two whole clusters, a reopen
	// and a write-zeroes of the same clusters: the zeroing in place of
	// allocated clusters whose L2 table the reopen dropped from the
	// cache, first in the workload so that a fault sweep may aim at it
	// (the draw rarely zeroes whole allocated clusters; drawn last).
	ZeroDataChance float64
	// Weights of each kind; missing kinds are never generated.
	Weights map[Kind]int
}

// DefaultGenConfig returns the configuration the campaign uses by default:
// small images (so crash states are cheap) whose geometry still exercises
// multi-table layouts, backing chains and unaligned I/O.
func DefaultGenConfig() GenConfig {
	return GenConfig{
		ClusterSizes:  []uint32{4096, 8192, 65536},
		TableSizes:    []uint32{1, 2, 4, 16},
		MaxClusters:   96,
		BackingChance: 0.5,
		MaxChain:      2,
		WideChance:    0.1,
		Ops:           12,
		Weights:       DefaultWeights(),
		CraftChance:   0.1,
		// Big clusters cost a whole table per state (a 64 MiB L1 table):
		// rare, so that the campaign's speed holds (docs/campaigns.md).
		BigClusterChance: 0.002,
		BigClusterSizes:  []uint32{128 << 10, 256 << 10, 512 << 10, 1 << 20, 2 << 20, 4 << 20, 8 << 20, 16 << 20, 32 << 20, 64 << 20},
		LongChance:       0.02,
		HugeChance:       0.02,
		// Issue 16: the validation, refusal and repair paths of impl/qed
		// that valid images never reach; a few milliseconds each (about 2 % of a
		// campaign's time).
		HostileChance:      0.5,
		HostileAgainChance: 0.5,
		// Issue 16: impl/qed's default cache (64 tables) never fills
		// with the campaign's images; a small one evicts.
		L2CacheChance: 0.5,
		// Issue 16: the idle NEED_CHECK clear, which campaign targets
		// otherwise never run (their timer does not fire on its own).
		IdleChance: 0.5,
		// Issue 16: big shapes the draw above makes too rarely (each
		// about 3 % of the workloads, 1 % for the long writes, which
		// cost a few MiB of data per state).
		PagedChance:      0.1,
		BackedLongChance: 0.02,
		// Issue 16.2: a grow over a dirty last cluster (about 3 % of
		// the workloads).
		TailChance: 0.2,
		// Issue 16.2: write-zeroes over allocated clusters after a
		// reopen.
		ZeroDataChance: 0.15,
	}
}

// DefaultWeights returns each kind's default weight in generated
// workloads (each kind states its own: write 10, zero 3, read 2, flush 3,
// resize 1, reopen 1, check 1, concurrent 2, rebase 1, rebase-unsafe 1,
// commit 1, map 1, reopen-ro 1, refused 1).
func DefaultWeights() map[Kind]int {
	w := map[Kind]int{}
	for _, k := range Kinds() {
		w[k] = k.spec().weight()
	}
	return w
}

// Generate returns a valid random workload; the same rng state gives the
// same workload.
func Generate(rng *rand.Rand, cfg GenConfig) *Workload {
	g := Geometry{
		ClusterSize: cfg.ClusterSizes[rng.IntN(len(cfg.ClusterSizes))],
		TableSize:   cfg.TableSizes[rng.IntN(len(cfg.TableSizes))],
	}
	cs := int64(g.ClusterSize)
	maxC := max(cfg.MaxClusters, 1)
	hot := []int64{0} // starts of the regions most ops go to
	if cfg.WideChance > 0 && rng.Float64() < cfg.WideChance && wideFits(cfg) {
		g.ClusterSize, g.TableSize = slices.Min(cfg.ClusterSizes), slices.Min(cfg.TableSizes)
		cs = int64(g.ClusterSize)
		span := cs * (int64(g.TableSize) * cs / 8) // guest bytes one L2 table maps
		n := 2 + rng.Int64N(2)
		g.Size = span*(n-1) + (1+rng.Int64N(maxC))*cs
		for i := int64(1); i < n; i++ {
			hot = append(hot, span*i-cs) // straddle the table boundary
		}
	} else {
		switch r := rng.IntN(10); {
		case r == 0:
			g.Size = 0
		case r < 6:
			g.Size = (1 + rng.Int64N(maxC)) * cs
		default: // unaligned to the cluster, aligned to 512
			g.Size = rng.Int64N(maxC)*cs + 512*(1+rng.Int64N(cs/512-1))
		}
	}
	nextID := uint32(1)
	id := func() uint32 { nextID++; return nextID - 1 }
	if rng.Float64() < cfg.BackingChance && cfg.MaxChain > 0 {
		n := 1 + rng.IntN(cfg.MaxChain)
		g.Backing = make([]Backing, n)
		for i := n - 1; i >= 0; i-- { // deepest first: ids grow toward the image
			b := Backing{Fill: id()}
			// Backing files are often shorter than the image, sometimes longer.
			b.Size = min((rng.Int64N(g.Size/512+8)+1)*512, MaxImageSize)
			if rng.IntN(2) == 0 {
				b.Format = "raw"
			} else {
				b.Format = "qed"
				b.ClusterSize = cfg.ClusterSizes[rng.IntN(len(cfg.ClusterSizes))]
				b.TableSize = cfg.TableSizes[rng.IntN(len(cfg.TableSizes))]
			}
			g.Backing[i] = b
		}
	}
	w := &Workload{Geometry: g}
	total := 0
	for _, wt := range cfg.Weights {
		total += wt
	}
	og := &OpGen{Rand: rng, Size: g.Size, ClusterSize: cs, Hot: hot, NextID: nextID, Backing: len(g.Backing) > 0, Chain: CommitChain(g.Backing)}
	for len(w.Ops) < cfg.Ops && total > 0 {
		if op, ok := og.Draw(pickKind(rng, cfg.Weights, total)); ok {
			w.Ops = append(w.Ops, op)
		}
	}
	drawExtras(rng, cfg, w, og)
	return w
}

// ImageCommandKinds are the kinds that run an image command through the
// target's target.ImageOps (rebase, rebase-unsafe, commit): a target
// without that capability cannot run them (ErrUnsupported).
func ImageCommandKinds() []Kind { return []Kind{Rebase, RebaseUnsafe, Commit} }

// NoImageCommands removes the image commands (ImageCommandKinds) from the
// draw, on a copy of Weights: the generator then never picks them, and
// draws from the other kinds as their weights say. For a target without
// target.ImageOps (a black-box program speaking qemu-io's commands, which
// have no rebase or commit); repair mode's images too.
func (c *GenConfig) NoImageCommands() {
	w := make(map[Kind]int, len(c.Weights))
	for k, v := range c.Weights {
		w[k] = v
	}
	for _, k := range ImageCommandKinds() {
		delete(w, k)
	}
	c.Weights = w
}

// NoExtras sets every chance of drawExtras to zero: the generator then
// draws exactly the workloads it drew before crafted images, big
// clusters, long and huge requests were added (test shapes pinned
// before them, repair mode's images).
func (c *GenConfig) NoExtras() {
	c.CraftChance, c.BigClusterChance, c.LongChance, c.HugeChance, c.HostileChance, c.L2CacheChance, c.IdleChance = 0, 0, 0, 0, 0, 0, 0
	c.PagedChance, c.BackedLongChance, c.HostileAgainChance, c.TailChance, c.ZeroDataChance = 0, 0, 0, 0, 0
}

// wideFits reports whether the images spanning two or three L2 tables
// (GenConfig.WideChance) of cfg's smallest geometry fit MaxImageSize: one
// table of 4 MiB clusters maps 32 TiB, more than the model holds.
func wideFits(cfg GenConfig) bool {
	cs, ts := int64(slices.Min(cfg.ClusterSizes)), int64(slices.Min(cfg.TableSizes))
	if ts*cs/8 > MaxImageSize/cs {
		return false
	}
	span := cs * (ts * cs / 8)
	return span <= (MaxImageSize-int64(max(cfg.MaxClusters, 1))*cs)/2
}

// MaxGuestSize returns the largest image size a geometry addresses
// (entries per table squared, times the cluster size), capped at
// MaxImageSize. The product is not formed when it would pass the cap
// (geometries of 2 MiB clusters and more address 2^64 bytes and more,
// which wrapped around in 64 bits).
func MaxGuestSize(clusterSize, tableSize uint32) int64 {
	cs := uint64(clusterSize)
	n := uint64(tableSize) * cs / 8
	if n == 0 {
		return 0
	}
	if lim := uint64(MaxImageSize); cs > lim/n || n > lim/(n*cs) {
		return MaxImageSize
	}
	return int64(n * n * cs)
}

// drawExtras draws the legal images and requests of GenConfig's chances
// (and the hostile op) on a workload already drawn (each chance consumes one draw only when it
// is set; none is drawn when all are zero, so such a configuration draws
// exactly what it drew before they existed). The ops stay valid: a
// cluster size changes no op's range, and the long and huge requests are
// appended after a grow.
func drawExtras(rng *rand.Rand, cfg GenConfig, w *Workload, og *OpGen) {
	g := &w.Geometry
	if cfg.BigClusterChance > 0 && rng.Float64() < cfg.BigClusterChance && len(cfg.BigClusterSizes) > 0 {
		g.ClusterSize, g.TableSize = cfg.BigClusterSizes[rng.IntN(len(cfg.BigClusterSizes))], 1
	}
	maxSize := MaxGuestSize(g.ClusterSize, g.TableSize)
	grow := func(to int64) {
		if to > og.Size {
			w.Ops = append(w.Ops, Op{Kind: Resize, Off: to})
			og.Size = to
		}
	}
	write := func(off, n int64) {
		w.Ops = append(w.Ops, Op{Kind: Write, Off: off, Len: n, ID: og.NextID})
		og.NextID++
	}
	long := func(alignStart bool) {
		n := 4<<20 + 1 + rng.Int64N(4<<20)
		off := rng.Int64N(max(og.Size, 1)) | 1 // odd: unaligned at the start
		if alignStart {
			off &^= int64(g.ClusterSize) - 1 // a whole first cluster
		}
		if (off+n)%512 == 0 {
			n-- // and at the end
		}
		if end := (off + n + 511) / 512 * 512; end <= maxSize {
			grow(end)
			write(off, n)
		}
	}
	if cfg.LongChance > 0 && rng.Float64() < cfg.LongChance {
		long(false)
	}
	if cfg.HugeChance > 0 && rng.Float64() < cfg.HugeChance {
		size := int64(4<<30) + (1+rng.Int64N(64))*int64(g.ClusterSize) + 512*rng.Int64N(int64(g.ClusterSize)/512)
		if size <= maxSize {
			grow(size)
			write(size-1-rng.Int64N(3*int64(g.ClusterSize)), 1+rng.Int64N(8192)) // trimmed to the end below
			last := &w.Ops[len(w.Ops)-1]
			last.Len = min(last.Len, size-last.Off)
			write(4<<30-1-rng.Int64N(4096), 2+rng.Int64N(8192)) // across 4 GiB
			last = &w.Ops[len(w.Ops)-1]
			last.Len = min(last.Len, size-last.Off)
		}
	}
	if cfg.CraftChance > 0 && rng.Float64() < cfg.CraftChance {
		g.Craft = drawCraft(rng, *g, w.Ops)
	}
	if cfg.HostileChance > 0 && rng.Float64() < cfg.HostileChance {
		op, _ := hostileKind{}.gen(&genState{rng: rng})
		at := rng.IntN(len(w.Ops) + 1)
		w.Ops = slices.Insert(w.Ops, at, op)
	}
	if span := int64(g.TableSize) * int64(g.ClusterSize) / 8 * int64(g.ClusterSize); cfg.L2CacheChance > 0 && og.Size > span && rng.Float64() < cfg.L2CacheChance {
		g.L2Cache = 1 + rng.IntN(2)
	}
	if cfg.IdleChance > 0 && len(w.Ops) > 0 && rng.Float64() < cfg.IdleChance {
		w.Ops = slices.Insert(w.Ops, 1+rng.IntN(len(w.Ops)), Op{Kind: Idle})
	}
	// The second hostile op before the big shapes' ops, so that none
	// falls between a write and the flush after it.
	if cfg.HostileAgainChance > 0 && rng.Float64() < cfg.HostileAgainChance {
		op, _ := hostileKind{}.gen(&genState{rng: rng})
		w.Ops = slices.Insert(w.Ops, rng.IntN(len(w.Ops)+1), op)
	}
	cs := int64(g.ClusterSize)
	if cs*int64(g.TableSize) > 64<<10 && cfg.PagedChance > 0 && rng.Float64() < cfg.PagedChance {
		if b := pageEntries * cs; b+cs <= maxSize {
			// Half of the time also guest cluster 1536 (entry 1536 of
			// the same L2 table: a paged table has 8,192 entries or
			// more), so that the flush's range spans page 2, whose
			// entries are all zero and which has no storage (written as
			// zeros, between pages that have).
			far := 3*b+cs <= maxSize && rng.IntN(2) == 0
			if far {
				grow(3*b + cs)
			} else {
				grow(b + cs)
			}
			// Clusters 511 and 512, both partly, at most 32 KiB of each
			// (big clusters' writes stay short: 2 bytes make the shape).
			half := min(cs/2, 32<<10)
			off := b - 1 - rng.Int64N(half)
			write(off, b+1+rng.Int64N(half)-off)
			if far {
				write(3*b+rng.Int64N(half), 1+rng.Int64N(half))
			}
			// The workload ends in a crash, not a close: without a
			// flush the entries would never be written. Then a reopen:
			// a crash state's recovery repairs what NEED_CHECK covers,
			// so only a clean close and open reads the table as
			// written (a page of zeros written as garbage, tried by
			// hand, passes every crash state).
			w.Ops = append(w.Ops, Op{Kind: Flush}, Op{Kind: Reopen})
		}
	}
	if len(g.Backing) > 0 && cfg.BackedLongChance > 0 && rng.Float64() < cfg.BackedLongChance {
		// Starting on a cluster boundary: the copy-on-write of an
		// allocation over 4 MiB fills its last cluster only. Then a
		// flush, so that the crash states across the linking of the
		// big allocation are judged too.
		n := len(w.Ops)
		long(true)
		if len(w.Ops) > n {
			w.Ops = append(w.Ops, Op{Kind: Flush})
		}
	}
	if len(g.Backing) > 0 && cfg.TailChance > 0 && rng.Float64() < cfg.TailChance {
		drawTail(rng, w, og, maxSize, grow, write)
	}
	if cfg.ZeroDataChance > 0 && g.Size > 0 && rng.Float64() < cfg.ZeroDataChance {
		// Within the size at creation (the ops come after), at a hot
		// region's start when it is cluster-aligned.
		cs := int64(g.ClusterSize)
		off := rng.Int64N(max(g.Size/cs, 1)) * cs
		n := min(cs*(1+rng.Int64N(2)), g.Size-off)
		// Write ids ascend through the script: the new first write
		// takes the first id the ops' writes use, and theirs move up.
		id := og.NextID
		for i := range w.Ops {
			shiftWriteIDs(&w.Ops[i], &id)
		}
		og.NextID++
		w.Ops = slices.Insert(w.Ops, 0, Op{Kind: Write, Off: off, Len: n, ID: id}, Op{Kind: Reopen}, Op{Kind: WriteZeroes, Off: off, Len: n})
	}
}

// shiftWriteIDs moves the id of op (and of its group's writes) up by one
// when it is a write or a rebase (the kinds whose ids ascend), after
// lowering *first to the lowest id seen.
func shiftWriteIDs(op *Op, first *uint32) {
	if (op.Kind == Write || op.Kind == Rebase) && op.ID != 0 {
		*first = min(*first, op.ID)
		op.ID++
	}
	for i := range op.Group {
		shiftWriteIDs(&op.Group[i], first)
	}
}

// drawTail appends GenConfig.TailChance's shape to w when it fits: an
// image with no image command (a commit or a rebase may change the
// backing file before the shape), a partial last cluster, at most
// maxTailImage bytes and clusters of at most 1 MiB (the backing file
// grows to the image's size, the last cluster is copied whole).
func drawTail(rng *rand.Rand, w *Workload, og *OpGen, maxSize int64, grow func(int64), write func(off, n int64)) {
	g := &w.Geometry
	cs := int64(g.ClusterSize)
	size := og.Size
	if size%cs == 0 || size > maxTailImage || cs > 1<<20 || slices.ContainsFunc(w.Ops, func(op Op) bool { return slices.Contains(ImageCommandKinds(), op.Kind) }) {
		return
	}
	longer := size + 512*(1+rng.Int64N(2*cs/512))
	to := size + 512*(1+rng.Int64N(2*cs/512))
	if longer > MaxImageSize || to > maxSize {
		return
	}
	b := &g.Backing[0]
	b.Size = max(b.Size, longer)
	start := size &^ (cs - 1)
	off := start + 512*rng.Int64N((size-start)/512)
	write(off, size-off)
	grow(to)
	w.Ops = append(w.Ops, Op{Kind: Read, Off: start, Len: to - start})
}

// maxTailImage bounds the images TailChance's shape is drawn for.
const maxTailImage = 16 << 20

// pageEntries is the entries of one page of a paged table (impl/qed's
// table.go: tables over 64 KiB are held in pages of 512 entries).
const pageEntries = 512

// maxSector0Name is the longest backing name that fits in sector 0
// after the header fields: a rename to it is always possible (written
// with the fields), whatever the old name's place.
const maxSector0Name = 512 - 64

// firstUnsafeName is the length of the new name of ops' first change of
// the backing name when it is a rebase-unsafe (0 otherwise: a safe
// rebase's names are short).
func firstUnsafeName(ops []Op) int64 {
	for _, op := range ops {
		switch op.Kind {
		case RebaseUnsafe:
			return op.Len
		case Rebase:
			return 0
		}
	}
	return 0
}

// drawCraft draws one kind of crafted image that fits g and its ops.
func drawCraft(rng *rand.Rand, g Geometry, ops []Op) Craft {
	var c Craft
	unknown := func() uint64 { return 1 << (8 + rng.IntN(56)) }
	raw := len(g.Backing) > 0 && g.Backing[0].Format == "raw"
	// Changing the backing file rewrites the bytes after the header
	// fields, which an unknown compat feature may own: impl/qed and QEMU
	// refuse it (rebase, rebase -u), so such workloads get an unknown
	// autoclear bit instead.
	rebases := slices.ContainsFunc(ops, func(op Op) bool { return op.Kind == Rebase || op.Kind == RebaseUnsafe })
	switch rng.IntN(7) {
	case 0:
		if rebases {
			c.Autoclear = unknown()
			break
		}
		c.Compat = unknown()
	case 1:
		c.Autoclear = unknown()
	case 2:
		c.NeedCheck = true
	case 3:
		c.HeaderSize = uint32(2 + rng.IntN(3))
	case 4:
		c.L1Gap = uint32(1 + rng.IntN(3))
		c.HeaderSize = uint32(rng.IntN(3))
	case 5:
		if len(g.Backing) == 0 {
			c.Tail = 512 * (1 + rng.Int64N(int64(g.ClusterSize)/512-1))
			break
		}
		c.HeaderSize = uint32(1 + rng.IntN(2))
		room := min(int64(c.HeaderSize)*int64(g.ClusterSize)-craftNameOffset, MaxBackingName)
		if n := firstUnsafeName(ops); n > maxSector0Name {
			// A crash-safe rename keeps the old name until the header
			// switches (impl/qed refuses otherwise): a long new name must
			// fit after the crafted one.
			room = min(room, int64(c.HeaderSize)*int64(g.ClusterSize)-craftNameOffset-n)
		}
		low := int64(len(BackingName(0, g.Backing[0].Format)) + 3)
		if room < low {
			c.HeaderSize = 0
			c.Tail = 512 * (1 + rng.Int64N(int64(g.ClusterSize)/512-1))
			break
		}
		c.BackingName = int(low + rng.Int64N(room-low+1))
		c.Probe = raw && rng.IntN(2) == 0
	default:
		c.Tail = 1 + rng.Int64N(int64(g.ClusterSize)-1)
		c.Probe = raw && rng.IntN(2) == 0
	}
	return c
}

// OpGen draws single ops with each kind's own generator, the one
// Generate draws with: the state machine (props/statemachine) draws its
// commands through an OpGen, so a kind added to the package is drawn by
// the campaign and by the state machine alike, with the same shapes.
// Draws depend only on Rand's state and the fields: the same state gives
// the same op.
type OpGen struct {
	Rand *rand.Rand
	// Size is the image size in force; a resize drawn grows it.
	Size int64
	// ClusterSize is the image's cluster size (ranges are aligned to it,
	// to 512 bytes, or not at all, a third of the time each).
	ClusterSize int64
	// Hot are the starts of the regions most ranged ops go to (nil:
	// {0}); Generate's wide images put one before each L2 table boundary.
	Hot []int64
	// NextID is the id the next write drawn takes; each one advances it.
	NextID uint32
	// Backing, Committed and Chain are Cursor's: the image commands
	// drawn depend on them and update them.
	Backing, Committed bool
	Chain              int
}

// Draw draws one op of kind k, or returns false when k cannot be drawn
// now (a ranged op on an empty image, a resize past MaxImageSize, an
// unknown kind): the caller then draws another kind.
func (g *OpGen) Draw(k Kind) (Op, bool) {
	s := k.spec()
	if s == nil {
		return Op{}, false
	}
	hot := g.Hot
	if len(hot) == 0 {
		hot = []int64{0}
	}
	gs := &genState{rng: g.Rand, size: g.Size, cs: g.ClusterSize, hot: hot,
		id:      func() uint32 { g.NextID++; return g.NextID - 1 },
		backing: g.Backing, committed: g.Committed, chain: g.Chain}
	op, ok := s.gen(gs)
	g.Size, g.Backing, g.Committed, g.Chain = gs.size, gs.backing, gs.committed, gs.chain
	return op, ok
}

// PickKind draws a kind with probability proportional to its weight in
// weights (non-negative; kinds missing or of weight 0 are never drawn),
// as Generate does; Flush when every weight is 0.
func PickKind(rng *rand.Rand, weights map[Kind]int) Kind {
	total := 0
	for _, k := range Kinds() {
		total += weights[k]
	}
	if total == 0 {
		return Flush
	}
	return pickKind(rng, weights, total)
}

func pickKind(rng *rand.Rand, weights map[Kind]int, total int) Kind {
	r := rng.IntN(total)
	for _, k := range Kinds() { // fixed order: deterministic
		if r < weights[k] {
			return k
		}
		r -= weights[k]
	}
	return Flush
}

// extent picks a range inside [0, size): cluster-aligned, sector-aligned
// or byte-unaligned, short or spanning clusters, biased toward a few hot
// clusters so that operations overlap.
func extent(rng *rand.Rand, size, cs int64, hot []int64) (off, n int64) {
	base := hot[rng.IntN(len(hot))]
	span := size
	if rng.IntN(2) == 0 {
		span = min(size-min(base, size-1), 4*cs)
	} else {
		base = 0
	}
	switch rng.IntN(3) {
	case 0: // cluster-aligned
		off = rng.Int64N(max(span/cs, 1)) * cs
		n = cs * (1 + rng.Int64N(2))
	case 1: // sector-aligned
		off = rng.Int64N(max(span/512, 1)) * 512
		n = 512 * (1 + rng.Int64N(2*cs/512))
	default: // unaligned
		off = rng.Int64N(span)
		n = 1 + rng.Int64N(cs+cs/2)
	}
	off = min(base+off, size-1)
	n = min(n, size-off)
	return off, n
}
