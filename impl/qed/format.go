package qed

// The QED wire format, written once.
//
// A QED file is a sequence of clusters:
//
//	+--------+----------+----------+----------+-----+
//	| header | L1 table | cluster  | cluster  | ... |
//	+--------+----------+----------+----------+-----+
//	 header_size  table_size   data clusters and L2 tables,
//	 clusters     clusters     appended in allocation order
//
// The header's fixed fields (all little-endian, names as in qed_spec.txt):
//
//	offset size field
//	     0    4 magic                   "QED\0"
//	     4    4 cluster_size            bytes, power of two, 4 KiB..64 MiB
//	     8    4 table_size              clusters per table, power of two, 1..16
//	    12    4 header_size             clusters of header + extra data
//	    16    8 features                incompatible feature bits
//	    24    8 compat_features         compatible feature bits
//	    32    8 autoclear_features      cleared by software that does not know them
//	    40    8 l1_table_offset         bytes
//	    48    8 image_size              guest bytes, multiple of 512
//	    56    4 backing_filename_offset bytes from the file start
//	    60    4 backing_filename_size   bytes, not NUL-terminated
//
// L1 and L2 tables are arrays of little-endian u64 entries. L1 entry 0 means
// "no L2 table"; L2 entry 0 means "unallocated", 1 means "zero cluster";
// anything else is the byte offset of an L2 table (L1) or data cluster (L2).

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
)

// Byte offsets of the header fields.
const (
	offMagic                 = 0
	offClusterSize           = offMagic + 4
	offTableSize             = offClusterSize + 4
	offHeaderSize            = offTableSize + 4
	offFeatures              = offHeaderSize + 4
	offCompatFeatures        = offFeatures + 8
	offAutoclearFeatures     = offCompatFeatures + 8
	offL1TableOffset         = offAutoclearFeatures + 8
	offImageSize             = offL1TableOffset + 8
	offBackingFilenameOffset = offImageSize + 8
	offBackingFilenameSize   = offBackingFilenameOffset + 4
	endOfHeaderFields        = offBackingFilenameSize + 4
)

// Format constants that are not part of the public contract in api.go.
const (
	// KnownCompatFeatures and KnownAutoclearFeatures are the compat and
	// autoclear bits this implementation understands (none are defined).
	KnownCompatFeatures    = 0
	KnownAutoclearFeatures = 0

	// SectorSize is the granularity of image_size and of table updates.
	SectorSize = 512

	// MaxBackingFilenameSize bounds the backing name read from a header,
	// as QEMU does (its name buffer holds 4096 bytes including the NUL).
	MaxBackingFilenameSize = 4095

	// DefaultMaxBackingDepth bounds backing chains when OpenOptions leaves
	// MaxBackingDepth at 0.
	DefaultMaxBackingDepth = 16

	entrySize = 8 // bytes per table entry

	l2ZeroCluster = 1 // L2 entry marking a zero cluster
)

var _ = [1]struct{}{}[endOfHeaderFields-HeaderFieldsSize] // layout and constant agree

// decodeHeader reads the fixed header fields from b (at least
// HeaderFieldsSize bytes). It is the mirror of encodeHeader.
func decodeHeader(b []byte) Header {
	le := binary.LittleEndian
	return Header{
		Magic:                 le.Uint32(b[offMagic:]),
		ClusterSize:           le.Uint32(b[offClusterSize:]),
		TableSize:             le.Uint32(b[offTableSize:]),
		HeaderSize:            le.Uint32(b[offHeaderSize:]),
		Features:              le.Uint64(b[offFeatures:]),
		CompatFeatures:        le.Uint64(b[offCompatFeatures:]),
		AutoclearFeatures:     le.Uint64(b[offAutoclearFeatures:]),
		L1TableOffset:         le.Uint64(b[offL1TableOffset:]),
		ImageSize:             le.Uint64(b[offImageSize:]),
		BackingFilenameOffset: le.Uint32(b[offBackingFilenameOffset:]),
		BackingFilenameSize:   le.Uint32(b[offBackingFilenameSize:]),
	}
}

// encodeHeader writes the fixed header fields of h into b (at least
// HeaderFieldsSize bytes). It is the mirror of decodeHeader; the backing
// name itself is not part of the fixed fields.
func encodeHeader(h *Header, b []byte) {
	le := binary.LittleEndian
	le.PutUint32(b[offMagic:], h.Magic)
	le.PutUint32(b[offClusterSize:], h.ClusterSize)
	le.PutUint32(b[offTableSize:], h.TableSize)
	le.PutUint32(b[offHeaderSize:], h.HeaderSize)
	le.PutUint64(b[offFeatures:], h.Features)
	le.PutUint64(b[offCompatFeatures:], h.CompatFeatures)
	le.PutUint64(b[offAutoclearFeatures:], h.AutoclearFeatures)
	le.PutUint64(b[offL1TableOffset:], h.L1TableOffset)
	le.PutUint64(b[offImageSize:], h.ImageSize)
	le.PutUint32(b[offBackingFilenameOffset:], h.BackingFilenameOffset)
	le.PutUint32(b[offBackingFilenameSize:], h.BackingFilenameSize)
}

