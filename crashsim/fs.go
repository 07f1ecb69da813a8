package crashsim

import (
	"io/fs"
	"maps"
	"os"
	"slices"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/afero"
)

var (
	errIsDir    = syscall.EISDIR
	errNotDir   = syscall.ENOTDIR
	errBadFd    = syscall.EBADF
	errInvalid  = syscall.EINVAL
	errNotEmpty = syscall.ENOTEMPTY
	epoch       = time.Unix(0, 0).UTC()
)

// Options configure a filesystem. The zero value is the strict default.
type Options struct {
	// ImplicitDirSync makes every create, mkdir, remove and rename durable
	// the moment it returns, as if its directory were synced right after.
	// By default (false) a directory entry change is durable only after
	// the directory itself is synced (open it, call Sync), as POSIX
	// requires; a crash before that loses the change.
	ImplicitDirSync bool
	// DiscardTrace stops keeping the full trace (FS.Trace is then empty).
	// Unsynced operations are still kept, so crash points and hooks work,
	// and memory stays bounded by the unsynced data instead of growing
	// with everything ever written.
	DiscardTrace bool
	// Final declares that the filesystem will never crash: it keeps no
	// trace and no unsynced operations, so a write costs only the pages
	// it changes (nothing is copied to remember it). Crash, CrashAt and
	// OnSync panic on a final filesystem and Point returns ErrFinal. Use
	// it for a crash state that is judged and thrown away (Point.FinalState).
	Final bool
}

// FS is an in-memory afero.Fs that keeps, per file, the contents and
// length as of its last Sync plus the ordered unsynced operations, and
// can crash. See the package documentation for the semantics.
// All methods are safe for concurrent use.
type FS struct {
	opts  Options
	start *Image

	// mu guards everything below, and every File of this FS (positions
	// included). It is held across the in-memory "I/O", which never blocks.
	mu       sync.Mutex
	crashed  *Point            // non-nil once crashed: every operation fails
	crashAt  int64             // crash just before this op index; -1 = never
	onSync   func(*Point) bool // called before each sync op; true = crash there
	names    map[string]uint64 // live namespace
	durNames map[string]uint64 // durable namespace
	// sharedNames, sharedDur: names, durNames is still the start image's
	// map (read-only): the first change copies it (ownNamesLocked; perf,
	// issue 5: most crash states never change their namespace).
	sharedNames, sharedDur bool
	inodes                 map[uint64]*inode
	nextID                 uint64
	nops                   int64
	trace                  []Op
	// replaying: Replay is applying a trace's operations, whose data the
	// trace keeps unchanged (no copy is made of it).
	replaying bool
}

type inode struct {
	id      uint64
	dir     bool
	mode    fs.FileMode
	mtime   time.Time
	cur     content // what reads see
	dur     content // as of the last Sync
	gen     uint64  // owner generation of cur's private nodes
	pending []Op    // unsynced data ops, in issue order
}

var _ afero.Fs = (*FS)(nil)

// New returns an empty filesystem (just the root directory).
func New(opts Options) *FS { return EmptyImage().NewFS(opts) }

// NewFS returns a live filesystem whose initial contents, all durable,
// are the image's. It costs O(entries); pages are shared.
func (img *Image) NewFS(opts Options) *FS {
	f := &FS{
		opts:        opts,
		start:       img,
		crashAt:     -1,
		names:       img.names,
		durNames:    img.names,
		sharedNames: true,
		sharedDur:   true,
		inodes:      make(map[uint64]*inode, len(img.files)),
		nextID:      img.nextID,
	}
	for id, file := range img.files {
		f.inodes[id] = &inode{id: id, dir: file.dir, mode: defaultMode(file.dir), mtime: epoch,
			cur: file.c, dur: file.c, gen: newGen()}
	}
	return f
}

func defaultMode(dir bool) fs.FileMode {
	if dir {
		return fs.ModeDir | 0o755
	}
	return 0o644
}

// Name implements afero.Fs.
func (f *FS) Name() string { return "crashsim" }

// Start returns the image the filesystem was created from: a trace of
// this filesystem replays on it.
func (f *FS) Start() *Image { return f.start }

// Trace returns the operations performed so far (empty with DiscardTrace).
func (f *FS) Trace() *Trace {
	f.mu.Lock()
	defer f.mu.Unlock()
	return &Trace{Ops: slices.Clone(f.trace)}
}

// Ops returns the number of operations issued so far: the index the next
// one will get.
func (f *FS) Ops() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.nops
}

