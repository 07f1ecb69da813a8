package workload

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/qedtorture/qedtorture/model"
)

// writeKind: "write OFF LEN id=N" writes the pattern of id N (model.Fill)
// over [OFF, OFF+LEN). Ids are non-zero and increase through the workload.
type writeKind struct{}

func (writeKind) name() string { return "write" }
func (writeKind) weight() int  { return 10 }

func (writeKind) check(op Op, v *validator) error {
	if err := v.extent(op); err != nil {
		return err
	}
	if op.ID == 0 {
		return fmt.Errorf("%w: op %d: write id must be non-zero", ErrInvalid, v.i)
	}
	if op.ID <= v.lastID {
		return fmt.Errorf("%w: op %d: write id %d must be above the previous id %d", ErrInvalid, v.i, op.ID, v.lastID)
	}
	v.lastID = op.ID
	return nil
}

func (writeKind) args(op Op) string { return fmt.Sprintf("%#x %#x id=%d", op.Off, op.Len, op.ID) }

func (writeKind) parse(kw string, args []string) (Op, error) {
	if err := nargs(kw, args, 3); err != nil {
		return Op{}, err
	}
	id, ok := strings.CutPrefix(args[2], "id=")
	if !ok {
		return Op{}, fmt.Errorf("write needs id=N as its third argument")
	}
	v, err := strconv.ParseUint(id, 0, 32)
	if err != nil {
		return Op{}, fmt.Errorf("write id %q is not a number", id)
	}
	op, err := parseExtent(Write, args[:2])
	op.ID = uint32(v)
	return op, err
}

func (writeKind) gen(g *genState) (Op, bool) {
	if g.size == 0 {
		return Op{}, false
	}
	off, n := extent(g.rng, g.size, g.cs, g.hot)
	return Op{Kind: Write, Off: off, Len: n, ID: g.id()}, true
}

func (writeKind) run(e *Exec, i int, op Op) error {
	if err := e.Model.WriteID(op.Off, op.Len, uint64(op.ID)); err != nil {
		return fmt.Errorf("model: %w", err)
	}
	e.snapshot(i)
	if err := e.write(op); err != nil {
		e.failWrite(0) // it may have landed in part, anywhere
		return err
	}
	return nil
}

func (writeKind) effect(op Op, _ int64) Effect {
	return Effect{Ranged: true, Changes: []model.Range{{Off: op.Off, Len: op.Len}}}
}
