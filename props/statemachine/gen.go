package statemachine

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/leanovate/gopter"
	"github.com/leanovate/gopter/commands"

	"github.com/qedtorture/qedtorture/crashsim"
	"github.com/qedtorture/qedtorture/props/oracle"
	"github.com/qedtorture/qedtorture/props/target"
	"github.com/qedtorture/qedtorture/props/workload"
)

// Model is a crash model (crashsim.Model), named here so that the
// conformance door (props) can name it while importing only props/...
// packages.
type Model = crashsim.Model

// Config configures Check. Zero fields take the
// defaults of DefaultConfig.
type Config struct {
	// Seed of the whole run; the i-th batch of sequences uses Seed+i.
	Seed int64
	// Sequences is the number of command sequences to run (at most).
	Sequences int
	// Steps is the maximum sequence length; lengths grow from Steps/4.
	Steps int
	// Batch is the number of sequences per gopter check (shrinking happens
	// inside a batch); 0 = 10.
	Batch int
	// Budget stops the run (between batches) after this long; 0 = none.
	// The first batch always runs.
	Budget time.Duration
	// MaxShrink bounds the shrink steps of a failing sequence; 0 = 200.
	MaxShrink int
	// Models the crash commands draw from; nil = crashsim.Models().
	Models []crashsim.Model
	// MaxClusters bounds image sizes (in clusters) except for the
	// occasional image spanning several L2 tables; 0 = 24.
	MaxClusters int64
	// NoCrashes, NoFaults, NoConcurrency leave those commands out.
	NoCrashes, NoFaults, NoConcurrency bool
	// Run options (crash-state exploration, oracle options).
	Run RunOptions
	// Accept, if set, vets every failure (during shrinking too): a failure
	// it rejects ends its sequence as if it had passed. The seeded-defect
	// test uses it to count only failures the defect causes (the same
	// sequence must pass with the defect off).
	Accept func(*Failure) bool

	// seen, if set, gets every sequence run (shrinking excluded), in
	// order: the pinned-generation test's view of the run.
	seen func(*Sequence)
	// noImageCommands: the target has no target.ImageOps, so the image
	// commands (rebase, rebase-unsafe, commit) are not drawn (Check).
	noImageCommands bool
}

// DefaultConfig returns the defaults: 40 sequences of up to 30
// commands, 8 explored crash states per crash, every crash model.
func DefaultConfig() Config {
	return Config{Sequences: 40, Steps: 30, Batch: 10, MaxShrink: 200, MaxClusters: 24, Run: RunOptions{Explore: 8}}
}

func (c *Config) fill() {
	d := DefaultConfig()
	if c.Sequences <= 0 {
		c.Sequences = d.Sequences
	}
	if c.Steps <= 0 {
		c.Steps = d.Steps
	}
	if c.Batch <= 0 {
		c.Batch = d.Batch
	}
	if c.MaxShrink <= 0 {
		c.MaxShrink = d.MaxShrink
	}
	if c.MaxClusters <= 0 {
		c.MaxClusters = d.MaxClusters
	}
	if len(c.Models) == 0 {
		c.Models = oracle.DefaultModels()
	}
}

// Result reports a Check run.
type Result struct {
	Seed        int64
	Sequences   int           // sequences run (including the failing one)
	Commands    int           // commands run, shrinking excluded
	CrashStates int           // crash states judged
	Faults      int           // faults that fired
	Duration    time.Duration // wall time, shrinking included
	First       *Failure      // the first failure as found
	Shrunk      *Failure      // the same failure after shrinking
	ShrinkTime  time.Duration
	Gopter      string // gopter's own summary of a failure
	Rejected    int    // failures Accept rejected
	// Explored is what the sequences run (shrinking excluded) exercised:
	// the run's own account of its coverage, which the tests hold against
	// the configuration.
	Explored Exploration
}

// Exploration counts what the sequences of a state-machine run exercised.
type Exploration struct {
	OpKinds       map[workload.Kind]int // commands run, by op kind (a concurrent group counts as Concurrent)
	Crashes       map[string]int        // crash directives run (a fault's then=crash included), by crash model
	StatesByModel map[string]int        // crash states judged, by crash model
	FaultRules    map[string]int        // fault directives run, by faultfs rule
	ClusterSizes  map[uint32]int        // sequences, by the image's cluster size
	TableSizes    map[uint32]int        // sequences, by the image's table size
	SizeClasses   map[string]int        // sequences, by SizeClass of the image's initial size
	Backings      map[string]int        // sequences, by BackingLayout of the chain
}

