package workload

import "fmt"

// readKind: "read OFF LEN" reads [OFF, OFF+LEN), which must be what the
// model says (a mismatch wraps ErrDataMismatch).
type readKind struct{}

func (readKind) name() string { return "read" }
func (readKind) weight() int  { return 2 }

func (readKind) check(op Op, v *validator) error {
	if err := v.extent(op); err != nil {
		return err
	}
	return v.notNested()
}

func (readKind) args(op Op) string { return fmt.Sprintf("%#x %#x", op.Off, op.Len) }

func (readKind) parse(kw string, args []string) (Op, error) {
	if err := nargs(kw, args, 2); err != nil {
		return Op{}, err
	}
	return parseExtent(Read, args)
}

func (readKind) gen(g *genState) (Op, bool) {
	if g.size == 0 {
		return Op{}, false
	}
	off, n := extent(g.rng, g.size, g.cs, g.hot)
	return Op{Kind: Read, Off: off, Len: n}, true
}

func (readKind) run(e *Exec, i int, op Op) error {
	e.snapshot(i)
	buf := make([]byte, op.Len)
	if _, err := e.Disk.ReadAt(buf, op.Off); err != nil {
		return err
	}
	if err := e.Model.Verify(op.Off, buf); err != nil {
		return fmt.Errorf("%w: %w", ErrDataMismatch, err)
	}
	return nil
}

func (readKind) effect(Op, int64) Effect { return Effect{Ranged: true, Reads: true} }
