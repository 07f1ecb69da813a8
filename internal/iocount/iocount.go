package iocount

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/afero"
)

// Counts is what reached one file (or, from Total, all files).
type Counts struct {
	Reads      int64 // read requests
	ReadBytes  int64 // bytes they moved
	Writes     int64 // write requests
	WriteBytes int64 // bytes they moved
	Syncs      int64 // File.Sync calls (dm-log: FLUSH and FUA)
	Truncates  int64 // File.Truncate calls
	Discards   int64 // dm-log DISCARD entries (never from FS)
}

// Add returns c + o, field by field.
func (c Counts) Add(o Counts) Counts {
	return Counts{c.Reads + o.Reads, c.ReadBytes + o.ReadBytes, c.Writes + o.Writes,
		c.WriteBytes + o.WriteBytes, c.Syncs + o.Syncs, c.Truncates + o.Truncates, c.Discards + o.Discards}
}

// Sub returns c - o, field by field (the counts of an interval).
func (c Counts) Sub(o Counts) Counts {
	return Counts{c.Reads - o.Reads, c.ReadBytes - o.ReadBytes, c.Writes - o.Writes,
		c.WriteBytes - o.WriteBytes, c.Syncs - o.Syncs, c.Truncates - o.Truncates, c.Discards - o.Discards}
}

// String is a one-line summary, e.g.
// "writes=3 write_bytes=12288 syncs=1 reads=0 read_bytes=0".
func (c Counts) String() string {
	s := fmt.Sprintf("writes=%d write_bytes=%d syncs=%d reads=%d read_bytes=%d", c.Writes, c.WriteBytes, c.Syncs, c.Reads, c.ReadBytes)
	if c.Truncates != 0 {
		s += fmt.Sprintf(" truncates=%d", c.Truncates)
	}
	if c.Discards != 0 {
		s += fmt.Sprintf(" discards=%d", c.Discards)
	}
	return s
}

// counter is the live, atomic form of Counts for one path.
type counter struct {
	reads, readBytes, writes, writeBytes, syncs, truncates atomic.Int64
}

func (c *counter) load() Counts {
	return Counts{Reads: c.reads.Load(), ReadBytes: c.readBytes.Load(), Writes: c.writes.Load(),
		WriteBytes: c.writeBytes.Load(), Syncs: c.syncs.Load(), Truncates: c.truncates.Load()}
}

func (c *counter) reset() {
	for _, v := range []*atomic.Int64{&c.reads, &c.readBytes, &c.writes, &c.writeBytes, &c.syncs, &c.truncates} {
		v.Store(0)
	}
}

// FS is an afero.Fs that counts the requests reaching each file of base.
type FS struct {
	base afero.Fs

	mu     sync.Mutex // guards byPath (the map; counters are atomic)
	byPath map[string]*counter
}

var _ afero.Fs = (*FS)(nil)

// New returns an FS counting the requests that reach base's files.
func New(base afero.Fs) *FS {
	return &FS{base: base, byPath: make(map[string]*counter)}
}

// Base returns the wrapped Fs.
func (fs *FS) Base() afero.Fs { return fs.base }

func (fs *FS) counter(name string) *counter {
	p := filepath.Clean(name)
	fs.mu.Lock()
	defer fs.mu.Unlock()
	c := fs.byPath[p]
	if c == nil {
		c = &counter{}
		fs.byPath[p] = c
	}
	return c
}

// Counts returns the counts of the file at path (zero if never opened).
func (fs *FS) Counts(path string) Counts {
	fs.mu.Lock()
	c := fs.byPath[filepath.Clean(path)]
	fs.mu.Unlock()
	if c == nil {
		return Counts{}
	}
	return c.load()
}

// Total returns the sum of every file's counts.
func (fs *FS) Total() Counts {
	var t Counts
	for _, p := range fs.Paths() {
		t = t.Add(fs.Counts(p))
	}
	return t
}

