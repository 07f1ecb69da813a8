package workload

import (
	"fmt"

	"github.com/qedtorture/qedtorture/model"
)

// zeroKind: "zero OFF LEN" writes zeroes over [OFF, OFF+LEN).
type zeroKind struct{}

func (zeroKind) name() string { return "zero" }
func (zeroKind) weight() int  { return 3 }

func (zeroKind) check(op Op, v *validator) error { return v.extent(op) }

func (zeroKind) args(op Op) string { return fmt.Sprintf("%#x %#x", op.Off, op.Len) }

func (zeroKind) parse(kw string, args []string) (Op, error) {
	if err := nargs(kw, args, 2); err != nil {
		return Op{}, err
	}
	return parseExtent(WriteZeroes, args)
}

func (zeroKind) gen(g *genState) (Op, bool) {
	if g.size == 0 {
		return Op{}, false
	}
	off, n := extent(g.rng, g.size, g.cs, g.hot)
	return Op{Kind: WriteZeroes, Off: off, Len: n}, true
}

func (zeroKind) run(e *Exec, i int, op Op) error {
	if err := e.Model.WriteZeroes(op.Off, op.Len); err != nil {
		return fmt.Errorf("model: %w", err)
	}
	e.snapshot(i)
	if err := e.Disk.WriteZeroes(op.Off, op.Len); err != nil {
		e.failWrite(0)
		return err
	}
	return nil
}

func (zeroKind) effect(op Op, _ int64) Effect {
	return Effect{Ranged: true, Changes: []model.Range{{Off: op.Off, Len: op.Len}}}
}
