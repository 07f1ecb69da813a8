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
