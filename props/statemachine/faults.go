package statemachine

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/afero"

	"github.com/qedtorture/qedtorture/crashsim"
	"github.com/qedtorture/qedtorture/faultfs"
	"github.com/qedtorture/qedtorture/props/oracle"
	"github.com/qedtorture/qedtorture/props/target"
	"github.com/qedtorture/qedtorture/props/workload"
)

// FaultSweepResult is one run of a fault sweep that went wrong.
type FaultSweepResult struct {
	Rule string // the faultfs rule, with its nth
	Err  error
}

func (r FaultSweepResult) Error() string { return fmt.Sprintf("%s: %v", r.Rule, r.Err) }

// CheckFaultSweep is an I/O-error loop in the style of SQLite's, on
// faultfs.SweepRules: it runs workload w once to count the operations on
// the image file that rule (e.g. "write:eio", "sync:eio", "write:short",
// "write:enospc") matches, then reruns it with the fault at the n-th of
// them for every n (at most maxRuns values of n, evenly spread; 0 = all).
// Each run must:
//   - surface the injected error: the op that met it fails with an error
//     wrapping the one faultfs returned (creation and open included);
//   - not panic;
//   - leave an image that passes the crash oracle (oracle.Judge: no
//     structural corruption, flushed data intact, pending ops allowed
//     either way, liveness) both as the live files are after a clean close
//     and as a "drop" crash state right after the fault (a failed sync may
//     have lost every unsynced write).
//
// It returns every failing run, named by the rule text that replays it
// (faultfs.Rule.String, fault layer seed 1).
func CheckFaultSweep(tg target.Target, w *workload.Workload, rule string, maxRuns int, oo oracle.Options) []FaultSweepResult {
	sep := "@"
	if strings.Contains(rule, "@") {
		sep = ","
	}
	r, err := faultfs.ParseRule(rule + sep + "path=" + workload.ImageName)
	if err != nil {
		return []FaultSweepResult{{Rule: rule, Err: err}}
	}
	// The rule matches only the image file: the backing chain that
	// NewExec builds is not under test.
	var (
		base *crashsim.FS
		e    *workload.Exec
	)
	newBase := func() (afero.Fs, error) {
		base, e = crashsim.New(crashsim.Options{ImplicitDirSync: true, DiscardTrace: true}), nil
		return base, nil
	}
	run := func(fs afero.Fs) error {
		var err error
		if e, err = workload.NewExec(tg, fs, "/w", w); err != nil {
			return err
		}
		if err := e.RunAll(); err != nil {
			return err
		}
		// The final close is part of the run: it flushes and clears NEED_CHECK.
		err = e.Disk.Close()
		e.Disk = nil
		return err
	}
	check := func(out faultfs.Outcome) error { return judgeFault(tg, base, e, out, oo) }
	rep, err := faultfs.SweepRules(faultfs.RuleSet{r}, faultfs.SweepOptions{Seed: 1, MaxRuns: maxRuns, MaxFailures: -1}, newBase, run, check)
	if err != nil {
		return []FaultSweepResult{{Rule: rule + " (dry run)", Err: err}}
	}
	var fails []FaultSweepResult
	for _, f := range rep.Failures {
		fails = append(fails, FaultSweepResult{Rule: f.Rule.String(), Err: f.Err})
	}
	return fails
}

// judgeFault judges one run of a fault sweep: the fault surfaced, and the
// files (base, below the fault layer) pass the oracle as a drop crash
// right after the fault and after a clean close. e is the run's executor
// (nil if creation failed).
func judgeFault(tg target.Target, base *crashsim.FS, e *workload.Exec, out faultfs.Outcome, oo oracle.Options) error {
	if out.Injection == nil {
		// The workload issued fewer matching ops this time (it may
		// legitimately vary, e.g. with concurrency): nothing to judge.
		if out.Err != nil {
			return fmt.Errorf("no fault fired but the run failed: %w", out.Err)
		}
		return nil
	}
	inj := out.Injection
	if out.Err == nil {
		return fmt.Errorf("injected %s at %s %s off=%d len=%d did not surface: the workload completed", inj.Fault, inj.Op, inj.Path, inj.Off, inj.Len)
	}
	if !errors.Is(out.Err, inj.Err) {
		return fmt.Errorf("injected %s surfaced as a different error: %v", inj.Fault, out.Err)
	}
	if e == nil || e.Model == nil {
		return nil // the fault hit creation: nothing was promised yet
	}
	// A failed sync may have lost every unsynced write: judge the "drop"
	// state right after the fault, then the live files after a close.
	p, err := base.Point()
	if err != nil {
		return err
	}
	drop, err := p.State(crashsim.StateID{K: p.K(), Model: crashsim.Model{Base: crashsim.Drop}})
	if err != nil {
		return err
	}
	if v := oracle.Judge(tg, drop, e.ImagePath(), e.Model.Clone(), oo); !v.OK() {
		return fmt.Errorf("after the fault (%s), drop crash state: %v", out.Rule, v)
	}
	if e.Disk != nil {
		var pe *panicError
		if err := protect(e.Disk.Close); err != nil && errors.As(err, &pe) {
			return err
		}
	}
	if v := oracle.Judge(tg, base, e.ImagePath(), e.Model, oo); !v.OK() {
		return fmt.Errorf("after the fault (%s) and a close: %v", out.Rule, v)
	}
	return nil
}

// FaultSweepWorkloads are the fixed workloads of the fault sweeps: each
// allocates L2 tables and clusters, overwrites in place, writes zeroes,
// flushes, resizes and reopens, with and without a backing file.
func FaultSweepWorkloads() map[string]*workload.Workload {
	const script = `
write 0x0 0x1800 id=11
write 0x3000 0x200 id=12
flush
zero 0x1000 0x3000
write 0x7e00 0x400 id=13
resize 0x30000
write 0x2e000 0x1000 id=14
flush
write 0x100 0x100 id=15
reopen
write 0x10000 0x2000 id=16
concurrent 2
  write 0x20000 0x1000 id=17
  write 0x21000 0x1000 id=18
`
	mk := func(head string) *workload.Workload {
		w, err := workload.Parse(strings.NewReader("qedtorture-workload v1\n" + head + script))
		if err != nil {
			panic("statemachine: bad built-in fault workload: " + err.Error())
		}
		return w
	}
	return map[string]*workload.Workload{
		"no-backing":  mk("image cluster_size=4096 table_size=1 size=131072\n"),
		"raw-backing": mk("image cluster_size=4096 table_size=1 size=131072\nbacking raw size=40960 fill=1\n"),
	}
}
