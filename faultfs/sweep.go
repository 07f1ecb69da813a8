package faultfs

import (
	"errors"
	"fmt"

	"github.com/spf13/afero"
)

// ErrSweepDiverged is returned by Sweep when a run did not inject exactly one
// fault at the n-th match: the workload is not deterministic, or it performs
// fewer matching operations once faults occur than the dry run counted and
// the fault was never reached (which Sweep reports rather than hides).
var ErrSweepDiverged = errors.New("faultfs: sweep run diverged from the dry run")

// Count runs run over base wrapped in a disarmed FS holding only filter, and
// returns how many operations matched filter's operations, path and byte
// range (its fault, which may be zero, and its trigger are ignored). The error is run's.
func Count(base afero.Fs, filter Rule, run func(afero.Fs) error) (uint64, error) {
	filter = filterOnly(filter)
	fs, err := New(base, 0, RuleSet{filter})
	if err != nil {
		return 0, err
	}
	fs.Arm(false)
	err = run(fs)
	return fs.Matches(0), err
}

// filterOnly drops the trigger and probability so validation and counting
// depend on the filter alone; a zero Fault becomes eio.
func filterOnly(r Rule) Rule {
	r.Trigger, r.N, r.P = Always, 0, 0
	if r.Fault == 0 {
		r.Fault = FaultEIO
	}
	return r
}

// At returns r firing only at its n-th match (trigger and probability replaced).
func (r Rule) At(n int64) Rule {
	r = filterOnly(r)
	r.Trigger, r.N = Nth, n
	return r
}

// Sweep is the SQLite-style I/O error loop: it counts the operations matching
// rule with a dry run on newBase(), then for n = 1..count runs run again on a
// fresh newBase() wrapped with rule.At(n) and calls check with n, the FS
// (whose Log holds the injection) and run's error. check decides what
// "correct" means (typically: the error surfaced, nothing panicked, data
// synced before the fault reads back). Sweep stops at the first error from
// check, or with ErrSweepDiverged if a run did not inject exactly one fault,
// and returns the count.
func Sweep(rule Rule, seed int64, newBase func() (afero.Fs, error),
	run func(afero.Fs) error, check func(n uint64, fs *FS, runErr error) error) (uint64, error) {
	base, err := newBase()
	if err != nil {
		return 0, fmt.Errorf("faultfs: sweep: new base: %w", err)
	}
	count, err := Count(base, rule, run)
	if err != nil {
		return count, fmt.Errorf("faultfs: sweep: dry run failed: %w", err)
	}
	for n := uint64(1); n <= count; n++ {
		base, err := newBase()
		if err != nil {
			return count, fmt.Errorf("faultfs: sweep n=%d: new base: %w", n, err)
		}
		r := rule.At(int64(n))
		fs, err := New(base, seed, RuleSet{r})
		if err != nil {
			return count, err
		}
		runErr := run(fs)
		if got := fs.Injected(); got != 1 {
			return count, fmt.Errorf("%w: n=%d of %d (rule %s): %d injections, %d matches",
				ErrSweepDiverged, n, count, r, got, fs.Matches(0))
		}
		if err := check(n, fs, runErr); err != nil {
			return count, fmt.Errorf("faultfs: sweep n=%d of %d (rule %s): %w", n, count, r, err)
		}
	}
	return count, nil
}

// SweepOptions configure SweepRules.
type SweepOptions struct {
	// Seed is the fault layer's seed (probabilities, seeded bit flips): a
	// failing run replays with NewFromString(base, Seed, failure.Rule.String()).
	Seed int64
	// MaxRuns bounds the runs per rule: at most that many values of n,
	// evenly spread over 1..count starting at 1 (0: every n).
	MaxRuns int
	// MaxFailures stops the sweep after this many failing runs (0: 1, the
	// first; negative: no limit).
	MaxFailures int
}

// Outcome is one run of a sweep, handed to the check: the workload ran
// with Rule firing at the N-th of the Count operations its filter matched
// in the dry run.
type Outcome struct {
	Rule     Rule // the swept rule at its N-th match: Rule.String replays it
	N, Count uint64
	// Injection is the fault injected, or nil when the run never reached
	// the N-th match (a workload that issues fewer matching operations
	// once something failed, or one that is not deterministic).
	Injection *Injection
	// Err is what the workload returned. A fault that must surface does so
	// as errors.Is(Err, Injection.Err).
	Err error
	// FS is the fault layer, disarmed: reads and writes through it (and
	// through its Base, which holds the files as the fault left them) are
	// no longer faulted, so the check can inspect and recover the files.
	FS *FS
}

