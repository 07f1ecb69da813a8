package workload

import (
	"fmt"
)

// reopenKind: "reopen" closes the image cleanly (everything durable) and
// opens it again; the size must survive.
type reopenKind struct{}

func (reopenKind) name() string { return "reopen" }
func (reopenKind) weight() int  { return 1 }

func (reopenKind) check(op Op, v *validator) error { return v.notNested() }

func (reopenKind) args(Op) string { return "" }

func (reopenKind) parse(kw string, args []string) (Op, error) {
	return Op{Kind: Reopen}, nargs(kw, args, 0)
}

func (reopenKind) gen(*genState) (Op, bool) { return Op{Kind: Reopen}, true }

func (reopenKind) run(e *Exec, i int, op Op) error {
	e.snapshot(i)
	err := e.Disk.Close()
	e.Disk = nil
	if err != nil {
		return fmt.Errorf("close: %w", err)
	}
	e.Model.Flush() // a clean close makes everything durable
	if e.Disk, err = e.Target.Open(e.FS, e.ImagePath(), e.OpenOptions(false)); err != nil {
		return fmt.Errorf("reopen: %w", err)
	}
	if got, want := e.Disk.Size(), e.Model.Size(); got != want {
		return fmt.Errorf("size after reopen is %#x, want %#x", got, want)
	}
	return nil
}

func (reopenKind) effect(Op, int64) Effect { return Effect{Barrier: true} }
