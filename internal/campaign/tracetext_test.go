package campaign

import (
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/qedtorture/qedtorture/crashsim"
	"github.com/qedtorture/qedtorture/impl/qed/qedtarget"
	"github.com/qedtorture/qedtorture/props/workload"
	"github.com/stretchr/testify/require"
)

// traceTextLine is one operation's line of a TraceText: its trace index,
// the section ("## ...") it is printed under ("" before the first), who
// issued it and the write's label ("" for none).
type traceTextLine struct {
	index          int64
	section        string
	who, label     string
	barrierFollows bool
}

// parseTraceText checks the text's two header lines and returns its
// operation lines, in order, and its sections.
func parseTraceText(t *testing.T, rec *Recording, text string) ([]traceTextLine, []string) {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	require.GreaterOrEqual(t, len(lines), 2, text)
	require.Equal(t, fmt.Sprintf("# %d filesystem operations; crash points count from %d (before it: the setup)", len(rec.Trace.Ops), rec.SetupEnd), lines[0])
	require.Equal(t, "# index  operation  # guest op (0-based line of workload.txt)", lines[1])
	var ops []traceTextLine
	var sections []string
	section := ""
	for _, l := range lines[2:] {
		switch {
		case strings.HasPrefix(l, "## "):
			section = strings.TrimPrefix(l, "## ")
			sections = append(sections, section)
		case strings.HasPrefix(l, "---- barrier after #"):
			require.NotEmpty(t, ops, l)
			require.Equal(t, fmt.Sprintf("---- barrier after #%d ----", ops[len(ops)-1].index), l)
			require.False(t, ops[len(ops)-1].barrierFollows, l)
			ops[len(ops)-1].barrierFollows = true
		default:
			o := rec.Trace.Ops[len(ops)]
			op, comment, ok := strings.Cut(l, "\t# ")
			require.True(t, ok, l)
			require.Equal(t, o.String(), op)
			who, label, _ := strings.Cut(comment, "; ")
			ops = append(ops, traceTextLine{index: o.Index, section: section, who: who, label: label})
		}
	}
	require.Len(t, ops, len(rec.Trace.Ops), "every operation once, in order")
	for i, o := range rec.Trace.Ops {
		sync := o.Kind == crashsim.OpSync || o.Kind == crashsim.OpDirSync
		require.Equal(t, sync, ops[i].barrierFollows, "a barrier line after each sync, only: %s", o)
		image := o.Kind == crashsim.OpWrite && path.Clean(o.Path) == path.Clean(rec.Image)
		require.Equal(t, image, ops[i].label != "", "a label on each write to the image, only: %s %q", o, ops[i].label)
	}
	return ops, sections
}

