package faultfs

import (
	"fmt"
	"hash/fnv"
	"os"
	"path"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spf13/afero"
)

// Injection records one injected fault.
type Injection struct {
	Seq      uint64 // 1-based index of the operation among all operations of the FS
	Op       Op
	Path     string // cleaned, slash-separated; for rename the old name
	NewPath  string // rename only: the new name
	Off      int64  // offset of read/write, new size of truncate; -1 if none
	Len      int    // bytes requested (read/write), else 0
	Fault    Fault
	Rule     int    // index of the rule in the rule set
	RuleText string // the rule's canonical text
	Match    uint64 // the rule's match count at this operation
	// N is the byte count returned to the caller (read/write), else 0.
	N int
	// Detail is what the fault did: short: bytes actually stored; misdirect:
	// the offset the data was stored at; bitflip: the flipped bit's index in
	// the returned buffer, -1 if the window was empty; else 0.
	Detail int64
	Err    error // the error returned to the caller (the same value), or nil
}

// String formats the injection for logs.
func (in Injection) String() string {
	p := in.Path
	if in.NewPath != "" {
		p += " -> " + in.NewPath
	}
	return fmt.Sprintf("#%d %s %s off=%d len=%d: %s by rule %d (%s) at match %d, n=%d detail=%d err=%v",
		in.Seq, in.Op, p, in.Off, in.Len, in.Fault, in.Rule, in.RuleText, in.Match, in.N, in.Detail, in.Err)
}

type compiledRule struct {
	Rule
	text    string
	key     uint64 // hash of (seed, text): the rule's random stream
	hasGlob bool
	dirGlob bool // glob contains '/': match the whole name
}

// FS is an afero.Fs that forwards to a wrapped Fs and injects faults.
type FS struct {
	base afero.Fs
	*state
}

// state is an FS's rules, counters and log: shared with the layers Over
// makes.
type state struct {
	seed    int64
	rules   []compiledRule // immutable after New
	ruleOps OpSet          // union of the rules' operation sets: fast path for the rest
	ops     atomic.Uint64  // classified operations so far

	// mu guards the per-rule counters, the armed flag and the log.
	mu struct {
		sync.Mutex
		disarmed bool
		matches  []uint64
		log      []Injection
	}
}

var _ afero.Fs = (*FS)(nil)

// New wraps base with the given rules; seed drives every random choice.
func New(base afero.Fs, seed int64, rules RuleSet) (*FS, error) {
	fs := &FS{base: base, state: &state{seed: seed}}
	for i, r := range rules {
		if err := r.Validate(); err != nil {
			return nil, fmt.Errorf("faultfs: rule %d: %w", i, err)
		}
		c := compiledRule{Rule: r, text: r.String(), hasGlob: r.Path != ""}
		c.dirGlob = c.hasGlob && containsSlash(r.Path)
		h := fnv.New64a()
		h.Write([]byte(c.text))
		c.key = mix(uint64(seed) ^ h.Sum64())
		fs.rules = append(fs.rules, c)
		fs.ruleOps |= r.Ops
	}
	fs.mu.matches = make([]uint64, len(fs.rules))
	return fs, nil
}

// NewFromString is New with the rules given in the textual form.
func NewFromString(base afero.Fs, seed int64, rules string) (*FS, error) {
	rs, err := Parse(rules)
	if err != nil {
		return nil, err
	}
	return New(base, seed, rs)
}

// Rules returns a copy of the rule set.
func (fs *FS) Rules() RuleSet {
	rs := make(RuleSet, len(fs.rules))
	for i, c := range fs.rules {
		rs[i] = c.Rule
	}
	return rs
}

// Base returns the wrapped Fs.
func (fs *FS) Base() afero.Fs { return fs.base }

// Over returns a layer over base that shares fs's rules, counters, armed
// state and log: an operation through either layer counts against the
// same rules (one numbering of matches, one Ops count) and its injection
// is logged in both. For a caller that builds files of its own in another
// filesystem while the faults of fs are in force (a workload op that
// works in a private in-memory filesystem): the rules' counts then
// number its operations too, so a rule such as nth=N reaches them.
func (fs *FS) Over(base afero.Fs) afero.Fs { return &FS{base: base, state: fs.state} }

// Seed returns the seed given to New.
func (fs *FS) Seed() int64 { return fs.seed }

// Arm enables (true, the initial state) or disables injection. Counting of
// operations and matches continues while disarmed, and a disarmed rule's
// firings are not injected (nth=N that fires while disarmed is spent).
func (fs *FS) Arm(on bool) {
	fs.mu.Lock()
	fs.mu.disarmed = !on
	fs.mu.Unlock()
}

// Ops returns how many classified operations went through fs.
func (fs *FS) Ops() uint64 { return fs.ops.Load() }

// Matches returns how many operations matched rule i's filter (operations,
// path, byte range), whether or not it fired.
func (fs *FS) Matches(i int) uint64 {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if i < 0 || i >= len(fs.mu.matches) {
		return 0
	}
	return fs.mu.matches[i]
}

