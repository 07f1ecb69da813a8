// Package atomicfile writes the outputs of qedtorture's commands (converted
// images, reports, failure artifacts) so that nothing that looks valid is
// ever partial.
//
// Guarantees: an output appears under its final name only complete and
// durable. It is written under a temporary name in the destination's own
// directory (so the final rename never crosses a file system), synced, and
// renamed into place; the directory is then synced so the new entry survives
// a power loss. On any error the temporary is removed and the final name is
// left as it was: absent, or holding the previous complete output.
//
// Order of durability for a file (each step must be durable before the next):
//  1. the data of the temporary file (fsync of the file);
//  2. the rename of the temporary onto the final name;
//  3. the directory entry (fsync of the directory).
//
// For a directory (an artifact): every file in it is synced, then the
// temporary directory itself, then it is renamed and its parent synced.
//
// Temporary names start with "." and contain ".tmp-", so that a listing of an
// output directory (a shard merge's glob, an artifact scan) can skip them.
//
// Every temporary made by Create and MkdirTemp is registered with package
// cleanup until it is committed or removed (Abort, RemoveTemp, or the
// removal on a failed commit), so that a command exiting at once on a
// second signal removes it too.
package atomicfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/qedtorture/qedtorture/internal/cleanup"
)

// TempMarker is part of every temporary name this package creates.
const TempMarker = ".tmp-"

// IsTemp reports whether name (a base name or a path) is a temporary of this
// package that a crash or a kill may have left behind.
func IsTemp(name string) bool {
	b := filepath.Base(name)
	return strings.HasPrefix(b, ".") && strings.Contains(b, TempMarker)
}

// File is an output file being written under a temporary name.
// Commit publishes it under its final name; Abort discards it. After either,
// further calls are no-ops that return the first outcome's error.
type File struct {
	*os.File
	final      string
	done       bool
	err        error
	unregister func()
}

// Create starts writing the output file path: it opens a new temporary file
// in path's directory. perm is the mode the published file gets.
func Create(path string, perm os.FileMode) (*File, error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	done := cleanup.Creating() // an exit at once waits until the temporary is registered
	defer done()
	f, err := os.CreateTemp(dir, "."+base+TempMarker+"*")
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, UnwrapPath(err))
	}
	if err := f.Chmod(perm); err != nil {
		_ = f.Close()
		_ = os.Remove(f.Name())
		return nil, fmt.Errorf("%s: %w", path, UnwrapPath(err))
	}
	tmp := f.Name()
	return &File{File: f, final: path, unregister: cleanup.Register(func() { _ = os.Remove(tmp) })}, nil
}

// TempName is the temporary file's path.
func (f *File) TempName() string { return f.File.Name() }

// Commit syncs the temporary file, closes it, renames it to the final name
// and syncs the directory. On error the temporary is removed.
func (f *File) Commit() error {
	if f.done {
		return f.err
	}
	f.done = true
	defer f.unregister()
	tmp := f.File.Name()
	err := f.File.Sync()
	if cerr := f.File.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, f.final)
	}
	if err != nil {
		_ = os.Remove(tmp)
		f.err = fmt.Errorf("%s: %w", f.final, UnwrapPath(err))
		return f.err
	}
	if err := SyncDir(dirOf(f.final)); err != nil {
		f.err = fmt.Errorf("%s: %w", f.final, UnwrapPath(err))
	}
	return f.err
}

// Abort closes and removes the temporary file; the final name is untouched.
func (f *File) Abort() error {
	if f.done {
		return f.err
	}
	f.done = true
	defer f.unregister()
	_ = f.File.Close()
	if err := os.Remove(f.File.Name()); err != nil && !errors.Is(err, fs.ErrNotExist) {
		f.err = err
	}
	return f.err
}

// WriteFile writes data to path atomically (see the package doc).
func WriteFile(path string, data []byte, perm os.FileMode) error {
	f, err := Create(path, perm)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		_ = f.Abort()
		return fmt.Errorf("%s: %w", path, UnwrapPath(err))
	}
	return f.Commit()
}

