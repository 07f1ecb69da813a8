package check

import (
	"errors"
	"fmt"
	"strings"
)

// Errors returned by the structural checker.
var (
	// ErrInconsistent is wrapped by Report.Err when the
	// image has at least one error-severity violation.
	ErrInconsistent = errors.New("check: image structure inconsistent")
	// ErrRead is wrapped when reading the image failed, so that the
	// check itself could not be completed (qemu-img check's exit code 1).
	ErrRead = errors.New("check: reading image for structure check failed")
)

// ViolationKind classifies a structural violation.
type ViolationKind uint8

// Violation kinds. Header kinds come first, then table placement, data
// entries, double references and the crash invariant.
const (
	ViolNone                          ViolationKind = iota
	ViolShortFile                                   // file shorter than the 64-byte header fields
	ViolBadMagic                                    // magic is not "QED\0"
	ViolBadClusterSize                              // cluster_size not a power of two in 4 KiB..64 MiB
	ViolBadTableSize                                // table_size not a power of two in 1..16
	ViolBadHeaderSize                               // header_size 0, or header_size*cluster_size over 32 bits
	ViolBadImageSize                                // image_size not a multiple of 512, or above the maximum
	ViolUnknownFeatures                             // unknown incompatible feature bits
	ViolBadBackingName                              // backing name range outside the header clusters or the file
	ViolNoProbeWithoutBacking                       // BACKING_FORMAT_NO_PROBE without BACKING_FILE (warning)
	ViolTableMisaligned                             // L1 offset or L1 entry not cluster-aligned
	ViolTableInHeader                               // table starts inside the header clusters
	ViolTablePastEOF                                // table not wholly inside the file
	ViolDataMisaligned                              // L2 entry (not 0 or 1) not cluster-aligned
	ViolDataInHeader                                // L2 entry points into the header clusters
	ViolDataPastEOF                                 // L2 entry points at or past the end of the file
	ViolDoubleRefTableTable                         // a host cluster belongs to two tables
	ViolDoubleRefTableData                          // a host cluster is both a table and a data cluster
	ViolDoubleRefDataData                           // a host cluster is the data of two L2 entries
	ViolNeedCheckClearButInconsistent               // NEED_CHECK clear although the image is inconsistent
	numViolationKinds
)

var violationKindNames = [numViolationKinds]string{
	ViolNone:                          "none",
	ViolShortFile:                     "short-file",
	ViolBadMagic:                      "bad-magic",
	ViolBadClusterSize:                "bad-cluster-size",
	ViolBadTableSize:                  "bad-table-size",
	ViolBadHeaderSize:                 "bad-header-size",
	ViolBadImageSize:                  "bad-image-size",
	ViolUnknownFeatures:               "unknown-features",
	ViolBadBackingName:                "bad-backing-name",
	ViolNoProbeWithoutBacking:         "no-probe-without-backing",
	ViolTableMisaligned:               "table-misaligned",
	ViolTableInHeader:                 "table-in-header",
	ViolTablePastEOF:                  "table-past-eof",
	ViolDataMisaligned:                "data-misaligned",
	ViolDataInHeader:                  "data-in-header",
	ViolDataPastEOF:                   "data-past-eof",
	ViolDoubleRefTableTable:           "double-ref-table-table",
	ViolDoubleRefTableData:            "double-ref-table-data",
	ViolDoubleRefDataData:             "double-ref-data-data",
	ViolNeedCheckClearButInconsistent: "need-check-clear-but-inconsistent",
}

// String returns the kind's stable kebab-case name.
func (k ViolationKind) String() string {
	if k < numViolationKinds {
		return violationKindNames[k]
	}
	return fmt.Sprintf("ViolationKind(%d)", uint8(k))
}

// AllViolationKinds returns every defined kind (ViolNone excluded), in order.
func AllViolationKinds() []ViolationKind {
	ks := make([]ViolationKind, 0, numViolationKinds-1)
	for k := ViolNone + 1; k < numViolationKinds; k++ {
		ks = append(ks, k)
	}
	return ks
}

// isEntryKind reports whether k is an invalid L1/L2 entry: one QEMU
// corruption, removed by a repairing check (the entry is set to 0).
func (k ViolationKind) isEntryKind() bool {
	return k >= ViolTableMisaligned && k <= ViolDataPastEOF
}

// isDoubleRef reports whether k is a double reference (one per cluster).
func (k ViolationKind) isDoubleRef() bool {
	return k >= ViolDoubleRefTableTable && k <= ViolDoubleRefDataData
}

// Severity says whether a violation makes the image inconsistent.
type Severity uint8

const (
	// SeverityError makes the image inconsistent.
	SeverityError Severity = iota
	// SeverityWarning is odd but harmless (e.g. NO_PROBE without a backing file).
	SeverityWarning
)

// String returns "error" or "warning".
func (s Severity) String() string {
	if s == SeverityWarning {
		return "warning"
	}
	return "error"
}

// LocKind says which part of the image a Location points into.
type LocKind uint8

