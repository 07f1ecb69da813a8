package target

import "github.com/spf13/afero"

// Mapper is an optional capability of a Disk: its allocation map, what
// `qemu-img map` shows. The workload op "map" asks for it and judges it
// against the model of the guest disk (a range the map says reads as
// zeros must be zeros); on a Disk without it the op does nothing.
type Mapper interface {
	// Map returns the guest ranges of the image in order, together
	// covering [0, Size()) exactly, each with what backs it.
	Map() ([]Extent, error)
}

// ExtentKind is what backs one guest range of a Mapper's map.
type ExtentKind uint8

// The extent kinds.
const (
	// ExtentUnallocated reads through to the backing file (zeros
	// without one).
	ExtentUnallocated ExtentKind = iota
	// ExtentZero reads as zeros whatever the backing file holds.
	ExtentZero
	// ExtentData is allocated in the image at HostOffset.
	ExtentData
)

// Extent is one guest range of a Mapper's map.
type Extent struct {
	Start, Length int64
	Kind          ExtentKind
	HostOffset    int64 // ExtentData only: where the range starts in the image file
}

// Strict is an optional capability of a Disk: it refuses, with an error
// and without changing the guest disk or its size, a read, write or
// write-zeroes that starts past the end of the image, reaches past it or
// has a negative offset or length, and a Resize that shrinks the image,
// is not a multiple of 512 or is beyond the format's limit; a read-only
// Disk refuses writes, write-zeroes and Resize; a closed Disk refuses
// every call but Size. The workload ops "refused" and "reopen-ro" make
// such calls on a Strict Disk and require the refusals; on another Disk
// they do not (the Disk contract leaves those calls undefined).
type Strict interface {
	RefusesInvalid()
}

// Hardened is an optional capability of a Disk: its Target creates and
// opens images on any afero.Fs (an in-memory one included) and handles
// hostile images as the format requires: it refuses an image whose header
// the format forbids (and a creation the format forbids), refuses or
// detects damaged tables, and repairs them (a writable open of an image
// with NEED_CHECK set, a repairing check) without changing the guest
// clusters the damage did not touch. The workload op "hostile" builds such
// images in a private in-memory filesystem and judges this; on another
// Disk it does nothing.
type Hardened interface {
	RefusesHostile()
}

// Informer is an optional capability of a Disk: what `qemu-img info`
// shows of the open image. The workload op "map" judges it against the
// workload's geometry and the model (and reopen-ro its ReadOnly); on a
// Disk without it, nothing is asked.
type Informer interface {
	Info() Info
}

// HeaderReader is a Target that reads an image's info from its header
// alone, without opening the image or its backing chain, and without
// disturbing a writer that has it open (`qemu-img info -U`; impl/qed:
// qed.ReadHeaderWith with ForceShare, what `qedtorture info` reads). The
// workload op "map" judges that it says what the open image says. Path
// is the path given; Files and ReadOnly are not set.
type HeaderReader interface {
	ReadInfo(fs afero.Fs, path string) (Info, error)
}

// Info describes an open image.
type Info struct {
	Path                   string // the path the image was opened at
	ClusterSize, TableSize uint32
	Size                   int64  // the guest size
	BackingFile            string // the backing file name as the header stores it; "" for none
	Files                  int    // the files the image reads: itself and each of its backing chain
	ReadOnly               bool
}

// Idler is an optional capability of a Disk: Idle lets the disk's idle
// time pass (its clock advanced past the delay after which the
// implementation does its idle work: impl/qed's flush and clear of
// NEED_CHECK once no allocating write came for a while) and returns once
// that work is done. The work happens at this point of the run and at
// no other, so that a recording has its writes at a fixed place of the
// trace and replays exactly (a real timer would fire at a time no trace
// fixes). The workload op "idle" calls it; on a Disk without it the op
// does nothing.
type Idler interface {
	Idle() error
}
