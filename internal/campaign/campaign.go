package campaign

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/qedtorture/qedtorture/crashsim"
	"github.com/qedtorture/qedtorture/props/workload"
)

// Stats is a snapshot of a running campaign's counters.
type Stats struct {
	Elapsed         time.Duration
	Workloads       int64 // completed
	Points          int64
	States          int64
	Failures        int64
	Skipped         int64 // workloads whose recording could not be judged (ErrSkip)
	DiffRuns        int64 // differential runs (Config.Diff)
	OracleRuns      int64 // states the oracle actually ran on (the others were byte-identical repeats)
	StatesPerSecond float64
	Deadline        time.Duration // Config.Duration (0 = none)
	Iterations      int           // workloads of this shard to run (0 = unbounded)
	// Minimizing is the number of failures being minimized now, and
	// MinimizingFor how long the oldest of them has been.
	Minimizing    int
	MinimizingFor time.Duration
}

// ShardWorkloads returns how many workload indices below iterations belong
// to the shard.
func (s Shard) ShardWorkloads(iterations int) int {
	if s.Count <= 1 {
		return iterations
	}
	if iterations <= s.Index {
		return 0
	}
	return (iterations-s.Index-1)/s.Count + 1
}

// Run runs a campaign until its iterations are done, its duration is up,
// MaxFailures failures were found or ctx is cancelled, and returns the
// report. An error is a bad configuration (wrapping ErrConfig), or an
// artifact that could not be written (the report is returned with it, the
// failure recorded with its ArtifactError).
//
// Cancelling ctx is an interruption (a signal): no workload starts after
// it, the workloads in flight are abandoned at their next crash state (not
// counted as completed), a failure being minimized keeps the smallest
// case found so far, the artifacts of the failures found are written, and
// the report is marked Interrupted. Run returns within a fraction of a
// second of the cancellation plus the artifact writes.
//
// Write ordering: an artifact is committed (atomicfile: synced, renamed,
// its directory synced) before its failure is added to the list the
// reports are built from, so a checkpoint or the final report never names
// an artifact that is not durably complete. Checkpoints (Config.Checkpoint)
// are taken by one goroutine, which is stopped before the final report is
// built: the final report is always the last one handed out.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	start := time.Now()
	c := &counters{perModel: make([]atomic.Int64, len(cfg.Models))}
	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if cfg.Duration > 0 {
		var stopT context.CancelFunc
		ctx, stopT = context.WithTimeout(ctx, cfg.Duration)
		defer stopT()
	}
	stop := func() bool { return ctx.Err() != nil }

	models := make([]string, len(cfg.Models))
	modelIdx := make([]int, len(cfg.Models))
	for i, m := range cfg.Models {
		models[i] = m.String()
		modelIdx[i] = i
	}
	var (
		mu    sync.Mutex // guards digest, wdigest, failed, firstEr, sigs, known, newSigs
		sigs  = map[string]int64{}
		known = map[string]int64{} // by known finding's name
		// minimizing holds the start of each minimization in progress.
		minimizing = map[time.Time]int{}
		newSigs    int // signatures not known
		digest     uint64
		wdigest    uint64 // Report.WorkloadDigest
		failed     []*Failure
		firstEr    error
		skipWhy    []string // the first reasons of skipped workloads
	)
	rate := &rateSampler{every: RateEvery} // Report.Rate
	snapshot := func() Stats {
		el := time.Since(start)
		s := Stats{Elapsed: el, Workloads: c.workloads.Load(), Points: c.points.Load(), States: c.states.Load(),
			Failures: c.failures.Load(), Skipped: c.skipped.Load(), DiffRuns: c.diffRuns.Load(), OracleRuns: c.oracleRuns.Load(), Deadline: cfg.Duration,
			Iterations: cfg.Shard.ShardWorkloads(cfg.Iterations)}
		if el > 0 {
			s.StatesPerSecond = float64(s.States) / el.Seconds()
		}
		mu.Lock()
		s.Minimizing = len(minimizing)
		for t := range minimizing {
			s.MinimizingFor = max(s.MinimizingFor, time.Since(t))
		}
		mu.Unlock()
		return s
	}
	// build makes a report of the counters and the failures written so far.
	build := func(st Stats) *Report {
		rep := &Report{Version: ReportVersion, Seed: cfg.Seed, Shard: cfg.Shard.String(), ShardCount: cfg.Shard.Count,
			ShardsDone: []int{cfg.Shard.Index}, Target: cfg.TargetName, Models: models, Faults: cfg.Faults, FaultShare: cfg.FaultShare, FaultSweep: cfg.FaultSweep,
			Iterations: cfg.Iterations, Workers: cfg.Workers, PerModel: map[string]int64{}, Failures: []FailureReport{}}
		rep.Workloads, rep.Skipped, rep.CrashPoints, rep.CrashStates = st.Workloads, st.Skipped, st.Points, st.States
		rep.FailedWorkloads = st.Failures
		rep.OracleRuns, rep.Faulted = st.OracleRuns, c.faulted.Load()
		rep.DiffRuns = st.DiffRuns
		if cfg.Diff != nil {
			rep.Diff = cfg.Diff.Name()
		}
		rep.FaultEffects = c.faultEffects.Load()
		rep.FaultSweeps, rep.FaultSweepRuns = c.sweeps.Load(), c.sweepRuns.Load()
		if cfg.NestedDepth >= 2 {
			rep.NestedDepth, rep.NestedStates = cfg.NestedDepth, c.nested.Load()
		}
		rep.CreationStates, rep.CreationAbsent, rep.CreationOld = c.creation.Load(), c.creationAbsent.Load(), c.creationOld.Load()
		if x := cfg.Exhaustive; x != nil {
			rep.Exhaustive = exhaustiveReport(x, cfg.Bound, c.overBound.Load())
		}
		rep.Seconds, rep.StatesPerSecond = st.Elapsed.Seconds(), st.StatesPerSecond
		rep.Rate = rate.samples(st)
		for i, m := range cfg.Models {
			rep.PerModel[m.String()] += c.perModel[i].Load()
		}
		rep.Judged, rep.Adaptations = c.counts(&c.judged), c.counts(&c.adapted)
		mu.Lock()
		if len(sigs) > 0 {
			rep.Signatures = maps.Clone(sigs)
		}
		if len(known) > 0 {
			rep.Known = maps.Clone(known)
		}
		rep.SkipReasons = slices.Clone(skipWhy)
		rep.Digest = formatDigest(digest)
		rep.WorkloadDigest = formatDigest(wdigest)
		for _, f := range failed {
			rep.Failures = append(rep.Failures, failureReport(f, cfg.TargetName))
		}
		mu.Unlock()
		return rep
	}
	bgDone := make(chan struct{})
	var bgWG sync.WaitGroup
	bgWG.Go(func() { rate.run(bgDone, snapshot) })
	if cfg.Progress != nil {
		bgWG.Go(func() {
			t := time.NewTicker(cfg.ProgressEvery)
			defer t.Stop()
			for {
				select {
				case <-t.C:
					cfg.Progress(snapshot())
				case <-bgDone:
					return
				}
			}
		})
	}
	if cfg.Checkpoint != nil && cfg.CheckpointEvery > 0 {
		bgWG.Go(func() {
			t := time.NewTicker(cfg.CheckpointEvery)
			defer t.Stop()
			for {
				select {
				case <-t.C:
					rep := build(snapshot())
					rep.Checkpoint = true
					cfg.Checkpoint(rep)
				case <-bgDone:
					return
				}
			}
		})
	}

	judges := cfg.judges(&c.nested)
	gate := newMemGate(gateBudget(cfg.MemoryBudget))
	jobs := make(chan int)
	var wg sync.WaitGroup
	// An OverlappedDriver's workloads wait on other processes: each
	// worker keeps InFlight of them going, at most Workers in the
	// engine's in-process checks at once (cpu).
	goroutines, cpu := cfg.Workers, chan struct{}(nil)
	if od, ok := cfg.Driver.(OverlappedDriver); ok && od.InFlight() > 1 {
		goroutines, cpu = cfg.Workers*od.InFlight(), make(chan struct{}, cfg.Workers)
	}
	for range goroutines {
		wg.Go(func() {
			ck := &checker{ctx: ctx, driver: cfg.Driver, judges: judges, models: cfg.Models, sampledPoints: cfg.SampledPoints, cpu: cpu,
				enum: crashsim.EnumOptions{Bound: cfg.Bound, Samples: cfg.Samples}, faults: cfg.Faults,
				c: c, stop: stop, modelIdx: modelIdx, noDedup: cfg.NoDedup, createShare: cfg.CreateShare,
				create: &createJudge{t: cfg.recoverer(), oracle: cfg.Oracle, absent: &c.creationAbsent, old: &c.creationOld}}
			if cfg.Diff != nil {
				ck.diff, ck.read, ck.diffRead = cfg.Diff, cfg.recoverer(), cfg.diffReader()
			}
			if cfg.Exhaustive != nil {
				ck.allPoints, ck.fromOp = true, workload.Prefix
			}
			for w := range jobs {
				func() {
					if stop() {
						// The feeder may hand out a job as the campaign stops
						// (its select picks either): no workload starts after.
						return
					}
					seed := WorkloadSeed(cfg.Seed, w)
					var wl *workload.Workload
					if cfg.Workload != nil {
						wl = cfg.Workload.Clone()
					} else if cfg.Exhaustive != nil {
						wl = cfg.Exhaustive.Workload(w)
					} else {
						wl = generate(seed, cfg.Gen)
					}
					share := ScriptDigest(w, wl) // of the workload as generated
					mem := WorkloadMemory(wl)
					if mem > cfg.MemoryBudget {
						// A drawn workload that cannot fit the budget even
						// alone (a workload file or an exhaustive campaign
						// that does not fit is refused before the start):
						// not run, counted and named (memory.go).
						c.skipped.Add(1)
						mu.Lock()
						wdigest ^= share
						if len(skipWhy) < maxSkipReasons {
							skipWhy = append(skipWhy, fmt.Sprintf("workload %d (seed %d): needs about %s, more than the memory budget of %s",
								w, seed, FormatBytes(mem), FormatBytes(cfg.MemoryBudget)))
						}
						mu.Unlock()
						return
					}
					if !gate.acquire(ctx, mem) {
						return // stopped while waiting for memory
					}
					// Held until the workload and its minimization are done.
					defer gate.release(mem)
					// A drawn fault (faultshare.go): its dry run fails only
					// where the run itself would, a setup failure.
					// A fault sweep (faultsweep.go) runs it once per
					// operation of a step instead.
					ck.faults, ck.createFaults = cfg.Faults, ""
					// The workload's setup bytes, kept for its recordings
					// (a sweep's runs, the dry runs that count them).
					ck.setup = new(workload.SetupCache)
					defer func() { ck.setup = nil }()
					sw, err := drawSweep(ctx, cfg.Driver, wl, seed, cfg.FaultShare, cfg.CreateShare, cfg.FaultSweep, ck.setup)
					drawn := ""
					if err == nil && sw == nil {
						drawn, err = drawFault(ctx, cfg.Driver, wl, seed, cfg.FaultShare, cfg.CreateShare)
					}
					var f *Failure
					if err == nil && sw != nil && sw[0].after {
						// The usual run first, then the sweep of its
						// commit's or rebase's writes (RareSweepChosen).
						if f, _, err = ck.runWorkload(wl, seed, ""); err == nil && f == nil {
							f, err = ck.runSweep(wl, seed, sw)
						}
					} else if err == nil && sw != nil {
						f, err = ck.runSweep(wl, seed, sw)
					} else if err == nil {
						if drawn != "" {
							ck.faults = drawn
						}
						f, _, err = ck.runWorkload(wl, seed, "")
					}
					if err != nil && stop() {
						// Stopped (a signal, or the duration is up) while it
						// ran: a driver's processes were killed with the
						// context, so the error proves nothing; abandoned.
						return
					}
					if errors.Is(err, ErrSkip) {
						// The driver's recording cannot be judged (QEMU's
						// log that does not replay to its file): counted.
						c.skipped.Add(1)
						mu.Lock()
						wdigest ^= share
						if len(skipWhy) < maxSkipReasons {
							skipWhy = append(skipWhy, fmt.Sprintf("workload %d (seed %d): %v", w, seed, err))
						}
						mu.Unlock()
						return
					}
					if err != nil {
						// The setup failed: a failure of the target (or of the
						// tool), reported with the workload that triggers it.
						f = &Failure{WorkloadSeed: seed, W: wl, Stage: StageSetup, GuestOp: -1, Err: err}
					}
					if stop() && (f == nil || f.cancelled()) {
						// Interrupted: not a completed workload; a failure
						// whose error is the stop itself (a judge's or a
						// driver's process killed with the context) proves
						// nothing. Any other failure is kept.
						return
					}
					mu.Lock()
					wdigest ^= share
					mu.Unlock()
					if f == nil {
						c.workloads.Add(1)
						mu.Lock()
						digest ^= workloadDigest(w, seed)
						mu.Unlock()
						return
					}
					f.Index = w
					found := time.Since(start)
					c.failures.Add(1)
					// One finding per signature: the first is minimized and
					// written, the others counted. MaxFailures counts
					// distinct signatures.
					sig := f.Signature(cfg.TargetName)
					name, isKnown := cfg.Known.Match(sig)
					mu.Lock()
					sigs[sig]++
					first := sigs[sig] == 1
					if isKnown {
						known[name]++
					} else if first {
						newSigs++
					}
					distinct := newSigs
					mu.Unlock()
					if !first || isKnown {
						return
					}
					if distinct > cfg.MaxFailures {
						return // another worker already filled the quota
					}
					if distinct >= cfg.MaxFailures {
						cancel() // stop the others while this one minimizes
					}
					minStart := time.Now()
					mu.Lock()
					minimizing[minStart]++
					mu.Unlock()
					mk := *ck
					mk.fromOp = 0 // the minimizer drops ops: judge from the setup on
					mk.ctx, mk.c, mk.stop = parent, nil, func() bool { return parent.Err() != nil || time.Since(minStart) > cfg.MinimizeTimeout }
					if cj, ok := mk.create.(*createJudge); ok {
						// The report counts the campaign's creation
						// states, not the minimizer's.
						own := *cj
						own.absent, own.old = nil, nil
						mk.create = &own
					}
					mf := minimize(&mk, f, cfg.MinimizeCandidates)
					mf.Found, mf.MinimizeTime = found, time.Since(minStart)
					mu.Lock()
					if minimizing[minStart]--; minimizing[minStart] == 0 {
						delete(minimizing, minStart)
					}
					mu.Unlock()
					if cfg.Out != "" {
						// Committed (durable, under its final name) before the
						// failure joins the list the reports are built from.
						dir, err := WriteArtifact(cfg.Out, mf, ArtifactMeta{CampaignSeed: cfg.Seed, Faults: mk.faults, CreateFaults: mk.createFaults,
							Target: cfg.TargetName, Oracle: cfg.Oracle, Models: models, Bound: cfg.Bound,
							Samples: cfg.Samples, SampledPoints: cfg.SampledPoints})
						mf.Artifact, mf.ArtifactErr = dir, err
					}
					mu.Lock()
					if mf.ArtifactErr != nil && firstEr == nil {
						firstEr = mf.ArtifactErr
					}
					failed = append(failed, mf)
					mu.Unlock()
				}()
			}
		})
	}
