package qedtarget

import (
	"slices"
	"sync"
	"time"

	"github.com/qedtorture/qedtorture/impl/qed"
	"github.com/qedtorture/qedtorture/props/target"
	"github.com/spf13/afero"
)

// Target drives impl/qed through the target.Target interface. Options tune
// the opens it makes (cache size, clock); the zero value uses the defaults
// with the idle NEED_CHECK timer on a clock that stands still until the
// Disk's Idle moves it (target.Idler), so that runs are deterministic; the
// image commands' opens have the timer disabled.
type Target struct {
	Options qed.OpenOptions
}

var _ target.Target = Target{}

// Name implements target.Target.
func (Target) Name() string { return "impl/qed" }

// Create implements target.Target.
func (Target) Create(fs afero.Fs, path string, o target.CreateOptions) error {
	return qed.Create(fs, path, qed.CreateOptions{
		Size:          uint64(o.Size),
		ClusterSize:   o.ClusterSize,
		TableSize:     o.TableSize,
		BackingFile:   o.BackingFile,
		BackingFormat: o.BackingFormat,
	})
}

// Open implements target.Target.
//
// Without a clock and an idle delay of t's own, the image's idle
// NEED_CHECK timer runs on a clock of the Disk's that stands still: armed
// with the default delay, it never fires on its own (runs replay
// exactly), only when Idle moves the clock (target.Idler).
func (t Target) Open(fs afero.Fs, path string, o target.OpenOptions) (target.Disk, error) {
	opts := t.opts(o.ReadOnly)
	if o.L2CacheTables > 0 {
		opts.L2CacheTables = o.L2CacheTables
	}
	var clk *idleClock
	if t.Options.Clock == nil && t.Options.IdleClearDelay == 0 {
		clk = &idleClock{}
		opts.Clock, opts.IdleClearDelay = clk, 0 // the default delay
	}
	im, err := qed.Open(fs, path, opts)
	if err != nil {
		return nil, err
	}
	return disk{im, clk}, nil
}

type disk struct {
	*qed.Image
	clk *idleClock // nil: the clock is t.Options' (Idle does nothing)
}

var _ target.Idler = disk{}

// Idle implements target.Idler: the Disk's clock moves past the idle
// delay, and the image's idle NEED_CHECK clear, when armed (an allocating
// write since the last clear, NEED_CHECK set), runs before Idle returns.
// Its errors leave NEED_CHECK set (impl/qed's idleClear), which is safe.
func (d disk) Idle() error {
	if d.clk != nil {
		d.clk.advance(qed.DefaultIdleClearDelay)
	}
	return nil
}

// idleClock is a qed.Clock that moves only in advance, which runs the
// timers then due in the caller's goroutine, in the order they were set.
type idleClock struct {
	mu     sync.Mutex
	now    time.Duration
	timers []*idleTimer
}

type idleTimer struct {
	c  *idleClock
	at time.Duration
	f  func()
}

func (c *idleClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Unix(0, 0).Add(c.now)
}

func (c *idleClock) AfterFunc(d time.Duration, f func()) qed.Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &idleTimer{c: c, at: c.now + d, f: f}
	c.timers = append(c.timers, t)
	return t
}

// Stop removes the timer; it reports whether it was pending.
func (t *idleTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	n := len(t.c.timers)
	t.c.timers = slices.DeleteFunc(t.c.timers, func(x *idleTimer) bool { return x == t })
	return len(t.c.timers) < n
}

func (c *idleClock) advance(d time.Duration) {
	c.mu.Lock()
	c.now += d
	var due []*idleTimer
	c.timers = slices.DeleteFunc(c.timers, func(t *idleTimer) bool {
		if t.at <= c.now {
			due = append(due, t)
			return true
		}
		return false
	})
	c.mu.Unlock()
	for _, t := range due {
		t.f()
	}
}

func (d disk) Check(repair bool) (target.CheckResult, error) {
	r, err := d.Image.Check(repair)
	return target.CheckResult{
		Corruptions:      r.Corruptions,
		CorruptionsFixed: r.CorruptionsFixed,
		Leaks:            r.Leaks,
		CheckErrors:      r.CheckErrors,
	}, err
}

var _ target.ImageOps = Target{}

// Rebase implements target.ImageOps with qed.SetBacking (unsafe) or
// qed.Rebase: the functions behind `qedtorture rebase [-u]`.
func (t Target) Rebase(fs afero.Fs, path, backing, format string, unsafe bool) error {
	opts := t.opts(false)
	if unsafe {
		return qed.SetBacking(fs, path, backing, format, opts)
	}
	return qed.Rebase(fs, path, backing, format, qed.RebaseOptions{Open: opts})
}

// Commit implements target.ImageOps with qed.Commit, the function behind
// `qedtorture commit [-d] [-b BASE] [-p]`.
func (t Target) Commit(fs afero.Fs, path string, o target.CommitOptions) error {
	return qed.Commit(fs, path, qed.CommitOptions{Open: t.opts(false), Drop: o.Drop, Base: o.Base, Progress: o.Progress})
}

// opts are the open options of t's opens (the idle timer off unless set).
func (t Target) opts(readOnly bool) qed.OpenOptions {
	opts := t.Options
	opts.ReadOnly = readOnly
	if opts.IdleClearDelay == 0 {
		opts.IdleClearDelay = -1
	}
	return opts
}

var _ target.HeaderReader = Target{}

// ReadInfo implements target.HeaderReader with qed.ReadHeaderWith and the
// force-share lock, as `qedtorture info -U` reads a running image.
func (Target) ReadInfo(fs afero.Fs, path string) (target.Info, error) {
	h, err := qed.ReadHeaderWith(fs, path, qed.OpenOptions{ForceShare: true})
	if err != nil {
		return target.Info{}, err
	}
	return target.Info{Path: path, ClusterSize: h.ClusterSize, TableSize: h.TableSize, Size: int64(h.ImageSize), BackingFile: h.BackingFilename}, nil
}

var (
	_ target.Mapper = disk{}
	_ target.Strict = disk{}
)

// Map implements target.Mapper with qed.Image.Map.
func (d disk) Map() ([]target.Extent, error) {
	m, err := d.Image.Map()
	if err != nil {
		return nil, err
	}
	out := make([]target.Extent, len(m))
	for i, e := range m {
		out[i] = target.Extent{Start: e.Start, Length: e.Length, HostOffset: e.HostOffset}
		switch e.Kind {
		case qed.ExtentZero:
			out[i].Kind = target.ExtentZero
		case qed.ExtentData:
			out[i].Kind = target.ExtentData
		default:
			out[i].Kind = target.ExtentUnallocated
		}
	}
	return out, nil
}

// RefusesInvalid implements target.Strict: impl/qed checks every call's
// range and every Resize (ErrOutOfRange, ErrShrink, ErrInvalidOption).
func (disk) RefusesInvalid() {}

var _ target.Hardened = disk{}

// RefusesHostile implements target.Hardened: impl/qed validates every
// header and table entry it reads, refuses backing loops, and repairs
// (Check, and a writable open with NEED_CHECK set).
func (disk) RefusesHostile() {}

var _ target.Informer = disk{}

// Info implements target.Informer from the image's header and files.
func (d disk) Info() target.Info {
	h := d.Header()
	return target.Info{Path: d.Path(), ClusterSize: h.ClusterSize, TableSize: h.TableSize, Size: int64(h.ImageSize),
		BackingFile: h.BackingFilename, Files: len(d.Files()), ReadOnly: d.ReadOnly()}
}