// SizeClass names the class of an initial image size that the generator
// draws from: "zero", "aligned" (whole clusters, less than one L2 table's
// range), "unaligned" (not whole clusters, less than one L2 table's range)
// or "multi-table" (one L2 table's range or more: up to three tables);
// "negative" is never drawn.
func SizeClass(g workload.Geometry) string {
	cs := int64(g.ClusterSize)
	l2Range := cs * (cs * int64(g.TableSize) / 8)
	switch {
	case g.Size < 0:
		return "negative"
	case g.Size == 0:
		return "zero"
	case g.Size >= l2Range:
		return "multi-table"
	case g.Size%cs == 0:
		return "aligned"
	}
	return "unaligned"
}

// BackingLayout names a backing chain by its formats, image side first:
// "none", "raw", "qed", "qed+raw", "qed+qed".
func BackingLayout(chain []workload.Backing) string {
	if len(chain) == 0 {
		return "none"
	}
	s := make([]string, len(chain))
	for i, b := range chain {
		s[i] = b.Format
	}
	return strings.Join(s, "+")
}

// add counts the sequence r ran.
func (x *Exploration) add(r *Runner) {
	if x.OpKinds == nil {
		*x = Exploration{OpKinds: map[workload.Kind]int{}, Crashes: map[string]int{}, StatesByModel: map[string]int{},
			FaultRules: map[string]int{}, ClusterSizes: map[uint32]int{}, TableSizes: map[uint32]int{},
			SizeClasses: map[string]int{}, Backings: map[string]int{}}
	}
	s := r.Sequence()
	g := s.W.Geometry
	x.ClusterSizes[g.ClusterSize]++
	x.TableSizes[g.TableSize]++
	x.SizeClasses[SizeClass(g)]++
	x.Backings[BackingLayout(g.Backing)]++
	for i, op := range s.W.Ops {
		x.OpKinds[op.Kind]++
		st := s.Steps[i]
		if st.Crash != nil {
			x.Crashes[st.Crash.Model.String()]++
		}
		if st.Fault != nil {
			x.FaultRules[st.Fault.Rule]++
			if st.Fault.Then != nil {
				x.Crashes[st.Fault.Then.Model.String()]++
			}
		}
	}
	for m, n := range r.StatesByModel {
		x.StatesByModel[m] += n
	}
}

// Passed reports whether no sequence failed.
func (r *Result) Passed() bool { return r.First == nil }

// Report explains a failure: seed, shrunk sequence in replayable form,
// the error, and how to replay it.
func (r *Result) Report() string {
	if r.Passed() {
		return fmt.Sprintf("passed: %d sequences, %d commands, %d crash states, %d faults in %v (seed %d)",
			r.Sequences, r.Commands, r.CrashStates, r.Faults, r.Duration.Round(time.Millisecond), r.Seed)
	}
	f := r.Shrunk
	if f == nil {
		f = r.First
	}
	var b strings.Builder
	fmt.Fprintf(&b, "state machine FAILED (seed %d; replay: PROPS_SEED=%d) after %d sequences\n", r.Seed, r.Seed, r.Sequences)
	fmt.Fprintf(&b, "first failure at op %d of %d; shrunk to %d ops:\n", r.First.Op, r.First.Seq.Len(), f.Seq.Len())
	fmt.Fprintf(&b, "----- sequence (paste into props.Replay) -----\n%s----- end -----\n", f.Seq)
	fmt.Fprintf(&b, "%v\n", f)
	return b.String()
}

// smState is the abstract state the generators work from: just enough to
// generate valid ops. The reference model lives in the Runner.
type smState struct {
	G      workload.Geometry
	Size   int64
	NextID uint32
	// Backing, Committed: workload.Cursor's (a backing file in force, a
	// commit ran): the image commands' preconditions.
	Backing, Committed bool
	Model              crashsim.Model
	cfg                *Config
}