// validClusterSize reports whether cs is a power of two in range.
func validClusterSize(cs uint32) bool {
	return cs >= MinClusterSize && cs <= MaxClusterSize && cs&(cs-1) == 0
}

// validTableSize reports whether ts is a power of two in range.
func validTableSize(ts uint32) bool {
	return ts >= MinTableSize && ts <= MaxTableSize && ts&(ts-1) == 0
}

// MaxImageSize returns n*n*cluster_size, the largest guest size the
// geometry can address, with n = table_size*cluster_size/8 entries per
// table. Geometries whose maximum exceeds 2^64-1 return math.MaxUint64
// (QEMU computes this product modulo 2^64 and so refuses every non-zero
// size for, e.g., 2 MiB clusters with 16-cluster tables).
func MaxImageSize(clusterSize, tableSize uint32) uint64 {
	n := uint64(tableSize) * uint64(clusterSize) / entrySize
	if defect(DefectMaxSizeOverflow) {
		return uint64(uint32(n * n * uint64(clusterSize)))
	}
	hi, l2span := bits.Mul64(n, uint64(clusterSize))
	if hi != 0 {
		return math.MaxUint64
	}
	hi, max := bits.Mul64(l2span, n)
	if hi != 0 {
		return math.MaxUint64
	}
	return max
}

// validImageSize applies the spec's rules for image_size.
func validImageSize(size uint64, cs, ts uint32) bool {
	return size%SectorSize == 0 && size <= MaxImageSize(cs, ts)
}

// geometry holds the derived quantities of a validated header.
type geometry struct {
	clusterSize uint64
	tableSize   uint64 // clusters per table
	headerBytes uint64 // header_size * cluster_size
	nelems      uint64 // entries per table
	tableBytes  uint64 // table_size * cluster_size
	l2Shift     uint
	l1Shift     uint
	l2Mask      uint64
	// sparseTables: tables are bigger than maxWholeTable, so a new image's
	// L1 table and a new L2 table are made by extending the file, and only
	// the sectors holding entries are written (issue 19: a 1 GiB table of
	// zeros written per new table made big geometries unusable), and they
	// are held in memory in pages, only those holding entries (table.go).
	// Smaller tables are written whole, one write as before.
	sparseTables bool
}

// maxWholeTable is the largest table written whole when it is new (and
// held whole in memory). It was 1 MiB until issue 19's goal 2: QEMU's
// default geometry (64 KiB clusters, 4-cluster tables: 256 KiB tables)
// is above it, so a new image's L1 table and every new L2 table are made
// by extending the file (the same bytes as a written table of zeros:
// QEMU reads them alike), and the checkers skip the holes; judging a
// crash state of a sparse 1 GiB image cost 4.4-4.75x one of a 1 MiB image
// with whole tables, 2.6-2.8x with sparse ones (docs/campaigns.md).
const maxWholeTable = 64 << 10

func newGeometry(h *Header) geometry {
	g := geometry{
		clusterSize: uint64(h.ClusterSize),
		tableSize:   uint64(h.TableSize),
		headerBytes: uint64(h.HeaderSize) * uint64(h.ClusterSize),
		tableBytes:  uint64(h.TableSize) * uint64(h.ClusterSize),
	}
	g.nelems = g.tableBytes / entrySize
	g.l2Shift = uint(bits.TrailingZeros64(g.clusterSize))
	g.l1Shift = g.l2Shift + uint(bits.TrailingZeros64(g.nelems))
	g.l2Mask = g.nelems - 1
	g.sparseTables = g.tableBytes > maxWholeTable
	return g
}

func (g *geometry) l1Index(pos uint64) uint64       { return pos >> g.l1Shift }
func (g *geometry) l2Index(pos uint64) uint64       { return (pos >> g.l2Shift) & g.l2Mask }
func (g *geometry) offsetInCluster(x uint64) uint64 { return x & (g.clusterSize - 1) }
func (g *geometry) startOfCluster(x uint64) uint64  { return x &^ (g.clusterSize - 1) }

// validClusterOffset reports whether off may point at a data cluster in a
// file whose length, rounded down to a cluster, is fileSize: aligned, after
// the header, before the end.
func (g *geometry) validClusterOffset(off, fileSize uint64) bool {
	if g.offsetInCluster(off) != 0 {
		return false
	}
	return off >= g.headerBytes && off < fileSize
}

// validTableOffset reports whether a whole table fits at off. Unlike
// QEMU 7.2, a table of one cluster is accepted: QEMU's overflow test
// (end <= start) refuses every table offset when table_size is 1, so QEMU
// cannot open the table_size=1 images the spec allows and it creates.
func (g *geometry) validTableOffset(off, fileSize uint64) bool {
	last := off + (g.tableSize-1)*g.clusterSize
	if last < off {
		return false
	}
	return g.validClusterOffset(off, fileSize) && g.validClusterOffset(last, fileSize)
}

