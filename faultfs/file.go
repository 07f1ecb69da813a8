package faultfs

import (
	"io"
	"os"
	"syscall"

	"github.com/spf13/afero"
)

// File is an afero.File returned by FS; its operations go through the rules.
type File struct {
	f     afero.File
	fs    *FS
	name  string // as given to Open
	path  string // cleaned, for matching and the log
	globs []bool // per rule: whether its glob matches path (nil if no rule has one)
}

var _ afero.File = (*File)(nil)

// Unwrap returns the wrapped file.
func (f *File) Unwrap() afero.File { return f.f }

// PositionalIOSafe reports whether concurrent ReadAt and WriteAt calls are
// safe: as safe as on the wrapped file (true for an *os.File, or a file
// that says so itself). The rules' state has its own mutex, and a delay
// waits outside it, so callers that skip their own serialisation for such
// files (impl/qed) keep delayed operations concurrent.
func (f *File) PositionalIOSafe() bool {
	switch u := f.f.(type) {
	case *os.File:
		return true
	case interface{ PositionalIOSafe() bool }:
		return u.PositionalIOSafe()
	}
	return false
}

func (f *File) call(op Op, off int64, n int) opCall {
	return opCall{op: op, path: f.path, off: off, n: n, globs: f.globs}
}

// position returns the current offset for sequential I/O, or -1 when no
// rule can care (so the untargeted path costs nothing) or it is unknown.
func (f *File) position(op Op) int64 {
	if !f.fs.ruleOps.Has(op) {
		return -1
	}
	pos, err := f.f.Seek(0, io.SeekCurrent)
	if err != nil {
		return -1
	}
	return pos
}

// Name returns the wrapped file's name.
func (f *File) Name() string { return f.f.Name() }

// Seek passes through (not an operation for rules).
func (f *File) Seek(offset int64, whence int) (int64, error) { return f.f.Seek(offset, whence) }

// Close closes the file (operation "close"). An injected error is returned
// after the wrapped file is closed.
func (f *File) Close() error {
	c := f.call(OpClose, -1, 0)
	inj, _ := f.fs.decide(&c)
	err := f.f.Close()
	if inj == nil {
		return err
	}
	inj.Err = pathErr(inj, f.name)
	f.fs.record(inj)
	return inj.Err
}

// Read reads at the current position (operation "read").
func (f *File) Read(p []byte) (int, error) {
	c := f.call(OpRead, f.position(OpRead), len(p))
	return f.read(&c, p, func(b []byte) (int, error) { return f.f.Read(b) })
}

// ReadAt reads at off (operation "read").
func (f *File) ReadAt(p []byte, off int64) (int, error) {
	if f.fs.untargeted(OpRead) {
		return f.f.ReadAt(p, off)
	}
	c := f.call(OpRead, off, len(p))
	return f.read(&c, p, func(b []byte) (int, error) { return f.f.ReadAt(b, off) })
}

func (f *File) read(c *opCall, p []byte, do func([]byte) (int, error)) (int, error) {
	inj, r := f.fs.decide(c)
	if inj == nil {
		return do(p)
	}
	if r.Fault != FaultBitflip {
		inj.Err = pathErr(inj, f.name)
		f.fs.record(inj)
		return 0, inj.Err
	}
	n, err := do(p)
	inj.N, inj.Err, inj.Detail = n, err, -1
	// The window: the returned bytes that lie inside the rule's byte range.
	lo, hi := int64(0), int64(n)
	if r.HasOff && c.off >= 0 {
		if s := r.Start - c.off; s > lo {
			lo = s
		}
		if r.End != NoEnd {
			if e := r.End - c.off; e < hi {
				hi = e
			}
		}
	}
	if hi > lo {
		b := lo*8 + r.bit(inj.Match, (hi-lo)*8)
		p[b/8] ^= 1 << (b % 8)
		inj.Detail = b
	}
	f.fs.record(inj)
	return n, err
}

// Write writes at the current position (operation "write").
func (f *File) Write(p []byte) (int, error) {
	c := f.call(OpWrite, f.position(OpWrite), len(p))
	return f.write(&c, p, false)
}

