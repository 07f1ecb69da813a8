package qed

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/qedtorture/qedtorture/internal/imagelock"
)

// Sentinel errors callers can branch on with errors.Is.
var (
	ErrNotQED             = errors.New("qed: not a QED image")
	ErrUnsupportedFeature = errors.New("qed: unsupported feature")
	ErrInvalidHeader      = errors.New("qed: invalid header")
	ErrCorrupt            = errors.New("qed: corrupt table entry")
	ErrReadOnly           = errors.New("qed: image is read-only")
	ErrOutOfRange         = errors.New("qed: I/O beyond the image size")
	ErrShrink             = errors.New("qed: shrinking an image is not supported")
	ErrClosed             = errors.New("qed: image is closed")
	ErrBackingLoop        = errors.New("qed: backing chain loops")
	ErrBackingDepth       = errors.New("qed: backing chain too deep")
	ErrInvalidOption      = errors.New("qed: invalid option")
)

// FormatError describes malformed on-disk data: which field, its value,
// and the file offset where it was read.
type FormatError struct {
	Field  string // field name as in the spec, e.g. "cluster_size" or "L2[3]"
	Value  uint64 // the offending value
	Offset int64  // file offset of the field
	Reason string // what rule it breaks
	Err    error  // the sentinel it matches (ErrNotQED, ErrInvalidHeader, ...)
}

func (e *FormatError) Error() string {
	return fmt.Sprintf("qed: %s = %#x at offset %d: %s", e.Field, e.Value, e.Offset, e.Reason)
}

// Unwrap returns the sentinel error this FormatError belongs to.
func (e *FormatError) Unwrap() error { return e.Err }

// FileError is an error about one file: the image, or a file of its
// backing chain. Its message names the file once, first, as
// "PATH: OP: CAUSE" (or "PATH: CAUSE"): an *fs.PathError cause is shown
// without its own copy of the path, a *FormatError cause without its "qed: "
// prefix. Open, Create and ReadHeader return their errors as *FileError,
// except an image-lock conflict, which is an *imagelock.ConflictError (its
// message, modelled on QEMU's, names the file itself).
type FileError struct {
	Path string
	Op   string // what was being done; "" when the cause says it
	Err  error
}

func (e *FileError) Error() string {
	var cause string
	switch c := e.Err.(type) {
	case *fs.PathError:
		cause = c.Err.Error()
		if e.Op == "" {
			cause = c.Op + ": " + cause
		}
	case *FormatError:
		cause = strings.TrimPrefix(c.Error(), "qed: ")
	case *FileError:
		if c.Path == e.Path {
			cause = strings.TrimPrefix(c.Error(), c.Path+": ")
		} else {
			cause = c.Error()
		}
	default:
		cause = e.Err.Error()
	}
	if e.Op == "" {
		return e.Path + ": " + cause
	}
	return e.Path + ": " + e.Op + ": " + cause
}

// Unwrap returns the cause.
func (e *FileError) Unwrap() error { return e.Err }

// fileErr wraps err as a *FileError about path, unless err is nil or a lock
// conflict (which names its file already).
func fileErr(path, op string, err error) error {
	if err == nil {
		return nil
	}
	var ce *imagelock.ConflictError
	if errors.As(err, &ce) && op == "" {
		return err
	}
	return &FileError{Path: path, Op: op, Err: err}
}
