package crashsim

import (
	"io"
	"io/fs"
	"os"

	"github.com/spf13/afero"
)

// File is an open file or directory of an FS. It shares the FS's lock;
// after the FS crashes every method fails with ErrCrashed.
type File struct {
	fs     *FS
	ino    *inode
	name   string // as given to OpenFile
	path   string // cleaned
	flag   int
	pos    int64
	dirPos int
	closed bool
}

var _ afero.File = (*File)(nil)

// check runs under f.fs.mu: dead filesystem first, then closed handle.
func (f *File) check(op string) error {
	if f.fs.crashed != nil {
		return pathErr(op, f.name, ErrCrashed)
	}
	if f.closed {
		return pathErr(op, f.name, os.ErrClosed)
	}
	return nil
}

func (f *File) checkWrite(op string) error {
	if err := f.check(op); err != nil {
		return err
	}
	if f.ino.dir {
		return pathErr(op, f.name, errIsDir)
	}
	if f.flag&(os.O_WRONLY|os.O_RDWR) == 0 {
		return pathErr(op, f.name, errBadFd)
	}
	return nil
}

func (f *File) checkRead(op string) error {
	if err := f.check(op); err != nil {
		return err
	}
	if f.ino.dir {
		return pathErr(op, f.name, errIsDir)
	}
	if f.flag&os.O_WRONLY != 0 {
		return pathErr(op, f.name, errBadFd)
	}
	return nil
}

// Name implements afero.File.
func (f *File) Name() string { return f.name }

// Close implements afero.File.
func (f *File) Close() error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.check("close"); err != nil {
		return err
	}
	f.closed = true
	return nil
}

func (f *File) readAtLocked(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, pathErr("read", f.name, errInvalid)
	}
	size := f.ino.cur.size
	if off >= size {
		if len(p) == 0 {
			return 0, nil
		}
		return 0, io.EOF
	}
	n := int(min(int64(len(p)), size-off))
	f.ino.cur.readAt(p[:n], off)
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// ReadAt implements io.ReaderAt.
func (f *File) ReadAt(p []byte, off int64) (int, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.checkRead("read"); err != nil {
		return 0, err
	}
	return f.readAtLocked(p, off)
}

// Read implements io.Reader.
func (f *File) Read(p []byte) (int, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.checkRead("read"); err != nil {
		return 0, err
	}
	n, err := f.readAtLocked(p, f.pos)
	f.pos += int64(n)
	return n, err
}

func (f *File) writeAtLocked(p []byte, off int64, frozen bool) (int, error) {
	if off < 0 {
		return 0, pathErr("write", f.name, errInvalid)
	}
	if len(p) == 0 {
		return 0, nil
	}
	if err := f.fs.writeLocked(f.ino, f.path, p, off, frozen); err != nil {
		return 0, pathErr("write", f.name, err)
	}
	return len(p), nil
}

// WriteAt implements io.WriterAt. Every non-empty call is one recorded
// write operation.
func (f *File) WriteAt(p []byte, off int64) (int, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.checkWrite("write"); err != nil {
		return 0, err
	}
	return f.writeAtLocked(p, off, false)
}

// WriteAtFrozen is WriteAt for bytes the caller never changes again, for
// as long as the filesystem, its crash points or anything built from
// them may read them: they are kept as they are, not copied (a
// workload's setup writes whole backing files it generated for the
// purpose; see props/workload). Changing p afterwards changes what the
// file, the trace and every crash state read.
func (f *File) WriteAtFrozen(p []byte, off int64) (int, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.checkWrite("write"); err != nil {
		return 0, err
	}
	return f.writeAtLocked(p, off, true)
}

// Write implements io.Writer (at the end of the file with O_APPEND).
func (f *File) Write(p []byte) (int, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.checkWrite("write"); err != nil {
		return 0, err
	}
	if f.flag&os.O_APPEND != 0 {
		f.pos = f.ino.cur.size
	}
	n, err := f.writeAtLocked(p, f.pos, false)
	f.pos += int64(n)
	return n, err
}

