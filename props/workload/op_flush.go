package workload

// flushKind: "flush" makes everything before it durable. The model
// records it only after the target's flush returned.
type flushKind struct{}

func (flushKind) name() string { return "flush" }
func (flushKind) weight() int  { return 3 }

func (flushKind) check(op Op, v *validator) error { return v.notNested() }

func (flushKind) args(Op) string { return "" }

func (flushKind) parse(kw string, args []string) (Op, error) {
	return Op{Kind: Flush}, nargs(kw, args, 0)
}

func (flushKind) gen(*genState) (Op, bool) { return Op{Kind: Flush}, true }

func (flushKind) run(e *Exec, i int, op Op) error {
	e.snapshot(i)
	if err := e.Disk.Flush(); err != nil {
		return err
	}
	e.Model.Flush()
	return nil
}

func (flushKind) effect(Op, int64) Effect { return Effect{Barrier: true} }
