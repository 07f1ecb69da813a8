package workload

import (
	"fmt"
	"strconv"
)

// commitKind: "commit" closes the image, commits it into its backing
// file (qemu-img commit: the image's data written into the backing file,
// then the image emptied) and opens it again; "commit -d" keeps the image
// as it is (qemu-img commit -d); "commit -b N" commits into the file at
// depth N of the geometry's backing chain (qemu-img commit -b BASE, the
// base named as its backing name names it: 1 the image's own backing
// file; a deeper base writes what the image and every file above the base
// allocate, and implies -d), Op.Off holding N (0 without -b). The image
// reads the same before, during (at any crash) and after; the base's
// guest view, sector by sector, reads its old contents or the image's
// (imagecmds.go; where nothing above the base allocates the two are
// equal).
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
	if op.ID > 1 || op.Off < 0 || op.Len != 0 {
		return fmt.Errorf("%w: op %d: commit takes no range", ErrInvalid, v.i)
	}
	if op.Off > int64(v.chain) {
		return fmt.Errorf("%w: op %d: commit -b %d: the backing chain in force has %d file(s) a commit may name (the geometry's, down to its first raw file; none after a rebase)", ErrInvalid, v.i, op.Off, v.chain)
	}
	v.committed = true
	return nil
}

func (commitKind) args(op Op) string {
	s := ""
	if op.ID == 1 {
		s = "-d"
	}
	if op.Off > 0 {
		if s != "" {
			s += " "
		}
		s += "-b " + strconv.FormatInt(op.Off, 10)
	}
	return s
}

func (commitKind) parse(kw string, args []string) (Op, error) {
	op := Op{Kind: Commit}
	for i := 0; i < len(args); i++ {
		switch {
		case args[i] == "-d" && op.ID == 0:
			op.ID = 1
		case args[i] == "-b" && op.Off == 0 && i+1 < len(args):
			n, err := num(args[i+1], "commit base depth")
			if err != nil || n == 0 {
				return Op{}, fmt.Errorf("commit -b takes a base depth of 1 or more, got %q", args[i+1])
			}
			op.Off = n
			i++
		default:
			return Op{}, fmt.Errorf("commit takes -d and -b N, got %q", args)
		}
	}
	return op, nil
}

func (commitKind) gen(g *genState) (Op, bool) {
	if !g.backing {
		return Op{}, false
	}
	g.committed = true
	r := g.rng.IntN(4)
	op := Op{Kind: Commit, ID: uint32(r / 3)}
	if (r == 1 || r == 2) && g.chain > 1 {
		op.Off = int64(g.chain) // the deepest base
	}
	return op, true
}

func (commitKind) run(e *Exec, i int, _ Op) error { return e.imageCommand(i) }

func (commitKind) effect(Op, int64) Effect { return Effect{Barrier: true} }
