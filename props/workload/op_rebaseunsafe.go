package workload

import (
	"fmt"
)

// rebaseUnsafeKind: "rebase-unsafe LEN" closes the image, rewrites its
// header to name a raw copy of its backing file by a LEN-byte name
// (qemu-img rebase -u -b UnsafeName(i, LEN) -F raw; a long name spans
// header sectors) and opens it again. The copy reads the same, so the
// guest view does not change; a crash may leave the old name or the new
// one in the header, never a mix (BackingNames, imagecmds.go).
type rebaseUnsafeKind struct{}

func (rebaseUnsafeKind) name() string { return "rebase-unsafe" }
func (rebaseUnsafeKind) weight() int  { return 1 } // see rebaseKind.weight

func (rebaseUnsafeKind) check(op Op, v *validator) error {
	if err := v.notNested(); err != nil {
		return err
	}
	if op.Len < minUnsafeName || op.Len > maxUnsafeName {
		return fmt.Errorf("%w: op %d: rebase-unsafe name length %d not in %d..%d", ErrInvalid, v.i, op.Len, minUnsafeName, maxUnsafeName)
	}
	if !v.backing || v.committed {
		return fmt.Errorf("%w: op %d: rebase-unsafe needs a backing file and no commit before it (the setup copies the backing file)", ErrInvalid, v.i)
	}
	v.chain = 0 // commit -b needs the geometry's chain
	return nil
}

func (rebaseUnsafeKind) args(op Op) string { return fmt.Sprint(op.Len) }

func (rebaseUnsafeKind) parse(kw string, args []string) (Op, error) {
	if err := nargs(kw, args, 1); err != nil {
		return Op{}, err
	}
	n, err := num(args[0], "name length")
	return Op{Kind: RebaseUnsafe, Len: n}, err
}

func (rebaseUnsafeKind) gen(g *genState) (Op, bool) {
	if !g.backing || g.committed {
		return Op{}, false
	}
	var n int64
	switch g.rng.IntN(3) {
	case 0: // inside the first header sector with the fields
		n = minUnsafeName + g.rng.Int64N(200)
	case 1: // across the first sector boundary
		n = 400 + g.rng.Int64N(200)
	default: // over two sectors
		n = 600 + g.rng.Int64N(maxUnsafeName-600+1)
	}
	g.chain = 0
	return Op{Kind: RebaseUnsafe, Len: n}, true
}

func (rebaseUnsafeKind) run(e *Exec, i int, _ Op) error { return e.imageCommand(i) }

func (rebaseUnsafeKind) effect(Op, int64) Effect { return Effect{Barrier: true} }