// CrashAt arms the "crash at the k-th operation" hook: the operation that
// would get index k fails with ErrCrashed instead of running, and the
// filesystem is crashed with the point just before it (see Crashed). A
// negative k disarms it.
func (f *FS) CrashAt(k int64) {
	f.mustNotBeFinal("CrashAt")
	f.mu.Lock()
	defer f.mu.Unlock()
	f.crashAt = k
}

// OnSync installs the "crash at every sync" hook: fn is called just
// before every file or directory sync runs, with the crash point at that
// sync (its K is the sync's index, so the sync's own effect is not in
// it). If fn returns true the filesystem crashes there and the sync
// fails with ErrCrashed. fn runs with the filesystem locked: it may use
// the Point (enumerate and check states) but must not call this FS.
func (f *FS) OnSync(fn func(p *Point) (crash bool)) {
	f.mustNotBeFinal("OnSync")
	f.mu.Lock()
	defer f.mu.Unlock()
	f.onSync = fn
}

// Crash simulates a power loss now: the filesystem and every open file
// are dead from here on (ErrCrashed), and the returned point describes
// what may survive. Crashing again returns the same point.
func (f *FS) Crash() *Point {
	f.mustNotBeFinal("Crash")
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.crashed == nil {
		f.crashed = f.pointLocked()
	}
	return f.crashed
}

// Crashed returns the point the filesystem crashed at, or nil if alive.
func (f *FS) Crashed() *Point {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.crashed
}

// Point returns the crash point "now" without crashing: the states a
// power loss just before the next operation could leave.
func (f *FS) Point() (*Point, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.crashed != nil {
		return nil, ErrCrashed
	}
	if f.opts.Final {
		return nil, ErrFinal
	}
	return f.pointLocked(), nil
}

// Release ends a Final filesystem and recycles the pages its writes
// created (shared pages are untouched: they belong to the image or crash
// point the filesystem came from). Every later operation on it or its
// open files fails with ErrCrashed, as after a crash. It is a no-op on a
// filesystem that is not Final (whose pages a crash point may share) or
// already released.
func (f *FS) Release() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.opts.Final || f.crashed == releasedPoint {
		return
	}
	f.crashed = releasedPoint
	for _, ino := range f.inodes {
		releasePages(ino.cur.root, ino.gen)
		ino.cur, ino.dur = content{}, content{}
	}
}

// releasedPoint marks a released filesystem (FS.crashed).
var releasedPoint = &Point{k: -1, img: EmptyImage()}

// ownNamesLocked makes names and durNames private copies before a
// namespace change.
func (f *FS) ownNamesLocked() {
	if f.sharedNames {
		f.names, f.sharedNames = maps.Clone(f.names), false
	}
	if f.sharedDur {
		f.durNames, f.sharedDur = maps.Clone(f.durNames), false
	}
}

// mustNotBeFinal panics if f was made Final: a crash hook on a filesystem
// that keeps no unsynced operations would silently lose them.
func (f *FS) mustNotBeFinal(method string) {
	if f.opts.Final {
		panic("crashsim: " + method + " on a Final filesystem")
	}
}

// pointLocked snapshots the durable state and the unsynced operations.
func (f *FS) pointLocked() *Point {
	isDir := func(id uint64) bool { return f.inodes[id].dir }
	img := &Image{names: reachable(f.durNames, isDir), files: make(map[uint64]imgFile), nextID: f.nextID}
	var ops []Op
	for _, id := range img.names {
		if _, done := img.files[id]; done {
			continue // the same file under two names
		}
		ino := f.inodes[id]
		img.files[id] = imgFile{dir: ino.dir, c: ino.dur}
		ops = append(ops, ino.pending...)
	}
	// The live content shares nodes with dur only through the snapshot
	// taken at Sync; pending writes went to nodes of ino.gen, which dur
	// never references. Nothing to freeze here.
	sort.Slice(ops, func(i, j int) bool { return ops[i].Index < ops[j].Index })
	return &Point{k: f.nops, img: img, ops: ops, opts: Options{ImplicitDirSync: f.opts.ImplicitDirSync}}
}

// beginLocked is called by every operation that will be recorded, after
// its arguments were validated: it fails if the filesystem is dead and
// fires the crash hooks.
func (f *FS) beginLocked(kind OpKind) error {
	if f.crashed != nil {
		return ErrCrashed
	}
	if f.nops == f.crashAt {
		f.crashed = f.pointLocked()
		return ErrCrashed
	}
	if (kind == OpSync || kind == OpDirSync) && f.onSync != nil {
		p := f.pointLocked()
		if f.onSync(p) {
			f.crashed = p
			return ErrCrashed
		}
	}
	return nil
}

