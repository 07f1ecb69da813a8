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