const (
	LocNone   LocKind = iota // no location (e.g. an absent Prior)
	LocHeader                // a header field
	LocL1                    // the L1 table
	LocL2                    // an L2 table
)

// String returns "none", "header", "L1" or "L2".
func (k LocKind) String() string {
	switch k {
	case LocHeader:
		return "header"
	case LocL1:
		return "L1"
	case LocL2:
		return "L2"
	}
	return "none"
}

// Location names where a violation was found.
type Location struct {
	Kind LocKind
	// Field is the header field name (spec spelling), for LocHeader.
	Field string
	// TableIndex is, for LocL2, the L1 index whose entry links the table.
	TableIndex int
	// TableOffset is the host offset of the table, for LocL1 and LocL2.
	TableOffset uint64
	// Entry is the entry index in the table, or -1 for the whole table.
	Entry int
	// Offset is the host byte offset of the header field or of the entry.
	Offset uint64
}

// String renders the location, e.g. "L2[3]@0x5000 entry 17 (host 0x5088)".
func (l Location) String() string {
	switch l.Kind {
	case LocHeader:
		return fmt.Sprintf("header.%s (host 0x%x)", l.Field, l.Offset)
	case LocL1:
		return fmt.Sprintf("L1@0x%x entry %d (host 0x%x)", l.TableOffset, l.Entry, l.Offset)
	case LocL2:
		return fmt.Sprintf("L2[%d]@0x%x entry %d (host 0x%x)", l.TableIndex, l.TableOffset, l.Entry, l.Offset)
	}
	return "nowhere"
}

// Violation is one structural fault.
type Violation struct {
	Kind     ViolationKind
	Severity Severity
	// Repairable is set when NEED_CHECK is set and a repairing check removes
	// the fault (an invalid L1/L2 entry becomes 0).
	Repairable bool
	// At is where the fault was found: the header field, or the L1/L2 entry
	// (for a double reference: the later of the two references).
	At Location
	// Prior is, for a double reference, the first reference to the cluster.
	Prior Location
	// Value is the offending value: the field or entry value, or for a
	// double reference the host offset of the shared cluster.
	Value uint64
	// Msg explains the fault in words.
	Msg string
}

// String renders the violation on one line.
func (v Violation) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s at %s: value 0x%x: %s", v.Severity, v.Kind, v.At, v.Value, v.Msg)
	if v.Prior.Kind != LocNone {
		fmt.Fprintf(&b, " (first referenced by %s)", v.Prior)
	}
	if v.Repairable {
		b.WriteString(" [repairable]")
	}
	return b.String()
}

// Header is the raw decoded header (fields as stored, unvalidated).
type Header struct {
	Magic             uint32
	ClusterSize       uint32
	TableSize         uint32
	HeaderSize        uint32
	Features          uint64
	CompatFeatures    uint64
	AutoclearFeatures uint64
	L1TableOffset     uint64
	ImageSize         uint64
	BackingNameOffset uint32
	BackingNameSize   uint32
}

// Range is a guest byte range [Off, Off+Len): the same shape as the
// model's ranges, declared here so that the checker needs nothing but the
// standard library.
type Range struct{ Off, Len int64 }

// TableRef is a table of the image: at host offset Host, table_size
// clusters long; Index is the L1 entry linking an L2 table, -1 for the L1
// table.
type TableRef struct {
	Host  uint64
	Index int
}

// Report is the result of a structural check.
type Report struct {
	// FileSize is the image file's length in bytes.
	FileSize int64
	// Header holds the decoded header fields (zero when the file is shorter
	// than the header fields).
	Header Header
	// Walked is true when the header was sound enough to walk the tables
	// (magic, cluster_size, table_size and L1 placement valid). Counts below
	// are meaningful only then.
	Walked bool
	// FileClusters is the number of whole clusters in the file.
	FileClusters uint64
	// L2Tables counts the L2 tables walked.
	L2Tables uint64
	// AllocatedClusters counts walked L2 entries that are neither 0 nor 1,
	// valid or not (QEMU's allocated-clusters).
	AllocatedClusters uint64
	// ZeroClusters counts walked L2 entries equal to 1.
	ZeroClusters uint64
	// FragmentedClusters counts allocated entries not following their
	// predecessor in the same L2 table (QEMU's fragmented-clusters).
	FragmentedClusters uint64
	// TotalClusters is ceil(image_size / cluster_size).
	TotalClusters uint64
	// Leaks counts clusters after the header referenced by nothing.
	Leaks uint64
	// Violations lists the faults found, in walk order, at most the
	// checker's limit (see Omitted); Count and Has see all of them.
	Violations []Violation
	// Omitted counts violations found but not stored in Violations.
	Omitted int
	// Mapped lists, ascending, the guest ranges (whole clusters) whose L2
	// entries point at a cluster, valid or not, when the checker's Mapped
	// option is set. Guest ranges outside them read as zeros or from the
	// backing file, by the format.
	Mapped []Range
	// MappedHost[i] is the host offset Mapped[i] starts at (a range is
	// contiguous in the guest and in the file).
	MappedHost []uint64
	// Zeroed lists, ascending, the guest ranges of zero clusters (L2
	// entry 1), with the Mapped option.
	Zeroed []Range
	// Tables lists the tables walked, L1 first (with the Mapped option):
	// where a fault in the file lands in metadata.
	Tables []TableRef

	counts      [numViolationKinds]int
	corruptions int
}

