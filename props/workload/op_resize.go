package workload

import (
	"fmt"

	"github.com/qedtorture/qedtorture/model"
)

// resizeKind: "resize SIZE" grows the image to SIZE bytes (a multiple of
// 512; images only grow).
type resizeKind struct{}

func (resizeKind) name() string { return "resize" }
func (resizeKind) weight() int  { return 1 }

func (resizeKind) check(op Op, v *validator) error {
	if err := v.notNested(); err != nil {
		return err
	}
	if op.Off < v.size || op.Off%512 != 0 || op.Off > MaxImageSize {
		return fmt.Errorf("%w: op %d: resize to %#x (from %#x) must grow to a multiple of 512", ErrInvalid, v.i, op.Off, v.size)
	}
	v.size = op.Off
	return nil
}

func (resizeKind) args(op Op) string { return fmt.Sprintf("%#x", op.Off) }

func (resizeKind) parse(kw string, args []string) (Op, error) {
	if err := nargs(kw, args, 1); err != nil {
		return Op{}, err
	}
	size, err := num(args[0], "size")
	return Op{Kind: Resize, Off: size}, err
}

func (resizeKind) gen(g *genState) (Op, bool) {
	grow := (1 + g.rng.Int64N(4)) * 512 * (1 + g.rng.Int64N(g.cs/512))
	if g.size+grow > MaxImageSize {
		return Op{}, false
	}
	g.size += grow
	return Op{Kind: Resize, Off: g.size}, true
}

func (resizeKind) run(e *Exec, i int, op Op) error {
	if err := e.Model.Grow(op.Off); err != nil {
		return fmt.Errorf("model: %w", err)
	}
	e.snapshot(i)
	if err := e.Disk.Resize(op.Off); err != nil {
		return err
	}
	if got := e.Disk.Size(); got != op.Off {
		return fmt.Errorf("size after resize is %#x, want %#x", got, op.Off)
	}
	return nil
}

// effect: the grown range may change (a lost sync may lose the hiding of
// the backing file's data past the old size). A resize to the size in
// force has the empty range at the size: it changes no guest byte, but it
// is an op on the image (impl/qed rewrites its header), so it stays among
// the ops that may change it, to which crashes and faults are attached.
func (resizeKind) effect(op Op, size int64) Effect {
	if op.Off < size {
		return Effect{}
	}
	return Effect{Changes: []model.Range{{Off: size, Len: op.Off - size}}}
}