// cursor is the workload.Cursor at s.
func (s *smState) cursor() workload.Cursor {
	return workload.Cursor{Size: s.Size, LastID: s.NextID - 1, Backing: s.Backing, Committed: s.Committed}
}

// smCommand is one command: an op and its crash or fault.
type smCommand struct {
	Op   workload.Op
	Step Step
	cfg  *Config
}

func (c *smCommand) String() string {
	s := c.Op.String()
	if c.Step.Crash != nil {
		s += " {" + c.Step.Crash.String() + "}"
	}
	if c.Step.Fault != nil {
		s += " {" + c.Step.Fault.String() + "}"
	}
	return s
}

// Run implements commands.Command.
func (c *smCommand) Run(sut commands.SystemUnderTest) commands.Result {
	r, ok := sut.(*Runner)
	if !ok || r == nil {
		return &Failure{Op: -1, Err: fmt.Errorf("setup failed"), Kind: "setup"}
	}
	if r.rejected {
		return nil
	}
	if f := r.Run(c.Op, c.Step); f != nil {
		if c.cfg != nil && c.cfg.Accept != nil && !c.cfg.Accept(f) {
			r.rejected = true
			return nil
		}
		return f
	}
	return nil
}

// NextState implements commands.Command: the size and the next free id
// after the op (workload.Cursor: what each kind changes is the kind's own).
// gopter calls it only on a command whose PreCondition held.
func (c *smCommand) NextState(state commands.State) commands.State {
	s := *state.(*smState)
	cur := s.cursor()
	if cur.Step(0, c.Op) == nil {
		s.Size, s.NextID, s.Backing, s.Committed = cur.Size, cur.LastID+1, cur.Backing, cur.Committed
	}
	return &s
}

// PreCondition implements commands.Command: the op is valid at the state,
// as workload.Validate would have it (it fits the current size and its ids
// are fresh; shrinking may remove a resize or a write). NextID is at least
// 1 (the first id is 1), so LastID = NextID-1 does not wrap.
func (c *smCommand) PreCondition(state commands.State) bool {
	s := state.(*smState)
	cur := s.cursor()
	return cur.Step(0, c.Op) == nil
}

// PostCondition implements commands.Command.
func (c *smCommand) PostCondition(_ commands.State, result commands.Result) *gopter.PropResult {
	if f, ok := result.(*Failure); ok && f != nil {
		return &gopter.PropResult{Status: gopter.PropFalse, Labels: []string{f.Error()}}
	}
	return &gopter.PropResult{Status: gopter.PropTrue}
}

