package faultfs

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/spf13/afero"
)

// TestSweepRules: every n of every rule runs once, with the fault at the
// n-th match; the check sees the injection, the run's error and a
// disarmed layer; a failing run names the rule text that replays it.
func TestSweepRules(t *testing.T) {
	newBase := func() (afero.Fs, error) { return afero.NewMemMapFs(), nil }
	rules := MustParse("write:eio; sync:enospc; *:eintr")
	type run struct {
		rule string
		n    uint64
	}
	var seen []run
	rep, err := SweepRules(rules, SweepOptions{Seed: 3}, newBase, workload, func(o Outcome) error {
		seen = append(seen, run{o.Rule.String(), o.N})
		if o.Injection == nil || o.Injection.Match != o.N || !errors.Is(o.Err, o.Injection.Err) {
			return fmt.Errorf("n=%d: injection %v, run error %v", o.N, o.Injection, o.Err)
		}
		// The layer is disarmed: the check can use the files freely.
		if err := afero.WriteFile(o.FS, "/after", []byte("x"), 0o644); err != nil {
			return fmt.Errorf("write in check: %v", err)
		}
		if o.FS.Injected() != 1 {
			return fmt.Errorf("%d injections", o.FS.Injected())
		}
		return nil
	})
	if err != nil || rep.Err() != nil {
		t.Fatalf("sweep: %v, %v", err, rep.Err())
	}
	if !slices.Equal(rep.Counts, []uint64{4, 2, 8}) || rep.Runs != 14 || rep.Missed != 0 {
		t.Errorf("counts %v runs %d missed %d, want [4 2 8] 14 0", rep.Counts, rep.Runs, rep.Missed)
	}
	var want []run
	for i, c := range rep.Counts {
		for n := uint64(1); n <= c; n++ {
			want = append(want, run{rules[i].At(int64(n)).String(), n})
		}
	}
	if !slices.Equal(seen, want) {
		t.Errorf("runs %v, want %v", seen, want)
	}

	// MaxRuns spreads n from 1; the default MaxFailures stops at the first
	// failure; a failure's rule text and the seed replay the same fault.
	var ns []uint64
	rep, err = SweepRules(MustParse("*:eio"), SweepOptions{Seed: 3, MaxRuns: 3}, newBase, workload, func(o Outcome) error {
		ns = append(ns, o.N)
		return nil
	})
	if err != nil || !slices.Equal(ns, []uint64{1, 4, 7}) {
		t.Errorf("MaxRuns 3 of 8: n = %v (%v), want [1 4 7]", ns, err)
	}
	errBad := errors.New("bad state")
	rep, err = SweepRules(MustParse("write:eio"), SweepOptions{Seed: 3}, newBase, workload, func(o Outcome) error {
		if o.N >= 2 {
			return errBad
		}
		return nil
	})
	if err != nil || len(rep.Failures) != 1 || !rep.Stopped || rep.Runs != 2 || !errors.Is(rep.Failures[0], errBad) {
		t.Fatalf("first failure: %+v, %v", rep, err)
	}
	f := rep.Failures[0]
	if !strings.Contains(rep.Err().Error(), "write:eio@nth=2") {
		t.Errorf("report error %q does not name the rule that replays", rep.Err())
	}
	ffs, err := NewFromString(afero.NewMemMapFs(), 3, f.Rule.String())
	if err != nil {
		t.Fatal(err)
	}
	if err := workload(ffs); !errors.Is(err, syscall.EIO) || ffs.Log()[0].Match != 2 {
		t.Errorf("replay of %s: %v, log %v", f.Rule, err, ffs.Log())
	}
}

// TestSweepRulesFindsPlantedBugs: a workload that swallows a write error,
// and one that panics on it, are found; every failure is reported with
// MaxFailures < 0.
func TestSweepRulesFindsPlantedBugs(t *testing.T) {
	newBase := func() (afero.Fs, error) { return afero.NewMemMapFs(), nil }
	surfaced := func(o Outcome) error {
		if o.Injection != nil && !errors.Is(o.Err, o.Injection.Err) {
			return fmt.Errorf("the fault did not surface (run error %v)", o.Err)
		}
		return nil
	}
	for _, c := range []struct {
		name string
		bug  func(err error) error
		want int
	}{
		{"correct", func(err error) error { return err }, 0},
		{"swallowed", func(err error) error { return nil }, 4},
		{"panics", func(err error) error { panic("unexpected error: " + err.Error()) }, 4},
	} {
		run := func(fs afero.Fs) error {
			f, err := fs.Create("/f")
			if err != nil {
				return err
			}
			defer f.Close()
			for i := range 4 {
				if _, err := f.WriteAt([]byte("data"), int64(i*4)); err != nil {
					return c.bug(err)
				}
			}
			return nil
		}
		rep, err := SweepRules(MustParse("write:eio"), SweepOptions{MaxFailures: -1}, newBase, run, surfaced)
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Failures) != c.want || rep.Stopped {
			t.Errorf("%s: %d failures (stopped %v), want %d: %v", c.name, len(rep.Failures), rep.Stopped, c.want, rep.Err())
		}
		var pe *PanicError
		if c.name == "panics" && len(rep.Failures) > 0 && !errors.As(rep.Failures[0].Err, &pe) {
			t.Errorf("panic reported as %v", rep.Failures[0].Err)
		}
	}
}

// TestSweepRulesErrors: the dry run must succeed; a rule that is never
// reached on a run is passed with a nil Injection and counted as missed;
// newBase's error stops the sweep.
func TestSweepRulesErrors(t *testing.T) {
	newBase := func() (afero.Fs, error) { return afero.NewMemMapFs(), nil }
	boom := errors.New("boom")
	if _, err := SweepRules(MustParse("write:eio"), SweepOptions{}, newBase, func(afero.Fs) error { return boom },
		func(Outcome) error { return nil }); !errors.Is(err, boom) || !strings.Contains(err.Error(), "dry run") {
		t.Errorf("failing dry run: %v", err)
	}
	runs := 0
	shrinking := func(fs afero.Fs) error {
		runs++
		f, err := fs.Create("/x")
		if err != nil {
			return err
		}
		defer f.Close()
		for range 4 - min(runs, 4) + 1 {
			if _, err := f.WriteAt([]byte{1}, 0); err != nil {
				return err
			}
		}
		return nil
	}
	var nils int
	rep, err := SweepRules(MustParse("write:eio"), SweepOptions{}, newBase, shrinking, func(o Outcome) error {
		if o.Injection == nil {
			nils++
		}
		return nil
	})
	if err != nil || rep.Missed == 0 || rep.Missed != nils {
		t.Errorf("shrinking workload: missed %d, nil injections %d, %v", rep.Missed, nils, err)
	}
	if _, err := SweepRules(MustParse("write:eio"), SweepOptions{}, func() (afero.Fs, error) { return nil, boom },
		workload, func(Outcome) error { return nil }); !errors.Is(err, boom) {
		t.Errorf("newBase error: %v", err)
	}
}
