package crashsim

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
)

// DefaultExploreModels are the crash models Explore uses when none are
// given: each unsynced write survives or not (with or without its new file
// length), or survives in part, 512-byte sector by sector.
var DefaultExploreModels = []Model{
	{Base: Subset, Size: true},
	{Base: Torn, Sector: 512, Size: true},
}

// ExploreOptions configure Explore, Record and Replay. The zero value
// judges every sync and the end under DefaultExploreModels, with the
// default bounds, stopping at the first failing state.
type ExploreOptions struct {
	// Models are the crash models judged at every point (nil:
	// DefaultExploreModels).
	Models []Model
	// Bound and Samples bound each point's enumeration per model, as in
	// EnumOptions (0: DefaultBound, DefaultSamples).
	Bound   uint64
	Samples int
	// Seed drives the sampled crash points and the sampled states
	// (PointSeed). Print it with a failure: it is part of what replays.
	Seed uint64
	// SampledPoints adds that many crash points at operation indices
	// drawn from Seed (duplicates collapse).
	SampledPoints int
	// AllPoints judges every operation index from From to the end (for
	// small workloads and minimizers; SampledPoints is then moot).
	AllPoints bool
	// From is the first operation index judged: operations before it are
	// a setup whose crash states do not matter (0: from the start).
	From int64
	// MaxFailures stops the exploration after this many failing states
	// (0: 1, the first one; negative: no limit).
	MaxFailures int
	// FS are the options of the recording filesystem (Final and
	// DiscardTrace are managed by Explore). ImplicitDirSync off, the
	// default, is the strict rule real filesystems give.
	FS Options
	// Start holds the files that exist, all durable, when the workload
	// starts (nil: an empty filesystem). Make it with NewImage.
	Start *Image
}

func (o ExploreOptions) models() []Model {
	if o.Models == nil {
		return DefaultExploreModels
	}
	return o.Models
}

func (o ExploreOptions) validate() error {
	for _, m := range o.models() {
		if err := m.Validate(); err != nil {
			return fmt.Errorf("crashsim: explore: %w", err)
		}
	}
	if o.From < 0 || o.SampledPoints < 0 || o.Samples < 0 {
		return fmt.Errorf("crashsim: explore: negative From (%d), SampledPoints (%d) or Samples (%d)", o.From, o.SampledPoints, o.Samples)
	}
	return nil
}

// Run is a recorded run of a workload: enough to build every crash point
// of it. Record makes one; a caller with its own recording (the QED
// campaign records through its executor) can fill one in and call
// Run.Explore.
type Run struct {
	// Start and Options are the image the recording started from and the
	// recording filesystem's options: Start.Replay(Trace, k, Options)
	// rebuilds point k.
	Start   *Image
	Options Options
	// Trace is every operation of the run; nil when it was not kept (no
	// sampled points asked for): only Syncs and End are then available.
	Trace *Trace
	// From is the first crash point judged (the end of the setup).
	From int64
	// Syncs are the points captured at the syncs of the run, by index.
	Syncs map[int64]*Point
	// End is the point after the workload returned.
	End *Point
	// Err is what the workload returned.
	Err error
}

// Record runs workload once on a fresh recording filesystem (o.FS, o.Start)
// and captures the crash point of every sync and of the end. The trace is
// kept when o asks for points other than syncs and the end. The workload's
// own error is Run.Err; the error returned is Record's (bad options, a
// workload that crashed or released the filesystem itself).
func Record(workload func(fs *FS) error, o ExploreOptions) (*Run, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	opts := o.FS
	opts.Final = false
	opts.DiscardTrace = o.SampledPoints == 0 && !o.AllPoints
	start := o.Start
	if start == nil {
		start = EmptyImage()
	}
	fs := start.NewFS(opts)
	r := &Run{Start: start, Options: Options{ImplicitDirSync: opts.ImplicitDirSync}, From: o.From, Syncs: map[int64]*Point{}}
	fs.OnSync(func(p *Point) bool {
		r.Syncs[p.K()] = p
		return false
	})
	r.Err = workload(fs)
	fs.OnSync(nil)
	end, err := fs.Point()
	if err != nil {
		return nil, fmt.Errorf("crashsim: explore: the workload left no end point (did it crash the filesystem?): %w", err)
	}
	r.End = end
	if !opts.DiscardTrace {
		r.Trace = fs.Trace()
	}
	return r, nil
}

