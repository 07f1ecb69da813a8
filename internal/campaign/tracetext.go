package campaign

import (
	"fmt"
	"path"
	"strings"

	"github.com/qedtorture/qedtorture/crashsim"
	"github.com/qedtorture/qedtorture/props/check"
	"github.com/spf13/afero"
)

// TraceText is rec's filesystem trace in readable form (trace.txt): one
// operation a line, in order, with the guest op that issued it (the
// 0-based line of workload.txt, the numbering used everywhere: crash.txt,
// verdict, explain, report) or "setup" before the first judged index; a
// sync or directory sync closes an epoch and is followed by a barrier
// line. A crash "at k" loses or keeps the operations from k on.
//
// Each write to the image is labelled with what it is (props/check's
// Layout of the image at the end of the run: the header, L1 or L2 entries,
// the data of a guest cluster); `qedtorture show` adds what a crash state
// kept, lost or tore.
func TraceText(rec *Recording) string {
	var lay *check.Layout
	if end, err := rec.run().Start.Replay(rec.Trace, int64(len(rec.Trace.Ops)), rec.Options); err == nil {
		if img, err := afero.ReadFile(end, rec.Image); err == nil {
			lay = check.NewLayout(img)
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# %d filesystem operations; crash points count from %d (before it: the setup)\n", len(rec.Trace.Ops), rec.SetupEnd)
	fmt.Fprintf(&b, "# index  operation  # guest op (0-based line of workload.txt)\n")
	last := -2
	for _, o := range rec.Trace.Ops {
		who := "setup"
		if o.Index >= rec.SetupEnd && len(rec.Marks) > 0 {
			op := rec.MarkAt(o.Index).Op
			if op != last && rec.Recovery {
				last = op
				fmt.Fprintf(&b, "## %s\n", recoveryStepText(op))
			} else if op != last {
				last = op
				switch {
				case op >= 0 && op < len(rec.W.Ops):
					fmt.Fprintf(&b, "## guest op %d: %s\n", op, rec.W.Ops[op])
				case op < 0 && rec.CreateEnd > 0:
					fmt.Fprintf(&b, "## the creation of the backing chain and the image, and the first open (judged by the creation judge)\n")
				case op < 0:
					fmt.Fprintf(&b, "## after the setup, before guest op 0\n")
				default:
					fmt.Fprintf(&b, "## after the last guest op: the run's end (close, abort or kill)\n")
				}
			}
			who = fmt.Sprintf("op %d", op)
			switch {
			case o.Index < rec.CreateEnd:
				who = "creation"
			case rec.Recovery:
				who = "recovery step " + fmt.Sprint(op)
			case op < 0:
				who = "setup"
			case op >= len(rec.W.Ops):
				who = "end"
			}
		}
		what := ""
		if lay != nil && o.Kind == crashsim.OpWrite && path.Clean(o.Path) == path.Clean(rec.Image) {
			what = "; " + lay.Label(o.Off, int64(len(o.Data)))
		}
		fmt.Fprintf(&b, "%s\t# %s%s\n", o, who, what)
		if o.Kind == crashsim.OpSync || o.Kind == crashsim.OpDirSync {
			fmt.Fprintf(&b, "---- barrier after #%d ----\n", o.Index)
		}
	}
	return b.String()
}
