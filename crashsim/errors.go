package crashsim

import (
	"errors"
	"fmt"
	"syscall"
)

var (
	// ErrCrashed is returned by every operation on a filesystem (or one of
	// its open files) after it crashed, so goroutines still holding the old
	// instance cannot leak writes into the recovered one.
	ErrCrashed = errors.New("crashsim: filesystem has crashed")
	// ErrBadStateID reports a crash-state identity that does not parse or
	// does not fit its crash point (model, ordinal out of range).
	ErrBadStateID = errors.New("crashsim: bad crash state id")
	// ErrBadModel reports an unknown or inconsistent crash model name.
	ErrBadModel = errors.New("crashsim: bad crash model")
	// ErrReplay reports a trace operation that cannot be applied to the
	// image it is replayed on (missing file, wrong file id, ...).
	ErrReplay = errors.New("crashsim: trace does not replay")
	// ErrUnsupported reports a filesystem operation crashsim does not model
	// (renaming a directory, removing a non-empty directory).
	ErrUnsupported = errors.New("crashsim: unsupported operation")
	// ErrFinal is returned by FS.Point on a filesystem made with
	// Options.Final, which keeps no unsynced operations to enumerate.
	ErrFinal = errors.New("crashsim: filesystem is final (it cannot crash)")
	// ErrNoData is File.Seek's error for SeekData or SeekHole at or past
	// the end of the file, or SeekData with no data after the offset. It
	// is lseek's ENXIO: errors.Is(ErrNoData, syscall.ENXIO) holds, so a
	// reader handles an os.File and a crashsim File alike.
	ErrNoData error = noDataError{}
	// ErrFormat is wrapped by every *FormatError.
	ErrFormat = errors.New("crashsim: malformed input")
)

// FormatError describes malformed serialized input (an encoded trace or a
// dm-log-writes log): which field, its value, the entry index (-1 when not
// inside an entry) and the byte offset where it was found.
type FormatError struct {
	Source string // "trace" or "dm-log"
	Entry  int64  // entry (operation) index, -1 for headers
	Offset int64  // byte offset of the field in the input
	Field  string
	Value  uint64
	Msg    string
}

func (e *FormatError) Error() string {
	where := fmt.Sprintf("offset %d", e.Offset)
	if e.Entry >= 0 {
		where = fmt.Sprintf("entry %d at offset %d", e.Entry, e.Offset)
	}
	return fmt.Sprintf("crashsim: %s: %s: %s = %d: %s", e.Source, where, e.Field, e.Value, e.Msg)
}

func (e *FormatError) Unwrap() error { return ErrFormat }

type noDataError struct{}

func (noDataError) Error() string        { return "crashsim: no data at or after the offset" }
func (noDataError) Is(target error) bool { return target == syscall.ENXIO }