// Log returns a copy of the injections so far, in operation order.
func (fs *FS) Log() []Injection {
	fs.mu.Lock()
	l := append([]Injection(nil), fs.mu.log...)
	fs.mu.Unlock()
	sort.Slice(l, func(i, j int) bool { return l[i].Seq < l[j].Seq })
	return l
}

// Injected returns how many faults were injected so far.
func (fs *FS) Injected() int {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return len(fs.mu.log)
}

// opCall describes one operation for matching.
type opCall struct {
	op      Op
	path    string // cleaned
	newPath string // rename
	off     int64  // -1 if none
	n       int
	globs   []bool // per rule, precomputed path match (file ops); nil = compute
}

// decide counts op against every rule and returns the winning rule's
// injection skeleton (with Err unset), or nil when nothing is injected.
func (fs *FS) decide(c *opCall) (*Injection, *compiledRule) {
	seq := fs.ops.Add(1)
	if !fs.ruleOps.Has(c.op) {
		return nil, nil
	}
	winner := -1
	var winMatch uint64
	var wait time.Duration
	fs.mu.Lock()
	for i := range fs.rules {
		r := &fs.rules[i]
		if !r.filter(c, i) {
			continue
		}
		fs.mu.matches[i]++
		m := fs.mu.matches[i]
		if fs.mu.disarmed || !r.fires(m) {
			continue
		}
		if r.Fault == FaultDelay {
			// A delay is not the operation's fault: it is logged, the
			// waits of every firing delay rule add up, and the first
			// other firing rule still injects.
			wait += time.Duration(r.Arg)
			fs.mu.log = append(fs.mu.log, Injection{
				Seq: seq, Op: c.op, Path: c.path, NewPath: c.newPath, Off: c.off, Len: c.n,
				Fault: FaultDelay, Rule: i, RuleText: r.text, Match: m, Detail: r.Arg,
			})
			continue
		}
		if winner < 0 {
			winner, winMatch = i, m
		}
	}
	fs.mu.Unlock()
	if wait > 0 {
		time.Sleep(wait) // outside the mutex: concurrent operations wait in parallel
	}
	if winner < 0 {
		return nil, nil
	}
	r := &fs.rules[winner]
	return &Injection{
		Seq: seq, Op: c.op, Path: c.path, NewPath: c.newPath, Off: c.off, Len: c.n,
		Fault: r.Fault, Rule: winner, RuleText: r.text, Match: winMatch,
	}, r
}

// untargeted counts an operation no rule can match and reports true, so
// that callers can skip building an opCall.
func (fs *FS) untargeted(op Op) bool {
	if fs.ruleOps.Has(op) {
		return false
	}
	fs.ops.Add(1)
	return true
}

func (fs *FS) record(inj *Injection) {
	fs.mu.Lock()
	fs.mu.log = append(fs.mu.log, *inj)
	fs.mu.Unlock()
}

// filter reports whether rule r (index i) matches the operation.
func (r *compiledRule) filter(c *opCall, i int) bool {
	if !r.Ops.Has(c.op) {
		return false
	}
	if r.HasOff {
		if c.off < 0 {
			return false
		}
		end := c.off + int64(c.n)
		if c.n == 0 {
			if c.off < r.Start || c.off >= r.End {
				return false
			}
		} else if end <= r.Start || c.off >= r.End {
			return false
		}
	}
	if r.hasGlob {
		if c.globs != nil {
			return c.globs[i]
		}
		return r.matchPath(c.path) || (c.newPath != "" && r.matchPath(c.newPath))
	}
	return true
}

// fires applies the trigger and probability to match count m.
func (r *compiledRule) fires(m uint64) bool {
	n := uint64(r.N)
	switch r.Trigger {
	case Nth:
		if m != n {
			return false
		}
	case Every:
		if m%n != 0 {
			return false
		}
	case After:
		if m <= n {
			return false
		}
	}
	if r.P != 0 && r.P < 1 {
		// 53 random bits as a float in [0,1).
		u := float64(mix(r.key^mix(m))>>11) / (1 << 53)
		return u < r.P
	}
	return true
}

// bit returns the seeded choice of a bit index in [0, nbits).
func (r *compiledRule) bit(m uint64, nbits int64) int64 {
	if r.Arg >= 0 {
		return r.Arg % nbits
	}
	return int64(mix(r.key^mix(m^0x9e3779b97f4a7c15)) % uint64(nbits))
}

func (r *compiledRule) matchPath(p string) bool {
	if !r.dirGlob {
		p = path.Base(p)
	}
	ok, _ := path.Match(r.Path, p) // the glob was validated by Validate
	return ok
}

// mix is splitmix64's finalizer: a bijective 64-bit hash.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

func containsSlash(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == '/' {
			return true
		}
	}
	return false
}

func cleanPath(name string) string { return path.Clean(filepath.ToSlash(name)) }