// genState draws an initial state: geometry, backing chain, crash model.
// The draws (the tests hold the generator to these probabilities):
//   - cluster size 4 KiB << U{0..4}; table size 1 << U{0..4}, except that a
//     table over 256 KiB is cut to 256 KiB three times in four;
//   - image size (see SizeClass): zero 1/10; aligned 2/5 (1..MaxClusters
//     clusters); unaligned 2/5 (0..MaxClusters-1 clusters plus 1..cs/512-1
//     sectors); multi-table 1/10 (1..3 L2 ranges plus 0..cs/512-1 sectors),
//     aligned instead when one L2 table covers more than 4 MiB;
//   - backing chain (see BackingLayout): none 7/20, raw 1/4, qed 1/4,
//     qed+raw 3/40, qed+qed 3/40; each backing file is longer than the image
//     (by 1..64 sectors) one time in four, else 1..size/512+1 sectors long;
//   - preferred crash model: uniform over the configured models.
func genState(cfg *Config) gopter.Gen {
	return func(p *gopter.GenParameters) *gopter.GenResult {
		r := p.Rng
		g := workload.Geometry{
			ClusterSize: 4096 << r.Intn(5), // 4 KiB .. 64 KiB
			TableSize:   1 << r.Intn(5),    // 1 .. 16
		}
		if g.ClusterSize*g.TableSize > 256<<10 && r.Intn(4) != 0 {
			// Mostly keep tables small: every crash state opens the image
			// and reads its L1 table (up to 1 MiB) several times.
			g.TableSize = max(1, (256<<10)/g.ClusterSize)
		}
		cs := int64(g.ClusterSize)
		l2Range := cs * (cs * int64(g.TableSize) / 8)
		switch k := r.Intn(20); {
		case k < 2:
			g.Size = 0
		case k < 10:
			g.Size = (1 + r.Int63n(cfg.MaxClusters)) * cs
		case k < 18:
			g.Size = r.Int63n(cfg.MaxClusters)*cs + 512*(1+r.Int63n(cs/512-1))
		default: // several L2 tables, when that stays small
			if l2Range <= 4<<20 {
				g.Size = (1+r.Int63n(3))*l2Range + 512*r.Int63n(cs/512)
			} else {
				g.Size = (1 + r.Int63n(cfg.MaxClusters)) * cs
			}
		}
		var chain []workload.Backing
		switch k := r.Intn(20); {
		case k < 7: // none
		case k < 12:
			chain = []workload.Backing{{Format: "raw"}}
		case k < 17:
			chain = []workload.Backing{{Format: "qed"}}
		default:
			chain = []workload.Backing{{Format: "qed"}, {Format: []string{"raw", "qed"}[r.Intn(2)]}}
		}
		id := uint32(1)
		for i := len(chain) - 1; i >= 0; i-- {
			b := &chain[i]
			b.Fill = id
			id++
			if r.Intn(4) == 0 { // sometimes longer than the image
				b.Size = g.Size + 512*(1+r.Int63n(64))
			} else { // usually shorter
				b.Size = 512 * (1 + r.Int63n(g.Size/512+1))
			}
			if b.Format == "qed" {
				b.ClusterSize = 4096 << r.Intn(5)
				b.TableSize = 1 << r.Intn(5)
			}
		}
		g.Backing = chain
		s := &smState{G: g, Size: g.Size, NextID: id, Backing: len(chain) > 0, cfg: cfg, Model: cfg.Models[r.Intn(len(cfg.Models))]}
		return gopter.NewGenResult(s, gopter.NoShrinker)
	}
}

// commandWeights are the weights of the plain commands' op kinds: each
// kind's default weight in generated workloads (workload.DefaultWeights),
// except where the state machine leans harder on what crash states need:
// write-zeroes 4, reads 3, reopens 3 (a clean close syncs and clears
// NEED_CHECK), checks 3, and concurrent groups 1 (each runs several
// goroutines and flushes). A kind added to props/workload is drawn here
// with its default weight, by its own generator, with nothing to change.
// NoConcurrency sets the concurrent groups' weight to 0; a target without
// target.ImageOps draws no image commands (Config.noImageCommands).
func commandWeights(cfg *Config) map[workload.Kind]int {
	w := workload.DefaultWeights()
	w[workload.WriteZeroes] = 4
	w[workload.Read] = 3
	w[workload.Reopen] = 3
	w[workload.Check] = 3
	w[workload.Concurrent] = 1
	if cfg.NoConcurrency {
		w[workload.Concurrent] = 0
	}
	if cfg.noImageCommands {
		for _, k := range workload.ImageCommandKinds() {
			w[k] = 0
		}
	}
	return w
}

// writes reports whether op may change the image (a write, a resize, a
// group) or is a barrier (a flush, a reopen): the ops a crash or a fault
// is attached to. Reads and checks are left out (workload.Effect: what
// each kind states about itself).
func writes(op workload.Op, size int64) bool {
	e := op.Effect(size)
	return len(e.Changes) > 0 || e.Barrier
}

// hotSpots are the region starts the state machine's ranged ops are drawn
// around (workload.OpGen.Hot): the image's start, and a cluster before each
// L2 table boundary inside the image, so that ops cross tables.
func hotSpots(g workload.Geometry, size int64) []int64 {
	cs := int64(g.ClusterSize)
	l2Range := cs * (cs * int64(g.TableSize) / 8)
	hot := []int64{0}
	for b := l2Range; b < size && len(hot) < 4; b += l2Range {
		hot = append(hot, b-cs)
	}
	return hot
}

// v1Source lets gopter's math/rand generator drive the math/rand/v2
// generator the kinds' generators draw from: a command's draws then
// follow from gopter's seed alone.
type v1Source struct{ r interface{ Uint64() uint64 } }

func (s v1Source) Uint64() uint64 { return s.r.Uint64() }