// PointSeed is the seed of the sampled states of crash point k in an
// exploration seeded with seed (EnumOptions.Seed of that point). It is the
// QED campaign's rule, so both sample the same states.
func PointSeed(seed uint64, k int64) uint64 { return seed ^ uint64(k)*0x9e3779b97f4a7c15 }

// PointKs returns the crash points to judge, ascending and distinct: the
// syncs at or after From, o.SampledPoints indices drawn uniformly from
// [From, end) with PCG(o.Seed, "points") (the campaign's rule), and the end;
// with o.AllPoints every index from From to the end. From is the later of
// the run's (the end of its setup) and the options'.
func (r *Run) PointKs(o ExploreOptions) []int64 {
	end := r.End.K()
	from := max(r.From, o.From, 0)
	if o.AllPoints {
		ks := make([]int64, 0, max(end-from+1, 1))
		for k := from; k <= end; k++ {
			ks = append(ks, k)
		}
		if len(ks) == 0 {
			ks = append(ks, end)
		}
		return ks
	}
	ks := make([]int64, 0, len(r.Syncs)+o.SampledPoints+1)
	for k := range r.Syncs {
		if k >= from {
			ks = append(ks, k)
		}
	}
	if n := end - from; n > 0 && o.SampledPoints > 0 {
		rng := rand.New(rand.NewPCG(o.Seed, 0x706f696e7473)) // "points"
		for range o.SampledPoints {
			ks = append(ks, from+rng.Int64N(n))
		}
	}
	ks = append(ks, end)
	slices.Sort(ks)
	return slices.Compact(ks)
}

// Point returns crash point k of the run: captured at a sync or the end,
// else rebuilt by replaying the trace.
func (r *Run) Point(k int64) (*Point, error) {
	if p, ok := r.Syncs[k]; ok {
		return p, nil
	}
	if k == r.End.K() {
		return r.End, nil
	}
	if k < 0 || k > r.End.K() {
		return nil, fmt.Errorf("%w: crash point k=%d: the run has %d operations", ErrBadStateID, k, r.End.K())
	}
	if r.Trace == nil {
		return nil, fmt.Errorf("crashsim: crash point k=%d is not a sync or the end, and the run kept no trace", k)
	}
	fs, err := r.Start.Replay(r.Trace, k, r.Options)
	if err != nil {
		return nil, fmt.Errorf("crashsim: crash point k=%d: %w", k, err)
	}
	return fs.Point()
}

// State is one crash state handed to a check: its identity, the point it
// belongs to, and the crashed files. FS is Final (it cannot crash again;
// writes copy only what they change) and is released when the check
// returns: keep the ID, not the FS.
type State struct {
	ID    StateID
	Point *Point
	FS    *FS
}

// ExploreFailure is a crash state the check rejected.
type ExploreFailure struct {
	ID  StateID
	Err error
}

func (f ExploreFailure) Error() string { return fmt.Sprintf("crash state %s: %v", f.ID, f.Err) }

// Unwrap returns the check's error.
func (f ExploreFailure) Unwrap() error { return f.Err }

// ExploreReport is what an exploration did.
type ExploreReport struct {
	Models   []Model
	Seed     uint64
	Points   int     // crash points judged
	States   int64   // states checked
	PerModel []int64 // states checked per model, in Models' order
	// Sampled counts the (point, model) pairs with more states than the
	// bound, whose states were sampled rather than all checked.
	Sampled  int
	Failures []ExploreFailure
	// Stopped: the exploration ended early (MaxFailures, or ErrStopExplore
	// from the check).
	Stopped bool
}