// errno returns the errno of an error fault.
func errno(f Fault) syscall.Errno {
	switch f {
	case FaultENOSPC:
		return syscall.ENOSPC
	case FaultEINTR:
		return syscall.EINTR
	}
	return syscall.EIO
}

// osOpName is the Op field os uses in its *PathError for the operation.
func osOpName(o Op) string {
	switch o {
	case OpCreate:
		return "open"
	case OpReaddir:
		return "readdirent"
	}
	return o.String()
}

// pathErr builds the injected error for an error fault, wrapped as os does.
func pathErr(inj *Injection, name string) error {
	return &os.PathError{Op: osOpName(inj.Op), Path: name, Err: errno(inj.Fault)}
}

// fsOp runs an Fs-level operation that has no result but an error.
func (fs *FS) fsOp(op Op, name string, do func() error) error {
	c := opCall{op: op, path: cleanPath(name), off: -1}
	inj, _ := fs.decide(&c)
	if inj == nil {
		return do()
	}
	inj.Err = pathErr(inj, name)
	fs.record(inj)
	return inj.Err
}

// Name returns "faultfs(" + the wrapped Fs's name + ")".
func (fs *FS) Name() string { return "faultfs(" + fs.base.Name() + ")" }

// Create creates a file (operation "create").
func (fs *FS) Create(name string) (afero.File, error) {
	return fs.open(OpCreate, name, func() (afero.File, error) { return fs.base.Create(name) })
}

// Open opens a file for reading (operation "open").
func (fs *FS) Open(name string) (afero.File, error) {
	return fs.open(OpOpen, name, func() (afero.File, error) { return fs.base.Open(name) })
}

// OpenFile opens a file (operation "create" with os.O_CREATE, else "open").
func (fs *FS) OpenFile(name string, flag int, perm os.FileMode) (afero.File, error) {
	op := OpOpen
	if flag&os.O_CREATE != 0 {
		op = OpCreate
	}
	return fs.open(op, name, func() (afero.File, error) { return fs.base.OpenFile(name, flag, perm) })
}

func (fs *FS) open(op Op, name string, do func() (afero.File, error)) (afero.File, error) {
	c := opCall{op: op, path: cleanPath(name), off: -1}
	if inj, _ := fs.decide(&c); inj != nil {
		inj.Err = pathErr(inj, name)
		fs.record(inj)
		return nil, inj.Err
	}
	f, err := do()
	if err != nil {
		return nil, err
	}
	w := &File{f: f, fs: fs, name: name, path: c.path}
	for i := range fs.rules {
		if fs.rules[i].hasGlob {
			if w.globs == nil {
				w.globs = make([]bool, len(fs.rules))
			}
			w.globs[i] = fs.rules[i].matchPath(c.path)
		}
	}
	return w, nil
}

// Mkdir creates a directory (operation "mkdir").
func (fs *FS) Mkdir(name string, perm os.FileMode) error {
	return fs.fsOp(OpMkdir, name, func() error { return fs.base.Mkdir(name, perm) })
}

// MkdirAll creates a directory and its parents (operation "mkdir").
func (fs *FS) MkdirAll(name string, perm os.FileMode) error {
	return fs.fsOp(OpMkdir, name, func() error { return fs.base.MkdirAll(name, perm) })
}

// Remove removes a file or empty directory (operation "remove").
func (fs *FS) Remove(name string) error {
	return fs.fsOp(OpRemove, name, func() error { return fs.base.Remove(name) })
}

// RemoveAll removes a tree (operation "remove").
func (fs *FS) RemoveAll(name string) error {
	return fs.fsOp(OpRemove, name, func() error { return fs.base.RemoveAll(name) })
}

// Rename renames a file (operation "rename"); an injected error is an
// *os.LinkError, as os.Rename returns.
func (fs *FS) Rename(oldname, newname string) error {
	c := opCall{op: OpRename, path: cleanPath(oldname), newPath: cleanPath(newname), off: -1}
	inj, _ := fs.decide(&c)
	if inj == nil {
		return fs.base.Rename(oldname, newname)
	}
	inj.Err = &os.LinkError{Op: "rename", Old: oldname, New: newname, Err: errno(inj.Fault)}
	fs.record(inj)
	return inj.Err
}

// Stat describes a file (operation "stat").
func (fs *FS) Stat(name string) (os.FileInfo, error) {
	c := opCall{op: OpStat, path: cleanPath(name), off: -1}
	if inj, _ := fs.decide(&c); inj != nil {
		inj.Err = pathErr(inj, name)
		fs.record(inj)
		return nil, inj.Err
	}
	return fs.base.Stat(name)
}

// Chmod passes through (not an operation for rules).
func (fs *FS) Chmod(name string, mode os.FileMode) error { return fs.base.Chmod(name, mode) }

// Chown passes through (not an operation for rules).
func (fs *FS) Chown(name string, uid, gid int) error { return fs.base.Chown(name, uid, gid) }

// Chtimes passes through (not an operation for rules).
func (fs *FS) Chtimes(name string, atime, mtime time.Time) error {
	return fs.base.Chtimes(name, atime, mtime)
}
