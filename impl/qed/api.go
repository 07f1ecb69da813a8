package qed

// This file is the package's public contract. Other packages (cmd/qedtorture,
// props, the interop tests) are written against it while the implementation
// is being built; change a signature here only together with its callers.

import "time"

// Format constants from the QED specification.
const (
	Magic = 0x00444551 // "QED\0" as a little-endian uint32

	HeaderFieldsSize = 64 // bytes of fixed header fields at the start of the file

	DefaultClusterSize = 64 * 1024
	MinClusterSize     = 4 * 1024
	MaxClusterSize     = 64 * 1024 * 1024
	DefaultTableSize   = 4
	MinTableSize       = 1
	MaxTableSize       = 16

	FeatureBackingFile    = 0x01 // features: the image has a backing file
	FeatureNeedCheck      = 0x02 // features: the image may be inconsistent
	FeatureBackingNoProbe = 0x04 // features: the backing file is raw, never probe

	KnownFeatures = FeatureBackingFile | FeatureNeedCheck | FeatureBackingNoProbe

	// DefaultIdleClearDelay is how long an image must see no allocating
	// write before NEED_CHECK is cleared (after a flush).
	DefaultIdleClearDelay = 5 * time.Second
)

// Header is the decoded fixed part of a QED header plus the backing name.
type Header struct {
	Magic                 uint32
	ClusterSize           uint32
	TableSize             uint32
	HeaderSize            uint32 // in clusters
	Features              uint64
	CompatFeatures        uint64
	AutoclearFeatures     uint64
	L1TableOffset         uint64
	ImageSize             uint64
	BackingFilenameOffset uint32
	BackingFilenameSize   uint32
	BackingFilename       string // decoded name, "" without FeatureBackingFile
}

// CreateOptions configure Create. Zero values select the defaults.
type CreateOptions struct {
	Size          uint64 // guest size in bytes; multiple of 512 (0 allowed)
	ClusterSize   uint32 // 0 = DefaultClusterSize
	TableSize     uint32 // 0 = DefaultTableSize
	BackingFile   string // "" = no backing file; stored verbatim in the header
	BackingFormat string // "", "qed" or "raw"; "raw" sets FeatureBackingNoProbe
	// NoLock skips the image locks (lock.go) Create otherwise takes on a
	// real OS file before truncating it.
	NoLock bool
}

// Clock abstracts time for the idle NEED_CHECK clear timer so tests can
// drive it deterministically.
type Clock interface {
	Now() time.Time
	// AfterFunc runs f after d; Stop on the returned Timer cancels it.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is the cancellation handle returned by Clock.AfterFunc.
type Timer interface {
	Stop() bool
}

// OpenOptions configure Open. Zero values select the defaults.
type OpenOptions struct {
	ReadOnly bool
	// Clock drives the idle NEED_CHECK clear; nil = the real clock.
	Clock Clock
	// IdleClearDelay overrides DefaultIdleClearDelay; negative disables
	// the idle clear (NEED_CHECK is then cleared only on flush-at-close
	// and after repair).
	IdleClearDelay time.Duration
	// L2CacheTables bounds the number of L2 tables cached; 0 = default.
	L2CacheTables int
	// MaxBackingDepth bounds backing chains; 0 = default (16).
	MaxBackingDepth int
	// NoLock skips the QEMU-compatible image locks (lock.go) an open of a
	// real OS file otherwise takes on the image and its backing chain.
	NoLock bool
	// ForceShare (read-only opens only, like qemu-img -U) takes the locks
	// that share every permission: the open coexists with a writer, and
	// may read an image that is changing under it.
	ForceShare bool

	// writeDepth, set only by Commit, opens the backing file at that
	// depth of the chain (1: the image's own backing file) writable.
	writeDepth int
	// shareChain, set only by Rebase, opens every backing file with the
	// force-share locks (qemu-img rebase -U).
	shareChain bool
}

// CheckReport carries the same counts as `qemu-img check` for a QED image.
type CheckReport struct {
	Corruptions      int64 // invalid entries and double references found
	CorruptionsFixed int64 // invalid entries cleared by repair
	Leaks            int64 // clusters past the header that nothing references
	LeaksFixed       int64 // always 0: QED never reclaims leaks
	Allocated        int64 // data clusters referenced by L2 tables
	Fragmented       int64 // allocated clusters not contiguous with their guest predecessor
	TotalClusters    int64 // ceil(image_size / cluster_size)
	CheckErrors      int64 // I/O errors while checking
	ImageEndOffset   int64 // host file length
	// Problems lists each finding in words (kind, table, index, value).
	Problems []string
}

// ExtentKind classifies a guest range in Map.
type ExtentKind int

const (
	ExtentUnallocated ExtentKind = iota // reads through to the backing file (or zeros)
	ExtentZero                          // zero cluster (L2 entry 1)
	ExtentData                          // allocated in this image at HostOffset
)

// Extent is one run of guest bytes with the same mapping kind, contiguous
// in the host file for ExtentData.
type Extent struct {
	Start, Length int64
	Kind          ExtentKind
	HostOffset    int64 // valid for ExtentData
}