// validateHeader checks h in QEMU's order: magic; unknown features;
// cluster_size; table_size; image_size; header_size 0 (not QEMU's);
// l1_table_offset; header_size overflow; backing name bounds. fileLen is the real file length.
func validateHeader(h *Header, fileLen uint64) error {
	if h.Magic != Magic {
		return &FormatError{Field: "magic", Value: uint64(h.Magic), Offset: offMagic,
			Reason: "not a QED image", Err: ErrNotQED}
	}
	if unknown := h.Features &^ KnownFeatures; unknown != 0 {
		return &FormatError{Field: "features", Value: h.Features, Offset: offFeatures,
			Reason: fmt.Sprintf("unknown incompatible features %#x", unknown), Err: ErrUnsupportedFeature}
	}
	if !validClusterSize(h.ClusterSize) {
		return &FormatError{Field: "cluster_size", Value: uint64(h.ClusterSize), Offset: offClusterSize,
			Reason: "must be a power of two from 4 KiB to 64 MiB", Err: ErrInvalidHeader}
	}
	if !validTableSize(h.TableSize) {
		return &FormatError{Field: "table_size", Value: uint64(h.TableSize), Offset: offTableSize,
			Reason: "must be a power of two from 1 to 16", Err: ErrInvalidHeader}
	}
	if !validImageSize(h.ImageSize, h.ClusterSize, h.TableSize) {
		return &FormatError{Field: "image_size", Value: h.ImageSize, Offset: offImageSize,
			Reason: fmt.Sprintf("must be a multiple of 512 and at most %d", MaxImageSize(h.ClusterSize, h.TableSize)),
			Err:    ErrInvalidHeader}
	}
	// QEMU 7.2 accepts 0 (docs/findings.md); the format does not, and a
	// header of no clusters would let tables and data start at offset 0.
	if h.HeaderSize == 0 {
		return &FormatError{Field: "header_size", Value: 0, Offset: offHeaderSize,
			Reason: "must be at least 1 (the header's own cluster)", Err: ErrInvalidHeader}
	}
	g := newGeometry(h)
	fileSize := g.startOfCluster(fileLen)
	if !g.validTableOffset(h.L1TableOffset, fileSize) {
		return &FormatError{Field: "l1_table_offset", Value: h.L1TableOffset, Offset: offL1TableOffset,
			Reason: fmt.Sprintf("not a cluster-aligned table after the header inside the file (%d bytes)", fileLen),
			Err:    ErrInvalidHeader}
	}
	if h.HeaderSize > math.MaxUint32/h.ClusterSize {
		return &FormatError{Field: "header_size", Value: uint64(h.HeaderSize), Offset: offHeaderSize,
			Reason: "header_size * cluster_size overflows 32 bits", Err: ErrInvalidHeader}
	}
	if h.Features&FeatureBackingFile != 0 {
		end := uint64(h.BackingFilenameOffset) + uint64(h.BackingFilenameSize)
		if end > g.headerBytes {
			return &FormatError{Field: "backing_filename_offset", Value: uint64(h.BackingFilenameOffset),
				Offset: offBackingFilenameOffset,
				Reason: fmt.Sprintf("name of %d bytes does not fit in the %d header bytes", h.BackingFilenameSize, g.headerBytes),
				Err:    ErrInvalidHeader}
		}
		if h.BackingFilenameSize > MaxBackingFilenameSize {
			return &FormatError{Field: "backing_filename_size", Value: uint64(h.BackingFilenameSize),
				Offset: offBackingFilenameSize,
				Reason: fmt.Sprintf("longer than %d bytes", MaxBackingFilenameSize), Err: ErrInvalidHeader}
		}
		if end > fileLen {
			return &FormatError{Field: "backing_filename_offset", Value: uint64(h.BackingFilenameOffset),
				Offset: offBackingFilenameOffset,
				Reason: fmt.Sprintf("name ends at %d, past the end of the file (%d bytes)", end, fileLen),
				Err:    ErrInvalidHeader}
		}
	}
	return nil
}

// decodeTable decodes little-endian u64 entries from b into dst.
func decodeTable(dst []uint64, b []byte) {
	for i := range dst {
		dst[i] = binary.LittleEndian.Uint64(b[i*entrySize:])
	}
}

// encodeTable is the mirror of decodeTable.
func encodeTable(b []byte, src []uint64) {
	for i, v := range src {
		binary.LittleEndian.PutUint64(b[i*entrySize:], v)
	}
}

// decodeMagic reads the magic field from the first bytes of a file.
func decodeMagic(b []byte) uint32 { return binary.LittleEndian.Uint32(b[offMagic:]) }
