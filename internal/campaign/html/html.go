package html

import (
	"bytes"
	_ "embed"
	"fmt"
	"html/template"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/qedtorture/qedtorture/internal/atomicfile"
	"github.com/qedtorture/qedtorture/internal/campaign"
	"github.com/qedtorture/qedtorture/props/check"
)

// MaxTimelineOps and MaxClusters bound what one failure draws.
const (
	MaxTimelineOps = 4000
	MaxClusters    = 4096
)

//go:embed page.tmpl
var pageText string

var page = template.Must(template.New("page").Funcs(template.FuncMap{
	"pct": func(n, total int64) string {
		if total <= 0 {
			return "0"
		}
		return fmt.Sprintf("%.1f", 100*float64(n)/float64(total))
	},
	"thousands": thousands,
	"rate":      func(r float64) string { return thousands(int64(r + 0.5)) },
	// barpx is n's bar in pixels, the largest (total) 320.
	"barpx": func(n, total int64) int64 {
		if total <= 0 {
			return 0
		}
		return max(1, 320*n/total)
	},
}).Parse(pageText))

// Page is one HTML page: a campaign report with its failures, or one
// artifact alone (Report nil).
type Page struct {
	Title     string
	Generated time.Time
	Report    *campaign.Report
	Failures  []*Failure
}

// A Failure is one failure of the page, with what its artifact shows.
type Failure struct {
	N      int
	Report campaign.FailureReport
	// Dir is the artifact directory; Err says why it could not be read
	// ("" when it was).
	Dir, Err                   string
	Workload, Explain, Verdict string
	// GuestOp names the guest op in progress at the crash.
	GuestOp  string
	Timeline *timelineView
	// Nested are, for a crash during recovery, each recorded recovery of
	// the chain (depth 2, 3, ...) with what its crash kept, lost or tore.
	Nested []*timelineView
	// Creation says, for a crash during the creation of the image and its
	// backing chain, what the creation judge asks ("" otherwise).
	Creation string
	Map      *mapView
	Diffs    []*diffView
	// Expected is expected-vs-read.txt for a data failure (its
	// side-by-side hexdump).
	Expected []expLine
}

type timelineView struct {
	State   string
	Caption string
	Epochs  []epochView
	Omitted int
}

type epochView struct {
	N       int
	Barrier int64
	Entries []entryView
}

type entryView struct {
	Index  int64
	Guest  string // "" when the same as the row above
	Op     string
	Label  string
	Status string
	Fate   string
}

type mapView struct {
	What        string // which image
	ClusterSize uint64
	FileSize    int
	Cells       []cellView
	Ghosts      []cellView
	Omitted     int
	Notes       []string
}

type cellView struct {
	Class, Text, Title string
}

type diffView struct {
	Title  string
	ALabel string
	BLabel string
	Rows   []diffRow
}

type diffRow struct {
	Off  string
	A, B []byteCell
}

type byteCell struct {
	Hex  string
	Diff bool
}

type expLine struct {
	Text string
	Mark bool // a "^^" line under differing bytes
}

// rateChart is the states-per-second chart's geometry.
type rateChart struct {
	Points         string
	Dots           []dot
	MaxRate, MaxT  string
	Samples        int
	Width, Height  int
	MeanRate       string
	LastRate       string
	NoSamplesNotes string
}

// dot is one sample of the chart, with its value as a tooltip.
type dot struct{ X, Y, Title string }

// ForReport returns the page of a campaign report: each failure's
// artifact is read from its path in the report, or, when that does not
// exist, from the same name under base (the report file's directory).
func ForReport(rep *campaign.Report, base, title string) *Page {
	p := &Page{Title: title, Generated: time.Now().UTC(), Report: rep}
	for i, fr := range rep.Failures {
		f := &Failure{N: i + 1, Report: fr, Dir: fr.Artifact}
		switch {
		case fr.Artifact == "" && fr.ArtifactError != "":
			f.Err = "no artifact: it could not be written (" + fr.ArtifactError + ")"
		case fr.Artifact == "":
			f.Err = "no artifact"
		default:
			dir := fr.Artifact
			if _, err := os.Stat(dir); err != nil && base != "" && !filepath.IsAbs(dir) {
				if _, err2 := os.Stat(filepath.Join(base, dir)); err2 == nil {
					dir = filepath.Join(base, dir)
				}
			}
			f.Dir = dir
			fill(f, dir, "")
		}
		p.Failures = append(p.Failures, f)
	}
	return p
}

