package campaign

import (
	"bytes"
	"fmt"
	"path"
	"strings"

	"github.com/qedtorture/qedtorture/crashsim"
	"github.com/qedtorture/qedtorture/props/check"
	"github.com/spf13/afero"
)

// A Timeline is an artifact's recorded trace as a person reads it: every
// operation, epoch by epoch between sync barriers, with the guest op (the
// 0-based line of workload.txt) that issued it, each write to the image
// labelled with what it is (props/check.Layout of the image at the end of
// the run, whose tables link every cluster the run wrote: the header and
// which fields it changes, L1 entries, L2 table t's entries, data of guest
// cluster c, a zero fill, a cluster the tables do not reference; a write to
// another file is a backing file's) and, for a crash state, what the crash
// did to it. `qedtorture show` prints it; the HTML report draws it.
//
// What the crash did is judged from the crashed bytes, sector by sector:
// an operation at or after the crash point was never issued; one before
// the crash point's last sync is durable; an unsynced write is kept (every
// sector holds its data), lost (none does) or torn (some do). A later
// write over the same bytes can make an earlier one look lost.
type Timeline struct {
	// State is the crash state shown (HasState false: the trace alone).
	State    crashsim.StateID
	HasState bool
	// Unsynced counts the operations unsynced at the crash point; GuestOp
	// is the guest op in progress there (Artifact.GuestOpAt).
	Unsynced int
	GuestOp  int
	Epochs   []Epoch
	// Crashed is the crashed image file (nil without a state); End the
	// image at the end of the crash-free run (what the tables meant).
	Crashed, End []byte
	// Layout is End's layout (what the writes are).
	Layout *check.Layout
}

// An Epoch is the operations between two sync barriers.
type Epoch struct {
	Entries []TimelineEntry
	// Barrier is the trace index of the sync (file or directory) that
	// ends the epoch; -1 for the last epoch, which the trace's end ends.
	Barrier int64
}

// A TimelineEntry is one operation of the trace.
type TimelineEntry struct {
	Op crashsim.Op
	// GuestOp is the guest op that issued it: the workload line, -1 the
	// setup, len(W.Ops) or more the run's end (the close), -2 unknown.
	GuestOp int
	// Status is what the crash did to it ("" without a state):
	// "durable", "not issued", "kept", "lost", "lost (file absent)",
	// "torn: K of N sectors kept", or "unsynced" for an unsynced
	// operation that carries no data (a truncate, a discard).
	Status string
	// Label is what a write or discard is ("" for other operations).
	Label string
}

// Fate classifies Status in one word: "durable", "kept", "lost", "torn",
// "unsynced", "not-issued", or "" without a state.
func (e TimelineEntry) Fate() string {
	switch s := e.Status; {
	case strings.HasPrefix(s, "torn"):
		return "torn"
	case strings.HasPrefix(s, "lost"):
		return "lost"
	case s == "not issued":
		return "not-issued"
	default:
		return s
	}
}

// Timeline builds the timeline of the artifact's trace for the crash state
// id ("": the artifact's own state; the trace alone when it has none).
func (a *Artifact) Timeline(id string) (*Timeline, error) {
	run := a.Run
	if run == nil {
		return nil, fmt.Errorf("%w: %s has no trace.bin (a setup failure)", ErrArtifact, a.Dir)
	}
	ops := run.Trace.Ops
	endFS, err := run.Start.Replay(run.Trace, int64(len(ops)), run.Options)
	if err != nil {
		return nil, err
	}
	tl := &Timeline{GuestOp: -2}
	tl.End, _ = afero.ReadFile(endFS, a.Image)
	tl.Layout = check.NewLayout(tl.End)
	if id == "" {
		id = a.Meta.State
	}
	var crashed afero.Fs
	unsync := map[int64]bool{}
	if id != "" {
		sid, err := crashsim.ParseStateID(id)
		if err != nil {
			return nil, fmt.Errorf("state %q: %w", id, err)
		}
		p, err := run.Point(sid.K)
		if err != nil {
			return nil, fmt.Errorf("state %s: %w", sid, err)
		}
		st, err := p.State(sid)
		if err != nil {
			return nil, fmt.Errorf("state %s: %w", sid, err)
		}
		crashed = st
		for _, o := range p.Unsynced() {
			unsync[o.Index] = true
		}
		tl.State, tl.HasState, tl.Unsynced = sid, true, len(unsync)
		tl.GuestOp = a.GuestOpAt(sid.K)
		if tl.Crashed, err = afero.ReadFile(st, a.Image); err != nil {
			tl.Crashed = []byte{}
		}
	}
	ep := Epoch{Barrier: -1}
	for _, o := range ops {
		e := TimelineEntry{Op: o, GuestOp: a.GuestOpAt(o.Index)}
		if crashed != nil {
			switch {
			case o.Index >= tl.State.K:
				e.Status = "not issued"
			case unsync[o.Index]:
				e.Status = keptLostTorn(crashed, o)
			default:
				e.Status = "durable"
			}
		}
		if o.Kind == crashsim.OpWrite || o.Kind == crashsim.OpDiscard {
			if path.Clean(o.Path) == path.Clean(a.Image) {
				e.Label = labelWrite(tl.Layout, o)
				if strings.HasPrefix(e.Label, "header") && o.Kind == crashsim.OpWrite && o.Off < headerFieldsSize {
					suffix := ""
					if i := strings.Index(e.Label, ") and "); i >= 0 {
						suffix = e.Label[i+1:] // the tables the write runs into
					}
					e.Label = "header, " + headerChange(run, a.Image, o) + suffix
				}
			} else {
				e.Label = "backing file " + path.Base(o.Path)
			}
		}
		ep.Entries = append(ep.Entries, e)
		if o.Kind == crashsim.OpSync || o.Kind == crashsim.OpDirSync {
			ep.Barrier = o.Index
			tl.Epochs = append(tl.Epochs, ep)
			ep = Epoch{Barrier: -1}
		}
	}
	tl.Epochs = append(tl.Epochs, ep)
	return tl, nil
}

// headerFieldsSize is the size of QED's header fields (docs/format.md): a
// write to the header cluster past them (the backing name, padding) changes
// no field.
const headerFieldsSize = 64

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
