package crashsim

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
)

// dm-log-writes log layout (little-endian; S = the log's sector size),
// as written by Linux's dm-log-writes target and QEMU's blklogwrites:
//
//	block 0 (S bytes): super block
//	  @0  u64 magic      0x6a736677736872
//	  @8  u64 version    1
//	  @16 u64 nr_entries entries committed to the log
//	  @24 u32 sectorsize S
//	then per entry: one S-byte header block
//	  @0  u64 sector     target offset, in units of S
//	  @8  u64 nr_sectors length of the data, in units of S
//	  @16 u64 flags      FLUSH | FUA | DISCARD | MARK | METADATA
//	  @24 u64 data_len   (unused by writes)
//	  followed by nr_sectors*S data bytes, except for DISCARD entries.
const (
	DMLogMagic   = 0x6a736677736872
	DMLogVersion = 1

	dmSuperMagic      = 0
	dmSuperVersion    = 8
	dmSuperNrEntries  = 16
	dmSuperSectorSize = 24
	dmSuperLen        = dmSuperSectorSize + 4

	dmEntrySector    = 0
	dmEntryNrSectors = 8
	dmEntryFlags     = 16
	dmEntryDataLen   = 24
	dmEntryLen       = dmEntryDataLen + 8

	DMLogFlush    = 1 << 0
	DMLogFUA      = 1 << 1
	DMLogDiscard  = 1 << 2
	DMLogMark     = 1 << 3
	DMLogMetadata = 1 << 4
	dmKnownFlags  = DMLogFlush | DMLogFUA | DMLogDiscard | DMLogMark | DMLogMetadata

	dmMinSector = 512
	dmMaxSector = 1 << 20
)

// DMLogEntry is one committed entry of a dm-log-writes log, as ScanDMLog
// reports it.
type DMLogEntry struct {
	Index  int64  // entry number, from 0
	Header int64  // log offset of the entry's header block
	Flags  uint64 // DMLogFlush | DMLogFUA | DMLogDiscard | DMLogMark | DMLogMetadata
	Off    int64  // target byte offset (sector * S)
	Len    int64  // target byte length (nr_sectors * S)
	// Data is the log offset of the entry's data: Len bytes, except for
	// a DISCARD entry, which carries none.
	Data int64
}

// HasData reports whether the entry carries data bytes in the log (a
// write: not a DISCARD, and a non-zero length).
func (e DMLogEntry) HasData() bool { return e.Flags&DMLogDiscard == 0 && e.Len > 0 }

