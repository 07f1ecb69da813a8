//go:build linux

package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"
	"unsafe"

	"github.com/spf13/afero"
)

// directAlign is the alignment O_DIRECT requests get: offsets and lengths
// in multiples of it, buffers at addresses that are. 4096 satisfies every
// device with logical blocks up to 4 KiB.
const directAlign = 4096

// directFs returns an Fs that opens files with O_DIRECT (cache mode
// none). Only the OS file system can do that.
func directFs(base afero.Fs) (afero.Fs, error) {
	if _, ok := base.(*afero.OsFs); !ok {
		return nil, fmt.Errorf("bench: cache modes none and directsync (O_DIRECT) need the OS file system, not %s", base.Name())
	}
	return &odirectFs{OsFs: base.(*afero.OsFs)}, nil
}

type odirectFs struct{ *afero.OsFs }

func (fs *odirectFs) Name() string { return "odirect(OsFs)" }

func (fs *odirectFs) OpenFile(name string, flag int, perm os.FileMode) (afero.File, error) {
	f, err := os.OpenFile(name, flag|syscall.O_DIRECT, perm)
	if err != nil {
		if errors.Is(err, syscall.EINVAL) {
			return nil, fmt.Errorf("bench: cache modes none and directsync: the file system holding %s does not support O_DIRECT: %w", name, err)
		}
		return nil, err
	}
	return &directFile{File: f}, nil
}

func (fs *odirectFs) Open(name string) (afero.File, error) {
	return fs.OpenFile(name, os.O_RDONLY, 0)
}

func (fs *odirectFs) Create(name string) (afero.File, error) {
	return fs.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o666)
}

// directFile does positional I/O on an O_DIRECT file. Aligned requests
// from aligned buffers go straight through; others are copied through an
// aligned bounce buffer, writes by read-modify-write of the blocks they
// touch (under rmw, so two partial writes to one block cannot lose each
// other's bytes).
type directFile struct {
	*os.File
	rmw sync.Mutex // serialises read-modify-write of partial blocks
}

// PositionalIOSafe: pread/pwrite on the OS file.
func (f *directFile) PositionalIOSafe() bool { return true }

// Unwrap returns the OS file, so that image locks reach it.
func (f *directFile) Unwrap() afero.File { return f.File }

func aligned(p []byte, off int64) bool {
	return len(p) > 0 && off%directAlign == 0 && len(p)%directAlign == 0 &&
		uintptr(unsafe.Pointer(&p[0]))%directAlign == 0
}

// alignedBuf returns n bytes at a directAlign-aligned address.
func alignedBuf(n int64) []byte {
	b := make([]byte, n+directAlign)
	skip := (directAlign - int(uintptr(unsafe.Pointer(&b[0]))%directAlign)) % directAlign
	return b[skip : skip+int(n)]
}

func (f *directFile) ReadAt(p []byte, off int64) (int, error) {
	if len(p) == 0 || aligned(p, off) {
		return f.File.ReadAt(p, off)
	}
	lo := off / directAlign * directAlign
	hi := (off + int64(len(p)) + directAlign - 1) / directAlign * directAlign
	buf := alignedBuf(hi - lo)
	n, err := f.File.ReadAt(buf, lo)
	got := max(0, min(int64(n)-(off-lo), int64(len(p))))
	copy(p, buf[off-lo:off-lo+got])
	if got == int64(len(p)) {
		err = nil
	}
	return int(got), err
}

func (f *directFile) WriteAt(p []byte, off int64) (int, error) {
	if len(p) == 0 || aligned(p, off) {
		return f.File.WriteAt(p, off)
	}
	lo := off / directAlign * directAlign
	hi := (off + int64(len(p)) + directAlign - 1) / directAlign * directAlign
	buf := alignedBuf(hi - lo)
	partial := off != lo || off+int64(len(p)) != hi
	if partial {
		f.rmw.Lock()
		defer f.rmw.Unlock()
		// Blocks past the end of the file read short: they stay zero.
		if _, err := f.File.ReadAt(buf, lo); err != nil && !isEOF(err) {
			return 0, err
		}
	}
	copy(buf[off-lo:], p)
	st, err := f.File.Stat()
	if err != nil {
		return 0, err
	}
	if _, err := f.File.WriteAt(buf, lo); err != nil {
		return 0, err
	}
	// Writing whole blocks may have extended the file past the request:
	// restore the length a plain write would have left.
	if end := off + int64(len(p)); hi > st.Size() && end < hi {
		if err := f.File.Truncate(max(st.Size(), end)); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

func isEOF(err error) bool { return errors.Is(err, io.EOF) }
