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
	// backing data does not show through; QED cannot). A commit into such
	// a QED base shorter than the image fails the same way (the base
	// grows first): it is dropped.
	QuirkGrowOverLongerBacking Quirk = "grow-over-longer-backing"
	// QuirkCommitKeepsImage: qemu-img commit does not empty a QED image
	// (no make-empty operation; findings Q4): a commit runs as commit -d,
	// which is what QEMU does anyway, so that --diff compares like with
	// like.
	QuirkCommitKeepsImage Quirk = "commit-keeps-image"
	// HarnessConcurrentOverlap is a limit of the recording, not of QEMU:
	// blklogwrites logs two in-flight writes to the same host sectors in
	// an order that need not be the order they reached the file, so the
	// replayed log could disagree with the file. Writes of a concurrent
	// group that share a 512-byte sector with an earlier write of the
	// group are dropped (QED serialises allocating writes itself; in-place
	// writes to disjoint sectors cannot interfere).
	HarnessConcurrentOverlap Quirk = "concurrent-overlap (harness)"
	// HarnessRebaseRelativeName is a limit of the recording without
	// strace: the image is opened through blklogwrites with --image-opts,
	// its filename is then json:{...}, and qemu-img 7.2's safe rebase
	// resolves a relative new backing name against that filename ("Cannot
	// use relative backing file names for 'json:...'"). With strace
	// installed the rebase runs on the plain file, recorded by its system
	// calls (traced.go); without, a safe rebase onto a file is dropped
	// (rebase none, rebase -u and commit run), and so is an image command
	// that needed the backing file it would have given.
	HarnessRebaseRelativeName Quirk = "rebase-relative-name (harness)"
	// HarnessReadOnlyReopen is a limit of the recording, not of QEMU:
	// a recording keeps one writable qemu-io process over blklogwrites,
	// which cannot reopen the image read-only. A reopen-ro becomes a
	// reopen and a read of its range (the read-only open itself is not
	// tested on QEMU).
	HarnessReadOnlyReopen Quirk = "reopen-ro (harness)"
	// HarnessHugeImage is a limit of the harness: QEMU's recovery judge
	// reads the whole guest back (qemu-img convert) into memory, so a
	// grow above MaxGuest (the generator's images above 4 GiB, issue
	// 14.3) is dropped and the ops past the size are clipped or dropped.
	HarnessHugeImage Quirk = "huge-image (harness)"
)

// MaxGuest is the largest image size Adapt lets a workload grow to.
const MaxGuest = 1 << 30

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
// immediate backing file is longer than the old size is dropped, and so
// is a grow above MaxGuest (ops that then fall outside the image are
// clipped or dropped); a reopen-ro becomes a reopen and a read
// (HarnessReadOnlyReopen).
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
	// baseStuck: the backing file in force is a QED file whose own
	// backing file is longer than it, so QEMU cannot grow it (Q2): a
	// commit that would grow it to the image's size fails ("Block job
	// failed: Operation not supported").
	baseStuck := false
	if ch := c.Geometry.Backing; len(ch) > 0 {
		backingLen = ch[0].Size
		baseStuck = ch[0].Format == "qed" && len(ch) > 1 && ch[1].Size > ch[0].Size
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
		case op.Kind == workload.ReopenRO:
			ad = append(ad, Adaptation{HarnessReadOnlyReopen, fmt.Sprintf("op %d: %s -> reopen, read", i, op)})
			ops = append(ops, workload.Op{Kind: workload.Reopen})
			if r, ok := clip(workload.Op{Kind: workload.Read, Off: op.Off, Len: op.Len}); ok {
				ops = append(ops, r)
			}
			continue
		case op.Kind == workload.Resize:
			if op.Off > MaxGuest {
				ad = append(ad, Adaptation{HarnessHugeImage,
					fmt.Sprintf("op %d: dropped resize %#x -> %#x (above %#x bytes)", i, size, op.Off, int64(MaxGuest))})
				continue
			}
			if backingLen > size {
				ad = append(ad, Adaptation{QuirkGrowOverLongerBacking,
					fmt.Sprintf("op %d: dropped resize %#x -> %#x (backing file is %#x bytes)", i, size, op.Off, backingLen)})
				continue
			}
			size = op.Off
		case op.Kind == workload.Rebase && op.Len > 0 && !straceFound():
			ad = append(ad, Adaptation{HarnessRebaseRelativeName, fmt.Sprintf("op %d: dropped %s (a safe rebase through blklogwrites cannot name a relative backing file, and strace is missing)", i, op)})
			continue
		case op.Kind == workload.Rebase && op.Len > 0:
			backingLen, baseStuck = size, false // a raw file of the image's size
		case op.Kind == workload.Rebase:
			backingLen, baseStuck = -1, false
		case op.Kind == workload.RebaseUnsafe:
			baseStuck = false // a raw copy
		case op.Kind == workload.Commit && op.Off > 1:
			// commit -b N into a deeper base (the geometry's chain, no
			// rebase before it): the images between stay as they are
			// (-d implied, by QEMU too). The base grows to the image's
			// size; the base at depth 2 is the own backing file of the
			// file at depth 1, which then may no longer grow (Q2).
			if ch := c.Geometry.Backing; op.Off == 2 && ch[0].Format == "qed" && size > backingLen {
				baseStuck = true
			}
		case op.Kind == workload.Commit:
			if baseStuck && size > backingLen {
				ad = append(ad, Adaptation{QuirkGrowOverLongerBacking,
					fmt.Sprintf("op %d: dropped %s (the base, %#x bytes, cannot grow to %#x over its longer backing file)", i, op, backingLen, size)})
				continue
			}
			if op.ID == 0 {
				op.ID = 1
				ad = append(ad, Adaptation{QuirkCommitKeepsImage, fmt.Sprintf("op %d: commit -> commit -d (QEMU 7.2 cannot empty a QED image)", i)})
			}
			if backingLen >= 0 {
				backingLen = max(backingLen, size) // a shorter base grows
			}
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
	// An image command that needed what was dropped (a backing file a
	// dropped rebase gave) is dropped too.
	cur := workload.Cursor{Size: c.Geometry.Size, Backing: len(c.Geometry.Backing) > 0, Chain: workload.CommitChain(c.Geometry.Backing)}
	for _, b := range c.Geometry.Backing {
		cur.LastID = max(cur.LastID, b.Fill)
	}
	kept := ops[:0]
	for i, op := range ops {
		if err := cur.Step(i, op); err != nil {
			ad = append(ad, Adaptation{HarnessRebaseRelativeName, fmt.Sprintf("dropped %s: %v", op, err)})
			continue
		}
		kept = append(kept, op)
	}
	c.Ops = kept
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
