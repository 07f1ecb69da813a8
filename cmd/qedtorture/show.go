package main

import (
	"bytes"
	"fmt"
	"io"
	"path"
	"strconv"
	"strings"

	"github.com/qedtorture/qedtorture/crashsim"
	"github.com/qedtorture/qedtorture/internal/campaign"
	"github.com/qedtorture/qedtorture/props/check"
	"github.com/spf13/afero"
	"github.com/spf13/cobra"
)

func newShowCommand(e *env) *cobra.Command {
	var state, hexdump string
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
decimal numbers).`,
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
			return show(e.stdout, a, idText, hexdump != "", hr)
		},
	}
	cmd.Flags().StringVar(&state, "state", "", "crash state id to show (default: the artifact's)")
	cmd.Flags().StringVar(&hexdump, "hexdump", "", "print bytes OFF+LEN of the crashed image")
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
	run, m := a.Run, a.Meta
	fmt.Fprintf(w, "artifact %s: target %s, signature %s\n", a.Dir, m.Target, orNone(m.Signature))
	ops := run.Trace.Ops
	// The layout comes from the image at the end of the run: its tables
	// link every cluster the run wrote.
	endFS, err := run.Start.Replay(run.Trace, int64(len(ops)), run.Options)
	if err != nil {
		return fail(err)
	}
	endImg, _ := afero.ReadFile(endFS, a.Image)
	lay := check.NewLayout(endImg)
	var (
		id      crashsim.StateID
		crashed afero.Fs
		unsync  = map[int64]bool{}
	)
	if idText != "" {
		if id, err = crashsim.ParseStateID(idText); err != nil {
			return failf("state %q: %v", idText, err)
		}
		p, err := run.Point(id.K)
		if err != nil {
			return failf("state %s: %v", id, err)
		}
		st, err := p.State(id)
		if err != nil {
			return failf("state %s: %v", id, err)
		}
		crashed = st
		for _, o := range p.Unsynced() {
			unsync[o.Index] = true
		}
		fmt.Fprintf(w, "crash state %s: power lost just before trace operation %d, model %s; %d operation(s) unsynced at that point\n",
			id, id.K, id.Model, len(unsync))
		if op := a.GuestOpAt(id.K); op >= 0 && op < len(a.W.Ops) {
			fmt.Fprintf(w, "guest op in progress: %d (%s)\n", op, a.W.Ops[op])
		}
	}
	fmt.Fprintln(w)
	epoch, lastOp := 0, -3
	fmt.Fprintf(w, "== epoch %d ==\n", epoch)
	for _, o := range ops {
		if op := a.GuestOpAt(o.Index); op != lastOp {
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
		if crashed != nil {
			switch {
			case o.Index >= id.K:
				status = "not issued"
			case unsync[o.Index]:
				status = keptLostTorn(crashed, o)
			default:
				status = "durable"
			}
			status = "[" + status + "] "
		}
		fmt.Fprintf(w, "  %s%s", status, o)
		if o.Kind == crashsim.OpWrite || o.Kind == crashsim.OpDiscard {
			if path.Clean(o.Path) == path.Clean(a.Image) {
				l := labelWrite(lay, o)
				if strings.HasPrefix(l, "header") && o.Kind == crashsim.OpWrite {
					suffix := ""
					if i := strings.Index(l, ") and "); i >= 0 {
						suffix = l[i+1:] // the tables the write runs into
					}
					l = "header, " + headerChange(run, a.Image, o) + suffix
				}
				fmt.Fprintf(w, "  %s", l)
			} else {
				fmt.Fprintf(w, "  backing file %s", path.Base(o.Path))
			}
		}
		fmt.Fprintln(w)
		if o.Kind == crashsim.OpSync || o.Kind == crashsim.OpDirSync {
			epoch++
			fmt.Fprintf(w, "== barrier (sync #%d); epoch %d ==\n", o.Index, epoch)
		}
	}
	if dump && crashed != nil {
		img, err := afero.ReadFile(crashed, a.Image)
		if err != nil {
			return fail(err)
		}
		fmt.Fprintf(w, "\ncrashed image bytes %#x+%#x (%s):\n", hr[0], hr[1], lay.Label(hr[0], hr[1]))
		hexLines(w, img, hr[0], hr[1])
	}
	return nil
}

// labelWrite names what a write to the image is; an all-zero write is a
// zero (or copy-on-write from nothing) fill.
func labelWrite(lay *check.Layout, o crashsim.Op) string {
	n := o.Size
	if o.Kind == crashsim.OpWrite {
		n = int64(len(o.Data))
	}
	l := lay.Label(o.Off, n)
	if o.Kind == crashsim.OpWrite && strings.HasPrefix(l, "data") && len(o.Data) > 0 && bytes.Count(o.Data, []byte{0}) == len(o.Data) {
		l += ", zero fill"
	}
	return l
}

// keptLostTorn compares an unsynced write's data with the crashed file,
// sector by sector.
func keptLostTorn(fs afero.Fs, o crashsim.Op) string {
	if o.Kind != crashsim.OpWrite || len(o.Data) == 0 {
		return "unsynced"
	}
	b, err := afero.ReadFile(fs, o.Path)
	if err != nil {
		return "lost (file absent)"
	}
	kept, lost := 0, 0
	for s := int64(0); s < int64(len(o.Data)); s += 512 {
		e := min(s+512, int64(len(o.Data)))
		lo, hi := o.Off+s, o.Off+e
		if hi <= int64(len(b)) && bytes.Equal(b[lo:hi], o.Data[s:e]) {
			kept++
		} else {
			lost++
		}
	}
	switch {
	case lost == 0:
		return "kept"
	case kept == 0:
		return "lost"
	}
	return fmt.Sprintf("torn: %d of %d sectors kept", kept, kept+lost)
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

// headerChange says which header fields a write to the header changes:
// the file before it is rebuilt by replaying the trace up to it.
func headerChange(run *crashsim.Run, image string, o crashsim.Op) string {
	fs, err := run.Start.Replay(run.Trace, o.Index, run.Options)
	if err != nil {
		return "fields unknown"
	}
	before, _ := afero.ReadFile(fs, image)
	after := append([]byte(nil), before...)
	if end := o.Off + int64(len(o.Data)); int64(len(after)) < end {
		after = append(after, make([]byte, end-int64(len(after)))...)
	}
	copy(after[o.Off:], o.Data)
	ch := check.HeaderChanges(before, after)
	if len(ch) == 0 {
		return "rewritten unchanged"
	}
	return "changes " + strings.Join(ch, ", ")
}
