package workload

import "github.com/qedtorture/qedtorture/props/target"

// idleKind: "idle" lets the image's idle time pass (a Disk with the
// target.Idler capability; on another Disk the op does nothing): the
// work an implementation does when the guest is idle (impl/qed's idle
// NEED_CHECK clear: a flush, then the header without the bit) happens
// there, at a fixed point of the trace. The model records nothing: the
// idle work is not a barrier the guest may count on (an image with
// nothing to clear writes nothing), so the writes before it stay pending
// and every crash state across it is judged with them: the oracle's
// structure stages hold NEED_CHECK cleared only over consistent, durable
// metadata. Weight 0: GenConfig.IdleChance inserts it (drawExtras), so
// the ops drawn around it are the ones drawn before it existed;
// --op-weights idle=N draws it among the ops.
type idleKind struct{}

func (idleKind) name() string { return "idle" }
func (idleKind) weight() int  { return 0 }

func (idleKind) check(op Op, v *validator) error { return v.notNested() }

func (idleKind) args(Op) string { return "" }

func (idleKind) parse(kw string, args []string) (Op, error) {
	return Op{Kind: Idle}, nargs(kw, args, 0)
}

func (idleKind) gen(*genState) (Op, bool) { return Op{Kind: Idle}, true }

func (idleKind) run(e *Exec, i int, op Op) error {
	d, ok := e.Disk.(target.Idler)
	if !ok {
		return nil
	}
	e.snapshot(i)
	return d.Idle()
}

func (idleKind) effect(Op, int64) Effect { return Effect{} }
