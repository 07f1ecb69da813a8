package main

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/qedtorture/qedtorture/impl/qed"
	"github.com/qedtorture/qedtorture/internal/imagelock"
	"github.com/spf13/afero"
)

// This file holds what keeps the image utilities from destroying data:
// messages that name the file once, image locks on raw files, and the
// identity of files (device and inode) for refusing a destination that is
// a file the command reads.

// fileError returns err as a runtime error whose one line names path once.
// Errors of impl/qed (*qed.FileError) and lock conflicts name their file
// already and are kept; an *fs.PathError loses its own copy of the path
// ("PATH: op: cause"); anything else gets "PATH: " in front.
func fileError(path string, err error) error {
	if err == nil {
		return nil
	}
	var ee *exitError
	var fe *qed.FileError
	var ce *imagelock.ConflictError
	if errors.As(err, &ee) || errors.As(err, &fe) || errors.As(err, &ce) {
		return fail(err)
	}
	if pe, ok := err.(*fs.PathError); ok {
		return failf("%s: %s: %w", path, pe.Op, pe.Err)
	}
	return failf("%s: %w", path, err)
}

// openRaw opens the raw image at path read-only (or read-write) with the
// image locks QEMU would take (force-share for -U readers).
func openRaw(e *env, path string, write, forceShare bool) (afero.File, error) {
	flag := os.O_RDONLY
	if write {
		flag = os.O_RDWR
	}
	f, err := e.fs.OpenFile(path, flag, 0)
	if err != nil {
		return nil, err
	}
	m := imagelock.ReadOnly
	switch {
	case write:
		m = imagelock.ReadWrite
	case forceShare:
		m = imagelock.ForceShare
	}
	if err := qed.LockFile(f, path, m); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// sameFile reports whether the paths a and b name the same existing file
// (device and inode, through symlinks and hard links), or the same path
// once symlinks are resolved (never lexically: "lnk/../x" is not "x" when
// lnk is a symlink to another directory).
func sameFile(e *env, a, b string) bool {
	sa, err1 := e.fs.Stat(a)
	sb, err2 := e.fs.Stat(b)
	if err1 == nil && err2 == nil {
		return os.SameFile(sa, sb)
	}
	ra, rb := resolvePath(a), resolvePath(b)
	return ra != "" && ra == rb
}

// resolvePath is path made absolute with every symlink resolved, as far as
// it exists (a missing last element is appended as named); "" when even
// its directory cannot be resolved.
func resolvePath(path string) string {
	if r, err := filepath.EvalSymlinks(path); err == nil {
		if a, err := filepath.Abs(r); err == nil {
			return a
		}
	}
	// Split without cleaning (filepath.Dir would resolve "lnk/.."
	// lexically): the directory part is resolved by EvalSymlinks, which
	// follows a symlink before applying "..".
	i := strings.LastIndexAny(path, string(filepath.Separator)+"/")
	dir, base := ".", path
	if i >= 0 {
		dir, base = path[:i+1], path[i+1:]
	}
	if base == "" || base == "." || base == ".." {
		return ""
	}
	d, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return ""
	}
	a, err := filepath.Abs(filepath.Join(d, base))
	if err != nil {
		return ""
	}
	return a
}

// refuseChainFile fails when dst is one of files (the files a command
// reads), however named.
func refuseChainFile(e *env, dst string, files []string, what string) error {
	for i, f := range files {
		if !sameFile(e, dst, f) {
			continue
		}
		if i == 0 {
			return failf("%s: is the %s itself; refusing to overwrite it", dst, what)
		}
		as := ""
		if filepath.Clean(f) != filepath.Clean(dst) {
			as = " as " + f
		}
		return failf("%s: is in the backing chain of the %s%s; refusing to overwrite it", dst, what, as)
	}
	return nil
}
