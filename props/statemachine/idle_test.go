package statemachine

import (
	"sync"
	"testing"
	"time"

	"github.com/spf13/afero"

	"github.com/qedtorture/qedtorture/crashsim"
	"github.com/qedtorture/qedtorture/impl/qed"
	"github.com/qedtorture/qedtorture/props/oracle"
	"github.com/qedtorture/qedtorture/props/workload"
)

// manualClock is a qed.Clock that moves only when told. Due timers run
// after its lock is released, so they may arm new timers.
type manualClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*manualTimer
	fired  int
}

type manualTimer struct {
	c       *manualClock
	at      time.Time
	f       func()
	stopped bool
}

func (c *manualClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *manualClock) AfterFunc(d time.Duration, f func()) qed.Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &manualTimer{c: c, at: c.now.Add(d), f: f}
	c.timers = append(c.timers, t)
	return t
}

func (t *manualTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := !t.stopped
	t.stopped = true
	return was
}

// Advance moves the clock by d and runs the timers that came due.
func (c *manualClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	var due []*manualTimer
	keep := c.timers[:0]
	for _, t := range c.timers {
		switch {
		case t.stopped:
		case !t.at.After(c.now):
			t.stopped = true
			due = append(due, t)
		default:
			keep = append(keep, t)
		}
	}
	c.timers = keep
	c.fired += len(due)
	c.mu.Unlock()
	for _, t := range due {
		t.f()
	}
}

// idleTarget is impl/qed with its idle NEED_CHECK clear on (5 s, on a
// manual clock) and 6 s of idleness after every guest write, so the idle
// clear (metadata writeback, then the header without NEED_CHECK) runs in
// the middle of a workload, between guest flushes, where crashes hit it.
// Only the workload's filesystem (the one Create was called on) gets this;
// the oracle's opens of crash states get plain impl/qed.
type idleTarget struct {
	clk *manualClock
	wfs *afero.Fs
}

func (idleTarget) Name() string { return "impl/qed+idle" }

func (t idleTarget) Create(fs afero.Fs, path string, o CreateOptions) error {
	*t.wfs = fs
	return QEDTarget{}.Create(fs, path, o)
}

func (t idleTarget) Open(fs afero.Fs, path string, o OpenOptions) (Disk, error) {
	if fs != *t.wfs {
		return QEDTarget{}.Open(fs, path, o)
	}
	d, err := QEDTarget{Options: qed.OpenOptions{Clock: t.clk, IdleClearDelay: 5 * time.Second}}.Open(fs, path, o)
	if err != nil {
		return nil, err
	}
	return idleDisk{d, t.clk}, nil
}

type idleDisk struct {
	Disk
	clk *manualClock
}

func (d idleDisk) WriteAt(p []byte, off int64) (int, error) {
	n, err := d.Disk.WriteAt(p, off)
	d.clk.Advance(6 * time.Second)
	return n, err
}

func (d idleDisk) WriteZeroes(off, n int64) error {
	err := d.Disk.WriteZeroes(off, n)
	d.clk.Advance(6 * time.Second)
	return err
}

// idleWorkload allocates clusters in two L2 tables with one guest flush in
// the middle: every write is followed by an idle clear. (No backing file:
// impl/qed sets NEED_CHECK, and so arms the idle clear, only for images
// without one; with one, its allocations are ordered by syncs instead.)
func idleWorkload() *workload.Workload {
	const c = 4096
	w := &workload.Workload{Geometry: workload.Geometry{ClusterSize: c, TableSize: 1, Size: 3 << 20}}
	id := uint32(10)
	for i, off := range []int64{0, 5*c + 100, 600 << 10, 2<<20 + 3*c, 7 * c} {
		id++
		w.Ops = append(w.Ops, workload.Op{Kind: workload.Write, Off: off, Len: c + int64(i)*700, ID: id})
		if i == 2 {
			w.Ops = append(w.Ops, workload.Op{Kind: workload.Flush})
		}
	}
	w.Ops = append(w.Ops, workload.Op{Kind: workload.WriteZeroes, Off: 2 * c, Len: 3 * c})
	return w
}

// TestIdleClearCrashSafe: crashes anywhere in impl/qed's idle NEED_CHECK
// clear (write back the dirty tables, sync, write the header without the
// bit, sync), at every sync of a workload that idles after every write,
// under every default model, leave states the full oracle accepts. The
// campaigns and the state machine run impl/qed with the idle clear off
// (their runs are faster than its 5 s); this sweep is its crash test.
func TestIdleClearCrashSafe(t *testing.T) {
	clk := &manualClock{now: time.Unix(0, 0)}
	w := idleWorkload()
	if err := w.Validate(); err != nil {
		t.Fatal(err)
	}
	fails, states, err := CheckCrashSweep(idleTarget{clk, new(afero.Fs)}, w, oracle.DefaultModels(), crashsim.EnumOptions{Bound: 64, Samples: 16, Seed: 1}, oracle.Options{}, 5)
	if err != nil {
		t.Fatalf("the workload failed: %v", err)
	}
	for _, f := range fails {
		t.Error(f)
	}
	if clk.fired != 5 {
		t.Fatalf("the idle clear ran %d times, want once after each of the 5 allocating writes", clk.fired)
	}
	t.Logf("%d crash states judged; %d idle clears", states, clk.fired)
}
