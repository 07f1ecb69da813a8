// Package target is the door between the suite and a QED implementation
// under test: the interface every adapter implements (Target and the Disk
// it opens) and the optional capabilities an adapter may add.
//
// It is a leaf: it imports no project package (only io and afero), so an
// adapter (impl/qed/qedtarget, impl/qemu, another module's) depends on
// nothing of the harness, and the harness (the oracle, the campaign
// engine, the state machine) on no implementation. props keeps aliases of
// these names (props.Target, props.Disk, ...) for existing callers.
//
// Guarantees an adapter gives, which the oracle relies on:
//
//   - Every file access of the implementation goes through the afero.Fs it
//     is handed (Create, Open), so that the crash layer (crashsim) and the
//     fault layer (faultfs) see every byte and every sync.
//   - A writable Open of an image whose NEED_CHECK bit is set checks and
//     repairs it first (recovery after a crash is opening it).
//   - Disk.Flush returns only once every write acknowledged before it is
//     durable (its data and the metadata that maps it).
//   - Errors are returned, never panics, whatever the files hold.
package target

import (
	"io"

	"github.com/spf13/afero"
)

// Target is a QED implementation under test: the one door through which
// the properties, the torture campaign and the differential tests reach an
// implementation. impl/qed is driven through exactly this interface (its
// adapter is impl/qed/qedtarget); another implementation supplies its own
// adapter.
//
// Every file access of the implementation must go through the afero.Fs it
// is given, so that the crash and fault layers see it.
type Target interface {
	// Name identifies the implementation in reports ("impl/qed", "qemu",
	// "broken:noflush"): the campaign's --target name.
	Name() string
	// Create makes a new image at path.
	Create(fs afero.Fs, path string, opts CreateOptions) error
	// Open opens the image at path. A writable open of an image whose
	// NEED_CHECK bit is set must check and repair it first.
	Open(fs afero.Fs, path string, opts OpenOptions) (Disk, error)
}

// The QED format's default cluster size (bytes) and table size
// (clusters): what an implementation creates for a CreateOptions size of
// 0, as QEMU does.
const (
	DefaultClusterSize = 65536
	DefaultTableSize   = 4
)

// CreateOptions are the creation parameters of an image under test.
type CreateOptions struct {
	Size int64
	// ClusterSize and TableSize, 0: the format's defaults
	// (DefaultClusterSize, DefaultTableSize), as `qemu-img create`
	// without those options.
	ClusterSize   uint32
	TableSize     uint32
	BackingFile   string // as stored in the header: relative to the image's directory, or absolute
	BackingFormat string // "", "qed" or "raw"
}

// OpenOptions are the open parameters of an image under test.
type OpenOptions struct {
	ReadOnly bool
	// L2CacheTables, when positive, asks an implementation that caches
	// L2 tables to hold at most this many (a small cache evicts tables
	// the image goes on using: its write-back and re-reads are tested);
	// 0: its default. A hint: implementations without such a cache, or
	// without the knob (QEMU's qed driver), ignore it.
	L2CacheTables int
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

// ReadLimiter is an optional capability of a Target: the target must be
// judged with the oracle reading whole images only up to FullReadLimit
// bytes (the oracle's FullReadLimit option; 0 = the oracle's default).
// Above it the oracle reads back only what the image's map and the model
// say can differ, which is the path a target exercising it stands for (a
// seeded defect that loses a mapping on a big image, reached with the
// small images of a campaign through a small limit). The campaign applies
// it and records it in its artifacts, so that a replay judges alike.
type ReadLimiter interface {
	FullReadLimit() int64
}