// recordLocked assigns the next index to o and keeps it in the trace.
func (f *FS) recordLocked(o Op) Op {
	o.Index = f.nops
	f.nops++
	if !f.opts.DiscardTrace && !f.opts.Final {
		f.trace = append(f.trace, o)
	}
	return o
}

func (f *FS) alive() error {
	if f.crashed != nil {
		return ErrCrashed
	}
	return nil
}

func pathErr(op, name string, err error) error { return &fs.PathError{Op: op, Path: name, Err: err} }

// lookupLocked returns the live inode at the cleaned path p.
func (f *FS) lookupLocked(p string) (*inode, bool) {
	if p == "/" {
		return rootInode, true
	}
	id, ok := f.names[p]
	if !ok {
		return nil, false
	}
	return f.inodes[id], true
}

// rootInode stands for "/", which always exists and is never recorded.
var rootInode = &inode{dir: true, mode: fs.ModeDir | 0o755, mtime: epoch}

func (f *FS) parentIsDirLocked(p string) bool {
	ino, ok := f.lookupLocked(parent(p))
	return ok && ino.dir
}

// --- namespace operations ---

// createLocked adds a new file or directory at p (which must not exist).
func (f *FS) createLocked(p string, dir bool, want uint64) (*inode, error) {
	kind := OpCreate
	if dir {
		kind = OpMkdir
	}
	if want != 0 && want != f.nextID {
		return nil, ErrReplay
	}
	if err := f.beginLocked(kind); err != nil {
		return nil, err
	}
	ino := &inode{id: f.nextID, dir: dir, mode: defaultMode(dir), mtime: epoch, gen: newGen()}
	f.nextID++
	f.inodes[ino.id] = ino
	f.ownNamesLocked()
	f.names[p] = ino.id
	if f.opts.ImplicitDirSync {
		f.durNames[p] = ino.id
	}
	f.recordLocked(Op{Kind: kind, File: ino.id, Path: p})
	return ino, nil
}

// Create implements afero.Fs (O_RDWR|O_CREATE|O_TRUNC).
func (f *FS) Create(name string) (afero.File, error) {
	return f.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o666)
}

// Open implements afero.Fs (read-only).
func (f *FS) Open(name string) (afero.File, error) { return f.OpenFile(name, os.O_RDONLY, 0) }

// OpenFile implements afero.Fs. Supported flags: O_RDONLY, O_WRONLY,
// O_RDWR, O_CREATE, O_EXCL, O_TRUNC, O_APPEND (others are ignored).
// Directories open read-only, for Readdir and Sync.
func (f *FS) OpenFile(name string, flag int, perm os.FileMode) (afero.File, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.alive(); err != nil {
		return nil, pathErr("open", name, err)
	}
	p := clean(name)
	ino, ok := f.lookupLocked(p)
	writable := flag&(os.O_WRONLY|os.O_RDWR) != 0
	switch {
	case ok && flag&os.O_CREATE != 0 && flag&os.O_EXCL != 0:
		return nil, pathErr("open", name, fs.ErrExist)
	case ok && ino.dir && (writable || flag&os.O_TRUNC != 0):
		return nil, pathErr("open", name, errIsDir)
	case !ok && flag&os.O_CREATE == 0:
		return nil, pathErr("open", name, fs.ErrNotExist)
	case !ok && !f.parentIsDirLocked(p):
		return nil, pathErr("open", name, fs.ErrNotExist)
	case !ok:
		var err error
		if ino, err = f.createLocked(p, false, 0); err != nil {
			return nil, pathErr("open", name, err)
		}
		if perm != 0 {
			ino.mode = perm & fs.ModePerm
		}
	case flag&os.O_TRUNC != 0 && writable:
		if err := f.truncateLocked(ino, p, 0); err != nil {
			return nil, pathErr("open", name, err)
		}
	}
	return &File{fs: f, ino: ino, name: name, path: p, flag: flag}, nil
}

// Mkdir implements afero.Fs.
func (f *FS) Mkdir(name string, perm os.FileMode) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.alive(); err != nil {
		return pathErr("mkdir", name, err)
	}
	p := clean(name)
	if _, ok := f.lookupLocked(p); ok {
		return pathErr("mkdir", name, fs.ErrExist)
	}
	if !f.parentIsDirLocked(p) {
		return pathErr("mkdir", name, fs.ErrNotExist)
	}
	ino, err := f.createLocked(p, true, 0)
	if err != nil {
		return pathErr("mkdir", name, err)
	}
	if perm != 0 {
		ino.mode = fs.ModeDir | perm&fs.ModePerm
	}
	return nil
}

