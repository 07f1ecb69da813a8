package qed

import (
	"bytes"
	"math/rand/v2"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/spf13/afero"
)

// newRand returns a seeded generator and logs the seed; QED_SEED replays.
func newRand(t testing.TB) *rand.Rand {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("QED_SEED"); s != "" {
		var v uint64
		for _, c := range s {
			v = v*10 + uint64(c-'0')
		}
		seed = v
	}
	t.Logf("seed %d (replay with QED_SEED=%d)", seed, seed)
	return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
}

// mustCreate creates an image and opens it writable. When the test ends,
// the file must pass a read-only Check with no corruption (as bbolt checks
// its database after every test): whether the test closed the image or
// left it open (the file is then a crash state, whose metadata writeback
// has not happened: it may leak clusters, never corrupt). Tests that damage
// the file on purpose call skipFinalCheck.
func mustCreate(t testing.TB, fs afero.Fs, path string, co CreateOptions, oo OpenOptions) *Image {
	t.Helper()
	if err := Create(fs, path, co); err != nil {
		t.Fatalf("Create(%+v): %v", co, err)
	}
	im, err := Open(fs, path, oo)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { finalCheck(t, fs, path) })
	return im
}

// finalCheck requires the image file at path to have no corruption.
func finalCheck(t testing.TB, fs afero.Fs, path string) {
	if t.Failed() || skippedFinalCheck(t, path) {
		return
	}
	if _, err := fs.Stat(path); err != nil {
		return // removed or renamed by the test
	}
	// Force-share: the test may have left the image open on purpose.
	im, err := Open(fs, path, OpenOptions{ReadOnly: true, ForceShare: true})
	if err != nil {
		t.Errorf("final check of %s: open: %v", path, err)
		return
	}
	defer im.Close()
	rep, err := im.Check(false)
	if err != nil || rep.Corruptions > 0 || rep.CheckErrors > 0 {
		t.Errorf("final check of %s: %v, %d corruptions, %d check errors: %q", path, err, rep.Corruptions, rep.CheckErrors, rep.Problems)
	}
}

var skipped sync.Map // "test name\x00path" -> true

// skipFinalCheck exempts path from the final check of the current test
// (the test corrupts it on purpose).
func skipFinalCheck(t testing.TB, path string) { skipped.Store(t.Name()+"\x00"+path, true) }

func skippedFinalCheck(t testing.TB, path string) bool {
	_, ok := skipped.Load(t.Name() + "\x00" + path)
	return ok
}

// readAll reads the whole guest image.
func readAll(t testing.TB, im *Image) []byte {
	t.Helper()
	buf := make([]byte, im.Size())
	if _, err := im.ReadAt(buf, 0); err != nil {
		t.Fatalf("ReadAt(all): %v", err)
	}
	return buf
}

// assertEqual compares guest content with the expected buffer.
func assertEqual(t testing.TB, got, want []byte) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("length %d, want %d", len(got), len(want))
	}
	if !bytes.Equal(got, want) {
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("first difference at guest offset %d: got %#x want %#x", i, got[i], want[i])
			}
		}
	}
}

// assertClean runs a non-repairing check and expects no findings.
func assertClean(t testing.TB, im *Image) CheckReport {
	t.Helper()
	rep, err := im.Check(false)
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	if rep.Corruptions != 0 || rep.Leaks != 0 || rep.CheckErrors != 0 {
		t.Fatalf("check not clean: %+v", rep)
	}
	return rep
}

// fakeClock is a manual Clock for the idle NEED_CHECK timer.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

type fakeTimer struct {
	c       *fakeClock
	at      time.Time
	f       func()
	stopped bool
	fired   bool
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *fakeClock) AfterFunc(d time.Duration, f func()) Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{c: c, at: c.now.Add(d), f: f}
	c.timers = append(c.timers, t)
	return t
}

func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := !t.stopped && !t.fired
	t.stopped = true
	return was
}

// Advance moves time forward and runs due timers synchronously.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	var due []func()
	for _, t := range c.timers {
		if !t.stopped && !t.fired && !t.at.After(c.now) {
			t.fired = true
			due = append(due, t.f)
		}
	}
	c.mu.Unlock()
	for _, f := range due {
		f()
	}
}

// qemuImg returns the path of qemu-img or skips (fails under CI).
func qemuImg(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("qemu-img")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("qemu-img not found and CI is set")
		}
		t.Skip("qemu-img not installed")
	}
	return p
}

// newRandFrom returns a generator for a seed derived by the test.
func newRandFrom(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)) }

// len returns the number of cached tables (for tests: nothing in the
// package needs it).
func (c *l2Cache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len()
}
