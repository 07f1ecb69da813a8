package workload

import "fmt"

// Bounded-exhaustive workloads (CrashMonkey's ACE): every sequence of up
// to Depth ops over a small canonical vocabulary of op shapes, on each of
// a canonical set of layouts (geometry, backing file and allocation
// state). Where the random generator draws, Exhaustive counts: workload i
// is a pure function of i, so a campaign iterating indices covers them
// all and shards split them deterministically by index.
//
// Every layout is an image of four clusters c0..c3 (c3, the last, is
// partial in the unaligned layouts) whose first ops, the prefix, bring
// the clusters into the allocation states the shapes aim at:
//
//	c0  allocated: the prefix writes all of it
//	c1  zero: the prefix write-zeroes all of it (a zero cluster)
//	c2  unallocated; covered by the backing file in the backing layouts
//	    (half of it: the backing file ends inside c2)
//	c3  the image's last cluster, unallocated
//
// and then flushes, so that nothing of the prefix is pending when the
// enumerated ops begin. The shapes are defined relative to the cluster
// size and to the image size in force (a grow moves the last cluster).
// Crash points of interest start after the prefix (Prefix).

// Shape is one canonical op shape: its name (in reports) and the op it is
// on an image of cluster size cs and size size (ids are filled in by
// Exhaustive).
type Shape struct {
	Name string
	Op   func(cs, size int64) Op
}

// Layout is one canonical geometry with its backing chain.
type Layout struct {
	Name     string
	Geometry Geometry
}

func wr(off, n int64) Op { return Op{Kind: Write, Off: off, Len: n} }

// lastCluster is the start of the cluster holding the image's last byte.
func lastCluster(cs, size int64) int64 { return (size - 1) / cs * cs }

// CanonicalShapes returns the vocabulary of Exhaustive: writes aligned,
// sector-aligned and byte-unaligned into the allocated, zero and
// unallocated (or backing-covered) cluster, writes spanning two clusters,
// a write at the image's last cluster, write-zeroes aligned and
// unaligned, flush, grow, reopen and a concurrent pair.
func CanonicalShapes() []Shape {
	return []Shape{
		{"write-aligned-allocated", func(cs, _ int64) Op { return wr(0, cs) }},
		{"write-aligned-zero", func(cs, _ int64) Op { return wr(cs, cs) }},
		{"write-aligned-unallocated", func(cs, _ int64) Op { return wr(2*cs, cs) }},
		{"write-sector-allocated", func(cs, _ int64) Op { return wr(512, 1024) }},
		{"write-sector-zero", func(cs, _ int64) Op { return wr(cs+512, 1024) }},
		{"write-sector-unallocated", func(cs, _ int64) Op { return wr(2*cs+512, 1024) }},
		{"write-unaligned-allocated", func(cs, _ int64) Op { return wr(100, 300) }},
		{"write-unaligned-zero", func(cs, _ int64) Op { return wr(cs+100, 300) }},
		{"write-unaligned-unallocated", func(cs, _ int64) Op { return wr(2*cs+100, 300) }},
		{"write-span-allocated-zero", func(cs, _ int64) Op { return wr(cs-1000, 2000) }},
		{"write-span-zero-unallocated", func(cs, _ int64) Op { return wr(2*cs-512, 1024) }},
		{"write-last-cluster", func(cs, size int64) Op { l := lastCluster(cs, size); return wr(l+100, size-l-100) }},
		{"zero-aligned", func(cs, _ int64) Op { return Op{Kind: WriteZeroes, Off: 0, Len: cs} }},
		{"zero-unaligned", func(cs, _ int64) Op { return Op{Kind: WriteZeroes, Off: 2*cs - 100, Len: 300} }},
		{"flush", func(_, _ int64) Op { return Op{Kind: Flush} }},
		{"grow", func(cs, size int64) Op { return Op{Kind: Resize, Off: size + cs + 512} }},
		{"reopen", func(_, _ int64) Op { return Op{Kind: Reopen} }},
		{"concurrent-pair", func(cs, size int64) Op {
			return Op{Kind: Concurrent, Group: []Op{wr(2*cs, cs), wr(lastCluster(cs, size), 512)}}
		}},
	}
}

