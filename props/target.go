package props

import (
	"io"

	"github.com/spf13/afero"
)

// Target is a QED implementation under test: the one door through which
// the properties, the torture campaign and the differential tests reach an
// implementation. impl/qed is driven through exactly this interface (see
// QEDTarget); another implementation supplies its own adapter.
//
// Every file access of the implementation must go through the afero.Fs it
// is given, so that the crash and fault layers see it.
type Target interface {
	// Name identifies the implementation in reports ("impl/qed", "qemu").
	Name() string
	// Create makes a new image at path.
	Create(fs afero.Fs, path string, opts CreateOptions) error
	// Open opens the image at path. A writable open of an image whose
	// NEED_CHECK bit is set must check and repair it first.
	Open(fs afero.Fs, path string, opts OpenOptions) (Disk, error)
}

// CreateOptions are the creation parameters of an image under test.
type CreateOptions struct {
	Size          int64
	ClusterSize   uint32
	TableSize     uint32
	BackingFile   string // as stored in the header: relative to the image's directory, or absolute
	BackingFormat string // "", "qed" or "raw"
}

// OpenOptions are the open parameters of an image under test.
type OpenOptions struct {
	ReadOnly bool
}

// Disk is an open image: guest I/O at any offset and length.
// Implementations must allow concurrent WriteAt/ReadAt/WriteZeroes calls.
type Disk interface {
	io.ReaderAt
	io.WriterAt
	WriteZeroes(off, length int64) error
	Flush() error
	Close() error
	Size() int64
	Resize(size int64) error
	// Check runs the implementation's own consistency check.
	Check(repair bool) (CheckResult, error)
}

// CheckResult is the part of a consistency-check report the properties
// rely on (the names follow `qemu-img check`).
type CheckResult struct {
	Corruptions      int64
	CorruptionsFixed int64
	Leaks            int64
	CheckErrors      int64
}