// genCommand draws a command for state s: one in five a crash directive
// on a flush (1/5 of them), a reopen (1/5) or an op that writes (3/5);
// one in ten a fault directive on an op that writes (non-empty image);
// else a plain op. Ops are drawn by workload.PickKind over commandWeights
// and each kind's own generator (workload.OpGen over hotSpots); a kind
// that cannot be drawn now (a ranged op on an empty image), or an op that
// does not write where one is needed, is drawn again.
func genCommand(st commands.State) gopter.Gen {
	s := st.(*smState)
	cfg := s.cfg
	weights := commandWeights(cfg)
	return func(p *gopter.GenParameters) *gopter.GenResult {
		r := p.Rng
		og := &workload.OpGen{Rand: rand.New(v1Source{r}), Size: s.Size, ClusterSize: int64(s.G.ClusterSize),
			Hot: hotSpots(s.G, s.Size), NextID: s.NextID, Backing: s.Backing, Committed: s.Committed}
		draw := func(k workload.Kind, writePath bool) (workload.Op, bool) {
			g := *og // a redrawn op takes no ids and no size
			op, ok := g.Draw(k)
			return op, ok && (!writePath || writes(op, s.Size))
		}
		pickOp := func(writePath bool) workload.Op {
			for {
				if op, ok := draw(workload.PickKind(og.Rand, weights), writePath); ok {
					return op
				}
			}
		}
		var op workload.Op
		c := &smCommand{cfg: cfg}
		k := r.Intn(20)
		switch {
		case k < 4 && !cfg.NoCrashes:
			// Crashes land most often where the syncs are: in a flush
			// or a close/reopen (which writes back and clears
			// NEED_CHECK); otherwise on a write-path op.
			switch j := r.Intn(10); {
			case j < 2:
				op, _ = draw(workload.Flush, true)
			case j < 4:
				op, _ = draw(workload.Reopen, true)
			default:
				op = pickOp(true)
			}
			m := s.Model
			if r.Intn(3) == 0 {
				m = cfg.Models[r.Intn(len(cfg.Models))]
			}
			c.Step.Crash = &CrashSpec{Sync: r.Intn(4), Model: m, Choice: uint64(r.Int63n(1 << 20))}
		case k < 6 && !cfg.NoFaults && s.Size > 0:
			op = pickOp(true)
			f := &FaultSpec{Rule: FaultRules[r.Intn(len(FaultRules))], Nth: 1 + r.Intn(6)}
			if r.Intn(2) == 0 {
				m := s.Model
				if r.Intn(2) == 0 {
					m = crashsim.Model{Base: crashsim.Drop}
				}
				f.Then = &CrashSpec{Model: m, Choice: uint64(r.Int63n(1 << 20))}
			}
			c.Step.Fault = f
		default:
			op = pickOp(false)
		}
		c.Op = op
		return gopter.NewGenResult(c, gopter.NoShrinker)
	}
}

