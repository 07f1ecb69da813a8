package interop

import (
	"encoding/binary"
	"fmt"
	"os"

	"github.com/qedtorture/qedtorture/impl/qed"
	"github.com/spf13/afero"
)

// Deviation is a known place where QEMU departs from the QED specification
// (or from its own documentation), and what impl/qed does instead.
type Deviation struct {
	Test   string // the test that demonstrates it
	QEMU   string // what QEMU 7.2 does
	Rule   string // the rule it breaks, and where the rule is written
	Follow string // what impl/qed / qedtorture do
}

// Deviations lists the QEMU deviations the interop tests found.
var Deviations = []Deviation{
	{
		Test: "TestDeviationTableSize1",
		QEMU: "qemu-img create makes table_size=1 images that QEMU cannot open (\"QED table offset is invalid\"): " +
			"its table-offset check takes end = offset + (table_size-1)*cluster_size and rejects end <= offset as an overflow",
		Rule:   "docs/format.md, Header: table_size is a power of two from 1 to 16",
		Follow: "impl/qed opens, writes and checks table_size=1 images, QEMU's and its own",
	},
	{
		Test: "TestDeviationMaxSizeOverflow",
		QEMU: "the maximum image size n*n*cluster_size wraps to 0 in 64 bits for 2 MiB clusters with 16-cluster tables " +
			"(and larger geometries): create fails (\"less than 0 bytes\"), open fails (\"QED image size is invalid\")",
		Rule:   "docs/format.md, Tables: compute the maximum image size without overflowing 64 bits",
		Follow: "qed.MaxImageSize saturates; impl/qed creates and uses such images",
	},
	{
		Test: "TestDeviationProbeAnyFormat",
		QEMU: "without NO_PROBE, QEMU probes the backing file among all its formats (a qcow2 backing file is read as qcow2)",
		Rule: "docs/format.md, Backing files: QED magic -> QED, anything else -> raw " +
			"(QEMU's qed_spec.txt says only \"probed\"; the narrower rule is this project's)",
		Follow: "impl/qed reads a non-QED backing file as raw bytes",
	},
	{
		Test: "TestDeviationLongBackingName",
		QEMU: "qemu-img create -f qed accepts a backing file name longer than the header cluster " +
			"(cluster_size - 64 bytes): it writes the name over the L1 table, then refuses to open " +
			"the image it made (\"QED backing filename offset is invalid\")",
		Rule:   "docs/format.md, Creating an image: a backing name that does not fit in the header cluster must be refused at create time",
		Follow: "qed.Create and qedtorture create refuse the name with ErrInvalidOption (exit 2); opening QEMU's image fails with a FormatError",
	},
	{
		Test: "TestDeviationRepairClearsNeedCheck",
		QEMU: "qemu-img check -r all and the writable open's automatic check clear NEED_CHECK although a double " +
			"reference they cannot repair remains: the image then claims to be clean",
		Rule:   "docs/format.md, Check and repair: NEED_CHECK is cleared after a repair only when no corruption remains",
		Follow: "impl/qed's repair keeps NEED_CHECK set, and sets it when it was clear, while a corruption remains",
	},
	{
		Test:   "TestDeviationHeaderSizeZero",
		QEMU:   "QEMU opens, checks and repairs an image whose header_size is 0 (its check counts the header cluster as a leak)",
		Rule:   "docs/format.md, Header: header_size is at least 1",
		Follow: "impl/qed refuses the header with a FormatError naming header_size",
	},
	{
		Test: "TestDeviationFailedOpenClearsNeedCheck",
		QEMU: "an open of an image with NEED_CHECK set that fails on its backing file (missing, or one QEMU refuses) " +
			"still clears NEED_CHECK on the way out; qemu-img check -r all repairs nothing before, so the image " +
			"keeps its corruption and claims to be clean",
		Rule:   "docs/format.md, Flush ordering and NEED_CHECK: NEED_CHECK clear implies consistent",
		Follow: "impl/qed opens the backing chain before its repair and writes nothing when an open fails",
	},
	{
		Test: "TestDeviationRepairLeaksMode",
		QEMU: "qemu-img check -r leaks on a QED image also clears invalid L1/L2 offsets (QED's check " +
			"takes any repair mode as 'fix everything')",
		Rule:   "qemu-img(1): '-r leaks repairs only cluster leaks, whereas -r all fixes all kinds of errors'",
		Follow: "qedtorture check -r leaks changes nothing (QED cannot reclaim leaks); only -r all clears invalid offsets",
	},
	{
		Test: "TestDeviationRebaseTornName",
		QEMU: "qemu-img rebase (-u or not) rewrites the header fields and the new backing name in one write from " +
			"offset 0, over the old name: with a name longer than 448 bytes a write torn at a sector boundary " +
			"leaves a name that is neither the old nor the new one (recorded through blklogwrites)",
		Rule:   "docs/format.md, Changing the backing file, committing, resizing: a crash leaves the old name or the new one, whole",
		Follow: "qed.SetBacking and qed.Rebase write the new name into free header bytes and sync it before the fields",
	},
}

// QEMUBugs lists QEMU failures the interop tests work around that break no
// format rule (crashes, assertion failures).
var QEMUBugs = []string{
	"qemu-img map (7.2) aborts with an assertion failure in bdrv_co_block_status on a QED image " +
		"that has an allocated cluster when one L2 table maps 4 GiB or more (e.g. 64 KiB clusters " +
		"with 16-cluster tables); TestQEMUWrittenImages then skips the map comparison",
	"qemu-img info (7.2) prints \"dirty-flag\": false for a QED image with NEED_CHECK set; " +
		"qedtorture info prints true (compareInfo checks ours and ignores QEMU's there)",
}

// PutU64 writes v little-endian at off in the file at path: the corrupter
// the tests plant bad table entries and header fields with.
func PutU64(path string, off int64, v uint64) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], v)
	_, err = f.WriteAt(b[:], off)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("interop: poking %#x at %d of %s: %w", v, off, path, err)
	}
	return nil
}

// GetU64 reads the little-endian u64 at off in the file at path.
func GetU64(path string, off int64) (uint64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var b [8]byte
	if _, err := f.ReadAt(b[:], off); err != nil {
		return 0, fmt.Errorf("interop: reading u64 at %d of %s: %w", off, path, err)
	}
	return binary.LittleEndian.Uint64(b[:]), nil
}

// Grow appends n zero bytes to the file at path (whole clusters appended
// this way are leaks).
func Grow(path string, n int64) error {
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	return os.Truncate(path, st.Size()+n)
}

// Layout locates the tables of a QED image from its header, independently
// of impl/qed's table code, so corrupters can aim at them.
type Layout struct {
	Header qed.Header
	Nelems int64 // entries per table
}

// ReadLayout decodes the header of the image at path.
func ReadLayout(path string) (Layout, error) {
	h, err := qed.ReadHeader(afero.NewOsFs(), path)
	if err != nil {
		return Layout{}, err
	}
	return Layout{Header: h, Nelems: int64(h.TableSize) * int64(h.ClusterSize) / 8}, nil
}

// L1Entry returns the file offset of L1 entry i.
func (l Layout) L1Entry(i int64) int64 { return int64(l.Header.L1TableOffset) + 8*i }

// L2Entry returns the file offset of entry j of the L2 table at table.
func (l Layout) L2Entry(table uint64, j int64) int64 { return int64(table) + 8*j }

// Coverage is the guest bytes one L2 table maps.
func (l Layout) Coverage() int64 { return l.Nelems * int64(l.Header.ClusterSize) }