// Err returns nil when no state failed, else an error listing the failing
// states (their IDs replay with Replay) and the seed.
func (r *ExploreReport) Err() error {
	if len(r.Failures) == 0 {
		return nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "crashsim: %d failing crash state(s) (seed %d)", len(r.Failures), r.Seed)
	if r.Stopped {
		b.WriteString(", exploration stopped early")
	}
	for _, f := range r.Failures {
		b.WriteString("\n\t")
		b.WriteString(f.Error())
	}
	return errors.New(b.String())
}

// ErrStopExplore, returned by a check, ends the exploration at once
// without recording a failure (a time budget, a stop signal).
var ErrStopExplore = errors.New("crashsim: exploration stopped")

// Explore records workload (Record) and judges its crash states with check
// (Run.Explore). The error is for the exploration itself: bad options, or
// the workload's own error (a workload must succeed when nothing crashes;
// fault sweeps are faultfs' job). Failing states are in the report
// (ExploreReport.Err).
func Explore(workload func(fs *FS) error, o ExploreOptions, check func(State) error) (*ExploreReport, error) {
	r, err := Record(workload, o)
	if err != nil {
		return nil, err
	}
	if r.Err != nil {
		return nil, fmt.Errorf("crashsim: explore: the workload failed without a crash: %w", r.Err)
	}
	return r.Explore(o, check)
}

// Explore judges the crash states of the run's points (PointKs) under
// o.Models with check, in point, model and state order. A check error
// other than ErrStopExplore is a failing state; after o.MaxFailures of them
// the exploration stops.
func (r *Run) Explore(o ExploreOptions, check func(State) error) (*ExploreReport, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	models := o.models()
	maxFail := o.MaxFailures
	if maxFail == 0 {
		maxFail = 1
	}
	rep := &ExploreReport{Models: slices.Clone(models), Seed: o.Seed, PerModel: make([]int64, len(models))}
	for _, k := range r.PointKs(o) {
		p, err := r.Point(k)
		if err != nil {
			return rep, err
		}
		rep.Points++
		enum := EnumOptions{Bound: o.Bound, Samples: o.Samples, Seed: PointSeed(o.Seed, k)}
		for mi, m := range models {
			first := true
			for id := range p.IDs(m, enum) {
				if first && id.Sampled {
					rep.Sampled++ // (p.Exhaustive would count the states again)
				}
				first = false
				st, err := p.FinalState(id)
				if err != nil {
					return rep, err
				}
				rep.States++
				rep.PerModel[mi]++
				err = check(State{ID: id, Point: p, FS: st})
				st.Release()
				if errors.Is(err, ErrStopExplore) {
					rep.Stopped = true
					return rep, nil
				}
				if err != nil {
					rep.Failures = append(rep.Failures, ExploreFailure{ID: id, Err: err})
					if maxFail > 0 && len(rep.Failures) >= maxFail {
						rep.Stopped = true
						return rep, nil
					}
				}
			}
		}
	}
	return rep, nil
}

// Replay rebuilds the crash state id of workload: it records the workload
// again with o (the options of the exploration that reported id) and builds
// the state as a live filesystem (it can be inspected, recovered and
// crashed again). The workload must be deterministic: the same operations
// in the same order each run.
func Replay(id StateID, workload func(fs *FS) error, o ExploreOptions) (*FS, error) {
	if err := id.Model.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrBadStateID, id, err)
	}
	o.SampledPoints, o.AllPoints = 0, false
	r, err := Record(workload, o)
	if err != nil {
		return nil, err
	}
	p, ok := r.Syncs[id.K]
	switch {
	case ok:
	case id.K == r.End.K():
		p = r.End
	default:
		// Not a sync or the end: a sampled point. Record once more,
		// keeping the trace, and rebuild it.
		o.AllPoints = true
		if r, err = Record(workload, o); err != nil {
			return nil, err
		}
		if id.K > r.End.K() {
			return nil, fmt.Errorf("%w: %s: the workload now issues only %d operations (is it deterministic?)", ErrBadStateID, id, r.End.K())
		}
		if p, err = r.Point(id.K); err != nil {
			return nil, err
		}
	}
	return p.State(id)
}