// MkdirAll implements afero.Fs.
func (f *FS) MkdirAll(name string, perm os.FileMode) error {
	p := clean(name)
	var todo []string
	for d := p; d != "/"; d = parent(d) {
		todo = append(todo, d)
	}
	for _, d := range slices.Backward(todo) {
		if err := f.Mkdir(d, perm); err != nil {
			if fi, serr := f.Stat(d); serr == nil && fi.IsDir() {
				continue
			}
			return err
		}
	}
	return nil
}

// Remove implements afero.Fs. Open files keep working on the removed file.
func (f *FS) Remove(name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.removeLocked(name)
}

func (f *FS) removeLocked(name string) error {
	if err := f.alive(); err != nil {
		return pathErr("remove", name, err)
	}
	p := clean(name)
	ino, ok := f.lookupLocked(p)
	if !ok {
		return pathErr("remove", name, fs.ErrNotExist)
	}
	if p == "/" {
		return pathErr("remove", name, ErrUnsupported)
	}
	if ino.dir && len(f.childrenLocked(p)) > 0 {
		return pathErr("remove", name, errNotEmpty)
	}
	if err := f.beginLocked(OpRemove); err != nil {
		return pathErr("remove", name, err)
	}
	f.ownNamesLocked()
	delete(f.names, p)
	if f.opts.ImplicitDirSync {
		delete(f.durNames, p)
	}
	f.recordLocked(Op{Kind: OpRemove, File: ino.id, Path: p})
	return nil
}

// RemoveAll implements afero.Fs: the entries are removed deepest first,
// one recorded remove each.
func (f *FS) RemoveAll(name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.alive(); err != nil {
		return pathErr("removeall", name, err)
	}
	p := clean(name)
	var victims []string
	for q := range f.names {
		if q == p || (len(q) > len(p) && q[:len(p)] == p && (p == "/" || q[len(p)] == '/')) {
			victims = append(victims, q)
		}
	}
	// Deepest (longest) first so directories are empty when removed.
	sort.Slice(victims, func(i, j int) bool {
		if len(victims[i]) != len(victims[j]) {
			return len(victims[i]) > len(victims[j])
		}
		return victims[i] < victims[j]
	})
	for _, q := range victims {
		if err := f.removeLocked(q); err != nil {
			return err
		}
	}
	return nil
}

// Rename implements afero.Fs for files (renaming a directory is
// ErrUnsupported). An existing file at newname is replaced.
func (f *FS) Rename(oldname, newname string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.renameLocked(oldname, newname)
}

func (f *FS) renameLocked(oldname, newname string) error {
	if err := f.alive(); err != nil {
		return pathErr("rename", oldname, err)
	}
	op, np := clean(oldname), clean(newname)
	ino, ok := f.lookupLocked(op)
	if !ok {
		return pathErr("rename", oldname, fs.ErrNotExist)
	}
	if ino.dir {
		return pathErr("rename", oldname, ErrUnsupported)
	}
	if dst, ok := f.lookupLocked(np); ok && dst.dir {
		return pathErr("rename", newname, errIsDir)
	}
	if !f.parentIsDirLocked(np) {
		return pathErr("rename", newname, fs.ErrNotExist)
	}
	if op == np {
		return nil
	}
	if err := f.beginLocked(OpRename); err != nil {
		return pathErr("rename", oldname, err)
	}
	f.ownNamesLocked()
	delete(f.names, op)
	f.names[np] = ino.id
	if f.opts.ImplicitDirSync {
		delete(f.durNames, op)
		f.durNames[np] = ino.id
	}
	f.recordLocked(Op{Kind: OpRename, File: ino.id, Path: op, NewPath: np})
	return nil
}

