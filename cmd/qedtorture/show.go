package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/qedtorture/qedtorture/internal/campaign"
	"github.com/qedtorture/qedtorture/internal/campaign/html"
	"github.com/spf13/cobra"
)

func newShowCommand(e *env) *cobra.Command {
	var state, hexdump, htmlOut string
	cmd := &cobra.Command{
		Use:   "show ARTIFACT_DIR [STATE-ID]",
		Short: "Show a failure artifact's writes, what each is, and what the crash kept",
		Long: `show lists every operation of an artifact's recorded trace, epoch by epoch
between sync barriers: what each write is (the header and which fields, L1
entries, L2 table t's entries, data of guest cluster c, a cluster the tables do
not reference, a backing file), the guest op that issued it (the 0-based line of
workload.txt) and, for the crash state, whether the crash kept, lost or tore it
(judged from the crashed bytes, sector by sector: a later write over the same
bytes can make an earlier one look lost). Writes before the crash point's last
sync are durable; those from the crash point on were never issued.

STATE-ID (or --state ID) shows another crash state of the same trace, e.g.
k=12/subset/3 (default: the artifact's); --hexdump OFF+LEN prints those bytes of the crashed image (hex or
decimal numbers). --html FILE writes the same as a self-contained HTML page (with
a map of the crashed image's clusters and a hexdump diff) instead.`,
		Example: `  qedtorture show qedtorture-failures/failure-1-w0-structure-before-recovery
  qedtorture show DIR --hexdump 0x0+64`,
		Args: argsBetween(1, 2, "ARTIFACT_DIR [STATE-ID]"),
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := campaign.LoadArtifact(args[0])
			if err != nil {
				return fail(err)
			}
			if a.Run == nil {
				return failf("%s has no trace.bin: nothing to show (a setup failure)", args[0])
			}
			idText := state
			if len(args) == 2 {
				if state != "" {
					return usagef(cmd, "give the state id once: as an argument or with --state")
				}
				idText = args[1]
			}
			if idText == "" {
				idText = a.Meta.State
			}
			var hr [2]int64
			if hexdump != "" {
				if hr, err = parseRange(hexdump); err != nil {
					return usagef(cmd, "invalid --hexdump %q: %v", hexdump, err)
				}
			}
			if htmlOut != "" {
				// The page of this artifact's crash state, written
				// atomically; the artifact is only read.
				p, err := html.ForArtifact(args[0], idText)
				if err != nil {
					return fail(err)
				}
				if err := p.WriteFile(htmlOut); err != nil {
					return failf("--html: %v", err)
				}
				fmt.Fprintf(e.stdout, "wrote %s\n", htmlOut)
				return nil
			}
			return show(e.stdout, a, idText, hexdump != "", hr)
		},
	}
	cmd.Flags().StringVar(&state, "state", "", "crash state id to show (default: the artifact's)")
	cmd.Flags().StringVar(&hexdump, "hexdump", "", "print bytes OFF+LEN of the crashed image")
	cmd.Flags().StringVar(&htmlOut, "html", "", "write the artifact as a self-contained HTML page to FILE (timeline, cluster map, hexdump diff) instead of the text")
	return cmd
}

// parseRange reads OFF+LEN.
func parseRange(s string) ([2]int64, error) {
	o, l, ok := strings.Cut(s, "+")
	if !ok {
		return [2]int64{}, fmt.Errorf("want OFF+LEN")
	}
	off, err1 := strconv.ParseInt(o, 0, 64)
	n, err2 := strconv.ParseInt(l, 0, 64)
	if err1 != nil || err2 != nil || off < 0 || n <= 0 || n > 1<<20 {
		return [2]int64{}, fmt.Errorf("want OFF+LEN with OFF >= 0 and 0 < LEN <= 1M")
	}
	return [2]int64{off, n}, nil
}

func show(w io.Writer, a *campaign.Artifact, idText string, dump bool, hr [2]int64) error {
	m := a.Meta
	fmt.Fprintf(w, "artifact %s: target %s, signature %s\n", a.Dir, m.Target, orNone(m.Signature))
	tl, err := a.Timeline(idText)
	if err != nil {
		return fail(err)
	}
	if tl.HasState {
		fmt.Fprintf(w, "crash state %s: power lost just before trace operation %d, model %s; %d operation(s) unsynced at that point\n",
			tl.State, tl.State.K, tl.State.Model, tl.Unsynced)
		if op := tl.GuestOp; op >= 0 && op < len(a.W.Ops) {
			fmt.Fprintf(w, "guest op in progress: %d (%s)\n", op, a.W.Ops[op])
		}
		if note := m.CreationNote(tl.State.K); note != "" {
			fmt.Fprintln(w, note)
		}
	}
	fmt.Fprintln(w)
	lastOp := -3
	fmt.Fprintf(w, "== epoch %d ==\n", 0)
	for i, ep := range tl.Epochs {
		for _, e := range ep.Entries {
			if op := e.GuestOp; op != lastOp {
				lastOp = op
				switch {
				case op == -2:
				case op < 0:
					fmt.Fprintln(w, "-- setup --")
				case op < len(a.W.Ops):
					fmt.Fprintf(w, "-- guest op %d: %s --\n", op, a.W.Ops[op])
				default:
					fmt.Fprintln(w, "-- the run's end --")
				}
			}
			status := ""
			if tl.HasState {
				status = "[" + e.Status + "] "
			}
			fmt.Fprintf(w, "  %s%s", status, e.Op)
			if e.Label != "" {
				fmt.Fprintf(w, "  %s", e.Label)
			}
			fmt.Fprintln(w)
		}
		if ep.Barrier >= 0 {
			fmt.Fprintf(w, "== barrier (sync #%d); epoch %d ==\n", ep.Barrier, i+1)
		}
	}
	// A crash during recovery: each recorded recovery of the chain, with
	// what the chain's crash state in it kept (for the artifact's own
	// state; another STATE-ID shows the depth-1 listing only).
	if idText == "" || idText == m.State {
		for i := range a.Nested {
			ntl, err := a.NestedTimeline(i)
			if err != nil {
				return fail(err)
			}
			fmt.Fprintf(w, "\n== the recovery of that crash state (nested/%d/trace.bin), crashed at depth %d: state %s, power lost just before its operation %d, model %s ==\n",
				i+2, i+2, ntl.State, ntl.State.K, ntl.State.Model)
			for _, ep := range ntl.Epochs {
				for _, e := range ep.Entries {
					fmt.Fprintf(w, "  [%s] %s", e.Status, e.Op)
					if e.Label != "" {
						fmt.Fprintf(w, "  %s", e.Label)
					}
					fmt.Fprintln(w)
				}
				if ep.Barrier >= 0 {
					fmt.Fprintf(w, "  == barrier (sync #%d) ==\n", ep.Barrier)
				}
			}
		}
	}
	if dump && tl.HasState {
		fmt.Fprintf(w, "\ncrashed image bytes %#x+%#x (%s):\n", hr[0], hr[1], tl.Layout.Label(hr[0], hr[1]))
		hexLines(w, tl.Crashed, hr[0], hr[1])
	}
	return nil
}

// hexLines prints b[off:off+n] 16 bytes a line with absolute offsets.
func hexLines(w io.Writer, b []byte, off, n int64) {
	end := min(off+n, int64(len(b)))
	if off >= end {
		fmt.Fprintf(w, "  (past the end of the %d-byte file)\n", len(b))
		return
	}
	for o := off; o < end; o += 16 {
		e := min(o+16, end)
		fmt.Fprintf(w, "  %08x  % x\n", o, b[o:e])
	}
}
