package qed

import (
	"errors"
	"fmt"
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