// Paths returns the paths opened so far, sorted.
func (fs *FS) Paths() []string {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	out := make([]string, 0, len(fs.byPath))
	for p := range fs.byPath {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// Reset zeroes every counter (files stay open and keep counting).
func (fs *FS) Reset() {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	for _, c := range fs.byPath {
		c.reset()
	}
}

// String lists every file's counts, one per line.
func (fs *FS) String() string {
	var b strings.Builder
	for _, p := range fs.Paths() {
		fmt.Fprintf(&b, "%s: %s\n", p, fs.Counts(p))
	}
	return b.String()
}

func (fs *FS) wrap(name string, f afero.File, err error) (afero.File, error) {
	if err != nil || f == nil {
		return f, err
	}
	return &File{File: f, c: fs.counter(name)}, nil
}

// Name names the wrapper and the wrapped Fs.
func (fs *FS) Name() string { return "iocount(" + fs.base.Name() + ")" }

// Create creates name on base and returns a counting file.
func (fs *FS) Create(name string) (afero.File, error) {
	f, err := fs.base.Create(name)
	return fs.wrap(name, f, err)
}

// Open opens name on base and returns a counting file.
func (fs *FS) Open(name string) (afero.File, error) {
	f, err := fs.base.Open(name)
	return fs.wrap(name, f, err)
}

// OpenFile opens name on base and returns a counting file.
func (fs *FS) OpenFile(name string, flag int, perm os.FileMode) (afero.File, error) {
	f, err := fs.base.OpenFile(name, flag, perm)
	return fs.wrap(name, f, err)
}

// Mkdir passes through.
func (fs *FS) Mkdir(name string, perm os.FileMode) error { return fs.base.Mkdir(name, perm) }

// MkdirAll passes through.
func (fs *FS) MkdirAll(path string, perm os.FileMode) error { return fs.base.MkdirAll(path, perm) }

// Remove passes through.
func (fs *FS) Remove(name string) error { return fs.base.Remove(name) }

// RemoveAll passes through.
func (fs *FS) RemoveAll(path string) error { return fs.base.RemoveAll(path) }

// Rename passes through (counters stay with the old path).
func (fs *FS) Rename(oldname, newname string) error { return fs.base.Rename(oldname, newname) }

// Stat passes through.
func (fs *FS) Stat(name string) (os.FileInfo, error) { return fs.base.Stat(name) }

// Chmod passes through.
func (fs *FS) Chmod(name string, mode os.FileMode) error { return fs.base.Chmod(name, mode) }

// Chown passes through.
func (fs *FS) Chown(name string, uid, gid int) error { return fs.base.Chown(name, uid, gid) }

// Chtimes passes through.
func (fs *FS) Chtimes(name string, atime, mtime time.Time) error {
	return fs.base.Chtimes(name, atime, mtime)
}

// File is a counting afero.File. Methods not redefined here (Seek, Stat,
// Name, Close, Readdir...) are the wrapped file's, uncounted.
type File struct {
	afero.File
	c *counter
}

// Unwrap returns the wrapped file.
func (f *File) Unwrap() afero.File { return f.File }

// PositionalIOSafe reports whether concurrent ReadAt and WriteAt calls on
// the wrapped file are safe: true for an *os.File (pread/pwrite) or a file
// that says so itself.
func (f *File) PositionalIOSafe() bool {
	switch u := f.File.(type) {
	case *os.File:
		return true
	case interface{ PositionalIOSafe() bool }:
		return u.PositionalIOSafe()
	}
	return false
}

func (f *File) read(n int) {
	f.c.reads.Add(1)
	f.c.readBytes.Add(int64(n))
}

func (f *File) write(n int) {
	f.c.writes.Add(1)
	f.c.writeBytes.Add(int64(n))
}

// Read counts one read request.
func (f *File) Read(p []byte) (int, error) {
	n, err := f.File.Read(p)
	f.read(n)
	return n, err
}

// ReadAt counts one read request.
func (f *File) ReadAt(p []byte, off int64) (int, error) {
	n, err := f.File.ReadAt(p, off)
	f.read(n)
	return n, err
}

// Write counts one write request.
func (f *File) Write(p []byte) (int, error) {
	n, err := f.File.Write(p)
	f.write(n)
	return n, err
}

// WriteAt counts one write request.
func (f *File) WriteAt(p []byte, off int64) (int, error) {
	n, err := f.File.WriteAt(p, off)
	f.write(n)
	return n, err
}

// WriteString counts one write request.
func (f *File) WriteString(s string) (int, error) {
	n, err := f.File.WriteString(s)
	f.write(n)
	return n, err
}

// Sync counts one sync.
func (f *File) Sync() error {
	f.c.syncs.Add(1)
	return f.File.Sync()
}

// Truncate counts one truncate.
func (f *File) Truncate(size int64) error {
	f.c.truncates.Add(1)
	return f.File.Truncate(size)
}