// TestTraceText: trace.txt has every operation once, in order, each with
// who issued it (the setup, the creation, a guest op, a recovery step,
// the run's end) under a section naming it, a barrier line after each sync
// and directory sync, and each write to the image (not to a backing file)
// labelled by the image's layout at the end of the run.
func TestTraceText(t *testing.T) {
	// Ops 0 and 1 read what is not allocated yet: no file operation; the
	// first section is op 2's.
	w, err := workload.Parse(strings.NewReader(`qedtorture-workload v1
image cluster_size=4096 table_size=1 size=65536
backing raw size=8192 fill=1
read 0 512
read 8192 512
write 0 4096 id=2
flush
write 8192 4096 id=3
`))
	require.NoError(t, err)
	tgt := qedtarget.Target{}
	// whoOf is the issuer every line of a section names.
	whoOf := func(t *testing.T, ops []traceTextLine, setupEnd int64, who map[string]string) {
		t.Helper()
		for _, l := range ops {
			if l.index < setupEnd {
				require.Equal(t, "", l.section, "#%d: the setup comes first", l.index)
				require.Equal(t, "setup", l.who, "#%d", l.index)
				continue
			}
			require.NotEmpty(t, l.section, "#%d after the setup has a section", l.index)
			require.Equal(t, who[l.section], l.who, "#%d under %q", l.index, l.section)
		}
	}
	guest := []string{"guest op 2: write 0x0 0x1000 id=2", "guest op 3: flush", "guest op 4: write 0x2000 0x1000 id=3"}
	guestWho := map[string]string{guest[0]: "op 2", guest[1]: "op 3", guest[2]: "op 4"}

	rec, err := Record(tgt, w, 1, "")
	require.NoError(t, err)
	ops, sections := parseTraceText(t, rec, TraceText(rec))
	require.Equal(t, guest, sections)
	whoOf(t, ops, rec.SetupEnd, guestWho)
	var data []string
	for _, l := range ops {
		if strings.HasPrefix(l.label, "data of guest cluster") {
			data = append(data, l.who+"; "+l.label)
		}
	}
	require.Equal(t, []string{"op 2; data of guest cluster 0 (guest bytes 0x0+0x1000)"}, data,
		"guest cluster 0's data, written by op 2 (op 4's cluster is not linked at the end)")

	// The sections a driver's marks may also give: a mark before guest
	// op 0 after the setup, and one after the last op (the run's end).
	t.Run("setup and end marks", func(t *testing.T) {
		last := rec.Trace.Ops[len(rec.Trace.Ops)-1].Index
		r := *rec
		r.Marks = []Mark{{Op: -1, K: rec.SetupEnd}, {Op: 0, K: rec.SetupEnd + 1}, {Op: 2, K: rec.SetupEnd + 2}, {Op: len(w.Ops), K: last}}
		ops, sections := parseTraceText(t, &r, TraceText(&r))
		after := "after the setup, before guest op 0"
		op0 := "guest op 0: read 0x0 0x200"
		end := "after the last guest op: the run's end (close, abort or kill)"
		require.Equal(t, []string{after, op0, guest[0], end}, sections)
		whoOf(t, ops, rec.SetupEnd, map[string]string{after: "setup", op0: "op 0", guest[0]: "op 2", end: "end"})
		// A workload of no ops: its op 0 is the run's end.
		r.W = &workload.Workload{Geometry: w.Geometry}
		r.Marks = []Mark{{Op: -1, K: rec.SetupEnd}, {Op: 0, K: rec.SetupEnd + 1}}
		ops, sections = parseTraceText(t, &r, TraceText(&r))
		require.Equal(t, []string{after, end}, sections)
		whoOf(t, ops, rec.SetupEnd, map[string]string{after: "setup", end: "end"})
	})
	t.Run("no marks", func(t *testing.T) {
		r := *rec
		r.Marks = nil
		ops, sections := parseTraceText(t, &r, TraceText(&r))
		require.Empty(t, sections)
		for _, l := range ops {
			require.Equal(t, "setup", l.who)
		}
	})
	t.Run("creation", func(t *testing.T) {
		rc, err := RecordWith(tgt, w, RecordOptions{Seed: 1, Create: true})
		require.NoError(t, err)
		require.Positive(t, rc.CreateEnd)
		ops, sections := parseTraceText(t, rc, TraceText(rc))
		create := "the creation of the backing chain and the image, and the first open (judged by the creation judge)"
		require.Equal(t, append([]string{create}, guest...), sections)
		who := map[string]string{create: "creation"}
		for k, v := range guestWho {
			who[k] = v
		}
		whoOf(t, ops, rc.SetupEnd, who)
		// A guest op 0 that made operations (marks as a driver may give):
		// its own section after the creation's.
		r := *rc
		r.Marks = []Mark{{Op: -1, K: rc.SetupEnd}, {Op: 0, K: rc.CreateEnd}, {Op: 2, K: rc.CreateEnd + 1}}
		_, s0 := parseTraceText(t, &r, TraceText(&r))
		require.Equal(t, []string{create, "guest op 0: read 0x0 0x200", guest[0]}, s0)
		r.W = &workload.Workload{Geometry: w.Geometry}
		r.Marks = []Mark{{Op: -1, K: rc.SetupEnd}, {Op: 0, K: rc.CreateEnd}}
		_, s0 = parseTraceText(t, &r, TraceText(&r))
		require.Equal(t, []string{create, "after the last guest op: the run's end (close, abort or kill)"}, s0)
		n := 0
		for _, l := range ops {
			if l.who == "creation" {
				n++
				require.Less(t, l.index, rc.CreateEnd)
			}
		}
		require.EqualValues(t, rc.CreateEnd-rc.SetupEnd, n, "every operation of the creation")
	})
	t.Run("recovery", func(t *testing.T) {
		require.NoError(t, rec.complete())
		p := rec.End
		id := crashsim.StateID{K: p.K(), Model: crashsim.Model{Base: crashsim.Drop}}
		fs, err := p.FinalState(id)
		require.NoError(t, err)
		st := &State{ID: id, Point: p, FS: fs, Image: rec.Image, Model: rec.EndModel.Clone(), Rec: rec}
		rr, err := RecordRecovery(tgt, st)
		require.NoError(t, err)
		require.True(t, rr.Recovery)
		ops, sections := parseTraceText(t, rr, TraceText(rr))
		who := map[string]string{}
		for op := RecoveryOpen; op <= RecoveryClose; op++ {
			who[recoveryStepText(op)] = "recovery step " + strconv.Itoa(op)
		}
		// The steps that made operations, each once, in order (the open
		// may make none: this state needs no repair).
		var steps []string
		for op := RecoveryOpen; op <= RecoveryClose; op++ {
			if slices.ContainsFunc(rr.Trace.Ops, func(o crashsim.Op) bool { return rr.MarkAt(o.Index).Op == op }) {
				steps = append(steps, recoveryStepText(op))
			}
		}
		require.Contains(t, steps, recoveryStepText(RecoveryWrite))
		require.Equal(t, steps, sections)
		whoOf(t, ops, rr.SetupEnd, who)
	})
}
