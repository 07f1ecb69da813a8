package workload

import (
	"encoding/binary"
	"fmt"
	"slices"
)

// Decoding workloads from bytes, for coverage-guided fuzzing: a fuzzer
// mutates bytes, and Decode turns any bytes into a valid small workload
// (Validate passes), so that every input the fuzzer tries is a workload
// and none is wasted on a parse error. Encode is the way back for the
// seed corpus: Decode(Encode(w)) is w, up to the renumbering of write and
// fill ids, for every workload inside the decoder's bounds.
//
// The byte form (every number an unsigned varint; missing bytes read as
// zero, so a short input is a shorter workload, never an error):
//
//	geometry   one byte: cluster size DecodeClusterSizes[b%4],
//	           table size DecodeTableSizes[b/4%5]; the size in sectors,
//	           modulo DecodeMaxSize/512+1
//	backing    one byte: chain length b%(DecodeMaxChain+1); per file, nearest
//	           first, one byte (b&1: qed, with cluster size index b>>1%4 and
//	           table size index b>>3%5; else raw) and its size in sectors
//	           (modulo DecodeMaxSize/512+1)
//	ops        up to DecodeMaxOps, while bytes remain: one byte, the kind
//	           decodeKinds[b%len(decodeKinds)] (the kinds of Kinds but the image commands), then its fields: a ranged op
//	           (write, zero, read, reopen-ro) its offset (modulo the size)
//	           and its length minus one (modulo what is left of the image);
//	           refused one byte, the variant (modulo their number);
//	           resize the sectors it grows by (modulo DecodeMaxSize/512+1,
//	           never past DecodeMaxSize); concurrent one byte, b%4+1
//	           members, each a byte (b&1: zero, else write) and a range
//
// A ranged op on an empty image, or an op Validate would refuse, is left
// out. Write ids and backing fill ids are numbered from 1, deepest backing
// file first, then in op order, as Generate numbers them.

// The decoder's bounds (small images, so every crash state of a decoded
// workload is cheap to judge; wide enough for several L2 tables at the
// smallest cluster and table sizes).
const (
	DecodeMaxSize  = 16 << 20
	DecodeMaxChain = 2
	DecodeMaxOps   = 8
	decodeMaxGroup = 4
)

// The geometries the decoder picks from.
var (
	DecodeClusterSizes = []uint32{4096, 8192, 16384, 65536}
	DecodeTableSizes   = []uint32{1, 2, 4, 8, 16}
)

type decoder struct {
	b []byte
}