// WriteString writes s at the current position (operation "write").
func (f *File) WriteString(s string) (int, error) { return f.Write([]byte(s)) }

// WriteAt writes at off (operation "write").
func (f *File) WriteAt(p []byte, off int64) (int, error) {
	if f.fs.untargeted(OpWrite) {
		return f.f.WriteAt(p, off)
	}
	c := f.call(OpWrite, off, len(p))
	return f.write(&c, p, true)
}

func (f *File) write(c *opCall, p []byte, at bool) (int, error) {
	inj, r := f.fs.decide(c)
	if inj == nil {
		if at {
			return f.f.WriteAt(p, c.off)
		}
		return f.f.Write(p)
	}
	do := func(b []byte) (int, error) {
		if at {
			return f.f.WriteAt(b, c.off)
		}
		return f.f.Write(b)
	}
	var n int
	var err error
	switch r.Fault {
	case FaultShort:
		k := int64(len(p) / 2)
		if r.Arg >= 0 {
			k = r.Arg
		}
		if k > int64(len(p))-1 {
			k = int64(len(p)) - 1
		}
		if k < 0 {
			k = 0
		}
		n, err = do(p[:k])
		inj.Detail = int64(n)
		if err == nil {
			err = &os.PathError{Op: "write", Path: f.name, Err: syscall.ENOSPC}
		}
	case FaultLost:
		n = len(p)
		if !at {
			_, err = f.f.Seek(int64(len(p)), io.SeekCurrent)
			if err != nil {
				n = 0
			}
		}
	case FaultMisdirect:
		if c.off < 0 { // position unknown: cannot misdirect
			n, err = do(p)
			inj.Detail = -1
			break
		}
		target := c.off + r.Arg
		if target < 0 {
			target = 0
		}
		inj.Detail = target
		n, err = f.f.WriteAt(p, target)
		if !at && err == nil {
			_, err = f.f.Seek(c.off+int64(n), io.SeekStart)
		}
	default:
		err = pathErr(inj, f.name)
	}
	inj.N, inj.Err = n, err
	f.fs.record(inj)
	return n, err
}

// Sync commits the file (operation "sync"). A failing or lost sync does not
// reach the wrapped file.
func (f *File) Sync() error {
	c := f.call(OpSync, -1, 0)
	inj, r := f.fs.decide(&c)
	if inj == nil {
		return f.f.Sync()
	}
	if r.Fault != FaultLost {
		inj.Err = pathErr(inj, f.name)
	}
	f.fs.record(inj)
	return inj.Err
}

// Truncate changes the file's size (operation "truncate", offset = size).
func (f *File) Truncate(size int64) error {
	c := f.call(OpTruncate, size, 0)
	inj, r := f.fs.decide(&c)
	if inj == nil {
		return f.f.Truncate(size)
	}
	if r.Fault != FaultLost {
		inj.Err = pathErr(inj, f.name)
	}
	f.fs.record(inj)
	return inj.Err
}

// Stat describes the file (operation "stat").
func (f *File) Stat() (os.FileInfo, error) {
	c := f.call(OpStat, -1, 0)
	if inj, _ := f.fs.decide(&c); inj != nil {
		inj.Err = pathErr(inj, f.name)
		f.fs.record(inj)
		return nil, inj.Err
	}
	return f.f.Stat()
}

// Readdir lists the directory (operation "readdir").
func (f *File) Readdir(count int) ([]os.FileInfo, error) {
	c := f.call(OpReaddir, -1, 0)
	if inj, _ := f.fs.decide(&c); inj != nil {
		inj.Err = pathErr(inj, f.name)
		f.fs.record(inj)
		return nil, inj.Err
	}
	return f.f.Readdir(count)
}

// Readdirnames lists the directory's names (operation "readdir").
func (f *File) Readdirnames(n int) ([]string, error) {
	c := f.call(OpReaddir, -1, 0)
	if inj, _ := f.fs.decide(&c); inj != nil {
		inj.Err = pathErr(inj, f.name)
		f.fs.record(inj)
		return nil, inj.Err
	}
	return f.f.Readdirnames(n)
}
