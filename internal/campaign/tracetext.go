package campaign

import (
	"fmt"
	"strings"

	"github.com/qedtorture/qedtorture/crashsim"
)

// TraceText is rec's filesystem trace in readable form (trace.txt): one
// operation a line, in order, with the guest op that issued it (the
// 0-based line of workload.txt, the numbering used everywhere: crash.txt,
// verdict, explain, report) or "setup" before the first judged index; a
// sync or directory sync closes an epoch and is followed by a barrier
// line. A crash "at k" loses or keeps the operations from k on.
func TraceText(rec *Recording) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# %d filesystem operations; crash points count from %d (before it: the setup)\n", len(rec.Trace.Ops), rec.SetupEnd)
	fmt.Fprintf(&b, "# index  operation  # guest op (0-based line of workload.txt)\n")
	last := -2
	for _, o := range rec.Trace.Ops {
		who := "setup"
		if o.Index >= rec.SetupEnd && len(rec.Marks) > 0 {
			op := rec.MarkAt(o.Index).Op
			if op != last {
				last = op
				switch {
				case op >= 0 && op < len(rec.W.Ops):
					fmt.Fprintf(&b, "## guest op %d: %s\n", op, rec.W.Ops[op])
				case op < 0:
					fmt.Fprintf(&b, "## after the setup, before guest op 0\n")
				default:
					fmt.Fprintf(&b, "## after the last guest op: the run's end (close, abort or kill)\n")
				}
			}
			who = fmt.Sprintf("op %d", op)
			switch {
			case op < 0:
				who = "setup"
			case op >= len(rec.W.Ops):
				who = "end"
			}
		}
		fmt.Fprintf(&b, "%s\t# %s\n", o, who)
		if o.Kind == crashsim.OpSync || o.Kind == crashsim.OpDirSync {
			fmt.Fprintf(&b, "---- barrier after #%d ----\n", o.Index)
		}
	}
	return b.String()
}