// childrenLocked lists the live entries directly inside directory d.
func (f *FS) childrenLocked(d string) []string {
	var out []string
	for p := range f.names {
		if parent(p) == d && p != d {
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out
}

// dirSyncLocked makes the live entries of directory d durable.
func (f *FS) dirSyncLocked(ino *inode, d string) error {
	if err := f.beginLocked(OpDirSync); err != nil {
		return err
	}
	f.ownNamesLocked()
	for p, id := range f.names {
		if parent(p) == d && p != d {
			f.durNames[p] = id
		}
	}
	for p := range f.durNames {
		if parent(p) == d && p != d {
			if _, ok := f.names[p]; !ok {
				delete(f.durNames, p)
			}
		}
	}
	f.recordLocked(Op{Kind: OpDirSync, File: ino.id, Path: d})
	return nil
}

// --- data operations ---

// writeLocked records and performs a write of data at off. frozen says
// that the caller never changes data again (File.WriteAtFrozen, or a
// replayed trace's data): the trace and the file's pages keep data
// itself; otherwise they keep a copy.
func (f *FS) writeLocked(ino *inode, p string, data []byte, off int64, frozen bool) error {
	if err := f.beginLocked(OpWrite); err != nil {
		return err
	}
	if f.opts.Final {
		// Nothing will ask what this write could leave behind.
		f.recordLocked(Op{Kind: OpWrite})
		ino.cur.writeAt(data, off, ino.gen)
		return nil
	}
	if !frozen && !f.replaying {
		data = slices.Clone(data)
	}
	o := f.recordLocked(Op{Kind: OpWrite, File: ino.id, Path: p, Off: off,
		Data: data, Extends: off+int64(len(data)) > ino.cur.size})
	if f.opts.DiscardTrace {
		// The copy dies at the next sync: pages of its own (frozen
		// bytes are not a copy: shared, as the trace's are below).
		if frozen {
			ino.cur.writeShared(data, off, ino.gen)
		} else {
			ino.cur.writeAt(data, off, ino.gen)
		}
	} else {
		// The trace keeps the copy (unchanged) for the filesystem's
		// life: the file's pages point into it.
		ino.cur.writeShared(data, off, ino.gen)
	}
	ino.pending = append(ino.pending, o)
	return nil
}

func (f *FS) truncateLocked(ino *inode, p string, size int64) error {
	if err := f.beginLocked(OpTruncate); err != nil {
		return err
	}
	o := f.recordLocked(Op{Kind: OpTruncate, File: ino.id, Path: p, Size: size, Extends: size > ino.cur.size})
	ino.cur.truncate(size, ino.gen)
	if !f.opts.Final {
		ino.pending = append(ino.pending, o)
	}
	return nil
}

func (f *FS) discardLocked(ino *inode, p string, off, n int64) error {
	if err := f.beginLocked(OpDiscard); err != nil {
		return err
	}
	o := f.recordLocked(Op{Kind: OpDiscard, File: ino.id, Path: p, Off: off, Size: n})
	applyDiscard(&ino.cur, off, n, ino.gen)
	if !f.opts.Final {
		ino.pending = append(ino.pending, o)
	}
	return nil
}

func applyDiscard(c *content, off, n int64, gen uint64) {
	if end := min(off+n, c.size); end > off {
		c.zeroRange(off, end-off, gen)
	}
}

func (f *FS) syncLocked(ino *inode, p string) error {
	if err := f.beginLocked(OpSync); err != nil {
		return err
	}
	f.recordLocked(Op{Kind: OpSync, File: ino.id, Path: p})
	ino.dur = ino.cur
	if !f.opts.Final {
		// dur now shares cur's nodes: copy before writing again. (A
		// final filesystem never reads dur, so its writes keep mutating
		// their own pages in place.)
		ino.gen = newGen()
	}
	ino.pending = nil
	return nil
}

// Apply performs one recorded operation, as when replaying a trace. The
// file is found by o.File (by o.Path when File is 0); creates must get
// the id o.File names, which holds when the trace is replayed on the
// image it was recorded from. o.Index is ignored: the operation gets the
// next index of this filesystem.
func (f *FS) Apply(o Op) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.alive(); err != nil {
		return err
	}
	fail := func(why string) error { return &replayError{op: o, why: why} }
	var ino *inode
	if o.Kind != OpCreate && o.Kind != OpMkdir {
		var ok bool
		if o.File != 0 {
			ino, ok = f.inodes[o.File]
		} else {
			ino, ok = f.lookupLocked(clean(o.Path))
		}
		if !ok {
			return fail("no such file")
		}
		if o.Kind.isData() && ino.dir {
			return fail("is a directory")
		}
	}
	p := clean(o.Path)
	switch o.Kind {
	case OpCreate, OpMkdir:
		if _, ok := f.lookupLocked(p); ok {
			return fail("path exists")
		}
		if !f.parentIsDirLocked(p) {
			return fail("parent directory missing")
		}
		if o.File != 0 && o.File != f.nextID {
			return fail("file id differs from the one this image allocates")
		}
		_, err := f.createLocked(p, o.Kind == OpMkdir, 0)
		return err
	case OpWrite:
		if o.Off < 0 {
			return fail("negative offset")
		}
		return f.writeLocked(ino, p, o.Data, o.Off, false)
	case OpTruncate:
		if o.Size < 0 {
			return fail("negative size")
		}
		return f.truncateLocked(ino, p, o.Size)
	case OpDiscard:
		if o.Off < 0 || o.Size < 0 {
			return fail("negative range")
		}
		return f.discardLocked(ino, p, o.Off, o.Size)
	case OpSync:
		return f.syncLocked(ino, p)
	case OpDirSync:
		if !ino.dir {
			return fail("not a directory")
		}
		return f.dirSyncLocked(ino, p)
	case OpRemove:
		if id, ok := f.names[p]; !ok || id != ino.id {
			return fail("path does not name the file")
		}
		return f.removeLocked(p)
	case OpRename:
		if id, ok := f.names[p]; !ok || id != ino.id {
			return fail("path does not name the file")
		}
		return f.renameLocked(p, o.NewPath)
	}
	return fail("unknown operation kind")
}

type replayError struct {
	op  Op
	why string
}

func (e *replayError) Error() string { return "crashsim: replay " + e.op.String() + ": " + e.why }
func (e *replayError) Unwrap() error { return ErrReplay }

// Replay creates a filesystem from img and applies t.Ops[:k]; it returns
// the live filesystem (call Point or Crash on it for the crash point k).
func (img *Image) Replay(t *Trace, k int64, opts Options) (*FS, error) {
	if k < 0 || k > int64(len(t.Ops)) {
		return nil, &replayError{op: Op{Index: k}, why: "crash point outside the trace"}
	}
	f := img.NewFS(opts)
	// A trace's bytes are never changed: the replay's trace and pages
	// share them instead of copying them (memory, issue 19 goal 5).
	f.replaying = true
	defer func() { f.replaying = false }()
	for _, o := range t.Ops[:k] {
		if err := f.Apply(o); err != nil {
			return nil, err
		}
	}
	return f, nil
}

// --- metadata ---

type fileInfo struct {
	name string
	size int64
	mode fs.FileMode
	mt   time.Time
}

func (fi *fileInfo) Name() string       { return fi.name }
func (fi *fileInfo) Size() int64        { return fi.size }
func (fi *fileInfo) Mode() fs.FileMode  { return fi.mode }
func (fi *fileInfo) ModTime() time.Time { return fi.mt }
func (fi *fileInfo) IsDir() bool        { return fi.mode.IsDir() }
func (fi *fileInfo) Sys() any           { return nil }

func infoOf(p string, ino *inode) *fileInfo {
	name := p[len(parent(p)):]
	if len(name) > 0 && name[0] == '/' {
		name = name[1:]
	}
	if p == "/" {
		name = "/"
	}
	return &fileInfo{name: name, size: ino.cur.size, mode: ino.mode, mt: ino.mtime}
}

// Stat implements afero.Fs.
func (f *FS) Stat(name string) (os.FileInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.alive(); err != nil {
		return nil, pathErr("stat", name, err)
	}
	p := clean(name)
	ino, ok := f.lookupLocked(p)
	if !ok {
		return nil, pathErr("stat", name, fs.ErrNotExist)
	}
	return infoOf(p, ino), nil
}

// Chmod implements afero.Fs (not recorded: metadata is not modelled).
func (f *FS) Chmod(name string, mode os.FileMode) error {
	return f.meta("chmod", name, func(ino *inode) { ino.mode = ino.mode&fs.ModeDir | mode&fs.ModePerm })
}

// Chown implements afero.Fs (a no-op on an existing file).
func (f *FS) Chown(name string, uid, gid int) error {
	return f.meta("chown", name, func(*inode) {})
}

// Chtimes implements afero.Fs (not recorded).
func (f *FS) Chtimes(name string, atime, mtime time.Time) error {
	return f.meta("chtimes", name, func(ino *inode) { ino.mtime = mtime })
}

func (f *FS) meta(op, name string, fn func(*inode)) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.alive(); err != nil {
		return pathErr(op, name, err)
	}
	ino, ok := f.lookupLocked(clean(name))
	if !ok {
		return pathErr(op, name, fs.ErrNotExist)
	}
	if ino != rootInode {
		fn(ino)
	}
	return nil
}