// ScanDMLog checks a dm-log-writes log of size bytes and calls fn with
// each of its nr_entries committed entries, in order, reading only the
// super block and the entry headers (data is never read, so a log of any
// size costs no memory); bytes after the committed entries are ignored.
// Every entry is checked before fn sees it: known flags only, a target
// range that does not overflow, data inside the log. A malformed log is a
// *FormatError naming the entry, offset and field; an error from fn stops
// the scan and is returned as is. It returns the log's sector size S.
func ScanDMLog(r io.ReaderAt, size int64, fn func(DMLogEntry) error) (int64, error) {
	fail := func(entry, off int64, field string, v uint64, msg string) (int64, error) {
		return 0, &FormatError{Source: "dm-log", Entry: entry, Offset: off, Field: field, Value: v, Msg: msg}
	}
	var sb [dmSuperLen]byte
	if size < dmSuperLen {
		return fail(-1, 0, "size", uint64(max(size, 0)), "too short for a super block")
	}
	if _, err := r.ReadAt(sb[:], 0); err != nil {
		return 0, fmt.Errorf("crashsim: dm-log: reading super block: %w", err)
	}
	le := binary.LittleEndian
	if v := le.Uint64(sb[dmSuperMagic:]); v != DMLogMagic {
		return fail(-1, dmSuperMagic, "magic", v, "not a dm-log-writes log")
	}
	if v := le.Uint64(sb[dmSuperVersion:]); v != DMLogVersion {
		return fail(-1, dmSuperVersion, "version", v, "unsupported version (want 1)")
	}
	s := int64(le.Uint32(sb[dmSuperSectorSize:]))
	if s < dmMinSector || s > dmMaxSector || s&(s-1) != 0 {
		return fail(-1, dmSuperSectorSize, "sectorsize", uint64(s), "not a power of two in [512, 1 MiB]")
	}
	if size < s {
		return fail(-1, 0, "size", uint64(size), "shorter than one sector")
	}
	nr := le.Uint64(sb[dmSuperNrEntries:])
	// Every entry takes at least one sector: a larger count is a lie we
	// must not size anything by.
	if nr > uint64(size/s) {
		return fail(-1, dmSuperNrEntries, "nr_entries", nr, fmt.Sprintf("more entries than the %d-byte log can hold", size))
	}
	var hdr [dmEntryLen]byte
	pos := s
	for i := range int64(nr) {
		if size-pos < s {
			return fail(i, pos, "entry header", 0, "runs past the end of the log")
		}
		if _, err := r.ReadAt(hdr[:], pos); err != nil {
			return 0, fmt.Errorf("crashsim: dm-log: entry %d at offset %d: %w", i, pos, err)
		}
		sector := le.Uint64(hdr[dmEntrySector:])
		nsec := le.Uint64(hdr[dmEntryNrSectors:])
		flags := le.Uint64(hdr[dmEntryFlags:])
		if flags&^dmKnownFlags != 0 {
			return fail(i, pos+dmEntryFlags, "flags", flags, "unknown flag bits")
		}
		if sector > uint64(math.MaxInt64/s) || nsec > uint64(math.MaxInt64/s) ||
			sector*uint64(s) > uint64(math.MaxInt64)-nsec*uint64(s) {
			return fail(i, pos+dmEntrySector, "sector", sector, "target range overflows")
		}
		e := DMLogEntry{Index: i, Header: pos, Flags: flags, Off: int64(sector) * s, Len: int64(nsec) * s, Data: pos + s}
		pos += s
		if e.HasData() {
			if e.Len > size-pos {
				return fail(i, e.Header+dmEntryNrSectors, "nr_sectors", nsec, fmt.Sprintf("data runs past the end of the log (%d bytes left)", size-pos))
			}
			pos += e.Len
		}
		if err := fn(e); err != nil {
			return 0, err
		}
	}
	return s, nil
}

// ReadDMLog parses a dm-log-writes log of size bytes into a trace of
// operations on the single file path: each write becomes an OpWrite, a
// FLUSH an OpSync (before the entry's write, if it has one: a preflush),
// FUA an OpSync after the write, a DISCARD an OpDiscard. METADATA is
// ignored; MARK entries are rejected (QEMU never writes them). Only the
// nr_entries committed entries are read (ScanDMLog checks them); bytes
// after them are ignored. The trace has File 0 everywhere, so it replays
// (Image.Replay) on any image that holds path — normally a copy of the
// device or image file taken before the log started.
func ReadDMLog(r io.ReaderAt, size int64, path string) (*Trace, error) {
	t := &Trace{}
	add := func(o Op) {
		o.Index = int64(len(t.Ops))
		o.Path = path
		t.Ops = append(t.Ops, o)
	}
	_, err := ScanDMLog(r, size, func(e DMLogEntry) error {
		if e.Flags&DMLogMark != 0 {
			return &FormatError{Source: "dm-log", Entry: e.Index, Offset: e.Header + dmEntryFlags, Field: "flags", Value: e.Flags, Msg: "MARK entries are not supported"}
		}
		if e.Flags&DMLogFlush != 0 {
			add(Op{Kind: OpSync})
		}
		switch {
		case e.Flags&DMLogDiscard != 0:
			add(Op{Kind: OpDiscard, Off: e.Off, Size: e.Len})
		case e.HasData():
			data := make([]byte, e.Len)
			if _, err := r.ReadAt(data, e.Data); err != nil {
				return fmt.Errorf("crashsim: dm-log: entry %d data at offset %d: %w", e.Index, e.Data, err)
			}
			add(Op{Kind: OpWrite, Off: e.Off, Data: data})
		}
		if e.Flags&DMLogFUA != 0 {
			add(Op{Kind: OpSync})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return t, nil
}
