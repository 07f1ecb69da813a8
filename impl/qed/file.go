package qed

import (
	"os"
	"sync"

	"github.com/spf13/afero"
)

// lockedFile serialises positional I/O on a file handle that may not
// support it concurrently. afero's in-memory mem.File, for one, implements
// ReadAt and WriteAt by moving its shared seek offset, so two concurrent
// ReadAt calls can read each other's offsets. *os.File uses pread/pwrite
// and is left unwrapped, keeping reads parallel on real files.
type lockedFile struct {
	afero.File
	mu sync.Mutex // serialises every call on File
}

// guardFile returns f wrapped in a lockedFile unless it is an *os.File or
// says that concurrent positional I/O on it is safe (a wrapper such as an
// I/O counter over an *os.File implements PositionalIOSafe() bool).
func guardFile(f afero.File) afero.File {
	switch u := f.(type) {
	case *os.File:
		return f
	case interface{ PositionalIOSafe() bool }:
		if u.PositionalIOSafe() {
			return f
		}
	}
	return &lockedFile{File: f}
}

func (l *lockedFile) ReadAt(p []byte, off int64) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.File.ReadAt(p, off)
}

func (l *lockedFile) WriteAt(p []byte, off int64) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.File.WriteAt(p, off)
}

func (l *lockedFile) Stat() (os.FileInfo, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.File.Stat()
}

func (l *lockedFile) Sync() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.File.Sync()
}

func (l *lockedFile) Truncate(size int64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.File.Truncate(size)
}