feed:
	for j := 0; ; j++ {
		w := cfg.Shard.Index + j*cfg.Shard.Count
		if cfg.Iterations > 0 && w >= cfg.Iterations {
			break
		}
		select {
		case jobs <- w:
		case <-ctx.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	close(bgDone)
	bgWG.Wait()

	st := snapshot()
	if cfg.Progress != nil {
		cfg.Progress(st)
	}
	rep := build(st)
	rep.Interrupted = parent.Err() != nil
	closeErr, closing := cfg.Driver.Close(), cfg.Driver.Name()
	if cfg.Diff != nil {
		if err := cfg.Diff.Close(); err != nil && closeErr == nil {
			closeErr, closing = err, cfg.Diff.Name()
		}
	}
	if firstEr != nil {
		return rep, fmt.Errorf("campaign: writing an artifact: %w", firstEr)
	}
	if closeErr != nil {
		return rep, fmt.Errorf("campaign: closing the %s driver: %w", closing, closeErr)
	}
	return rep, nil
}

// ErrSkip is wrapped by a driver's Record error when the run could not be
// recorded in a form the engine can judge, through no fault of the
// implementation (QEMU's blklogwrites log that does not replay to the
// file QEMU left): the workload is counted in Report.Skipped, with the
// first reasons in Report.SkipReasons, and is neither a failure nor
// completed.
var ErrSkip = errors.New("the recording cannot be judged")

// maxSkipReasons bounds Report.SkipReasons.
const maxSkipReasons = 10

// failureReport is f's entry in a report.
func failureReport(f *Failure, target string) FailureReport {
	fr := FailureReport{Workload: f.Index, WorkloadSeed: f.WorkloadSeed, Stage: string(f.Stage), Signature: f.Signature(target), Judge: f.Judge,
		GuestOp: f.GuestOp, Ops: len(f.W.Ops), OriginalOps: len(f.W.Ops), Artifact: f.Artifact, Message: renumber(f.Message(), f.Rec),
		FoundSeconds: f.Found.Seconds(), MinimizeSeconds: f.MinimizeTime.Seconds()}
	if f.ArtifactErr != nil {
		fr.ArtifactError = f.ArtifactErr.Error()
	}
	if f.HasState() {
		fr.Model = f.State.Model.String()
	}
	if f.Original != nil {
		fr.OriginalOps = len(f.Original.Ops)
	}
	if f.HasState() {
		fr.State, fr.CrashPoint = f.State.String(), f.State.K
	}
	return fr
}

// rateSampler keeps Report.Rate: a sample every interval, at most
// MaxRateSamples (when full, every other one is dropped and the interval
// doubles, so the samples stay evenly spread over the whole run).
type rateSampler struct {
	mu    sync.Mutex
	every time.Duration
	taken []RateSample
}

func sampleOf(st Stats) RateSample {
	return RateSample{Seconds: st.Elapsed.Seconds(), States: st.States, Workloads: st.Workloads}
}

// run samples snapshot() until done is closed.
func (r *rateSampler) run(done <-chan struct{}, snapshot func() Stats) {
	r.mu.Lock()
	r.taken = append(r.taken, RateSample{})
	every := r.every
	r.mu.Unlock()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			s := sampleOf(snapshot())
			r.mu.Lock()
			r.taken = append(r.taken, s)
			if len(r.taken) >= MaxRateSamples {
				r.taken = thinOut(r.taken)
				r.every *= 2
				t.Reset(r.every)
			}
			r.mu.Unlock()
		case <-done:
			return
		}
	}
}

// thinOut keeps the first sample and every other one after it.
func thinOut(s []RateSample) []RateSample {
	out := s[:1]
	for i := 2; i < len(s); i += 2 {
		out = append(out, s[i])
	}
	return out
}

// samples returns the samples taken, with st's counters as the last.
func (r *rateSampler) samples(st Stats) []RateSample {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := append([]RateSample(nil), r.taken...)
	if last := sampleOf(st); len(out) == 0 || out[len(out)-1].Seconds < last.Seconds {
		out = append(out, last)
	}
	return out
}