func (d *decoder) byte() byte {
	if len(d.b) == 0 {
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 { // empty, truncated or overflowing: take what there is as zero
		d.b = nil
		return 0
	}
	d.b = d.b[n:]
	return v
}

// sectors reads a size in sectors below DecodeMaxSize/512+1, in bytes.
func (d *decoder) sectors() int64 {
	return int64(d.uvarint()%(DecodeMaxSize/512+1)) * 512
}

// extent reads a range inside [0, size) (size > 0).
func (d *decoder) extent(size int64) (off, n int64) {
	off = int64(d.uvarint() % uint64(size))
	n = 1 + int64(d.uvarint()%uint64(size-off))
	return off, n
}

// Decode returns the workload data describes (see the byte form above).
// Any bytes give a valid workload.
func Decode(data []byte) *Workload {
	d := &decoder{b: data}
	gb := d.byte()
	g := Geometry{ClusterSize: DecodeClusterSizes[gb%4], TableSize: DecodeTableSizes[gb/4%5]}
	g.Size = d.sectors()
	n := int(d.byte() % (DecodeMaxChain + 1))
	for range n {
		bb := d.byte()
		b := Backing{Format: "raw"}
		if bb&1 != 0 {
			b.Format, b.ClusterSize, b.TableSize = "qed", DecodeClusterSizes[bb>>1%4], DecodeTableSizes[bb>>3%5]
		}
		b.Size = d.sectors()
		g.Backing = append(g.Backing, b)
	}
	id := uint32(0)
	for i := len(g.Backing) - 1; i >= 0; i-- {
		id++
		g.Backing[i].Fill = id
	}
	w := &Workload{Geometry: g}
	c := Cursor{Size: g.Size, LastID: id, Backing: len(g.Backing) > 0}
	kinds := decodeKinds
	for len(d.b) > 0 && len(w.Ops) < DecodeMaxOps {
		op := Op{Kind: kinds[int(d.byte())%len(kinds)]}
		next := c.LastID
		ranged := func(k Kind) (Op, bool) {
			if c.Size == 0 {
				return Op{}, false
			}
			o := Op{Kind: k}
			o.Off, o.Len = d.extent(c.Size)
			if k == Write {
				next++
				o.ID = next
			}
			return o, true
		}
		ok := true
		switch op.Kind {
		case Write, WriteZeroes, Read, ReopenRO:
			op, ok = ranged(op.Kind)
		case Refused:
			op.Off = int64(d.byte()) % int64(len(refusedCalls))
		case Resize:
			op.Off = min(c.Size+d.sectors(), DecodeMaxSize)
			op.Off = max(op.Off, c.Size)
		case Concurrent:
			m := int(d.byte()%decodeMaxGroup) + 1
			for range m {
				k := Write
				if d.byte()&1 != 0 {
					k = WriteZeroes
				}
				sub, sok := ranged(k)
				if !sok {
					ok = false
					break
				}
				op.Group = append(op.Group, sub)
			}
		}
		if !ok || c.Step(len(w.Ops), op) != nil {
			continue
		}
		w.Ops = append(w.Ops, op)
	}
	return w
}

// decodeKinds are the kinds Decode draws, fixed so that a fuzz corpus
// keeps its meaning when kinds are added: the image commands (rebase,
// rebase-unsafe, commit) are not among them. Kinds are only appended
// (map, reopen-ro and refused were, then idle): the kind bytes Encode writes are
// indices, below the old length, which read the same.
var decodeKinds = []Kind{Write, WriteZeroes, Read, Flush, Resize, Reopen, Check, Concurrent, Map, ReopenRO, Refused, Idle}

type encoder struct{ b []byte }

func (e *encoder) uvarint(v int64) { e.b = binary.AppendUvarint(e.b, uint64(v)) }

// Encode returns bytes that Decode turns into w (with its write and fill
// ids renumbered from 1), or an error naming what of w lies outside the
// decoder's bounds.
func Encode(w *Workload) ([]byte, error) {
	if err := w.Validate(); err != nil {
		return nil, err
	}
	g := w.Geometry
	e := &encoder{}
	ci, ti := slices.Index(DecodeClusterSizes, g.ClusterSize), slices.Index(DecodeTableSizes, g.TableSize)
	if ci < 0 || ti < 0 {
		return nil, fmt.Errorf("workload: encode: cluster size %d or table size %d is not one the decoder picks", g.ClusterSize, g.TableSize)
	}
	if g.Size > DecodeMaxSize || len(g.Backing) > DecodeMaxChain || len(w.Ops) > DecodeMaxOps {
		return nil, fmt.Errorf("workload: encode: size %d, %d backing files or %d ops beyond the decoder's %d, %d, %d",
			g.Size, len(g.Backing), len(w.Ops), DecodeMaxSize, DecodeMaxChain, DecodeMaxOps)
	}
	e.b = append(e.b, byte(ci+4*ti))
	e.uvarint(g.Size / 512)
	e.b = append(e.b, byte(len(g.Backing)))
	for i, b := range g.Backing {
		var bb byte
		if b.Format == "qed" {
			ci, ti := slices.Index(DecodeClusterSizes, b.ClusterSize), slices.Index(DecodeTableSizes, b.TableSize)
			if ci < 0 || ti < 0 {
				return nil, fmt.Errorf("workload: encode: backing %d: cluster size %d or table size %d is not one the decoder picks", i, b.ClusterSize, b.TableSize)
			}
			bb = byte(1 | ci<<1 | ti<<3)
		}
		if b.Size > DecodeMaxSize {
			return nil, fmt.Errorf("workload: encode: backing %d: size %d beyond %d", i, b.Size, DecodeMaxSize)
		}
		e.b = append(e.b, bb)
		e.uvarint(b.Size / 512)
	}
	kinds := decodeKinds
	size := g.Size
	for i, op := range w.Ops {
		k := slices.Index(kinds, op.Kind)
		if k < 0 {
			return nil, fmt.Errorf("workload: encode: op %d: %s is not a kind the decoder draws", i, op.Kind)
		}
		e.b = append(e.b, byte(k))
		switch op.Kind {
		case Refused:
			e.b = append(e.b, byte(op.Off))
		case Write, WriteZeroes, Read, ReopenRO:
			e.uvarint(op.Off)
			e.uvarint(op.Len - 1)
		case Resize:
			if op.Off > DecodeMaxSize {
				return nil, fmt.Errorf("workload: encode: op %d: resize to %d beyond %d", i, op.Off, DecodeMaxSize)
			}
			e.uvarint((op.Off - size) / 512)
			size = op.Off
		case Concurrent:
			if len(op.Group) > decodeMaxGroup {
				return nil, fmt.Errorf("workload: encode: op %d: a group of %d beyond %d", i, len(op.Group), decodeMaxGroup)
			}
			e.b = append(e.b, byte(len(op.Group)-1))
			for _, sub := range op.Group {
				var sb byte
				if sub.Kind == WriteZeroes {
					sb = 1
				}
				e.b = append(e.b, sb)
				e.uvarint(sub.Off)
				e.uvarint(sub.Len - 1)
			}
		}
	}
	return e.b, nil
}
