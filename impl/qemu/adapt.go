package qemu

import (
	"fmt"

	"github.com/qedtorture/qedtorture/props/workload"
)

// Quirk names a known QEMU 7.2 limitation that Adapt works around.
type Quirk string

// The quirks Adapt knows.
const (
	// QuirkTableSize1: QEMU refuses to open an image whose table_size is 1
	// (its table-offset check treats a one-cluster table as an overflow);
	// the spec allows 1..16.
	QuirkTableSize1 Quirk = "table-size-1"
	// QuirkGrowOverLongerBacking: growing an image whose backing file is
	// longer than the old size fails with "Block driver does not support
	// requested flags" (QEMU asks the driver to zero the new area so the
	// backing data does not show through; QED cannot).
	QuirkGrowOverLongerBacking Quirk = "grow-over-longer-backing"
	// HarnessConcurrentOverlap is a limit of the recording, not of QEMU:
	// blklogwrites logs two in-flight writes to the same host sectors in
	// an order that need not be the order they reached the file, so the
	// replayed log could disagree with the file. Writes of a concurrent
	// group that share a 512-byte sector with an earlier write of the
	// group are dropped (QED serialises allocating writes itself; in-place
	// writes to disjoint sectors cannot interfere).
	HarnessConcurrentOverlap Quirk = "concurrent-overlap (harness)"
)

// Adaptation is one change Adapt made.
type Adaptation struct {
	Quirk Quirk
	What  string
}

// GenConfig returns the workload generator configuration for QEMU runs:
// the campaign default without table_size 1.
func GenConfig() workload.GenConfig {
	c := workload.DefaultGenConfig()
	var ts []uint32
	for _, t := range c.TableSizes {
		if t != 1 {
			ts = append(ts, t)
		}
	}
	c.TableSizes = ts
	return c
}

// Adapt returns a copy of w that QEMU 7.2 can run, and what it changed:
// table_size 1 becomes 2, and a grow that would fail because the
// immediate backing file is longer than the old size is dropped (ops that
// then fall outside the image are clipped or dropped).
func Adapt(w *workload.Workload) (*workload.Workload, []Adaptation) {
	c := w.Clone()
	var ad []Adaptation
	if c.Geometry.TableSize == 1 {
		c.Geometry.TableSize = 2
		ad = append(ad, Adaptation{QuirkTableSize1, "image table_size 1 -> 2"})
	}
	for i := range c.Geometry.Backing {
		if b := &c.Geometry.Backing[i]; b.Format == "qed" && b.TableSize == 1 {
			b.TableSize = 2
			ad = append(ad, Adaptation{QuirkTableSize1, fmt.Sprintf("backing %d table_size 1 -> 2", i)})
		}
	}
	var backingLen int64 = -1
	if len(c.Geometry.Backing) > 0 {
		backingLen = c.Geometry.Backing[0].Size
	}
	size := c.Geometry.Size
	clip := func(op workload.Op) (workload.Op, bool) {
		if op.Off >= size {
			return op, false
		}
		op.Len = min(op.Len, size-op.Off)
		return op, true
	}
	ops := c.Ops[:0:0]
	for i, op := range c.Ops {
		switch {
		case op.Kind == workload.Resize:
			if backingLen > size {
				ad = append(ad, Adaptation{QuirkGrowOverLongerBacking,
					fmt.Sprintf("op %d: dropped resize %#x -> %#x (backing file is %#x bytes)", i, size, op.Off, backingLen)})
				continue
			}
			size = op.Off
		case op.Kind == workload.Concurrent:
			var g []workload.Op
			for _, sub := range op.Group {
				s, ok := clip(sub)
				if !ok {
					continue
				}
				if j := sectorOverlap(g, s); j >= 0 {
					ad = append(ad, Adaptation{HarnessConcurrentOverlap,
						fmt.Sprintf("op %d: dropped %s from the concurrent group (shares a sector with %s)", i, s, g[j])})
					continue
				}
				g = append(g, s)
			}
			if len(g) == 0 {
				continue
			}
			op.Group = g
		case op.Effect(size).Ranged: // writes, write-zeroes, reads: any op over [Off, Off+Len)
			var ok bool
			if op, ok = clip(op); !ok {
				continue
			}
		}
		ops = append(ops, op)
	}
	c.Ops = ops
	return c, ad
}

// sectorOverlap returns the index of an op of g whose 512-byte-rounded
// range meets op's, or -1.
func sectorOverlap(g []workload.Op, op workload.Op) int {
	lo, hi := op.Off&^511, (op.Off+op.Len+511)&^511
	for j, o := range g {
		if olo, ohi := o.Off&^511, (o.Off+o.Len+511)&^511; lo < ohi && olo < hi {
			return j
		}
	}
	return -1
}
