package workload

import (
	"fmt"

	"github.com/qedtorture/qedtorture/props/target"
)

// refusedKind: "refused V" issues one call a guest may make but the image
// must refuse (variant V of refusedCalls: I/O past the end of the image
// or at a negative offset or length, a shrinking or unaligned or
// oversized resize) on a Disk with the target.Strict capability, and
// requires an error with a message and an unchanged size; the model is
// not changed, so the ops after it judge that the guest disk was not
// either. On another Disk it does nothing.
type refusedKind struct{}

// refusedCalls are the calls of "refused V", given the image size.
var refusedCalls = [...]struct {
	what string
	call func(d target.Disk, size int64) error
}{
	{"a read starting at the image size, or one reaching past it", func(d target.Disk, size int64) error {
		_, at := d.ReadAt(make([]byte, 512), size)
		_, past := d.ReadAt(make([]byte, 1024), max(size-512, 0))
		if at == nil {
			return nil
		}
		return past
	}},
	{"a read at a negative offset", func(d target.Disk, size int64) error {
		_, err := d.ReadAt(make([]byte, 512), -512)
		return err
	}},
	{"a write reaching past the image size", func(d target.Disk, size int64) error {
		_, err := d.WriteAt(make([]byte, 1024), max(size-512, 0))
		return err
	}},
	{"a write at a negative offset", func(d target.Disk, size int64) error {
		_, err := d.WriteAt(make([]byte, 512), -512)
		return err
	}},
	{"write-zeroes reaching past the image size", func(d target.Disk, size int64) error {
		return d.WriteZeroes(max(size-512, 0), 1024)
	}},
	{"write-zeroes of a negative length", func(d target.Disk, size int64) error {
		return d.WriteZeroes(0, -512)
	}},
	{"a resize that shrinks the image (or to a negative size)", func(d target.Disk, size int64) error {
		return d.Resize(size - 512)
	}},
	{"a resize to a size that is not a multiple of 512", func(d target.Disk, size int64) error {
		return d.Resize(size + 1)
	}},
	{"a resize beyond the format's limit", func(d target.Disk, size int64) error {
		return d.Resize(1 << 62)
	}},
}

func (refusedKind) name() string { return "refused" }
func (refusedKind) weight() int  { return 1 }

func (refusedKind) check(op Op, v *validator) error {
	if err := v.notNested(); err != nil {
		return err
	}
	if op.Off < 0 || op.Off >= int64(len(refusedCalls)) {
		return fmt.Errorf("%w: op %d: refused variant %d, want 0 to %d", ErrInvalid, v.i, op.Off, len(refusedCalls)-1)
	}
	return nil
}

func (refusedKind) args(op Op) string { return fmt.Sprint(op.Off) }

func (refusedKind) parse(kw string, args []string) (Op, error) {
	if err := nargs(kw, args, 1); err != nil {
		return Op{}, err
	}
	v, err := num(args[0], "variant")
	return Op{Kind: Refused, Off: v}, err
}

func (refusedKind) gen(g *genState) (Op, bool) {
	return Op{Kind: Refused, Off: g.rng.Int64N(int64(len(refusedCalls)))}, true
}

func (refusedKind) run(e *Exec, i int, op Op) error {
	if _, ok := e.Disk.(target.Strict); !ok {
		return nil
	}
	e.snapshot(i)
	c := refusedCalls[op.Off]
	if c.what == "a resize beyond the format's limit" && !limitBelow(e.W.Geometry, 1<<62) {
		// Big clusters (issue 14.3: 8 MiB and more with one-cluster
		// tables) address more than 2^62 bytes: the resize is legal
		// there, and no int64 size is beyond the limit. Nothing to test.
		return nil
	}
	size := e.Disk.Size()
	err := c.call(e.Disk, size)
	if err == nil || err.Error() == "" {
		return fmt.Errorf("%s (%#x) was not refused with an error", c.what, size)
	}
	if got := e.Disk.Size(); got != size {
		return fmt.Errorf("%s changed the size from %#x to %#x", c.what, size, got)
	}
	return nil
}

func (refusedKind) effect(Op, int64) Effect { return Effect{} }

// limitBelow reports whether the largest image g's geometry addresses
// (entries per table squared, times the cluster size) is below n.
func limitBelow(g Geometry, n uint64) bool {
	per := uint64(g.TableSize) * uint64(g.ClusterSize) / 8
	cs := uint64(g.ClusterSize)
	if per == 0 || cs == 0 {
		return true
	}
	if per > n/per || per*per > n/cs {
		return false
	}
	return per*per*cs < n
}
