package target

// GroupWrite is one write of a concurrent group handed to a GroupWriter:
// Data at Off, or Len zero bytes when Zero is set (Data nil).
type GroupWrite struct {
	Off  int64
	Len  int64
	Zero bool
	Data []byte
}

// GroupWriter is a Disk whose concurrent writes the implementation must
// issue itself, all in flight at once (qemu-io's aio_write and
// aio_flush), instead of the executor's goroutines each calling WriteAt.
// WriteGroup returns once every write of the group has completed (or
// failed); the writes may complete in any order.
type GroupWriter interface {
	Disk
	WriteGroup(ws []GroupWrite) error
	// PatternOnly reports that each write can only carry one repeated
	// byte (aio_write -P): the executor then writes GroupPattern(id)
	// bytes and records them in the model as such.
	PatternOnly() bool
}

// GroupPattern is the byte a pattern-only GroupWriter writes for the
// group write with id: non-zero and distinct for neighbouring ids.
func GroupPattern(id uint32) byte { return byte(id%255) + 1 }

// PatternVerifier is a Disk that can check a range against one repeated
// byte itself (qemu-io's `read -P`), without handing the bytes out: the
// executor's read-back of a concurrent group of a pattern-only
// GroupWriter asks it about each stretch whose value only one byte can
// be, and reads (and judges) the bytes of a stretch it finds otherwise.
// For QEMU that spares a hex dump (`read -v`) of every byte a group
// wrote, which both ends spend most of a recording's CPU on.
type PatternVerifier interface {
	Disk
	// VerifyPattern reports whether every byte of [off, off+n) reads as
	// b (false: some byte differs); err is for a read that failed.
	VerifyPattern(off, n int64, b byte) (bool, error)
}