// CanonicalLayouts returns the layouts of Exhaustive: 4 KiB clusters (so
// a torn cluster write has few states), table size 1, an aligned and an
// unaligned image size, without and with a raw backing file ending in
// the middle of c2.
func CanonicalLayouts() []Layout {
	const cs = 4096
	bk := []Backing{{Format: "raw", Size: 2*cs + cs/2, Fill: 1}}
	return []Layout{
		{"4k-aligned", Geometry{ClusterSize: cs, TableSize: 1, Size: 4 * cs}},
		{"4k-unaligned", Geometry{ClusterSize: cs, TableSize: 1, Size: 3*cs + cs/2}},
		{"4k-aligned-backing", Geometry{ClusterSize: cs, TableSize: 1, Size: 4 * cs, Backing: bk}},
		{"4k-unaligned-backing", Geometry{ClusterSize: cs, TableSize: 1, Size: 3*cs + cs/2, Backing: bk}},
	}
}

// Exhaustive is the bounded-exhaustive workload source: every sequence of
// 1 to Depth shapes on every layout. Workload index i runs over the
// layouts first, then the sequences of length 1, 2, ... in lexicographic
// order of their shape indices.
type Exhaustive struct {
	Depth   int
	Layouts []Layout
	Shapes  []Shape
}

// NewExhaustive returns the canonical source of depth k.
func NewExhaustive(k int) *Exhaustive {
	return &Exhaustive{Depth: k, Layouts: CanonicalLayouts(), Shapes: CanonicalShapes()}
}

// Prefix is the number of ops every workload starts with (the allocation
// states; see above): crash points of interest start after them.
const Prefix = 3

// Len is the number of workloads.
func (x *Exhaustive) Len() int {
	n, p := 0, 1
	for range x.Depth {
		p *= len(x.Shapes)
		n += p
	}
	return n * len(x.Layouts)
}

// Sequence returns workload i's layout index and shape indices.
func (x *Exhaustive) Sequence(i int) (layout int, shapes []int) {
	if i < 0 || i >= x.Len() {
		panic(fmt.Sprintf("workload: exhaustive index %d outside [0, %d)", i, x.Len()))
	}
	layout, i = i%len(x.Layouts), i/len(x.Layouts)
	n := len(x.Shapes)
	for k, p := 1, n; ; k, p = k+1, p*n {
		if i < p {
			shapes = make([]int, k)
			for j := k - 1; j >= 0; j-- {
				shapes[j], i = i%n, i/n
			}
			return layout, shapes
		}
		i -= p
	}
}

// Workload returns workload i (0 <= i < Len): the layout's prefix, then
// the shapes of its sequence.
func (x *Exhaustive) Workload(i int) *Workload {
	l, seq := x.Sequence(i)
	g := x.Layouts[l].Geometry
	g.Backing = append([]Backing(nil), g.Backing...)
	cs := int64(g.ClusterSize)
	id := uint32(len(g.Backing))
	next := func(op Op) Op {
		if op.Kind == Write {
			id++
			op.ID = id
		}
		for j := range op.Group {
			if op.Group[j].Kind == Write {
				id++
				op.Group[j].ID = id
			}
		}
		return op
	}
	w := &Workload{Geometry: g}
	w.Ops = append(w.Ops, next(wr(0, cs)), Op{Kind: WriteZeroes, Off: cs, Len: cs}, Op{Kind: Flush})
	size := g.Size
	for _, s := range seq {
		op := next(x.Shapes[s].Op(cs, size))
		if op.Kind == Resize {
			size = op.Off
		}
		w.Ops = append(w.Ops, op)
	}
	return w
}

// Describe names workload i's layout and shapes ("4k-aligned: flush,
// reopen").
func (x *Exhaustive) Describe(i int) string {
	l, seq := x.Sequence(i)
	s := x.Layouts[l].Name + ":"
	for j, k := range seq {
		if j > 0 {
			s += ","
		}
		s += " " + x.Shapes[k].Name
	}
	return s
}