// SweepFailure is a run of a sweep that failed: the check's error, or the
// workload's panic.
type SweepFailure struct {
	Rule Rule // at its N-th match (replays with SweepOptions.Seed)
	Err  error
}

func (f SweepFailure) Error() string { return fmt.Sprintf("fault %s: %v", f.Rule, f.Err) }

// Unwrap returns the check's error.
func (f SweepFailure) Unwrap() error { return f.Err }

// SweepReport is what SweepRules did.
type SweepReport struct {
	Seed     int64
	Counts   []uint64 // per rule: the operations its filter matched in the dry run
	Runs     int      // runs with a fault armed
	Missed   int      // runs whose fault never fired (Outcome.Injection nil)
	Failures []SweepFailure
	Stopped  bool // MaxFailures ended the sweep early
}

// Err returns nil when no run failed, else an error listing the failing
// runs (each rule with its nth) and the seed.
func (r *SweepReport) Err() error {
	if len(r.Failures) == 0 {
		return nil
	}
	msg := fmt.Sprintf("faultfs: %d failing fault run(s) (seed %d)", len(r.Failures), r.Seed)
	if r.Stopped {
		msg += ", sweep stopped early"
	}
	for _, f := range r.Failures {
		msg += "\n\t" + f.Error()
	}
	return errors.New(msg)
}

// PanicError is a panic of the workload during a faulted run, turned into
// a failure of that run.
type PanicError struct{ Value any }

func (e *PanicError) Error() string { return fmt.Sprintf("the workload panicked: %v", e.Value) }

// SweepRules runs the I/O error loop of Sweep for every rule of rules, and
// is the fault side of crashsim.Explore: for each rule it counts the
// operations the rule's filter matches with a dry run on newBase() (which
// must succeed: a workload must work when nothing fails), then, for each n
// of the sweep (all, or MaxRuns spread), runs the workload on a fresh
// newBase() wrapped with the rule firing at its n-th match, disarms the
// layer, and calls check with the Outcome: did the fault surface, and are
// the files after it what the code promises (typically: recover them, or
// crash them with crashsim and check every state). A check error or a
// panic of the workload is a failing run, reported with the rule text that
// replays it; the sweep goes on until MaxFailures. The error returned is
// for the sweep itself (a bad rule, newBase failing, a failed dry run).
func SweepRules(rules RuleSet, o SweepOptions, newBase func() (afero.Fs, error),
	run func(afero.Fs) error, check func(Outcome) error) (*SweepReport, error) {
	maxFail := o.MaxFailures
	if maxFail == 0 {
		maxFail = 1
	}
	rep := &SweepReport{Seed: o.Seed}
	for _, rule := range rules {
		if err := filterOnly(rule).Validate(); err != nil {
			return rep, fmt.Errorf("faultfs: sweep: rule %s: %w", rule, err)
		}
		base, err := newBase()
		if err != nil {
			return rep, fmt.Errorf("faultfs: sweep: new base: %w", err)
		}
		count, err := Count(base, rule, run)
		if err != nil {
			return rep, fmt.Errorf("faultfs: sweep: rule %s: the dry run (no fault) failed: %w", rule, err)
		}
		rep.Counts = append(rep.Counts, count)
		step := uint64(1)
		if o.MaxRuns > 0 && count > uint64(o.MaxRuns) {
			step = (count + uint64(o.MaxRuns) - 1) / uint64(o.MaxRuns)
		}
		for n := uint64(1); n <= count; n += step {
			r := rule.At(int64(n))
			base, err := newBase()
			if err != nil {
				return rep, fmt.Errorf("faultfs: sweep: new base: %w", err)
			}
			fs, err := New(base, o.Seed, RuleSet{r})
			if err != nil {
				return rep, err
			}
			rep.Runs++
			runErr, panicked := protect(func() error { return run(fs) })
			fs.Arm(false)
			out := Outcome{Rule: r, N: n, Count: count, Err: runErr, FS: fs}
			if log := fs.Log(); len(log) > 0 {
				out.Injection = &log[0]
			} else {
				rep.Missed++
			}
			if !panicked {
				err = check(out)
			} else {
				err = runErr
			}
			if err != nil {
				rep.Failures = append(rep.Failures, SweepFailure{Rule: r, Err: err})
				if maxFail > 0 && len(rep.Failures) >= maxFail {
					rep.Stopped = true
					return rep, nil
				}
			}
		}
	}
	return rep, nil
}

// protect runs fn, turning a panic into a *PanicError.
func protect(fn func() error) (err error, panicked bool) {
	defer func() {
		if v := recover(); v != nil {
			err, panicked = &PanicError{Value: v}, true
		}
	}()
	return fn(), false
}