// ForArtifact returns the page of one artifact, for its crash state
// state ("": the artifact's own).
func ForArtifact(dir, state string) (*Page, error) {
	a, err := campaign.LoadArtifact(dir)
	if err != nil {
		return nil, err
	}
	m := a.Meta
	f := &Failure{N: 1, Dir: dir, Report: campaign.FailureReport{Workload: m.Workload, WorkloadSeed: m.WorkloadSeed,
		Stage: m.Stage, State: m.State, CrashPoint: m.CrashPoint, GuestOp: m.GuestOp, Ops: len(a.W.Ops),
		Artifact: dir, Message: m.Message, Signature: m.Signature, Judge: m.Judge}}
	if err := fillFrom(f, a, state); err != nil {
		return nil, err
	}
	return &Page{Title: "qedtorture: " + filepath.Base(dir), Generated: time.Now().UTC(), Failures: []*Failure{f}}, nil
}

// fill loads the artifact at dir into f, recording an error on the page.
func fill(f *Failure, dir, state string) {
	a, err := campaign.LoadArtifact(dir)
	if err == nil {
		err = fillFrom(f, a, state)
	}
	if err != nil {
		f.Err = err.Error()
	}
}

func fillFrom(f *Failure, a *campaign.Artifact, state string) error {
	f.Workload = a.W.String()
	switch op := f.Report.GuestOp; {
	case op < 0:
		f.GuestOp = "none (right after the setup)"
	case op >= len(a.W.Ops):
		f.GuestOp = "none (after the last op)"
	default:
		f.GuestOp = fmt.Sprintf("%d (%s)", op, a.W.Ops[op])
	}
	f.Explain = readText(a.Dir, "explain.txt")
	f.Verdict = readText(a.Dir, "verdict.txt")
	if evr := readText(a.Dir, "expected-vs-read.txt"); strings.Contains(evr, "first differing guest offset") {
		for _, l := range strings.Split(strings.TrimRight(evr, "\n"), "\n") {
			f.Expected = append(f.Expected, expLine{Text: l, Mark: strings.Contains(l, "^^")})
		}
	}
	if a.Run == nil {
		return nil // a setup failure: no trace to show
	}
	tl, err := a.Timeline(state)
	if err != nil {
		return err
	}
	f.Timeline = timeline(a, tl)
	if tl.HasState {
		f.Creation = a.Meta.CreationNote(tl.State.K)
	}
	if a.Meta.State == "" || state == "" || state == a.Meta.State {
		for i := range a.Nested {
			ntl, err := a.NestedTimeline(i)
			if err != nil {
				return err
			}
			v := timeline(a, ntl)
			v.Caption = fmt.Sprintf("depth %d: the recovery of the crash state above (nested/%d/trace.bin), crashed at its state %s: power lost just before its operation %d, model %s; %d operation(s) unsynced at that point",
				i+2, i+2, ntl.State, ntl.State.K, ntl.State.Model, ntl.Unsynced)
			for _, ep := range v.Epochs {
				for j := range ep.Entries {
					if ep.Entries[j].Guest == "?" {
						ep.Entries[j].Guest = "recovery"
					}
				}
			}
			f.Nested = append(f.Nested, v)
		}
	}
	if tl.HasState && f.Report.Model == "" {
		f.Report.Model = tl.State.Model.String()
	}
	img := tl.End
	if tl.HasState {
		img = tl.Crashed
	}
	var bad *check.Violation
	f.Map, bad = clusterMap(img, tl)
	if bad != nil && tl.HasState {
		f.Diffs = entryDiffs(tl.Crashed, tl.End, bad)
	}
	return nil
}

func readText(dir, name string) string {
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return ""
	}
	return strings.TrimRight(string(b), "\n")
}

// timeline is tl as rows, at most MaxTimelineOps.
func timeline(a *campaign.Artifact, tl *campaign.Timeline) *timelineView {
	v := &timelineView{}
	if tl.HasState {
		v.State = tl.State.String()
		v.Caption = fmt.Sprintf("crash state %s: power lost just before trace operation %d, model %s; %d operation(s) unsynced at that point",
			tl.State, tl.State.K, tl.State.Model, tl.Unsynced)
		if op := tl.GuestOp; op >= 0 && op < len(a.W.Ops) {
			v.Caption += fmt.Sprintf("; guest op in progress: %d (%s)", op, a.W.Ops[op])
		}
	} else {
		v.Caption = "the trace of the crash-free run (the failure involved no crash)"
	}
	n, last := 0, -3
	for i, ep := range tl.Epochs {
		ev := epochView{N: i, Barrier: ep.Barrier}
		for _, e := range ep.Entries {
			if n == MaxTimelineOps {
				v.Omitted++
				continue
			}
			n++
			r := entryView{Index: e.Op.Index, Op: e.Op.String(), Label: e.Label, Status: e.Status, Fate: e.Fate()}
			if e.GuestOp != last {
				last = e.GuestOp
				switch op := e.GuestOp; {
				case op == -2:
					r.Guest = "?"
				case op < 0:
					r.Guest = "setup"
				case op < len(a.W.Ops):
					r.Guest = fmt.Sprintf("%d: %s", op, a.W.Ops[op])
				default:
					r.Guest = "the run's end"
				}
			}
			ev.Entries = append(ev.Entries, r)
		}
		if len(ev.Entries) > 0 || ep.Barrier >= 0 {
			v.Epochs = append(v.Epochs, ev)
		}
	}
	return v
}