// WriteString implements afero.File.
func (f *File) WriteString(s string) (int, error) { return f.Write([]byte(s)) }

// Seek implements io.Seeker.
func (f *File) Seek(offset int64, whence int) (int64, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.check("seek"); err != nil {
		return 0, err
	}
	var base int64
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		base = f.pos
	case io.SeekEnd:
		base = f.ino.cur.size
	case SeekData, SeekHole:
		c := &f.ino.cur
		if offset < 0 || offset >= c.size {
			return 0, pathErr("seek", f.name, ErrNoData)
		}
		var pos int64
		if whence == SeekData {
			pos = c.nextData(offset)
		} else {
			pos = c.nextHole(offset) // walks the data pages up to the hole: only when asked
		}
		if pos < 0 {
			return 0, pathErr("seek", f.name, ErrNoData)
		}
		f.pos = pos
		return pos, nil
	default:
		return 0, pathErr("seek", f.name, errInvalid)
	}
	if base+offset < 0 {
		return 0, pathErr("seek", f.name, errInvalid)
	}
	f.pos = base + offset
	return f.pos, nil
}

// SeekData and SeekHole are the whence values of Linux's lseek(2) that
// File.Seek also accepts: the first offset at or after the given one that
// holds data, or that is in a hole (the end of the file counts as a hole).
// Holes are the 4 KiB pages no write ever reached (a file extended by
// Truncate, or a gap left by a write past the end); a page may be
// reported as data and read zeros, as on a real filesystem. An offset at
// or past the end, or SeekData with no data after it, fails with
// ErrNoData, as lseek fails with ENXIO. They let a reader of a big sparse
// file (a QED image with 1 GiB tables) skip what it would read as zeros;
// os.File.Seek passes the same values to lseek on Linux.
const (
	SeekData = 3
	SeekHole = 4
)

// Truncate implements afero.File: one recorded truncate operation.
func (f *File) Truncate(size int64) error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.checkWrite("truncate"); err != nil {
		return err
	}
	if size < 0 {
		return pathErr("truncate", f.name, errInvalid)
	}
	if err := f.fs.truncateLocked(f.ino, f.path, size); err != nil {
		return pathErr("truncate", f.name, err)
	}
	return nil
}

// Sync implements afero.File. On a file it makes the file's data and
// length durable (not its directory entry); on a directory it makes the
// directory's current entries durable.
func (f *File) Sync() error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.check("sync"); err != nil {
		return err
	}
	var err error
	if f.ino.dir {
		err = f.fs.dirSyncLocked(f.ino, f.path)
	} else {
		err = f.fs.syncLocked(f.ino, f.path)
	}
	if err != nil {
		return pathErr("sync", f.name, err)
	}
	return nil
}

// Stat implements afero.File.
func (f *File) Stat() (os.FileInfo, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.check("stat"); err != nil {
		return nil, err
	}
	return infoOf(f.path, f.ino), nil
}

// Readdir implements afero.File for directories, in name order.
func (f *File) Readdir(count int) ([]os.FileInfo, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.check("readdir"); err != nil {
		return nil, err
	}
	if !f.ino.dir {
		return nil, pathErr("readdir", f.name, errNotDir)
	}
	kids := f.fs.childrenLocked(f.path)
	if f.dirPos > len(kids) {
		f.dirPos = len(kids)
	}
	kids = kids[f.dirPos:]
	if count > 0 && len(kids) == 0 {
		return nil, io.EOF
	}
	if count > 0 && len(kids) > count {
		kids = kids[:count]
	}
	f.dirPos += len(kids)
	out := make([]os.FileInfo, 0, len(kids))
	for _, p := range kids {
		ino, _ := f.fs.lookupLocked(p)
		out = append(out, infoOf(p, ino))
	}
	return out, nil
}

// Readdirnames implements afero.File.
func (f *File) Readdirnames(n int) ([]string, error) {
	fis, err := f.Readdir(n)
	names := make([]string, len(fis))
	for i, fi := range fis {
		names[i] = fi.Name()
	}
	return names, err
}

var _ fs.FileInfo = (*fileInfo)(nil)
