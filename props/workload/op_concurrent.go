package workload

import "fmt"

// concurrentKind: "concurrent N" followed by N indented writes or
// write-zeroes runs them at once (see Exec for how; the op's Group).
type concurrentKind struct{}

func (concurrentKind) name() string { return "concurrent" }
func (concurrentKind) weight() int  { return 2 }

func (concurrentKind) check(op Op, v *validator) error {
	if v.nested || len(op.Group) < 1 {
		return fmt.Errorf("%w: op %d: concurrent needs a non-empty group and cannot nest", ErrInvalid, v.i)
	}
	v.nested = true
	defer func() { v.nested = false }()
	for _, sub := range op.Group {
		if err := checkOp(sub, v); err != nil {
			return err
		}
	}
	return nil
}

// args is the group's size; Format writes the members on the lines after.
func (concurrentKind) args(op Op) string { return fmt.Sprint(len(op.Group)) }

// parse returns the op with the announced group size in Len; Parse then
// reads that many indented lines into Group (and clears Len).
func (concurrentKind) parse(kw string, args []string) (Op, error) {
	if err := nargs(kw, args, 1); err != nil {
		return Op{}, err
	}
	n, err := num(args[0], "group size")
	if err != nil {
		return Op{}, err
	}
	if n < 1 || n > 64 {
		return Op{}, fmt.Errorf("concurrent group size %d not in 1..64", n)
	}
	return Op{Kind: Concurrent, Len: n}, nil
}

func (concurrentKind) gen(g *genState) (Op, bool) {
	if g.size == 0 {
		return Op{}, false
	}
	n := 2 + g.rng.IntN(3)
	op := Op{Kind: Concurrent}
	for range n {
		off, l := extent(g.rng, g.size, g.cs, g.hot)
		if g.rng.IntN(4) == 0 {
			op.Group = append(op.Group, Op{Kind: WriteZeroes, Off: off, Len: l})
		} else {
			op.Group = append(op.Group, Op{Kind: Write, Off: off, Len: l, ID: g.id()})
		}
	}
	return op, true
}

func (concurrentKind) run(e *Exec, i int, op Op) error { return e.concurrent(i, op) }

// effect: the group flushes before and after its writes (a barrier), and
// may change what its members do.
func (concurrentKind) effect(op Op, size int64) Effect {
	e := Effect{Barrier: true}
	for _, sub := range op.Group {
		e.Changes = append(e.Changes, sub.Effect(size).Changes...)
	}
	return e
}