// clusterMap draws img's clusters (the layout of the image at the end of
// the run names what each is meant to be; the crashed image's own tables
// are checked for the damage) and returns the first violation at a table
// entry, whose entry and target it highlights.
func clusterMap(img []byte, tl *campaign.Timeline) (*mapView, *check.Violation) {
	lay := check.NewLayout(img)
	m := &mapView{What: "image at the end of the crash-free run", ClusterSize: lay.ClusterSize(), FileSize: len(img)}
	if tl.HasState {
		m.What = "crashed image (state " + tl.State.String() + ")"
	}
	cs := m.ClusterSize
	if cs == 0 {
		m.Notes = append(m.Notes, fmt.Sprintf("the image (%d bytes) has no valid QED header: no clusters to map", len(img)))
		return m, nil
	}
	rep := check.Structure(img)
	bad := map[uint64]string{}    // cluster -> why it is marked
	target := map[uint64]string{} // cluster -> pointed at by a bad entry
	var first *check.Violation
	for i, v := range rep.Violations {
		if v.At.Kind != check.LocL1 && v.At.Kind != check.LocL2 {
			m.Notes = append(m.Notes, v.String())
			continue
		}
		if first == nil {
			first = &rep.Violations[i]
		}
		bad[v.At.Offset&^(cs-1)] = v.String()
		if v.Prior.Kind != check.LocNone {
			bad[v.Prior.Offset&^(cs-1)] = v.String()
		}
		if v.Value > 1 {
			c := v.Value &^ (cs - 1)
			if v.Value >= uint64(len(img)) {
				m.Ghosts = append(m.Ghosts, cellView{Class: "cell target ghost", Text: "EOF+",
					Title: fmt.Sprintf("host %#x: past the end of the %d-byte file, pointed at by %s", v.Value, len(img), v.At)})
			} else {
				target[c] = fmt.Sprintf("pointed at by %s: %s", v.At, v.Kind)
			}
		}
	}
	if len(rep.Violations) == 0 {
		m.Notes = append(m.Notes, "the checker finds no structural violation in this image")
	}
	roles := lay.Clusters(MaxClusters)
	for _, r := range roles {
		c := cellView{Class: "cell " + strings.ToLower(r.Kind)}
		switch r.Kind {
		case "header":
			c.Text, c.Title = "H", fmt.Sprintf("host %#x: header", r.Host)
		case "L1":
			c.Text, c.Title = "L1", fmt.Sprintf("host %#x: L1 table", r.Host)
		case "L2":
			c.Text, c.Title = fmt.Sprintf("L2.%d", r.Table), fmt.Sprintf("host %#x: L2 table %d (L1 entry %d)", r.Host, r.Table, r.Table)
		case "data":
			c.Text, c.Title = fmt.Sprintf("%d", r.Guest), fmt.Sprintf("host %#x: data of guest cluster %d (guest %#x)", r.Host, r.Guest, r.Guest*cs)
		default:
			c.Text, c.Title = "·", fmt.Sprintf("host %#x: not referenced by the tables", r.Host)
		}
		if why, ok := bad[r.Host]; ok {
			c.Class += " bad"
			c.Title += "; holds a damaged entry: " + why
		}
		if why, ok := target[r.Host]; ok {
			c.Class += " target"
			c.Title += "; " + why
		}
		m.Cells = append(m.Cells, c)
	}
	if total := (uint64(len(img)) + cs - 1) / cs; total > uint64(len(roles)) {
		m.Omitted = int(total) - len(roles)
	}
	return m, first
}

// entryDiffs are the crashed bytes beside the image at the end of the
// crash-free run: around the damaged entry, and at the start of the
// cluster it points at (past the end of a crashed file: "--").
func entryDiffs(crashed, end []byte, v *check.Violation) []*diffView {
	ds := []*diffView{hexDiff(crashed, end, int64(v.At.Offset), fmt.Sprintf("around %s (%s)", v.At, v.Kind))}
	if v.Value > 1 {
		ds = append(ds, hexDiff(crashed, end, int64(v.Value)+32, fmt.Sprintf("at host %#x, where that entry points", v.Value)))
	}
	return ds
}

