package workload

import (
	"fmt"
	"math/rand/v2"
	"strconv"

	"github.com/qedtorture/qedtorture/model"
)

// Kind is the kind of one guest operation.
type Kind uint8

// The operation kinds. Each is implemented in its own file (op_*.go: its
// bounds, script form, generator and run) and listed once in kindTable.
const (
	Write        Kind = iota + 1 // write pattern ID over [Off, Off+Len)
	WriteZeroes                  // write zeroes over [Off, Off+Len)
	Read                         // read [Off, Off+Len) and compare with the model
	Flush                        // flush: everything before is durable
	Resize                       // grow the image to Off bytes
	Reopen                       // close cleanly and open again
	Check                        // consistency check without repair: must be clean
	Concurrent                   // run Group at the same time from len(Group) goroutines
	Rebase                       // safe rebase onto AltName(i) (Len > 0) or onto nothing
	RebaseUnsafe                 // rebase -u onto a copy of the backing file, a Len-byte name
	Commit                       // commit into the backing file; ID 1: -d (the image kept)
	Map                          // the image's allocation map, judged against the model
	ReopenRO                     // close cleanly, open read-only, read [Off, Off+Len), open writable again
	Refused                      // a call the image must refuse (variant Off of refusedCalls)
	Hostile                      // a hostile image (variant Off, seed Len) the image's target must refuse or repair
	Idle                         // the image's idle time passes (its idle work done here)
)

// opKind is everything the package knows about one op kind. Adding a kind
// is a constant above, a type implementing opKind in its own file and one
// line in kindTable: validation, the script form, generation, the
// executor, Kinds, KindByName and --op-weights then know it.
type opKind interface {
	// name is the script keyword and the --op-weights key.
	name() string
	// weight is the kind's default weight in generated workloads
	// (DefaultGenConfig).
	weight() int
	// check reports how op breaks the workload's invariants at v.
	check(op Op, v *validator) error
	// args is the script line after the keyword ("" for none).
	args(op Op) string
	// parse reads the script line's arguments (kw is the keyword, for
	// messages).
	parse(kw string, args []string) (Op, error)
	// gen draws one op from g, or returns false when none can be drawn
	// now (the generator then draws another kind). It must consume
	// randomness exactly as it always has: same seed, same workloads.
	gen(g *genState) (Op, bool)
	// run executes op (op number i) on e under Exec's ordering contract:
	// the model first, then the I/O.
	run(e *Exec, i int, op Op) error
	// effect is what op does to the guest disk (see Op.Effect).
	effect(op Op, size int64) Effect
}

// Effect is what an op does to the guest disk, for code that reasons
// about ops without knowing each kind: an adapter clipping ops to the size
// an implementation can run, the campaign locating what a fault may have
// damaged. Every kind states its own (op_*.go).
type Effect struct {
	// Ranged: the op acts on [Off, Off+Len), which must lie inside the
	// image (an adapter that shrinks the image clips or drops it).
	Ranged bool
	// Reads: the op reads its range back (and checks it).
	Reads bool
	// Barrier: once the op completes, everything issued before it is
	// durable (a flush, a clean close, a concurrent group's flushes).
	Barrier bool
	// Changes are the guest ranges the op may change, given the image
	// size in force before it (a write's range, what a resize adds, a
	// group's members'), in op order.
	Changes []model.Range
}

// Effect returns what op does to the guest disk on an image of size
// bytes (the size in force before op); the zero Effect for an unknown
// kind.
func (op Op) Effect(size int64) Effect {
	if s := op.Kind.spec(); s != nil {
		return s.effect(op, size)
	}
	return Effect{}
}

// kindTable lists every kind, once, in the order of the constants (the
// order of Kinds, of generation's weighted draw and of --op-weights).
var kindTable = [...]opKind{
	Write:        writeKind{},
	WriteZeroes:  zeroKind{},
	Read:         readKind{},
	Flush:        flushKind{},
	Resize:       resizeKind{},
	Reopen:       reopenKind{},
	Check:        checkKind{},
	Concurrent:   concurrentKind{},
	Rebase:       rebaseKind{},
	RebaseUnsafe: rebaseUnsafeKind{},
	Commit:       commitKind{},
	Map:          mapKind{},
	ReopenRO:     reopenROKind{},
	Refused:      refusedKind{},
	Hostile:      hostileKind{},
	Idle:         idleKind{},
}

// spec returns k's implementation, nil for an unknown kind.
func (k Kind) spec() opKind {
	if int(k) < len(kindTable) {
		return kindTable[k]
	}
	return nil
}

// Kinds lists every operation kind, in the order of the constants above.
func Kinds() []Kind {
	out := make([]Kind, 0, len(kindTable)-1)
	for k, s := range kindTable {
		if s != nil {
			out = append(out, Kind(k))
		}
	}
	return out
}

// KindByName is the kind whose script keyword is name.
func KindByName(name string) (Kind, bool) {
	for _, k := range Kinds() {
		if k.spec().name() == name {
			return k, true
		}
	}
	return 0, false
}

// KindNames lists the script keywords of every kind, in the order of Kinds.
func KindNames() []string {
	var out []string
	for _, k := range Kinds() {
		out = append(out, k.spec().name())
	}
	return out
}

func (k Kind) String() string {
	if s := k.spec(); s != nil {
		return s.name()
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// validator is the state Validate carries from op to op.
type validator struct {
	i      int    // index of the top-level op being checked
	size   int64  // the image size in force
	lastID uint32 // the last write or fill id
	nested bool   // checking a concurrent group's member
	// backing: a backing file is in force; committed: a commit ran
	// before; chain: the deepest commit base (see Cursor).
	backing, committed bool
	chain              int
}

// extent checks that op's [Off, Off+Len) is a non-empty range inside the
// image.
func (v *validator) extent(op Op) error {
	if op.Len <= 0 || op.Off < 0 || op.Off > v.size || op.Len > v.size-op.Off {
		return fmt.Errorf("%w: op %d: %s [%#x, +%#x) outside the image size %#x", ErrInvalid, v.i, op.Kind, op.Off, op.Len, v.size)
	}
	return nil
}

// notNested refuses an op inside a concurrent group (groups hold writes
// and write-zeroes only).
func (v *validator) notNested() error {
	if v.nested {
		return fmt.Errorf("%w: op %d: concurrent groups hold writes only", ErrInvalid, v.i)
	}
	return nil
}

// genState is what Generate's per-kind generators draw from and update.
type genState struct {
	rng  *rand.Rand
	size int64   // the image size in force
	cs   int64   // the image's cluster size
	hot  []int64 // starts of the regions most ops go to
	id   func() uint32
	// backing, committed, chain: as Cursor's (the image commands'
	// preconditions).
	backing, committed bool
	chain              int
}

// nargs checks a script op's argument count.
func nargs(kw string, args []string, n int) error {
	if len(args) != n {
		return fmt.Errorf("%s takes %d argument(s), got %d", kw, n, len(args))
	}
	return nil
}

// num reads a non-negative script number (decimal, 0x hex, 0 octal).
func num(s, what string) (int64, error) {
	v, err := strconv.ParseInt(s, 0, 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("%s %q is not a non-negative number", what, s)
	}
	return v, nil
}

// parseExtent reads the "OFF LEN" arguments of a ranged op.
func parseExtent(kind Kind, args []string) (Op, error) {
	op := Op{Kind: kind}
	var err error
	if op.Off, err = num(args[0], "offset"); err != nil {
		return op, err
	}
	if op.Len, err = num(args[1], "length"); err != nil {
		return op, err
	}
	return op, nil
}
