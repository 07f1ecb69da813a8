package workload

import (
	"fmt"
)

// commitKind: "commit" closes the image, commits it into its backing
// file (qemu-img commit: the image's data written into the backing file,
// then the image emptied) and opens it again; "commit -d" keeps the image
// as it is (qemu-img commit -d). The image reads the same before, during
// (at any crash) and after; the backing file's guest view, sector by
// sector, reads its old contents or the image's (imagecmds.go).
type commitKind struct{}

func (commitKind) name() string { return "commit" }
func (commitKind) weight() int  { return 1 } // see rebaseKind.weight

func (commitKind) check(op Op, v *validator) error {
	if err := v.notNested(); err != nil {
		return err
	}
	if !v.backing {
		return fmt.Errorf("%w: op %d: commit needs a backing file", ErrInvalid, v.i)
	}
	if op.ID > 1 || op.Off != 0 || op.Len != 0 {
		return fmt.Errorf("%w: op %d: commit takes no range", ErrInvalid, v.i)
	}
	v.committed = true
	return nil
}

func (commitKind) args(op Op) string {
	if op.ID == 1 {
		return "-d"
	}
	return ""
}

func (commitKind) parse(kw string, args []string) (Op, error) {
	switch {
	case len(args) == 0:
		return Op{Kind: Commit}, nil
	case len(args) == 1 && args[0] == "-d":
		return Op{Kind: Commit, ID: 1}, nil
	}
	return Op{}, fmt.Errorf("commit takes no argument or -d, got %q", args)
}

func (commitKind) gen(g *genState) (Op, bool) {
	if !g.backing {
		return Op{}, false
	}
	g.committed = true
	return Op{Kind: Commit, ID: uint32(g.rng.IntN(4) / 3)}, true
}

func (commitKind) run(e *Exec, i int, _ Op) error { return e.imageCommand(i) }

func (commitKind) effect(Op, int64) Effect { return Effect{Barrier: true} }
