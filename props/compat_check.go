package props

// Step 2 of the engine migration (docs/architecture.md) moved the
// independent structural checker to props/check, which imports only the
// standard library. These aliases and forwarders keep props' names working
// for existing callers and other modules; step 12 removes all but the
// door's public ones. New code uses props/check directly.

import (
	"fmt"
	"io"

	"github.com/qedtorture/qedtorture/props/check"
	"github.com/spf13/afero"
)

// The checker's types, under their props names.
type (
	StructureChecker = check.Checker
	StructureReport  = check.Report
	StructureHeader  = check.Header
	StructureError   = check.Error
	ViolationKind    = check.ViolationKind
	Violation        = check.Violation
	Severity         = check.Severity
	LocKind          = check.LocKind
	Location         = check.Location
	TableRef         = check.TableRef
)

// Violation kinds.
const (
	ViolNone                          = check.ViolNone
	ViolShortFile                     = check.ViolShortFile
	ViolBadMagic                      = check.ViolBadMagic
	ViolBadClusterSize                = check.ViolBadClusterSize
	ViolBadTableSize                  = check.ViolBadTableSize
	ViolBadHeaderSize                 = check.ViolBadHeaderSize
	ViolBadImageSize                  = check.ViolBadImageSize
	ViolUnknownFeatures               = check.ViolUnknownFeatures
	ViolBadBackingName                = check.ViolBadBackingName
	ViolNoProbeWithoutBacking         = check.ViolNoProbeWithoutBacking
	ViolTableMisaligned               = check.ViolTableMisaligned
	ViolTableInHeader                 = check.ViolTableInHeader
	ViolTablePastEOF                  = check.ViolTablePastEOF
	ViolDataMisaligned                = check.ViolDataMisaligned
	ViolDataInHeader                  = check.ViolDataInHeader
	ViolDataPastEOF                   = check.ViolDataPastEOF
	ViolDoubleRefTableTable           = check.ViolDoubleRefTableTable
	ViolDoubleRefTableData            = check.ViolDoubleRefTableData
	ViolDoubleRefDataData             = check.ViolDoubleRefDataData
	ViolNeedCheckClearButInconsistent = check.ViolNeedCheckClearButInconsistent
)

// Severities and location kinds.
const (
	SeverityError   = check.SeverityError
	SeverityWarning = check.SeverityWarning

	LocNone   = check.LocNone
	LocHeader = check.LocHeader
	LocL1     = check.LocL1
	LocL2     = check.LocL2
)

// Limits.
const (
	DefaultViolationLimit = check.DefaultViolationLimit
	MaxCheckedClusters    = check.MaxCheckedClusters
)

// Errors.
var (
	ErrStructureInconsistent = check.ErrInconsistent
	ErrStructureRead         = check.ErrRead
	ErrStructureTooLarge     = check.ErrTooLarge
)

// AllViolationKinds is check.AllViolationKinds.
func AllViolationKinds() []ViolationKind { return check.AllViolationKinds() }

// CheckStructure is check.Structure.
func CheckStructure(img []byte) *StructureReport { return check.Structure(img) }

// CheckStructureReaderAt is check.ReaderAt.
func CheckStructureReaderAt(r io.ReaderAt, size int64) (*StructureReport, error) {
	return check.ReaderAt(r, size)
}

// CheckStructureFile checks the QED image at name on fs: the thin afero
// wrapper over check.File. Errors name the path.
func CheckStructureFile(fs afero.Fs, name string) (*StructureReport, error) {
	f, err := fs.Open(name)
	if err != nil {
		return nil, fmt.Errorf("props: structure check of %s: %w", name, err)
	}
	defer f.Close()
	return check.File(f)
}
