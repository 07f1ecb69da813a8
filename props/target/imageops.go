package target

import (
	"fmt"

	"github.com/spf13/afero"
)

// ImageOps is an optional capability of a Target: the offline image
// commands a user runs on a closed image (qemu-img rebase, rebase -u,
// commit), which the workload ops rebase, rebase-unsafe and commit run
// between a clean close and a reopen. Like every access of the
// implementation, each goes through the afero.Fs it is given (the crash
// and fault layers see every write of the image and of its backing
// chain). A target without it cannot run those ops: the executor reports
// the op as unsupported.
type ImageOps interface {
	// Rebase changes the backing file of the image at path to backing
	// (format "raw" or "qed"; backing "" removes it, format then "").
	// unsafe rewrites the header only (qemu-img rebase -u): the guest
	// data is not looked at. Otherwise (the safe rebase) every cluster
	// whose guest data would change gets the old data copied into the
	// image first, so the guest reads the same before and after.
	Rebase(fs afero.Fs, path, backing, format string, unsafe bool) error
	// Commit writes the image's data into its backing file (qemu-img
	// commit) and then, unless o.Drop, empties the image.
	Commit(fs afero.Fs, path string, o CommitOptions) error
}

// CommitOptions configure ImageOps.Commit.
type CommitOptions struct {
	// Drop leaves the image as it is after the commit (qemu-img commit -d).
	Drop bool
	// Base names the file to commit into (qemu-img commit -b): a file of
	// the image's backing chain, named as backing names are (relative to
	// the image's directory); "" for the image's own backing file. A base
	// below the image's own backing file implies Drop: the images between
	// are left as they are (what they read changes; the image's view does
	// not).
	Base string
	// Progress, when set, is called by a target that reports progress
	// (qemu-img commit -p) with the bytes committed so far and the bytes
	// to commit: (0, total) first, done never decreasing and at most total,
	// the last call (total, total) when the commit succeeded. A target that
	// does not report progress never calls it.
	Progress func(done, total int64)
}

// ReadGuest returns what a guest reads from the file at path: a raw file's
// bytes as they are, a QED file's guest view through t opened read-only
// (its close's error reported as the read's). It never writes the file.
func ReadGuest(t Target, fs afero.Fs, path, format string) ([]byte, error) {
	return ReadGuestInto(t, fs, path, format, nil)
}

// ReadGuestInto is ReadGuest reading a QED file's guest view into buf when
// it is long enough (the same single read of the whole view, into memory
// the caller reuses: perf, a fresh buffer of the view for every crash
// state of a commit), else into a new buffer. The result may alias buf. A
// raw file is read as ReadGuest reads it, into a new buffer.
func ReadGuestInto(t Target, fs afero.Fs, path, format string, buf []byte) ([]byte, error) {
	if format == "raw" {
		return afero.ReadFile(fs, path)
	}
	d, err := t.Open(fs, path, OpenOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("open: %w", err)
	}
	var b []byte
	if n := d.Size(); n >= 0 && int64(cap(buf)) >= n {
		b = buf[:n]
	} else {
		b = make([]byte, n)
	}
	n, err := d.ReadAt(b, 0)
	if n < len(b) {
		// What a short read left is what a new buffer held: zeros (a
		// reused buffer holds the last view read).
		clear(b[max(n, 0):])
	}
	cerr := d.Close()
	switch {
	case err != nil:
		return nil, fmt.Errorf("read: %w", err)
	case cerr != nil:
		return nil, fmt.Errorf("close: %w", cerr)
	}
	return b, nil
}
