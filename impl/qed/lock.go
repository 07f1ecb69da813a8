package qed

import (
	"os"

	"github.com/qedtorture/qedtorture/internal/imagelock"
	"github.com/spf13/afero"
)

// Image locks: an open of an image file that is a real OS file takes the
// advisory locks QEMU takes (package imagelock), so that qemu-img, qemu-io
// or a running VM and this package see each other. A writable open takes
// imagelock.ReadWrite, a read-only open imagelock.ReadOnly (or
// imagelock.ForceShare with OpenOptions.ForceShare), every file of the
// backing chain imagelock.ReadOnly (ForceShare), and Create the writable
// locks before it truncates anything. The locks live as long as the open
// file and go with Close. Files of other afero filesystems (crashsim,
// faultfs, in-memory) are not OS files and take no locks, at the cost of
// one type switch per open: campaigns are unaffected.

// lockMode is the imagelock mode of an open with opts.
func lockMode(opts OpenOptions) imagelock.Mode {
	switch {
	case !opts.ReadOnly:
		return imagelock.ReadWrite
	case opts.ForceShare:
		return imagelock.ForceShare
	}
	return imagelock.ReadOnly
}

// lockFile takes the locks of mode m on f, named path in errors, when f
// is (or wraps, through Unwrap() afero.File) an *os.File and noLock is
// false.
func lockFile(f afero.File, path string, m imagelock.Mode, noLock bool) error {
	if noLock {
		return nil
	}
	of := osFile(f)
	if of == nil {
		return nil
	}
	return imagelock.Lock(of, path, m)
}

// osFile returns the *os.File under f, or nil.
func osFile(f afero.File) *os.File {
	for range 8 {
		switch u := f.(type) {
		case *os.File:
			return u
		case interface{ Unwrap() afero.File }:
			f = u.Unwrap()
		default:
			return nil
		}
	}
	return nil
}

// LockFile takes the image locks of mode m on f (named path in errors)
// when f is, or wraps, an *os.File; other files take none. It is for files
// this package does not open itself, such as a raw image or a raw convert
// destination; the locks go with the file's Close.
func LockFile(f afero.File, path string, m imagelock.Mode) error {
	return lockFile(f, path, m, false)
}
