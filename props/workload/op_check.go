package workload

import "fmt"

// checkKind: "check" runs the implementation's own consistency check
// without repair; it must find nothing.
type checkKind struct{}

func (checkKind) name() string { return "check" }
func (checkKind) weight() int  { return 1 }

func (checkKind) check(op Op, v *validator) error { return v.notNested() }

func (checkKind) args(Op) string { return "" }

func (checkKind) parse(kw string, args []string) (Op, error) {
	return Op{Kind: Check}, nargs(kw, args, 0)
}

func (checkKind) gen(*genState) (Op, bool) { return Op{Kind: Check}, true }

func (checkKind) run(e *Exec, i int, op Op) error {
	e.snapshot(i)
	r, err := e.Disk.Check(false)
	if err != nil {
		return fmt.Errorf("check: %w", err)
	}
	if r.Corruptions != 0 || r.CheckErrors != 0 {
		return fmt.Errorf("check found %d corruptions, %d check errors", r.Corruptions, r.CheckErrors)
	}
	return nil
}

func (checkKind) effect(Op, int64) Effect { return Effect{} }