// TempPath returns a fresh temporary name next to path for output that other
// code creates by name (an image written by impl/qed). Nothing is created;
// the caller creates the file (exclusively) and later calls CommitPath or
// removes it.
func TempPath(path string) (string, error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+TempMarker+"*")
	if err != nil {
		return "", fmt.Errorf("%s: %w", path, UnwrapPath(err))
	}
	name := f.Name()
	_ = f.Close()
	if err := os.Remove(name); err != nil {
		return "", fmt.Errorf("%s: %w", path, UnwrapPath(err))
	}
	return name, nil
}

// CommitPath syncs the file tmp, renames it to path and syncs the directory.
// On error tmp is removed.
func CommitPath(tmp, path string) error {
	err := syncPath(tmp)
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("%s: %w", path, UnwrapPath(err))
	}
	if err := SyncDir(dirOf(path)); err != nil {
		return fmt.Errorf("%s: %w", path, UnwrapPath(err))
	}
	return nil
}

// MkdirTemp creates a temporary directory next to the final directory path,
// to be filled and then published with CommitDir (or removed with
// os.RemoveAll).
func MkdirTemp(path string) (string, error) {
	parent, base := filepath.Split(filepath.Clean(path))
	if parent == "" {
		parent = "."
	}
	done := cleanup.Creating()
	defer done()
	d, err := os.MkdirTemp(parent, "."+base+TempMarker+"*")
	if err != nil {
		return "", fmt.Errorf("%s: %w", path, UnwrapPath(err))
	}
	tempDirs.Store(d, cleanup.Register(func() { _ = os.RemoveAll(d) }))
	return d, nil
}

// tempDirs maps the temporary directories of MkdirTemp not yet committed
// or removed to their cleanup registration.
var tempDirs sync.Map

func forgetDir(tmp string) {
	if un, ok := tempDirs.LoadAndDelete(tmp); ok {
		un.(func())()
	}
}

// RemoveTemp removes a temporary directory of MkdirTemp that will not be
// committed (the output failed).
func RemoveTemp(tmp string) error {
	defer forgetDir(tmp)
	return os.RemoveAll(tmp)
}

// CommitDir syncs every regular file under tmp and every directory, renames
// tmp to path (which must not exist) and syncs path's parent. On error tmp is
// removed.
func CommitDir(tmp, path string) error {
	defer forgetDir(tmp)
	err := filepath.WalkDir(tmp, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() || d.IsDir() {
			return syncPath(p)
		}
		return nil
	})
	if err == nil {
		if _, serr := os.Lstat(path); serr == nil {
			err = fs.ErrExist
		}
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.RemoveAll(tmp)
		return fmt.Errorf("%s: %w", path, UnwrapPath(err))
	}
	if err := SyncDir(filepath.Dir(filepath.Clean(path))); err != nil {
		return fmt.Errorf("%s: %w", path, UnwrapPath(err))
	}
	return nil
}

// SyncDir syncs a directory so that entries created or renamed in it are
// durable. File systems that cannot sync a directory (EINVAL) are accepted.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if errors.Is(err, errSyncUnsupported) {
		return nil
	}
	return err
}

func syncPath(p string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if errors.Is(err, errSyncUnsupported) {
		return nil
	}
	return err
}

// dirOf is the directory holding path, split off without cleaning: the
// kernel resolves "lnk/../x" through the symlink lnk, and so must the
// directory synced after a rename to it (filepath.Dir would clean the
// ".." away lexically).
func dirOf(path string) string {
	dir, _ := filepath.Split(path)
	if dir == "" {
		return "."
	}
	return dir
}

// UnwrapPath drops the *fs.PathError's (or *os.LinkError's) own path so
// that an error names the user's file once: "out.raw: no space left on
// device", not "out.raw: write /dir/.out.raw.tmp-123: no space left on
// device".
func UnwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	var le *os.LinkError
	if errors.As(err, &le) {
		return le.Err
	}
	return err
}