// Check runs the state-machine property on target: random
// command sequences (see Sequence for what each command does), every read
// and every crash state checked against the model, faults required to
// surface. A failing sequence is shrunk by gopter (commands removed while
// it still fails) and reported with its seed.
func Check(tg target.Target, cfg Config) *Result {
	cfg.fill()
	if _, ok := tg.(target.ImageOps); !ok {
		cfg.noImageCommands = true
	}
	res := &Result{Seed: cfg.Seed}
	start := time.Now()
	var last *Failure
	shrinking := false
	var shrinkStart time.Time
	cmds := &commands.ProtoCommands{
		NewSystemUnderTestFunc: func(initial commands.State) commands.SystemUnderTest {
			s := initial.(*smState)
			r, err := NewRunner(tg, s.G, cfg.Run)
			if err != nil {
				seq := &Sequence{W: &workload.Workload{Geometry: s.G}}
				return &Runner{Target: tg, seq: seq, failed: &Failure{Op: -1, Seq: seq, Err: err, Kind: "setup"}}
			}
			return r
		},
		DestroySystemUnderTestFunc: func(sut commands.SystemUnderTest) {
			r, ok := sut.(*Runner)
			if !ok || r == nil {
				return
			}
			r.Close()
			if !shrinking {
				res.Sequences++
				res.Commands += r.Sequence().Len()
				res.CrashStates += r.CrashStates
				res.Faults += r.Faults
				res.Explored.add(r)
				if cfg.seen != nil {
					cfg.seen(r.Sequence())
				}
			}
			if r.rejected {
				res.Rejected++
				return
			}
			if f := r.Failed(); f != nil {
				if !shrinking {
					res.First = f
					shrinking = true
					shrinkStart = time.Now()
				}
				last = keepShrunk(last, f, res.First.Kind)
			}
		},
		InitialStateGen: genState(&cfg),
		GenCommandFunc:  genCommand,
	}
	for batch := 0; res.Sequences < cfg.Sequences; batch++ {
		if batch > 0 && cfg.Budget > 0 && time.Since(start) > cfg.Budget {
			break
		}
		params := gopter.DefaultTestParametersWithSeed(cfg.Seed + int64(batch))
		params.MinSuccessfulTests = min(cfg.Batch, cfg.Sequences-res.Sequences)
		params.MinSize = max(1, cfg.Steps/4)
		params.MaxSize = cfg.Steps + 1
		params.MaxShrinkCount = cfg.MaxShrink
		params.Workers = 1
		tr := commands.Prop(cmds).Check(params)
		if !tr.Passed() || res.First != nil {
			res.Shrunk = last
			if last != nil && last.Kind != "setup" {
				res.Shrunk = Simplify(tg, last, cfg.Run, cfg.Accept)
			}
			res.ShrinkTime = time.Since(shrinkStart)
			res.Gopter = fmt.Sprintf("gopter: %s after %d tests (error: %v)", tr.Status, tr.Succeeded, tr.Error)
			if res.First == nil { // a gopter-level error (setup, panic in a generator)
				res.First = &Failure{Op: -1, Seq: &Sequence{W: &workload.Workload{}}, Err: fmt.Errorf("%s\n%s", res.Gopter, tr.ErrorStack), Kind: "setup"}
			}
			break
		}
	}
	res.Duration = time.Since(start)
	return res
}

// keepShrunk is the failure to report as shrunk after gopter's candidate
// f failed, given the one kept so far (nil at first): the shortest failure
// of the first one's kind, since the last failing candidate gopter tries is
// not always the smallest; of equally short ones the later, which gopter
// shrank further (smaller values: offsets, lengths, ids).
func keepShrunk(kept, f *Failure, kind string) *Failure {
	if kept == nil || (f.Kind == kind && f.Seq.Len() <= kept.Seq.Len()) {
		return f
	}
	return kept
}

// Simplify finishes the shrinking gopter cannot do, which only removes
// whole commands: greedily, for each op from the last, it tries to drop the
// op's crash or fault directive, then to move a crash to right after its op
// (sync=0), then to weaken its model to drop, then prefix; a change is kept
// when the sequence still fails the same way (same kind and oracle stage,
// and accepted by accept if set). It returns the simplest failure found.
func Simplify(t target.Target, f *Failure, o RunOptions, accept func(*Failure) bool) *Failure {
	same := func(g *Failure) bool {
		return g != nil && g.Kind == f.Kind && g.Stage == f.Stage && (accept == nil || accept(g))
	}
	best := f
	try := func(s *Sequence) bool {
		if _, g := RunSequence(t, s, o); same(g) {
			best = g
			return true
		}
		return false
	}
	for i := best.Seq.Len() - 1; i >= 0; i-- {
		if i >= best.Seq.Len() {
			continue
		}
		st := best.Seq.Steps[i]
		if st.Crash == nil && st.Fault == nil {
			continue
		}
		s := best.Seq.Clone()
		s.Steps[i] = Step{}
		if try(s) {
			continue
		}
		if st.Crash == nil {
			continue
		}
		if st.Crash.Sync != 0 {
			s := best.Seq.Clone()
			s.Steps[i].Crash.Sync = 0
			try(s)
		}
		for _, m := range []crashsim.Model{{Base: crashsim.Drop}, {Base: crashsim.Prefix}} {
			if best.Seq.Steps[i].Crash == nil || best.Seq.Steps[i].Crash.Model == m {
				break
			}
			s := best.Seq.Clone()
			s.Steps[i].Crash.Model = m
			if try(s) {
				break
			}
		}
	}
	return best
}