// NeedCheck reports whether the NEED_CHECK feature bit is set.
func (r *Report) NeedCheck() bool {
	return r.FileSize >= hdrFieldsSize && r.Header.Features&featNeedCheck != 0
}

// IsConsistent reports whether the image has no error-severity violation.
// Warnings and leaks do not count.
func (r *Report) IsConsistent() bool {
	for k := ViolNone + 1; k < numViolationKinds; k++ {
		if r.counts[k] > 0 && k != ViolNoProbeWithoutBacking {
			return false
		}
	}
	return true
}

// Count returns how many violations of kind k were found (stored or not).
func (r *Report) Count(k ViolationKind) int {
	if k >= numViolationKinds {
		return 0
	}
	return r.counts[k]
}

// Has reports whether at least one violation of kind k was found.
func (r *Report) Has(k ViolationKind) bool { return r.Count(k) > 0 }

// Kinds returns the distinct kinds found, in kind order.
func (r *Report) Kinds() []ViolationKind {
	var ks []ViolationKind
	for k := ViolNone + 1; k < numViolationKinds; k++ {
		if r.counts[k] > 0 {
			ks = append(ks, k)
		}
	}
	return ks
}

// Corruptions counts faults the way `qemu-img check` does: one per invalid
// L1/L2 entry plus one per doubly referenced cluster.
func (r *Report) Corruptions() int { return r.corruptions }

// RepairableByCheck reports whether a repairing check would leave the
// image consistent: it is consistent already, or NEED_CHECK is set and its
// only errors are invalid L1/L2 entries (which repair sets to 0). This is
// the acceptance test for a raw crash state before recovery.
func (r *Report) RepairableByCheck() bool {
	if r.IsConsistent() {
		return true
	}
	if !r.NeedCheck() {
		return false
	}
	for k := ViolNone + 1; k < numViolationKinds; k++ {
		if r.counts[k] > 0 && k != ViolNoProbeWithoutBacking && !k.isEntryKind() {
			return false
		}
	}
	// An invalid L1 offset in the header is a table kind too, but repair
	// cannot fix it: QEMU refuses to open the image.
	return r.Walked
}

// Unrepairable returns the stored error-severity violations that a
// repairing check would leave in place.
func (r *Report) Unrepairable() []Violation {
	var out []Violation
	for _, v := range r.Violations {
		if v.Severity == SeverityError && !v.Repairable {
			out = append(out, v)
		}
	}
	return out
}

// String lists the counts and every stored violation, one per line.
func (r *Report) String() string {
	var b strings.Builder
	state := "consistent"
	if !r.IsConsistent() {
		state = "INCONSISTENT"
	}
	fmt.Fprintf(&b, "QED structure: %s; file %d bytes, cluster %d, table %d, header %d, features 0x%x, need-check %v\n",
		state, r.FileSize, r.Header.ClusterSize, r.Header.TableSize, r.Header.HeaderSize, r.Header.Features, r.NeedCheck())
	if r.Walked {
		fmt.Fprintf(&b, "clusters: file %d, total %d, allocated %d, zero %d, fragmented %d, leaked %d; L2 tables %d; corruptions %d\n",
			r.FileClusters, r.TotalClusters, r.AllocatedClusters, r.ZeroClusters, r.FragmentedClusters, r.Leaks, r.L2Tables, r.Corruptions())
	} else {
		b.WriteString("tables not walked: header unusable\n")
	}
	for _, v := range r.Violations {
		b.WriteString("  ")
		b.WriteString(v.String())
		b.WriteByte('\n')
	}
	if r.Omitted > 0 {
		fmt.Fprintf(&b, "  ... and %d more violations not listed\n", r.Omitted)
	}
	return b.String()
}

// Err returns nil when the image is consistent, and otherwise a
// *Error wrapping ErrInconsistent.
func (r *Report) Err() error {
	if r.IsConsistent() {
		return nil
	}
	return &Error{Report: r}
}

// Error is an inconsistent image, with its full report.
type Error struct {
	Path   string // the image's path, when known
	Report *Report
}

// Error names the path, the violation kinds and the first violation.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("check: image structure inconsistent")
	if e.Path != "" {
		fmt.Fprintf(&b, ": %s", e.Path)
	}
	ks := e.Report.Kinds()
	names := make([]string, len(ks))
	for i, k := range ks {
		names[i] = fmt.Sprintf("%s×%d", k, e.Report.Count(k))
	}
	fmt.Fprintf(&b, " [%s]", strings.Join(names, " "))
	for _, v := range e.Report.Violations {
		if v.Severity == SeverityError {
			fmt.Fprintf(&b, "; first: %s", v)
			break
		}
	}
	return b.String()
}

// Unwrap returns ErrInconsistent.
func (e *Error) Unwrap() error { return ErrInconsistent }
