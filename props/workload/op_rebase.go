package workload

import (
	"fmt"
	"strconv"
	"strings"
)

// rebaseKind: "rebase OFF LEN id=N" closes the image, rebases it safely
// (qemu-img rebase -b altI.raw -F raw) onto AltName(i), a raw file the
// setup made that reads what the backing file reads except for the
// pattern of id N over [OFF, OFF+LEN), and opens it again; "rebase none"
// removes the backing file (qemu-img rebase -b ""). The guest reads the
// same before, during (at any crash) and after (imagecmds.go).
type rebaseKind struct{}

func (rebaseKind) name() string { return "rebase" }

// weight 1, as commit and rebase-unsafe: each costs a close, a pass over
// the image and a reopen, so the three together are about a tenth of the
// ops drawn (docs/campaigns.md); a target without target.ImageOps draws
// none (GenConfig.NoImageCommands).
func (rebaseKind) weight() int { return 1 }

func (rebaseKind) check(op Op, v *validator) error {
	if err := v.notNested(); err != nil {
		return err
	}
	if op.Len == 0 && op.Off == 0 && op.ID == 0 { // rebase none
		v.backing, v.chain = false, 0
		return nil
	}
	if err := v.extent(op); err != nil {
		return err
	}
	if op.ID == 0 || op.ID <= v.lastID {
		return fmt.Errorf("%w: op %d: rebase id %d must be non-zero and above the previous id %d", ErrInvalid, v.i, op.ID, v.lastID)
	}
	v.lastID = op.ID
	v.backing, v.chain = true, 0 // commit -b needs the geometry's chain
	return nil
}

func (rebaseKind) args(op Op) string {
	if op.Len == 0 {
		return "none"
	}
	return fmt.Sprintf("%#x %#x id=%d", op.Off, op.Len, op.ID)
}

func (rebaseKind) parse(kw string, args []string) (Op, error) {
	if len(args) == 1 && args[0] == "none" {
		return Op{Kind: Rebase}, nil
	}
	if len(args) != 3 {
		return Op{}, fmt.Errorf("rebase takes \"none\" or OFF LEN id=N, got %d argument(s)", len(args))
	}
	id, ok := strings.CutPrefix(args[2], "id=")
	if !ok {
		return Op{}, fmt.Errorf("rebase needs id=N as its third argument")
	}
	n, err := strconv.ParseUint(id, 0, 32)
	if err != nil {
		return Op{}, fmt.Errorf("rebase id %q is not a number", id)
	}
	op, err := parseExtent(Rebase, args[:2])
	op.ID = uint32(n)
	return op, err
}

// maxRebaseImage bounds the image size at which a rebase is drawn: the
// setup makes the new backing file as long as the image, in memory, and a
// safe rebase compares every cluster of the image, so the wide images of
// big tables (hundreds of GiB, sparse) draw none.
const maxRebaseImage = 256 << 20

func (rebaseKind) gen(g *genState) (Op, bool) {
	if g.size > maxRebaseImage {
		return Op{}, false
	}
	if g.size == 0 || g.rng.IntN(4) == 0 {
		g.backing, g.chain = false, 0
		return Op{Kind: Rebase}, true
	}
	off, n := extent(g.rng, g.size, g.cs, g.hot)
	g.backing, g.chain = true, 0
	return Op{Kind: Rebase, Off: off, Len: n, ID: g.id()}, true
}

func (rebaseKind) run(e *Exec, i int, _ Op) error { return e.imageCommand(i) }

// effect: a barrier (the clean close); the guest data does not change.
func (rebaseKind) effect(Op, int64) Effect { return Effect{Barrier: true} }