// hexDiff is 5 rows of 16 bytes around off (from off-32), crashed beside
// end, the differing bytes marked.
func hexDiff(crashed, end []byte, off int64, title string) *diffView {
	off &^= 15
	lo := max(off-32, 0)
	hi := off + 48
	d := &diffView{Title: title, ALabel: "crashed image", BLabel: "image at the end of the crash-free run"}
	for r := lo; r < hi; r += 16 {
		if r >= int64(len(crashed)) && r >= int64(len(end)) {
			break
		}
		row := diffRow{Off: fmt.Sprintf("%08x", r)}
		for i := r; i < r+16; i++ {
			a, b := byteAt(crashed, i), byteAt(end, i)
			row.A = append(row.A, byteCell{Hex: a, Diff: a != b})
			row.B = append(row.B, byteCell{Hex: b, Diff: a != b})
		}
		d.Rows = append(d.Rows, row)
	}
	return d
}

func byteAt(b []byte, i int64) string {
	if i < 0 || i >= int64(len(b)) {
		return "--"
	}
	return fmt.Sprintf("%02x", b[i])
}

// chart computes the states-per-second chart of rep.Rate.
func chart(rep *campaign.Report) *rateChart {
	c := &rateChart{Width: 640, Height: 180}
	if rep == nil {
		return nil
	}
	rs := rep.Rate
	if len(rs) < 2 {
		c.NoSamplesNotes = "This report has no rate samples (a merged report, or one written before they existed)."
		return c
	}
	type pt struct{ t, r float64 }
	var pts []pt
	maxR, maxT := 0.0, rs[len(rs)-1].Seconds
	for i := 1; i < len(rs); i++ {
		dt := rs[i].Seconds - rs[i-1].Seconds
		if dt <= 0 {
			continue
		}
		if i == len(rs)-1 && i > 1 && dt < (rs[i-1].Seconds-rs[i-2].Seconds)/2 {
			// The final sample (the report's counters) came just after
			// the last tick: too short an interval to say a rate.
			break
		}
		r := float64(rs[i].States-rs[i-1].States) / dt
		pts = append(pts, pt{rs[i].Seconds, r})
		maxR = max(maxR, r)
	}
	if maxR == 0 {
		maxR = 1
	}
	if maxT <= 0 {
		maxT = 1
	}
	var b strings.Builder
	for _, p := range pts {
		x := 40 + p.t/maxT*float64(c.Width-50)
		y := float64(c.Height-20) - p.r/maxR*float64(c.Height-30)
		fmt.Fprintf(&b, "%.1f,%.1f ", x, y)
		c.Dots = append(c.Dots, dot{fmt.Sprintf("%.1f", x), fmt.Sprintf("%.1f", y), fmt.Sprintf("%.1f s: %s states/s", p.t, thousands(int64(p.r)))})
	}
	c.Points = strings.TrimSpace(b.String())
	c.Samples = len(rs)
	c.MaxRate, c.MaxT = thousands(int64(maxR)), fmt.Sprintf("%.0f s", maxT)
	c.MeanRate = thousands(int64(rep.StatesPerSecond))
	if len(pts) > 0 {
		c.LastRate = thousands(int64(pts[len(pts)-1].r))
	}
	return c
}

// thousands writes n with thousands separators.
func thousands(n int64) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

type modelRow struct {
	Model  string
	States int64
}

type view struct {
	*Page
	Models  []modelRow
	MaxM    int64
	Chart   *rateChart
	Known   []modelRow
	Sigs    []modelRow
	Version string
}

// Render writes the page.
func (p *Page) Render(w io.Writer) error {
	v := view{Page: p, Chart: chart(p.Report)}
	if r := p.Report; r != nil {
		for _, m := range slices.Sorted(mapsKeys(r.PerModel)) {
			v.Models = append(v.Models, modelRow{m, r.PerModel[m]})
			v.MaxM = max(v.MaxM, r.PerModel[m])
		}
		for _, k := range slices.Sorted(mapsKeys(r.Known)) {
			v.Known = append(v.Known, modelRow{k, r.Known[k]})
		}
		for _, k := range slices.Sorted(mapsKeys(r.Signatures)) {
			v.Sigs = append(v.Sigs, modelRow{k, r.Signatures[k]})
		}
	}
	return page.Execute(w, v)
}

func mapsKeys(m map[string]int64) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// WriteFile renders the page into path atomically (internal/atomicfile).
func (p *Page) WriteFile(path string) error {
	var b bytes.Buffer
	if err := p.Render(&b); err != nil {
		return fmt.Errorf("html: %s: %w", path, err)
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("%s: %w", path, atomicfile.UnwrapPath(err))
		}
	}
	if err := atomicfile.WriteFile(path, b.Bytes(), 0o644); err != nil {
		return err
	}
	return nil
}
